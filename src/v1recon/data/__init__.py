"""Recordings in the Sensorium 2023 layout: reader, writer, trial table, statistics and folds by movie."""

from v1recon.data.folds import fold_of_trials, frame_hash, movie_fold, movie_hash
from v1recon.data.recording import MIN_FRAMES, TEST_TIERS, TIERS, Recording, Trial, TrialInfo, open_recordings
from v1recon.data.stats import RunningSummary, response_precision
from v1recon.data.writer import write_recording

__all__ = [
    "MIN_FRAMES",
    "TEST_TIERS",
    "TIERS",
    "Recording",
    "RunningSummary",
    "Trial",
    "TrialInfo",
    "fold_of_trials",
    "frame_hash",
    "movie_fold",
    "movie_hash",
    "open_recordings",
    "response_precision",
    "write_recording",
]
