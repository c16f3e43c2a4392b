"""A recorded session on its own clocks -> one mouse folder in the Sensorium layout (the importers' shared part).

An importer (`nwb`, `suite2p`) describes a session: responses, stimulus frames and behaviour, each with the
timestamps of its own samples (seconds, one clock), and optionally the trial intervals. `write_session` then
- cuts trials: from the intervals, or into fixed-length pieces, inside the time where the stimulus was shown (its
  presentation blocks: runs of frames without a gap of more than max(1 s, 5 frame intervals)) and the responses
  were recorded (give or take one response sample); intervals longer than `max_trial_seconds` are cut into pieces too;
- puts every trial on a 30 Hz frame clock from its start: frame k at start + k/30 s shows the stimulus frame
  presented last at that moment (sample and hold); responses and behaviour are interpolated linearly at those
  moments;
- makes responses non-negative, as the Poisson loss of the encoders needs (see `RESPONSE_KINDS`);
- assigns tiers: trials showing the same movie (same `movie_hash` of the 30 Hz frames) more than once go to the
  test tiers (final_test, oracle, live_test in turn), most repeated first, while the test tiers hold at most
  `max_test_fraction` of the trials; all other trials are train;
- writes the folder through `write_recording` and the provenance beside it (OUT/<name>.json: the source file's
  name, size and sha256, and every choice made), and leaves nothing behind when the input is bad.
A behaviour channel the session lacks, or that has no finite sample within a trial, is written as absent (NaN),
which the reader fills (see `recording`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v1recon import FRAME_RATE_HZ, FRAME_SHAPE
from v1recon.data.recording import BEHAVIOUR_CHANNELS, MIN_FRAMES, Trial
from v1recon.errors import V1ReconError

REPEATED_MOVIE_TIERS = ("final_test", "oracle", "live_test")  # the tiers given to repeated movies, in turn
RESPONSE_KINDS = {
    "deconvolved": "deconvolved events, negative values set to 0",
    "dff": "dF/F, negative values set to 0",
    "fluorescence": "fluorescence turned into dF/F with F0 = each neuron's 10th percentile, negative values set to 0",
}
_TIME_TOLERANCE = 1e-4  # s: a frame presented at exactly a clock tick is shown on that tick despite rounding


@dataclass
class Samples:
    """One recorded series: `times` (T,) s, strictly increasing, and `read(i0, i1)` -> rows i0..i1-1 as (k, C)."""

    name: str
    times: np.ndarray
    read: Callable[[int, int], np.ndarray]


@dataclass
class Stimulus:
    """Presented frames: onset `times` (F,) s and `frames(indices)` -> (k, 36, 64) float32 grey levels 0..255 for
    increasing presentation indices."""

    name: str
    times: np.ndarray
    frames: Callable[[np.ndarray], np.ndarray]


@dataclass
class Session:
    """What an importer hands to `write_session`; `source` is the file (or folder) named in messages, `files` the
    input files identified (name, size, sha256) in the provenance (default: `source`)."""

    source: Path
    responses: Samples  # (T, N)
    response_kind: str  # a key of RESPONSE_KINDS
    stimulus: Stimulus
    unit_ids: np.ndarray  # (N,)
    coordinates: np.ndarray  # (N, 3)
    behaviour: dict[str, Samples | None] = field(default_factory=dict)  # BEHAVIOUR_CHANNELS -> (T, 1) samples
    intervals: np.ndarray | None = None  # (n, 2) start, stop s; None: fixed-length pieces
    interval_source: str = "fixed-length pieces"
    choices: dict = field(default_factory=dict)  # the importer's own choices, for the provenance
    files: list[Path] = field(default_factory=list)


# ---- checks and small helpers -------------------------------------------------------------------------------------


def check_times(times: np.ndarray, source: Path, name: str) -> np.ndarray:
    """Timestamps (T,) float64, finite and strictly increasing, or one sentence naming the file and series."""
    times = np.asarray(times, np.float64).reshape(-1)
    if times.size == 0:
        raise V1ReconError(f"{source}: series {name!r} has no timestamps.")
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size:
        raise V1ReconError(f"{source}: series {name!r} has a timestamp that is not finite (sample {bad[0]}).")
    step = np.flatnonzero(np.diff(times) <= 0)
    if step.size:
        i = int(step[0]) + 1
        raise V1ReconError(
            f"{source}: series {name!r} has timestamps that are not increasing (sample {i} at {times[i]:.4f} s "
            f"follows {times[i - 1]:.4f} s)."
        )
    return times


def mouse_name(text: str) -> str:
    """A folder name made of letters, digits, '-' and '_' (dots would confuse the sidecar beside it)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return name or "mouse"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of area averaging: output bin j averages input pixels by their overlap with it."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return overlap / overlap.sum(1, keepdims=True)


def grey_frames(raw: np.ndarray, scale: float) -> np.ndarray:
    """(k, H, W) or (k, H, W, 1|3|4) frames -> (k, 36, 64) float32 grey levels 0..255.

    Colour becomes luminance (Rec. 601 weights; alpha dropped); values are multiplied by `scale` (1 for 8-bit,
    255 for 0..1 floats); frames are centre-cropped to 16:9 and area-averaged to 36 x 64.
    """
    frames = np.asarray(raw, np.float32)
    if frames.ndim == 4:
        channels = frames.shape[3]
        frames = frames[..., 0] if channels == 1 else frames[..., :3] @ np.float32([0.299, 0.587, 0.114])
    frames = frames * np.float32(scale)
    h, w = frames.shape[1:]
    height, width = FRAME_SHAPE
    if w * height > h * width:  # wider than 16:9
        keep = max(1, round(h * width / height))
        frames = frames[:, :, (w - keep) // 2 : (w - keep) // 2 + keep]
    else:
        keep = max(1, round(w * height / width))
        frames = frames[:, (h - keep) // 2 : (h - keep) // 2 + keep]
    rows = area_matrix(frames.shape[1], height).astype(np.float32)
    cols = area_matrix(frames.shape[2], width).astype(np.float32)
    return np.clip(rows @ frames @ cols.T, 0, 255).astype(np.float32)


def intensity_scale(dtype: np.dtype, peak: float) -> tuple[float, str]:
    """Multiplier to grey levels 0..255 of stimulus values of `dtype` whose sampled maximum is `peak`."""
    if dtype == np.uint8:
        return 1.0, "8-bit values used as grey levels"
    if np.dtype(dtype) == np.bool_:
        return 255.0, "binary frames: 0 -> 0, 1 -> 255"
    if np.issubdtype(dtype, np.integer):
        bits = np.iinfo(dtype).bits
        return 255.0 / (2**bits - 1), f"{bits}-bit values scaled to 0..255"
    if peak <= 1.0:
        return 255.0, "values 0..1 scaled to 0..255"
    return 1.0, "values used as grey levels 0..255 (clipped)"


# ---- trials on the 30 Hz clock ------------------------------------------------------------------------------------


def presentation_blocks(times: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) s of each run of stimulus frames without a long gap; the last frame lasts one median interval."""
    step = float(np.median(np.diff(times))) if times.size > 1 else 1 / FRAME_RATE_HZ
    gaps = np.flatnonzero(np.diff(times) > max(1.0, 5 * step))
    starts = np.concatenate([[0], gaps + 1])
    ends = np.concatenate([gaps, [times.size - 1]])
    return [(float(times[a]), float(times[b]) + step) for a, b in zip(starts, ends, strict=True)]


def _pieces(start: float, stop: float, seconds: float) -> list[tuple[float, float]]:
    """[start, stop) cut into pieces of `seconds`; a last piece shorter than MIN_FRAMES frames is dropped."""
    out, t = [], start
    while stop - t >= MIN_FRAMES / FRAME_RATE_HZ - 1e-9:
        out.append((t, min(t + seconds, stop)))
        t += seconds
    return out


def cut_trials(
    session: Session, trial_seconds: float, max_trial_seconds: float
) -> tuple[list[tuple[float, float]], dict]:
    """Trial intervals (start, stop) s inside the stimulus blocks and the responses' span; and what was dropped."""
    blocks = presentation_blocks(session.stimulus.times)
    times = session.responses.times
    step = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    # a trial may start or end up to one response sample beyond the responses (the edge sample is held)
    span = (float(times[0]) - step, float(times[-1]) + step)
    usable = [(max(a, span[0]), min(b, span[1])) for a, b in blocks]
    usable = [(a, b) for a, b in usable if b > a]
    if not usable:
        raise V1ReconError(
            f"{session.source}: stimulus {session.stimulus.name!r} ({blocks[0][0]:.2f}-{blocks[-1][1]:.2f} s) and "
            f"responses {session.responses.name!r} ({times[0]:.2f}-{times[-1]:.2f} s) do not overlap in time."
        )
    dropped = {"outside the stimulus or the responses": 0, "shorter than the minimum of 31 frames": 0}
    trials: list[tuple[float, float]] = []
    if session.intervals is None:
        for a, b in usable:
            trials += _pieces(a, b, trial_seconds)
    else:
        for a, b in np.asarray(session.intervals, np.float64):
            if not any(u0 - _TIME_TOLERANCE <= a and b <= u1 + _TIME_TOLERANCE for u0, u1 in usable):
                dropped["outside the stimulus or the responses"] += 1
            elif (b - a) * FRAME_RATE_HZ < MIN_FRAMES:
                dropped["shorter than the minimum of 31 frames"] += 1
            elif b - a > max_trial_seconds:
                trials += _pieces(float(a), float(b), trial_seconds)
            else:
                trials.append((float(a), float(b)))
    trials = [(a, min(b, span[1])) for a, b in trials]
    if not trials:
        what = session.interval_source if session.intervals is not None else "the overlap"
        raise V1ReconError(
            f"{session.source}: no trial of at least {MIN_FRAMES} frames ({MIN_FRAMES / FRAME_RATE_HZ:.2f} s) lies "
            f"where stimulus {session.stimulus.name!r} and responses {session.responses.name!r} overlap ({what})."
        )
    return trials, dropped


def frame_clock(start: float, stop: float) -> np.ndarray:
    """Moments (T,) s of the 30 Hz frames of the trial [start, stop)."""
    n = int(np.floor((stop - start) * FRAME_RATE_HZ + 1e-6))
    return start + np.arange(n) / FRAME_RATE_HZ


def shown_frames(stimulus_times: np.ndarray, clock: np.ndarray) -> np.ndarray:
    """Index of the stimulus frame presented last at each moment of `clock` (sample and hold)."""
    index = np.searchsorted(stimulus_times, clock + _TIME_TOLERANCE, side="right") - 1
    return np.clip(index, 0, stimulus_times.size - 1)


def _rows_around(samples: Samples, clock: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """First row read, and the rows (k, C) and times that bracket every moment of `clock`."""
    i0 = max(int(np.searchsorted(samples.times, clock[0], side="right")) - 1, 0)
    i1 = min(int(np.searchsorted(samples.times, clock[-1], side="left")) + 1, samples.times.size)
    rows = np.asarray(samples.read(i0, i1), np.float64)
    return i0, rows.reshape(rows.shape[0], -1), samples.times[i0:i1]


def interpolate(times: np.ndarray, rows: np.ndarray, clock: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows (k, C) sampled at `times` onto `clock`: (C, T); held at the ends."""
    if times.size == 1:
        return np.repeat(rows.T, clock.size, axis=1)
    j = np.clip(np.searchsorted(times, clock, side="right") - 1, 0, times.size - 2)
    w = np.clip((clock - times[j]) / (times[j + 1] - times[j]), 0.0, 1.0)
    return (rows[j] * (1 - w)[:, None] + rows[j + 1] * w[:, None]).T


def trial_responses(session: Session, clock: np.ndarray, trial: int) -> np.ndarray:
    """(N, T) responses of one trial on its clock; NaN among the samples used is one clear error."""
    i0, rows, times = _rows_around(session.responses, clock)
    bad = np.argwhere(~np.isfinite(rows))
    if bad.size:
        t = float(times[bad[0, 0]])
        raise V1ReconError(
            f"{session.source}: series {session.responses.name!r} holds NaN or infinite values at {t:.3f} s "
            f"(sample {i0 + bad[0, 0]}, ROI {bad[0, 1]}), inside trial {trial} ({clock[0]:.2f}-{clock[-1]:.2f} s)."
        )
    return interpolate(times, rows, clock)


def trial_behaviour(session: Session, clock: np.ndarray) -> np.ndarray:
    """(4, T): each channel interpolated over its finite samples; NaN (absent) where it has none in the trial."""
    out = np.full((len(BEHAVIOUR_CHANNELS), clock.size), np.nan)
    for k, channel in enumerate(BEHAVIOUR_CHANNELS):
        samples = session.behaviour.get(channel)
        if samples is None:
            continue
        _, rows, times = _rows_around(samples, clock)
        finite = np.isfinite(rows[:, 0])
        inside = (times >= clock[0] - 1 / FRAME_RATE_HZ) & (times <= clock[-1] + 1 / FRAME_RATE_HZ)
        if (finite & inside).any():  # gaps (blinks, tracking losses) are bridged
            out[k] = interpolate(times[finite], rows[finite], clock)[0]
    return out


# ---- responses made non-negative -------------------------------------------------------------------------------


def response_baseline(samples: Samples, kind: str, max_rows: int = 20000) -> np.ndarray | None:
    """F0 (N,) of fluorescence: each neuron's 10th percentile over at most `max_rows` samples (evenly spaced blocks
    of 500); None for the other kinds."""
    if kind != "fluorescence":
        return None
    n, block = samples.times.size, 500
    starts = np.linspace(0, max(n - block, 0), max(1, min(n, max_rows) // block)).astype(int)
    rows = np.concatenate([np.asarray(samples.read(int(s), min(int(s) + block, n)), np.float64) for s in starts])
    f0 = np.nanpercentile(rows.reshape(rows.shape[0], -1), 10, axis=0)
    return np.where(np.abs(f0) > 1e-9, f0, 1.0)


def non_negative(responses: np.ndarray, baseline: np.ndarray | None) -> tuple[np.ndarray, int]:
    """(N, T) responses as written (see RESPONSE_KINDS) and how many values were below 0."""
    if baseline is not None:
        responses = (responses - baseline[:, None]) / np.abs(baseline[:, None])
    negative = int((responses < 0).sum())
    return np.maximum(responses, 0).astype(np.float32), negative


# ---- tiers ------------------------------------------------------------------------------------------------------


def assign_tiers(movies: list[int], max_test_fraction: float) -> list[str]:
    """Tier per trial from the movie identity of each trial (see the module notes)."""
    from collections import Counter

    counts = Counter(movies)
    first = {m: i for i, m in reversed(list(enumerate(movies)))}
    repeated = sorted((m for m, c in counts.items() if c > 1), key=lambda m: (-counts[m], first[m]))
    tier_of: dict[int, str] = {}
    held = 0
    for m in repeated:
        if held + counts[m] > max_test_fraction * len(movies):
            continue
        tier_of[m] = REPEATED_MOVIE_TIERS[len(tier_of) % len(REPEATED_MOVIE_TIERS)]
        held += counts[m]
    return [tier_of.get(m, "train") for m in movies]


# ---- the whole conversion ---------------------------------------------------------------------------------------


@dataclass
class _PlannedTrial:
    start: float
    stop: float
    clock: np.ndarray
    shown: np.ndarray  # stimulus frame index per clock moment
    movie: int = 0
    tier: str = "train"


def _plan(session: Session, trial_seconds: float, max_trial_seconds: float, progress: bool) -> tuple[list, dict]:
    """Cut the trials, check every trial's responses, and identify each trial's movie (cheap: 5 frames each)."""
    from tqdm.auto import tqdm

    from v1recon.data.folds import hash_frame_indices, movie_hash

    intervals, dropped = cut_trials(session, trial_seconds, max_trial_seconds)
    planned = []
    for i, (a, b) in enumerate(tqdm(intervals, desc="check trials", unit="trial", disable=not progress)):
        clock = frame_clock(a, b)
        trial = _PlannedTrial(a, b, clock, shown_frames(session.stimulus.times, clock))
        trial_responses(session, clock, i)  # NaN is refused before anything is written
        sample = hash_frame_indices(clock.size)
        order, where = np.unique(trial.shown[sample], return_inverse=True)
        frames = session.stimulus.frames(order)[where]
        full = np.zeros((clock.size, *FRAME_SHAPE), np.float32)
        full[sample] = frames
        trial.movie = movie_hash(full)
        planned.append(trial)
    return planned, dropped


def _trials(session: Session, planned: list[_PlannedTrial], stats: dict, progress: bool) -> Iterator[Trial]:
    from tqdm.auto import tqdm

    baseline = response_baseline(session.responses, session.response_kind)
    for i, p in enumerate(tqdm(planned, desc="write trials", unit="trial", disable=not progress)):
        order, where = np.unique(p.shown, return_inverse=True)
        video = session.stimulus.frames(order)[where]
        responses, negative = non_negative(trial_responses(session, p.clock, i), baseline)
        behaviour = trial_behaviour(session, p.clock)
        stats["negative_values_set_to_0"] += negative
        for k, channel in enumerate(BEHAVIOUR_CHANNELS):
            stats["behaviour_absent_in_trials"][channel] += bool(np.isnan(behaviour[k]).all())
        yield Trial(i, p.tier, video, responses, behaviour.astype(np.float32))


def write_session(
    session: Session,
    out: str | Path,
    name: str,
    *,
    trial_seconds: float = 10.0,
    max_trial_seconds: float = 60.0,
    max_test_fraction: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
    source_format: str = "nwb",
) -> tuple[Path, dict]:
    """Write OUT/<name>/ (Sensorium layout) and OUT/<name>.json (provenance); returns the folder and provenance."""
    from v1recon.data.writer import write_recording
    from v1recon.io import write_sidecar

    if trial_seconds * FRAME_RATE_HZ < MIN_FRAMES:
        raise V1ReconError(f"--trial-seconds {trial_seconds}: trials need at least {MIN_FRAMES} frames (1.03 s).")
    if max_trial_seconds < trial_seconds:
        raise V1ReconError(f"--max-trial-seconds {max_trial_seconds}: must be at least --trial-seconds.")
    if not 0 <= max_test_fraction < 1:
        raise V1ReconError(f"--max-test-fraction {max_test_fraction}: must be at least 0 and below 1.")
    out = Path(out)
    folder = out / mouse_name(name)
    if folder.exists() and not overwrite:
        raise V1ReconError(f"{folder}: already exists; pass --overwrite to replace it.")
    if out.exists() and not out.is_dir():
        raise V1ReconError(f"{out}: output path exists and is not a folder.")
    planned, dropped = _plan(session, trial_seconds, max_trial_seconds, progress)
    for p, tier in zip(planned, assign_tiers([p.movie for p in planned], max_test_fraction), strict=True):
        p.tier = tier
    stats = {"negative_values_set_to_0": 0, "behaviour_absent_in_trials": dict.fromkeys(BEHAVIOUR_CHANNELS, 0)}
    created = not out.exists()
    try:
        write_recording(
            folder, _trials(session, planned, stats, progress), session.unit_ids, session.coordinates,
            overwrite=overwrite,
        )  # fmt: skip
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    provenance = _provenance(session, source_format, planned, dropped, stats, trial_seconds, max_trial_seconds)
    provenance["choices"]["tiers"]["max_test_fraction"] = max_test_fraction
    write_sidecar(folder, **provenance)
    return folder, provenance


def _provenance(session, source_format, planned, dropped, stats, trial_seconds, max_trial_seconds) -> dict:
    from collections import Counter

    tiers = Counter(p.tier for p in planned)
    movies = Counter(p.movie for p in planned)
    absent = {c: n for c, n in stats["behaviour_absent_in_trials"].items() if n}
    behaviour = {
        c: (s.name if s is not None else None) for c, s in ((c, session.behaviour.get(c)) for c in BEHAVIOUR_CHANNELS)
    }
    return {
        "source": {
            "format": source_format,
            "files": [
                {"file": f.name, "size_bytes": f.stat().st_size, "sha256": file_sha256(f)}
                for f in (session.files or [session.source])
            ],
        },
        "choices": {
            **session.choices,
            "responses": {
                **session.choices.get("responses", {}),
                "series": session.responses.name,
                "kind": session.response_kind,
                "written_as": RESPONSE_KINDS[session.response_kind],
                "negative_values_set_to_0": stats["negative_values_set_to_0"],
                "neurons": int(len(session.unit_ids)),
            },
            "stimulus": {
                **session.choices.get("stimulus", {}),
                "series": session.stimulus.name,
                "frames": int(session.stimulus.times.size),
                "to_36x64": "grey (Rec. 601 luminance), centre-cropped to 16:9, area-averaged to 36 x 64",
            },
            "clock": "30 Hz from each trial's start; stimulus sample-and-hold, responses and behaviour linear",
            "trials": {
                "from": session.interval_source,
                "trial_seconds": trial_seconds,
                "max_trial_seconds": max_trial_seconds,
                "dropped": dropped,
            },
            "behaviour": {
                "series": behaviour,
                "absent_in_trials": absent,
                "note": "absent channels are written as NaN and filled by the reader with the mean of the recording's "
                "statistics (0 where none exist)"
                if absent
                else "every channel recorded in every trial",
            },
            "tiers": {
                "rule": "movies shown more than once -> test tiers (final_test, oracle, live_test in turn), most "
                "repeated first, up to max_test_fraction of the trials; the rest train",
                "counts": dict(tiers),
                "distinct_movies": len(movies),
                "repeated_movies": sum(1 for c in movies.values() if c > 1),
            },
        },
        "trials": [
            {"id": i, "tier": p.tier, "start_s": p.start, "stop_s": p.stop, "frames": int(p.clock.size)}
            for i, p in enumerate(planned)
        ],
    }
