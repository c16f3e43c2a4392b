"""Import a suite2p plane folder (plane0/ with F.npy, Fneu.npy, spks.npy, iscell.npy, stat.npy, ops.npy) together
with the movie that was shown and the times of its frames.

- responses: `spks.npy` (deconvolved), else `F.npy` minus `neucoeff` x `Fneu.npy` (neuropil correction; the
  coefficient from ops.npy, 0.7 when it states none), turned into dF/F (see `convert.RESPONSE_KINDS`);
- neurons: the ROIs that `iscell.npy` marks as cells (unless all are asked for); unit ids are their ROI indices;
  coordinates are the ROI centres (`stat.npy` 'med', x then y, z 0) in pixels, or microns with a pixel size;
- clock: imaging frame k at k / fs seconds (fs from ops.npy or given), or the times of an --imaging-times file;
  the stimulus frame times must be on the same clock;
- no behaviour (written as absent); trials from an (n, 2) array of start/stop times, or fixed-length pieces.
Everything then goes through `convert.write_session`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from v1recon.data.convert import Samples, Session, Stimulus, check_times, grey_frames, intensity_scale, write_session
from v1recon.data.recording import load_npy, npy_header
from v1recon.errors import V1ReconError

DEFAULT_NEUCOEFF = 0.7  # suite2p's own default neuropil coefficient
_READ_CHUNK = 32


# what suite2p's pickled ops.npy and stat.npy are made of: numpy arrays, scalars and dtypes in builtin containers
_SAFE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "complex"), ("builtins", "slice"), ("builtins", "range")}


class _SafeUnpickler(pickle.Unpickler):
    """Builds only numpy arrays, scalars and builtin containers: no other class or function can be named, so a
    crafted file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which is not plain data")
        return super().find_class(module, name)


def load_suite2p_objects(path: Path) -> np.ndarray:
    """suite2p's object .npy files (ops.npy, stat.npy: dicts of numbers and arrays) through `_SafeUnpickler`;
    one sentence naming the file for anything else."""
    header = npy_header(path)  # one sentence for a file that is not .npy; None for other format versions
    if header is None or not header[1].hasobject:
        return load_npy(path, mmap=False)
    try:
        with open(path, "rb") as f:
            f.seek(header[2])
            value = _SafeUnpickler(f).load()
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, TypeError) as err:
        raise V1ReconError(f"{path}: not a suite2p object file v1recon can read safely ({err}).") from err
    if not isinstance(value, np.ndarray):
        raise V1ReconError(f"{path}: holds a {type(value).__name__}, not a suite2p array.")
    return value


def _ops(folder: Path) -> dict:
    path = folder / "ops.npy"
    if not path.is_file():
        return {}
    ops = load_suite2p_objects(path)
    return ops.item() if ops.dtype == object and ops.shape == () else {}


def _traces(folder: Path, use: str, ops: dict, neucoeff: float | None) -> tuple:
    """(N, T) memory-mapped traces, read(rois, i0, i1) -> (frames, rois) as responses, their kind, the files
    read and the choices made."""
    spks, f = folder / "spks.npy", folder / "F.npy"
    if use not in ("auto", "spks", "F"):
        raise V1ReconError(f"--responses {use!r}: choose auto, spks or F.")
    if use == "spks" or (use == "auto" and spks.is_file()):
        traces = load_npy(spks)
        return traces, _reader(traces), "deconvolved", [spks], {"file": "spks.npy"}
    if not f.is_file():
        raise V1ReconError(f"{folder}: neither spks.npy nor F.npy found (expected a suite2p plane folder).")
    fluor, neuropil_path = load_npy(f), folder / "Fneu.npy"
    if not neuropil_path.is_file():
        return fluor, _reader(fluor), "fluorescence", [f], {"file": "F.npy", "neuropil": "no Fneu.npy: not corrected"}
    neuropil = load_npy(neuropil_path)
    if neuropil.shape != fluor.shape:
        raise V1ReconError(f"{neuropil_path}: shape {neuropil.shape} differs from F.npy's {fluor.shape}.")
    c = float(neucoeff if neucoeff is not None else ops.get("neucoeff", DEFAULT_NEUCOEFF))
    read = _reader(fluor, neuropil, c)
    return fluor, read, "fluorescence", [f, neuropil_path], {"file": "F.npy", "neuropil": f"F - {c} x Fneu"}


def _reader(traces: np.ndarray, neuropil: np.ndarray | None = None, coefficient: float = 0.0):
    def read(rois: np.ndarray, i0: int, i1: int) -> np.ndarray:
        rows = np.asarray(traces[:, i0:i1][rois], np.float64)
        if neuropil is not None:
            rows -= coefficient * np.asarray(neuropil[:, i0:i1][rois], np.float64)
        return rows.T

    return read


def _check_traces(traces: np.ndarray, path: Path) -> None:
    if traces.ndim != 2 or traces.shape[0] == 0 or traces.shape[1] < 2:
        raise V1ReconError(f"{path}: expected (ROIs, frames) traces, got shape {traces.shape}.")


def _cells(folder: Path, n_rois: int, all_rois: bool) -> tuple[np.ndarray, dict]:
    path = folder / "iscell.npy"
    if all_rois or not path.is_file():
        how = "all ROIs (--all-rois)" if all_rois else "all ROIs (no iscell.npy)"
        return np.arange(n_rois), {"cells": how}
    iscell = np.asarray(load_npy(path, mmap=False), np.float64)
    iscell = iscell[:, 0] if iscell.ndim == 2 else iscell
    if iscell.shape != (n_rois,):
        raise V1ReconError(f"{path}: expected ({n_rois}, 2) or ({n_rois},) to match the traces, got {iscell.shape}.")
    keep = np.flatnonzero(iscell > 0.5)
    if keep.size == 0:
        raise V1ReconError(f"{path}: no ROI is marked as a cell.")
    return keep, {"cells": f"{keep.size} of {n_rois} ROIs marked as cells in iscell.npy"}


def _coordinates(folder: Path, keep: np.ndarray, n_rois: int, pixel_size: float | None) -> tuple[np.ndarray, str]:
    path = folder / "stat.npy"
    if not path.is_file():
        return np.zeros((keep.size, 3), np.float32), "no stat.npy: coordinates 0"
    stat = load_suite2p_objects(path)
    if stat.shape != (n_rois,):
        raise V1ReconError(f"{path}: expected {n_rois} ROI entries to match the traces, got shape {stat.shape}.")
    xyz = np.zeros((keep.size, 3))
    for k, i in enumerate(keep):
        roi = stat[i]
        if "med" in roi:
            xyz[k, :2] = float(roi["med"][1]), float(roi["med"][0])  # med is (y, x)
        elif "xpix" in roi:
            xyz[k, :2] = np.mean(roi["xpix"]), np.mean(roi["ypix"])
    if pixel_size:
        return (xyz * [pixel_size, pixel_size, 1]).astype(np.float32), f"ROI centres x {pixel_size} um per pixel"
    return xyz.astype(np.float32), "ROI centres in pixels (give --pixel-size for microns)"


def _stimulus(movie_path: Path, times_path: Path) -> tuple[Stimulus, dict]:
    movie = load_npy(movie_path)
    times = check_times(load_npy(times_path, mmap=False), times_path, "frame times")
    if movie.ndim not in (3, 4) or (movie.ndim == 4 and movie.shape[3] not in (1, 3, 4)):
        raise V1ReconError(
            f"{movie_path}: expected (frames, height, width) or (frames, height, width, 3), got shape {movie.shape}."
        )
    if movie.shape[0] != times.size:
        raise V1ReconError(
            f"{times_path}: {times.size} frame times for the {movie.shape[0]} frames of {movie_path.name}; expected "
            f"one time per frame."
        )
    sample = np.asarray(movie[np.unique(np.linspace(0, movie.shape[0] - 1, 8).astype(int))])
    scale, how = intensity_scale(movie.dtype, float(np.nanmax(sample)))

    def frames(indices: np.ndarray) -> np.ndarray:
        chunks = [movie[indices[i : i + _READ_CHUNK]] for i in range(0, len(indices), _READ_CHUNK)]
        return np.concatenate([grey_frames(c, scale) for c in chunks])

    return Stimulus(movie_path.name, times, frames), {"values": how, "source frames": list(movie.shape[1:3])}


def _imaging_times(n_frames: int, ops: dict, fs: float | None, times_path: Path | None, folder: Path) -> tuple:
    if times_path is not None:
        times = check_times(load_npy(times_path, mmap=False), times_path, "imaging times")
        if times.size != n_frames:
            raise V1ReconError(f"{times_path}: {times.size} imaging times for {n_frames} imaging frames.")
        return times, f"from {times_path.name}"
    rate = fs if fs is not None else ops.get("fs")
    if rate is None or not float(rate) > 0:
        raise V1ReconError(f"{folder}: no frame rate in ops.npy; give --fs (Hz) or --imaging-times.")
    return np.arange(n_frames) / float(rate), f"frame k at k / {float(rate):g} s"


def _intervals(path: Path | None) -> tuple[np.ndarray | None, str]:
    if path is None:
        return None, "fixed-length pieces"
    intervals = np.asarray(load_npy(path, mmap=False), np.float64)
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise V1ReconError(f"{path}: expected (trials, 2) start and stop times in seconds, got {intervals.shape}.")
    bad = np.flatnonzero(~(intervals[:, 1] > intervals[:, 0]))
    if bad.size:
        raise V1ReconError(f"{path}: trial {bad[0]} does not stop after it starts.")
    return intervals, f"{path.name} ({len(intervals)} trials)"


def import_suite2p(
    plane: str | Path,
    out: str | Path,
    *,
    stimulus: str | Path,
    frame_times: str | Path,
    name: str | None = None,
    responses: str = "auto",
    neucoeff: float | None = None,
    fs: float | None = None,
    imaging_times: str | Path | None = None,
    trials: str | Path | None = None,
    all_rois: bool = False,
    pixel_size: float | None = None,
    trial_seconds: float = 10.0,
    max_trial_seconds: float = 60.0,
    max_test_fraction: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Write OUT/<name>/ (Sensorium layout) and OUT/<name>.json (provenance) from a suite2p plane folder."""
    plane = Path(plane)
    if not plane.is_dir():
        raise V1ReconError(f"{plane}: suite2p plane folder not found.")
    ops = _ops(plane)
    traces, read, kind, files, choices = _traces(plane, responses, ops, neucoeff)
    _check_traces(traces, files[0])
    n_rois, n_frames = traces.shape
    keep, cell_choice = _cells(plane, n_rois, all_rois)
    coordinates, where = _coordinates(plane, keep, n_rois, pixel_size)
    times, clock = _imaging_times(n_frames, ops, fs, Path(imaging_times) if imaging_times else None, plane)
    movie, stim_choices = _stimulus(Path(stimulus), Path(frame_times))
    intervals, interval_source = _intervals(Path(trials) if trials else None)
    session = Session(
        source=plane,
        responses=Samples(files[0].name, times, lambda i0, i1: read(keep, i0, i1)),
        response_kind=kind,
        stimulus=movie,
        unit_ids=keep.astype(np.int64),
        coordinates=coordinates,
        intervals=intervals,
        interval_source=interval_source,
        choices={
            "responses": {**choices, **cell_choice, "coordinates": where, "imaging_clock": clock},
            "stimulus": stim_choices,
            "behaviour_series": "none (suite2p holds no behaviour)",
        },
        files=files + [Path(stimulus), Path(frame_times)],
    )
    default = f"{plane.parent.parent.name}-{plane.name}" if plane.parent.name == "suite2p" else plane.name
    return write_session(
        session,
        out,
        name or default,
        trial_seconds=trial_seconds,
        max_trial_seconds=max_trial_seconds,
        max_test_fraction=max_test_fraction,
        overwrite=overwrite,
        progress=progress,
        source_format="suite2p",
    )
