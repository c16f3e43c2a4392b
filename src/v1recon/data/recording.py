"""Read recordings in the Sensorium 2023 layout (one folder per mouse, plain .npy, time last, NaN-padded).

What is checked when:
- On open (cheap, from .npy headers plus one pixel and one neuron per trial): missing folder or file, unreadable
  .npy, wrong number of dimensions or frame size, neuron count differing from the metadata, behaviour or pupil
  rows other than 2, unknown tier, valid length under `MIN_FRAMES`.
- On `Recording.trial` (reads the whole trial): NaN inside the valid frames of the video, responses or behaviour,
  valid frames after the NaN padding has started, and negative responses (see `non_negative_responses`).

A behaviour channel that is NaN over all of a trial's valid frames was not recorded (imports without running speed
or eye tracking write it so). `Recording.trial` fills it, here and nowhere else, with the channel's mean from the
recording's statistics, or with 0 where the statistics hold none, says so once per recording and channel (a
warning on the `v1recon` logger, printed on stderr) and lists it in `Recording.filled_behaviour`, so everything
downstream sees a full (4, T) behaviour.

The valid length of a trial is min(first NaN along time in the video, first NaN in the responses), read from
pixel (0, 0) and neuron 0. Behaviour never sets it: the public release does not NaN-pad behaviour.
A trial whose responses are all zero within its valid frames (the held-back test tiers) has no responses.
The trial table is cached (see `cache`), keyed by the size and modification time of every file it was read from.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from v1recon import FRAME_SHAPE
from v1recon.data import cache
from v1recon.errors import V1ReconError
from v1recon.errors import warn as warn_user

TIERS = ("train", "oracle", "live_test", "final_test", "none", "live_bonus", "final_bonus")
TEST_TIERS = ("oracle", "live_test", "final_test")  # held out: never trained on
STAT_KINDS = ("videos", "responses", "behavior", "pupil_center")
DATA_KINDS = ("videos", "responses", "behavior", "pupil_center")
MIN_FRAMES = 31  # one full 30-frame context window plus a frame to predict
BEHAVIOUR_CHANNELS = ("pupil dilation", "running speed", "pupil x", "pupil y")
NEGATIVE_SHARE_LIMIT = 0.05  # responses whose negative values carry more of their absolute sum are refused
_log = logging.getLogger("v1recon")
_SAMPLE_ROWS = 64  # neurons probed before scanning a whole response array for non-zero values


@dataclass
class TrialInfo:
    """One row of a recording's trial table; `length` is the number of valid frames (30 Hz)."""

    trial_id: int
    tier: str
    length: int
    has_responses: bool


@dataclass
class Trial:
    """One trial's valid frames, time first for the video and time last for the rest."""

    trial_id: int
    tier: str
    video: np.ndarray  # (T, 36, 64) float32 grey levels 0..255
    responses: np.ndarray | None  # (N, T) float32, None when the recording holds none for this trial
    behaviour: np.ndarray  # (4, T) float32: pupil dilation, running speed, pupil x, pupil y

    @property
    def length(self) -> int:
        return int(self.video.shape[0])


def load_npy(path: Path, *, mmap: bool = True, dtype: str = "float") -> np.ndarray:
    """np.load, never of pickles, with every problem as one sentence naming the file.

    The header is checked first: np.load would try to unpickle a file without one, and a pickled (object) array
    can run code when it is loaded. `dtype` ("float", "int", "str") names what to save instead, in the advice.
    """
    if not path.is_file():
        raise V1ReconError(f"{path}: file not found.")
    header = npy_header(path)
    if header is not None:
        shape, kind, offset = header
        if kind.hasobject:
            raise V1ReconError(
                f"{path}: holds pickled Python objects, which v1recon never loads (unpickling can run code); save "
                f"it as a plain array instead, e.g. np.save(path, np.asarray(values, dtype={dtype}))."
            )
        needed = offset + int(np.prod(shape, dtype=np.int64)) * kind.itemsize
        size = path.stat().st_size
        if size < needed:
            raise V1ReconError(f"{path}: truncated .npy file ({size} bytes, its {shape} {kind} array needs {needed}).")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise V1ReconError(f"{path}: not a readable .npy file ({err}).") from err


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """(shape, dtype, byte offset of the data) from a .npy header alone; None for format versions other than 1.0
    and 2.0 (np.load then reads them)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise V1ReconError(f"{path}: not a .npy file (it does not start with the NumPy header).")
            f.seek(0)
            reader = readers.get(np.lib.format.read_magic(f))
            if reader is None:
                return None
            shape, _, dtype = reader(f)
            return tuple(shape), dtype, f.tell()
    except (ValueError, OSError, EOFError) as err:
        raise V1ReconError(f"{path}: not a readable .npy file ({err}).") from err


def npy_shape(path: Path) -> tuple[int, ...]:
    """Shape of a .npy file from its header alone."""
    if not path.is_file():
        raise V1ReconError(f"{path}: file not found.")
    header = npy_header(path)
    return header[0] if header is not None else load_npy(path).shape  # other format versions


def _first_nan(series: np.ndarray) -> int:
    """Index of the first NaN of a 1-D series, or its length when there is none."""
    nan = np.isnan(np.asarray(series, np.float64))
    return int(nan.argmax()) if nan.any() else int(series.shape[0])


def _nonzero(responses: np.ndarray, length: int) -> bool:
    """Whether a (N, T_pad) response array holds any non-zero value in its first `length` frames.

    Probes evenly spaced neurons first, so that a recorded trial costs a few pages; only all-zero candidates
    (held-back test trials) are scanned in full.
    """
    n = responses.shape[0]
    rows = np.linspace(0, n - 1, min(n, _SAMPLE_ROWS)).astype(int)  # distinct: spacing >= 1
    if np.any(responses[rows, :length] != 0):
        return True
    step = max(1, (1 << 22) // max(length, 1))
    return any(np.any(responses[s : s + step, :length] != 0) for s in range(0, n, step))


@dataclass
class _TrialFiles:
    info: TrialInfo
    paths: dict[str, Path]
    video_end: int  # first NaN frame of the video (T_pad if none)
    responses_end: int  # first NaN frame of the responses (T_pad if none)
    pad_length: int  # T_pad of the video file


class Recording:
    """One mouse folder in the Sensorium layout; validated on open (see module notes), trials loaded on demand.

    Attributes: path, name, n_neurons (N), trials (list of TrialInfo, by trial id), unit_ids (N,),
    coordinates (N, 3) cortical position in microns, pad_length (largest T_pad of any file), filled_behaviour
    ({channel: how it was filled} for the absent behaviour channels met so far, see the module notes).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_dir():
            raise V1ReconError(f"{self.path}: recording folder not found.")
        meta = self.path / "meta"
        self.unit_ids = np.asarray(load_npy(meta / "neurons" / "unit_ids.npy", mmap=False, dtype="int"))
        if self.unit_ids.ndim != 1 or self.unit_ids.size == 0:
            raise V1ReconError(
                f"{meta / 'neurons' / 'unit_ids.npy'}: expected a non-empty (N,) array, got shape "
                f"{self.unit_ids.shape}."
            )
        self.n_neurons = int(self.unit_ids.shape[0])
        coord_path = meta / "neurons" / "cell_motor_coordinates.npy"
        self.coordinates = np.asarray(load_npy(coord_path, mmap=False), np.float32)
        if self.coordinates.shape != (self.n_neurons, 3):
            raise V1ReconError(
                f"{coord_path}: expected shape ({self.n_neurons}, 3) to match unit_ids.npy, got "
                f"{self.coordinates.shape}."
            )
        self._warned_negative = False
        tiers = self._read_tiers(meta / "trials" / "tiers.npy")
        self._files = self._trial_table(tiers)
        self.trials = [f.info for f in self._files]
        self.pad_length = max((f.pad_length for f in self._files), default=0)
        self.filled_behaviour: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Recording({str(self.path)!r}, neurons={self.n_neurons}, trials={len(self.trials)})"

    def __len__(self) -> int:
        return len(self.trials)

    @staticmethod
    def _read_tiers(path: Path) -> list[str]:
        raw = load_npy(path, mmap=False, dtype="str")
        if raw.ndim != 1:
            raise V1ReconError(f"{path}: expected a (n_trials,) array of tier names, got shape {raw.shape}.")
        tiers = [t.decode() if isinstance(t, bytes) else str(t) for t in raw.tolist()]
        for i, tier in enumerate(tiers):
            if tier not in TIERS:
                raise V1ReconError(f"{path}: trial {i} has unknown tier {tier!r} (known: {', '.join(TIERS)}).")
        return tiers

    def _paths(self, trial_id: int) -> dict[str, Path]:
        return {kind: self.path / "data" / kind / f"{trial_id}.npy" for kind in DATA_KINDS}

    def _trial_table(self, tiers: list[str]) -> list[_TrialFiles]:
        """Scan every trial's files (see module notes), or reuse the cached table of an unchanged recording."""
        meta = [self.path / "meta" / "trials" / "tiers.npy", self.path / "meta" / "neurons" / "unit_ids.npy"]
        sig = cache.signature(meta + [p for i in range(len(tiers)) for p in self._paths(i).values()])
        rows = None if sig is None else cache.load(self.path, sig)
        if rows is not None and len(rows) == len(tiers):
            return [
                _TrialFiles(TrialInfo(i, tiers[i], *row[:2]), self._paths(i), *row[2:]) for i, row in enumerate(rows)
            ]
        start = time.perf_counter()
        files = [self._scan_trial(i, tier) for i, tier in enumerate(tiers)]
        if sig is not None:
            rows = [[f.info.length, f.info.has_responses, f.video_end, f.responses_end, f.pad_length] for f in files]
            cache.store(self.path, sig, rows, persist=time.perf_counter() - start >= cache.MIN_SCAN_SECONDS)
        return files

    def _scan_trial(self, trial_id: int, tier: str) -> _TrialFiles:
        paths = self._paths(trial_id)
        video = load_npy(paths["videos"])
        if video.ndim != 3 or video.shape[:2] != FRAME_SHAPE:
            raise V1ReconError(f"{paths['videos']}: expected a (36, 64, T) video, got shape {video.shape}.")
        responses = load_npy(paths["responses"])
        if responses.ndim != 2 or responses.shape[0] != self.n_neurons:
            raise V1ReconError(
                f"{paths['responses']}: expected ({self.n_neurons}, T) responses to match "
                f"unit_ids.npy, got shape {responses.shape}."
            )
        video_end = _first_nan(video[0, 0, :])
        responses_end = _first_nan(responses[0, :])
        length = min(video_end, responses_end)
        source, series = (
            (paths["videos"], video[0, 0, :]) if video_end <= responses_end else (paths["responses"], responses[0])
        )
        if length < MIN_FRAMES:
            _check_padding(series[length:], length, source)
            raise V1ReconError(f"{source}: trial has {length} valid frames, fewer than the minimum of {MIN_FRAMES}.")
        for kind in ("behavior", "pupil_center"):
            shape = npy_shape(paths[kind])
            if len(shape) != 2 or shape[0] != 2 or shape[1] < length:
                raise V1ReconError(
                    f"{paths[kind]}: expected a (2, T) array with T >= {length} valid frames, got shape {shape}."
                )
        info = TrialInfo(trial_id, tier, length, _nonzero(responses, length))
        return _TrialFiles(info, paths, video_end, responses_end, int(video.shape[2]))

    def trial_ids(self, tier: str | Iterable[str] | None = None, with_responses: bool | None = None) -> list[int]:
        """Trial ids, optionally restricted to one or several tiers and to trials with (or without) responses."""
        wanted = None if tier is None else ({tier} if isinstance(tier, str) else set(tier))
        if wanted is not None and not wanted <= set(TIERS):
            unknown = ", ".join(sorted(wanted - set(TIERS)))
            raise V1ReconError(f"{self.path}: unknown tier {unknown} (known: {', '.join(TIERS)}).")
        return [
            t.trial_id
            for t in self.trials
            if (wanted is None or t.tier in wanted) and (with_responses is None or t.has_responses == with_responses)
        ]

    def info(self, trial_id: int) -> TrialInfo:
        return self._trial_files(trial_id).info

    def _trial_files(self, trial_id: int) -> _TrialFiles:
        if not 0 <= trial_id < len(self._files):
            raise V1ReconError(f"{self.path}: no trial {trial_id} (ids run 0..{len(self._files) - 1}).")
        return self._files[trial_id]

    def trial(self, trial_id: int) -> Trial:
        """Load one trial's valid frames (memory-mapped read); raises on NaN inside the valid frames."""
        files = self._trial_files(trial_id)
        info, paths, length = files.info, files.paths, files.info.length
        video_mm = load_npy(paths["videos"])
        video = np.ascontiguousarray(video_mm[:, :, :length].transpose(2, 0, 1), dtype=np.float32)
        _check_finite(video.reshape(length, -1).T, paths["videos"])
        _check_padding(video_mm[:, :, files.video_end :], files.video_end, paths["videos"])
        responses = None
        if info.has_responses:
            responses_mm = load_npy(paths["responses"])
            responses = np.array(responses_mm[:, :length], dtype=np.float32)
            _check_finite(responses, paths["responses"])
            clipped = non_negative_responses(responses, paths["responses"], warn=not self._warned_negative)
            self._warned_negative |= clipped is not responses  # one warning per recording
            responses = clipped
            _check_padding(responses_mm[:, files.responses_end :], files.responses_end, paths["responses"])
        kinds = ("behavior", "pupil_center")
        behaviour = np.concatenate([np.array(load_npy(paths[k])[:, :length], dtype=np.float32) for k in kinds])
        absent = np.isnan(behaviour).all(axis=1)
        if absent.any():
            behaviour[absent] = self._absent_behaviour(absent, info.trial_id)[absent, None]
        for k, kind in enumerate(kinds):
            _check_finite(behaviour[2 * k : 2 * k + 2], paths[kind])
        return Trial(info.trial_id, info.tier, video, responses, behaviour)

    def behaviour_fill(self) -> tuple[np.ndarray, np.ndarray]:
        """What an absent behaviour channel is filled with: values (4,) float32, the mean of the recording's
        statistics, and from_statistics (4,) bool, False where the statistics hold none (missing or not finite:
        the value is then 0)."""
        values, known = np.zeros(4, np.float32), np.zeros(4, bool)
        for k, kind in enumerate(("behavior", "pupil_center")):
            path = self.path / "meta" / "statistics" / kind / "all" / "mean.npy"
            mean = np.asarray(load_npy(path, mmap=False), np.float32).reshape(-1)[:2] if path.is_file() else []
            for j, value in enumerate(mean):
                if np.isfinite(value):
                    values[2 * k + j], known[2 * k + j] = value, True
        return values, known

    def _absent_behaviour(self, absent: np.ndarray, trial_id: int) -> np.ndarray:
        """The fill values; records and reports each channel the first time it is found absent."""
        values, known = self.behaviour_fill()
        new = [BEHAVIOUR_CHANNELS[k] for k in np.flatnonzero(absent)]
        new = [c for c in new if c not in self.filled_behaviour]
        for c in new:
            k = BEHAVIOUR_CHANNELS.index(c)
            how = f"the mean of the statistics ({values[k]:.4g})" if known[k] else "0 (no statistics)"
            self.filled_behaviour[c] = how
        if new:
            filled = "; ".join(f"{c} with {self.filled_behaviour[c]}" for c in new)
            _log.warning(f"note: {self.path}: behaviour not recorded (first in trial {trial_id}), filled: {filled}.")
        return values

    def video_frames(self, trial_id: int, frames: Iterable[int]) -> np.ndarray:
        """Selected valid frames of a trial's video, (len(frames), 36, 64) float32, without loading the rest."""
        files = self._trial_files(trial_id)
        index = np.asarray(list(frames), dtype=int)
        if index.size and (index.min() < 0 or index.max() >= files.info.length):
            raise V1ReconError(f"{files.paths['videos']}: frame index outside the {files.info.length} valid frames.")
        return np.ascontiguousarray(load_npy(files.paths["videos"])[:, :, index].transpose(2, 0, 1), np.float32)

    def statistics(self, kind: str) -> dict[str, np.ndarray]:
        """{mean, std, min, max, median} of one kind (videos, responses, behavior, pupil_center).

        Shapes as stored: videos usually 0-d, behavior/pupil_center (2,), responses (N,) or per frame (N, T_pad)
        (see `response_precision`, which accepts both).
        """
        if kind not in STAT_KINDS:
            raise ValueError(f"unknown statistics kind {kind!r}; expected one of {STAT_KINDS}")
        folder = self.path / "meta" / "statistics" / kind / "all"
        stats = {
            name: np.asarray(load_npy(folder / f"{name}.npy", mmap=False))
            for name in ("mean", "std", "min", "max", "median")
        }
        if kind == "responses" and stats["std"].shape[:1] != (self.n_neurons,):
            raise V1ReconError(
                f"{folder / 'std.npy'}: expected ({self.n_neurons},) or ({self.n_neurons}, T_pad), "
                f"got shape {stats['std'].shape}."
            )
        return stats


def non_negative_responses(responses: np.ndarray, path: Path, warn: bool = True) -> np.ndarray:
    """The one rule for negative responses; train, evaluate, mask and reconstruct read every trial through it.

    Deconvolved activity is >= 0. Small negative values (numerical noise of the deconvolution; the published
    procedure clips recorded traces too) are set to 0, with a warning when `warn`. Responses whose negative values
    carry more than NEGATIVE_SHARE_LIMIT of their absolute sum are not deconvolved activity (dF/F, z-scored
    traces, a flipped sign) and are refused. Returns `responses` itself when nothing is negative, else a copy.
    """
    negative = responses < 0
    if not negative.any():
        return responses
    share = float(-responses[negative].sum(dtype=np.float64) / np.abs(responses).sum(dtype=np.float64))
    lowest = float(responses.min())
    if share > NEGATIVE_SHARE_LIMIT:
        raise V1ReconError(
            f"{path}: {share:.0%} of the response magnitude is negative (down to {lowest:.3g}); v1recon needs "
            f"deconvolved activity (>= 0), not dF/F or z-scored traces."
        )
    if warn:
        warn_user(
            f"{path}: {int(negative.sum())} negative response values (down to {lowest:.3g}, {share:.2%} of the "
            f"magnitude) set to 0; further trials of this recording are clipped the same way without a warning."
        )
    return np.maximum(responses, 0)


def _check_finite(arr: np.ndarray, path: Path) -> None:
    """Raise when a (C, T) array holds NaN (or inf) inside the valid frames."""
    bad = ~np.isfinite(arr)
    if bad.any():
        frame = int(bad.any(axis=0).argmax())
        raise V1ReconError(f"{path}: NaN or infinite value inside the valid frames (frame {frame}).")


def _check_padding(tail: np.ndarray, start: int, path: Path) -> None:
    """Everything after the first NaN frame must be NaN padding; otherwise the NaN lies inside the trial."""
    if tail.size and not np.isnan(tail).all():
        raise V1ReconError(f"{path}: NaN inside the valid frames (frame {start} is NaN but later frames are not).")


def _looks_like_recording(folder: Path) -> bool:
    return (folder / "meta").is_dir() or (folder / "data").is_dir()


def open_recordings(path: str | os.PathLike) -> list[Recording]:
    """Open a mouse folder, or every mouse folder (sorted by name) inside a parent folder."""
    path = Path(path)
    if not path.exists():
        raise V1ReconError(f"{path}: folder not found.")
    if not path.is_dir():
        raise V1ReconError(f"{path}: not a folder (expected a recording folder or a folder holding several).")
    if _looks_like_recording(path):
        return [Recording(path)]
    children = sorted(p for p in path.iterdir() if p.is_dir() and _looks_like_recording(p))
    if not children:
        raise V1ReconError(f"{path}: no recording found (expected data/ and meta/ in it or in its sub-folders).")
    return [Recording(child) for child in children]
