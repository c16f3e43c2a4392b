"""Write recordings in the Sensorium 2023 layout, atomically, one trial at a time.

Statistics written (meta/statistics/<kind>/all/{mean,std,min,max,median}.npy, float32):
videos 0-d (over all pixels and valid frames), behavior and pupil_center (2,), responses (N,) per neuron over the
valid frames of trials that have responses (the public release stores per-frame (N, T_pad) response statistics;
the reader accepts both). See `stats.RunningSummary` for how the median is estimated.

A behaviour channel that was not recorded in a trial is given as NaN over the whole trial: it is written so (the
reader fills it, see `recording`), and left out of that channel's statistics, which are NaN when no trial
recorded the channel.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from v1recon import FRAME_SHAPE
from v1recon.data.recording import DATA_KINDS, MIN_FRAMES, TIERS, Trial, load_npy
from v1recon.data.stats import STAT_NAMES, RunningSummary
from v1recon.errors import V1ReconError
from v1recon.io import atomic_path


def _padded(arr: np.ndarray, pad_to: int) -> np.ndarray:
    """(..., T) -> (..., pad_to) float32, NaN after the valid frames."""
    out = np.full(arr.shape[:-1] + (pad_to,), np.nan, np.float32)
    out[..., : arr.shape[-1]] = arr
    return out


def _check_trial(trial: Trial, n_neurons: int, pad_to: int | None, where: Path) -> int:
    """Validate one trial before writing; returns its length. `where` names the trial's video file."""
    video = np.asarray(trial.video)
    if video.ndim != 3 or video.shape[1:] != FRAME_SHAPE:
        raise V1ReconError(f"{where}: trial {trial.trial_id} video must be (T, 36, 64), got {video.shape}.")
    length = video.shape[0]
    if length < MIN_FRAMES:
        raise V1ReconError(
            f"{where}: trial {trial.trial_id} has {length} frames, fewer than the minimum of {MIN_FRAMES}."
        )
    if pad_to is not None and length > pad_to:
        raise V1ReconError(f"{where}: trial {trial.trial_id} has {length} frames, more than pad_to={pad_to}.")
    if trial.tier not in TIERS:
        raise V1ReconError(
            f"{where}: trial {trial.trial_id} has unknown tier {trial.tier!r} (known: {', '.join(TIERS)})."
        )
    expected = {"video": (length, *FRAME_SHAPE), "behaviour": (4, length)}
    if trial.responses is not None:
        expected["responses"] = (n_neurons, length)
    for name, shape in expected.items():
        arr = np.asarray(getattr(trial, name))
        if arr.shape != shape:
            raise V1ReconError(f"{where}: trial {trial.trial_id} {name} must be shaped {shape}, got {arr.shape}.")
        if name == "behaviour":
            arr = arr[~np.isnan(arr).all(axis=1)]  # channels not recorded are NaN throughout
        if not np.isfinite(arr).all():
            raise V1ReconError(f"{where}: trial {trial.trial_id} {name} holds NaN or infinite values.")
    return length


class _ChannelSummaries:
    """Statistics of behaviour rows kept per channel, so that a channel absent from a trial (NaN throughout) is
    left out of its own statistics only; NaN for a channel no trial recorded."""

    def __init__(self, n_channels: int):
        self.channels = [RunningSummary(1) for _ in range(n_channels)]

    def update(self, block: np.ndarray) -> None:
        for summary, row in zip(self.channels, block, strict=True):
            if not np.isnan(row).all():
                summary.update(row[None])

    def summary(self) -> dict[str, np.ndarray]:
        absent = {name: np.full(1, np.nan, np.float32) for name in STAT_NAMES}
        per = [s.summary() if s.count else absent for s in self.channels]
        return {name: np.concatenate([p[name] for p in per]) for name in STAT_NAMES}


def write_recording(
    path: str | os.PathLike,
    trials: Iterable[Trial],
    unit_ids: np.ndarray,
    coordinates: np.ndarray,
    pad_to: int | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write trials (ids 0..n-1, any order) as one mouse folder in the Sensorium layout; returns the folder.

    unit_ids (N,); coordinates (N, 3) microns. Arrays are NaN-padded to `pad_to` frames (default: the longest
    trial). Trials without responses are written as zeros, as the public release does for held-back test tiers.
    The folder appears only when everything was written; an existing folder is replaced only with overwrite=True.
    """
    path = Path(path)
    if path.exists() and not (overwrite and path.is_dir()):
        raise V1ReconError(f"{path}: already exists; pass overwrite=True (or --overwrite) to replace it.")
    unit_ids = np.asarray(unit_ids)
    coordinates = np.asarray(coordinates, np.float32)
    if unit_ids.ndim != 1 or unit_ids.size == 0:
        raise V1ReconError(
            f"{path / 'meta/neurons/unit_ids.npy'}: unit ids must be a non-empty (N,) array, got "
            f"shape {unit_ids.shape}."
        )
    n = unit_ids.shape[0]
    if coordinates.shape != (n, 3):
        raise V1ReconError(
            f"{path / 'meta/neurons/cell_motor_coordinates.npy'}: coordinates must be ({n}, 3), "
            f"got {coordinates.shape}."
        )
    with atomic_path(path) as tmp:
        for kind in DATA_KINDS:
            (tmp / "data" / kind).mkdir(parents=True)
        tiers, lengths, summaries = _write_trials(tmp, path, trials, n, pad_to)
        if pad_to is None:
            pad_to = max(lengths.values())
            _repad(tmp, lengths, pad_to)
        neurons = tmp / "meta" / "neurons"
        neurons.mkdir(parents=True)
        np.save(neurons / "unit_ids.npy", unit_ids)
        np.save(neurons / "cell_motor_coordinates.npy", coordinates)
        (tmp / "meta" / "trials").mkdir(parents=True)
        np.save(tmp / "meta" / "trials" / "tiers.npy", np.array([tiers[i] for i in range(len(tiers))]))
        for kind, summary in summaries.items():
            folder = tmp / "meta" / "statistics" / kind / "all"
            folder.mkdir(parents=True)
            for name, value in summary.summary().items():
                np.save(folder / f"{name}.npy", value)
    return path


def _write_trials(
    tmp: Path, final: Path, trials: Iterable[Trial], n: int, pad_to: int | None
) -> tuple[dict[int, str], dict[int, int], dict]:
    """Write every trial's four files into `tmp`, feeding the running statistics; returns tiers and lengths."""
    summaries = {
        "videos": RunningSummary(1, scalar=True),
        "responses": RunningSummary(n),
        "behavior": _ChannelSummaries(2),
        "pupil_center": _ChannelSummaries(2),
    }
    tiers: dict[int, str] = {}
    lengths: dict[int, int] = {}
    for trial in trials:
        i = int(trial.trial_id)
        where = final / "data" / "videos" / f"{i}.npy"
        if i in tiers or i < 0:
            raise V1ReconError(f"{where}: trial id {i} is negative or given twice.")
        length = _check_trial(trial, n, pad_to, where)
        pad = pad_to or length
        video = np.asarray(trial.video, np.float32)
        behaviour = np.asarray(trial.behaviour, np.float32)
        responses = np.zeros((n, length), np.float32) if trial.responses is None else trial.responses
        responses = np.asarray(responses, np.float32)
        np.save(tmp / "data" / "videos" / f"{i}.npy", _padded(video.transpose(1, 2, 0), pad))
        np.save(tmp / "data" / "responses" / f"{i}.npy", _padded(responses, pad))
        np.save(tmp / "data" / "behavior" / f"{i}.npy", _padded(behaviour[:2], pad))
        np.save(tmp / "data" / "pupil_center" / f"{i}.npy", _padded(behaviour[2:], pad))
        summaries["videos"].update(video.reshape(1, -1))
        if trial.responses is not None:
            summaries["responses"].update(responses)
        summaries["behavior"].update(behaviour[:2])
        summaries["pupil_center"].update(behaviour[2:])
        tiers[i], lengths[i] = trial.tier, length
    if not tiers:
        raise V1ReconError(f"{final}: no trials to write.")
    if set(tiers) != set(range(len(tiers))):
        missing = sorted(set(range(max(tiers) + 1)) - set(tiers))[:5]
        raise V1ReconError(f"{final}: trial ids must run 0..n-1 without gaps; missing {missing}.")
    return tiers, lengths, summaries


def _repad(tmp: Path, lengths: dict[int, int], pad_to: int) -> None:
    """Re-pad the trials written shorter than the longest one (only when pad_to was not given)."""
    for i, length in lengths.items():
        if length == pad_to:
            continue
        for kind in DATA_KINDS:
            file = tmp / "data" / kind / f"{i}.npy"
            arr = load_npy(file, mmap=False)
            np.save(file, _padded(arr, pad_to))
