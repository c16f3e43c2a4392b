"""Folds by movie: every showing of the same movie lands in the same fold, in every tier and every mouse.

A movie is identified by a perceptual hash: the average hash (8 x 8 block means above their mean -> 64 bits) of 5
evenly spaced valid frames, XOR-ed together and mixed (splitmix64 finaliser, so that any number of folds gets an
even spread), modulo the number of folds. Identical frames give identical hashes; float noise changes a hash
only when it moves a block mean across the frame mean, which rounding-level noise practically never does.
"""

from __future__ import annotations

import numpy as np

from v1recon.data.recording import Recording
from v1recon.errors import V1ReconError

HASH_FRAMES = 5
_GRID = 8
_MASK64 = (1 << 64) - 1


def hash_frame_indices(length: int, count: int = HASH_FRAMES) -> np.ndarray:
    """Indices of the `count` evenly spaced frames (first to last valid frame) that identify a movie."""
    return np.unique(np.linspace(0, length - 1, count).round().astype(int))


def _block_means(frame: np.ndarray) -> np.ndarray:
    """(H, W) -> (8, 8) means over near-equal blocks (H and W need not be multiples of 8)."""
    h, w = frame.shape
    rows = np.arange(_GRID) * h // _GRID
    cols = np.arange(_GRID) * w // _GRID
    sums = np.add.reduceat(np.add.reduceat(frame.astype(np.float64), rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return sums / counts


def frame_hash(frame: np.ndarray) -> int:
    """64-bit average hash of one (H, W) frame: bit k is set when block k is brighter than the block mean."""
    blocks = _block_means(frame)
    bits = (blocks > blocks.mean()).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _mix(h: int) -> int:
    """splitmix64 finaliser: spreads every input bit over every output bit."""
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
    return h ^ (h >> 31)


def _hash_frames(frames: np.ndarray) -> int:
    h = 0
    for frame in frames:
        h ^= frame_hash(frame)
    return _mix(h)


def movie_hash(video: np.ndarray) -> int:
    """64-bit perceptual identity of a (T, H, W) movie from its 5 evenly spaced frames."""
    video = np.asarray(video)
    if video.ndim != 3 or video.shape[0] == 0:
        raise V1ReconError(f"movie hash needs a (T, H, W) video with T >= 1, got shape {video.shape}.")
    return _hash_frames(video[hash_frame_indices(video.shape[0])])


def movie_fold(video: np.ndarray, n_folds: int = 7) -> int:
    """Fold (0..n_folds-1) of a (T, 36, 64) movie; the same movie always gets the same fold."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    return movie_hash(video) % n_folds


def movie_hashes(recording: Recording) -> dict[int, int]:
    """{trial_id: movie_hash} for every trial of a recording, reading only the hashed frames of each video."""
    return {
        info.trial_id: _hash_frames(recording.video_frames(info.trial_id, hash_frame_indices(info.length)))
        for info in recording.trials
    }


def fold_of_trials(recording: Recording, n_folds: int = 7) -> dict[int, int]:
    """{trial_id: fold} for every trial of a recording, reading only the 5 hashed frames of each video."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    return {trial_id: h % n_folds for trial_id, h in movie_hashes(recording).items()}
