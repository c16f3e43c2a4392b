"""Import a two-photon session from an NWB file (pynwb, the optional extra `v1recon[nwb]`).

What is read (each default can be overridden by naming a series or table, see `import_nwb`):
- responses: a `RoiResponseSeries`; deconvolved events preferred (series or container named like deconvolved,
  spikes, events), else dF/F (a `DfOverF` container or a dff-like name), else fluorescence; neuropil series are
  skipped. ROIs: ids and centres (pixel, image or voxel masks, in microns when the imaging plane states its grid
  spacing) from the plane segmentation; ROIs marked 0 in an `iscell` column are left out.
- stimulus: the `OpticalSeries` / `ImageSeries` under stimulus/ (frames stored in the file), or an `IndexSeries`
  into `Images` or into an `ImageSeries`, with its presentation timestamps.
- behaviour: running speed, pupil size and pupil position from series named so (also `PupilTracking` and
  `EyeTracking` containers); each is optional.
- trials: the `trials` table, else `epochs`, else fixed-length pieces.
Everything then goes through `convert.write_session` (30 Hz clock, tiers, provenance).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from v1recon.data.convert import Samples, Session, Stimulus, check_times, grey_frames, intensity_scale, write_session
from v1recon.errors import V1ReconError

INSTALL_HINT = "pip install -e '.[nwb]'"
DECONVOLVED_WORDS = ("deconv", "spike", "spks", "event", "inferred")
DFF_WORDS = ("dff", "df_over_f", "dfoverf", "dfof", "df/f")
_READ_CHUNK = 32  # stimulus frames read at a time (a 1080p RGB movie: 200 MB)


def require_pynwb():
    """The pynwb module, or one sentence saying how to install it."""
    try:
        import pynwb
    except ImportError:
        raise V1ReconError(f"NWB files need the optional dependency pynwb: install it with {INSTALL_HINT}.") from None
    return pynwb


def series_path(obj) -> str:
    """Where a container lives in the file, e.g. processing/ophys/Deconvolved/Deconvolved."""
    data = getattr(obj, "data", None)
    name = getattr(data, "name", None)
    if isinstance(name, str) and name.startswith("/") and name.endswith("/data"):
        return name[1:-5]
    parts = []
    while obj is not None and getattr(obj, "parent", None) is not None:
        parts.append(obj.name)
        obj = obj.parent
    return "/".join(reversed(parts))


def _named(candidates: list, wanted: str) -> list:
    paths = [series_path(c) for c in candidates]
    return [c for c, p in zip(candidates, paths, strict=True) if wanted in (c.name, p) or p.endswith("/" + wanted)]


def _pick(candidates: list, wanted: str | None, source: Path, what: str, option: str):
    """The one candidate named `wanted` (or the only candidate); a clear error for none or several."""
    if wanted is not None:
        found = _named(candidates, wanted)
        if not found:
            names = ", ".join(sorted(series_path(c) for c in candidates)) or "none"
            raise V1ReconError(f"{source}: no {what} named {wanted!r} (found: {names}).")
        candidates = found
    if len(candidates) > 1:
        names = ", ".join(sorted(series_path(c) for c in candidates))
        raise V1ReconError(f"{source}: several series could be the {what} ({names}); name one with {option}.")
    return candidates[0] if candidates else None


def _scaled_reader(series, columns: np.ndarray | slice = slice(None)):
    """read(i0, i1) of a TimeSeries: rows of its data in its unit (data * conversion + offset), as (k, C)."""
    data, conversion, offset = series.data, float(series.conversion), float(getattr(series, "offset", 0.0) or 0.0)

    def read(i0: int, i1: int) -> np.ndarray:
        rows = np.asarray(data[i0:i1], np.float64)
        rows = rows.reshape(rows.shape[0], -1)[:, columns]
        return rows * conversion + offset

    return read


def _timestamps(series, source: Path) -> np.ndarray:
    if series.timestamps is None and series.rate is None:
        raise V1ReconError(f"{source}: series {series_path(series)!r} has neither timestamps nor a rate.")
    return check_times(series.get_timestamps(), source, series_path(series))


def _check_rows(series, times: np.ndarray, source: Path, ndims: tuple[int, ...], expected: str) -> tuple[int, ...]:
    shape = tuple(series.data.shape)
    if len(shape) not in ndims or shape[0] != times.size:
        raise V1ReconError(
            f"{source}: series {series_path(series)!r} has data of shape {shape}, expected {expected} with one row "
            f"per timestamp ({times.size})."
        )
    return shape


# ---- responses and ROIs -------------------------------------------------------------------------------------------


def response_kind(series) -> str:
    """deconvolved, dff or fluorescence, from the series' and its container's type and names."""
    words = f"{series.name} {series.parent.name if series.parent is not None else ''}".lower()
    if any(w in words for w in DECONVOLVED_WORDS):
        return "deconvolved"
    if type(series.parent).__name__ == "DfOverF" or any(w in words for w in DFF_WORDS):
        return "dff"
    return "fluorescence"


def _responses(nwbfile, wanted: str | None, source: Path):
    from pynwb import TimeSeries
    from pynwb.ophys import RoiResponseSeries

    objects = list(nwbfile.objects.values())
    if wanted is not None:
        series = _pick([o for o in objects if isinstance(o, TimeSeries)], wanted, source, "series", "--responses")
        return series, response_kind(series), "named with --responses"
    rois = [o for o in objects if isinstance(o, RoiResponseSeries)]
    if not rois:
        raise V1ReconError(
            f"{source}: no response series (RoiResponseSeries) found; name a series of responses with --responses."
        )
    usable = [s for s in rois if "neuropil" not in f"{s.name} {s.parent.name}".lower()]
    for kind in ("deconvolved", "dff", "fluorescence"):
        of_kind = [s for s in usable if response_kind(s) == kind]
        if of_kind:
            others = sorted(series_path(s) for s in rois if s not in of_kind)
            return _pick(of_kind, None, source, "responses", "--responses"), kind, {"not_used": others}
    raise V1ReconError(f"{source}: only neuropil response series found; name a series with --responses.")


def _length_factor(unit: str | None) -> float | None:
    unit = (unit or "meters").lower()
    for names, factor in (
        (("meter", "metre", "m"), 1e6), (("millimeter", "mm"), 1e3), (("micrometer", "micron", "um", "µm"), 1.0),
    ):  # fmt: skip
        if any(unit == n or unit == n + "s" for n in names):
            return factor
    return None


def _roi_centres(table, index: np.ndarray) -> tuple[np.ndarray, str]:
    """(n, 3) x, y, z of each ROI's mask centre and the unit (microns from the imaging plane's grid spacing)."""
    columns = set(table.colnames)
    centres = np.zeros((index.size, 3))
    how = "no ROI masks: coordinates 0"
    if "image_mask" in columns:
        masks = table["image_mask"].data
        for k, i in enumerate(index):
            m = np.asarray(masks[int(i)], np.float64)
            m = m.reshape(m.shape[0], m.shape[1], -1).sum(2) if m.ndim > 2 else m
            total = m.sum() or 1.0
            rows, cols = np.indices(m.shape)
            centres[k, :2] = (cols * m).sum() / total, (rows * m).sum() / total
        how = "image mask centres"
    elif columns & {"pixel_mask", "voxel_mask"}:
        kind = "pixel_mask" if "pixel_mask" in columns else "voxel_mask"
        column = table[kind]  # ragged: the index, whose target holds every ROI's (x, y[, z], weight) rows
        pixels, ends = np.asarray(column.target.data[:]), np.asarray(column.data[:], int)
        starts = np.concatenate([[0], ends[:-1]])
        fields = [f for f in ("x", "y", "z") if pixels.dtype.names and f in pixels.dtype.names]
        for k, i in enumerate(index):
            part = pixels[starts[i] : ends[i]]
            w = np.asarray(part["weight"], np.float64) if part.size else np.zeros(0)
            for d, f in enumerate(fields):
                centres[k, d] = (np.asarray(part[f], np.float64) * w).sum() / (w.sum() or 1.0)
        how = f"{kind.replace('_', ' ')} centres"
    plane = table.imaging_plane
    spacing = getattr(plane, "grid_spacing", None)
    factor = _length_factor(getattr(plane, "grid_spacing_unit", None))
    if spacing is not None and factor is not None and how.startswith(("image", "pixel", "voxel")):
        spacing = np.asarray(spacing, np.float64)[:3]
        centres[:, : spacing.size] *= spacing * factor
        origin = getattr(plane, "origin_coords", None)
        origin_factor = _length_factor(getattr(plane, "origin_coords_unit", None))
        if origin is not None and origin_factor is not None:
            origin = np.asarray(origin, np.float64)[:3]
            centres[:, : origin.size] += origin * origin_factor
        return centres.astype(np.float32), f"{how}, microns (imaging plane grid spacing)"
    return centres.astype(np.float32), f"{how}, pixels (no grid spacing on the imaging plane)"


def _neurons(series, source: Path, cells_only: bool, n_columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Columns of the data kept, unit ids, coordinates (N, 3) and the choices made."""
    rois = getattr(series, "rois", None)
    if rois is None:
        columns = np.arange(n_columns)
        return columns, columns.copy(), np.zeros((n_columns, 3), np.float32), {"rois": "no ROI table: ids 0..N-1"}
    index = np.asarray(rois.data[:], int)
    if index.size != n_columns:
        raise V1ReconError(
            f"{source}: series {series_path(series)!r} has {n_columns} columns but {index.size} ROIs in its rois "
            f"region; expected one column per ROI."
        )
    table = rois.table
    columns = np.arange(n_columns)
    choices = {"rois": int(n_columns), "roi_table": series_path(table) or table.name}
    if cells_only and "iscell" in table.colnames:
        iscell = np.asarray(table["iscell"].data[:], np.float64)
        iscell = iscell[:, 0] if iscell.ndim > 1 else iscell
        keep = iscell[index] > 0.5
        if not keep.any():
            raise V1ReconError(f"{source}: no ROI of {series_path(series)!r} is marked as a cell in 'iscell'.")
        columns, index = columns[keep], index[keep]
        choices["cells"] = f"{int(keep.sum())} ROIs marked as cells in 'iscell' (--all-rois keeps the others)"
    ids = np.asarray(table.id[:])[index]
    coordinates, how = _roi_centres(table, index)
    choices["coordinates"] = how
    return columns, ids, coordinates, choices


# ---- stimulus -----------------------------------------------------------------------------------------------------


def _stimulus_series(nwbfile, wanted: str | None, source: Path):
    from pynwb.image import ImageSeries, IndexSeries
    from pynwb.ophys import OnePhotonSeries, TwoPhotonSeries

    imaging = (TwoPhotonSeries, OnePhotonSeries)
    if wanted is not None:
        pool = [o for o in nwbfile.objects.values() if isinstance(o, (ImageSeries, IndexSeries))]
        pool = [o for o in pool if not isinstance(o, imaging)]
        return _pick(pool, wanted, source, "stimulus", "--stimulus")
    pool = [s for s in nwbfile.stimulus.values() if isinstance(s, (ImageSeries, IndexSeries))]
    indexed = {id(getattr(s, "indexed_timeseries", None)) for s in pool if isinstance(s, IndexSeries)}
    pool = [s for s in pool if id(s) not in indexed]
    if not pool:
        raise V1ReconError(
            f"{source}: no stimulus movie (OpticalSeries, ImageSeries or IndexSeries under stimulus/) found; "
            f"name one with --stimulus."
        )
    return _pick(pool, None, source, "stimulus", "--stimulus")


def _image_frames(series, source: Path, times: np.ndarray) -> tuple[callable, str]:
    """frames(indices) of an ImageSeries whose frames are stored in the file."""
    if series.external_file is not None and (series.data is None or len(series.data) == 0):
        raise V1ReconError(
            f"{source}: series {series_path(series)!r} keeps its frames in an external file "
            f"({list(series.external_file)[0]}); v1recon reads frames stored in the NWB file."
        )
    shape = _check_rows(series, times, source, (3, 4), "(frames, height, width) or (frames, height, width, 3)")
    if len(shape) == 4 and shape[3] not in (1, 3, 4):
        raise V1ReconError(
            f"{source}: series {series_path(series)!r} has data of shape {shape}; the last axis must be 1, 3 or 4 "
            f"colour channels."
        )
    data = series.data
    sample = np.asarray(data[np.unique(np.linspace(0, shape[0] - 1, 8).astype(int))])
    scale, how = intensity_scale(np.dtype(data.dtype), float(np.nanmax(sample)) if sample.size else 0.0)

    def frames(indices: np.ndarray) -> np.ndarray:
        chunks = [np.asarray(data[indices[i : i + _READ_CHUNK]]) for i in range(0, len(indices), _READ_CHUNK)]
        return np.concatenate([grey_frames(c, scale) for c in chunks])

    return frames, f"{how}; source frames {shape[1]} x {shape[2]}"


def _images(series, source: Path) -> list:
    """The images an IndexSeries points into, in index order."""
    if getattr(series, "indexed_images", None) is not None:
        images = series.indexed_images
        order = getattr(images, "order_of_images", None)
        return list(order.data) if order is not None else list(images.images.values())
    target = series.indexed_timeseries
    if target is None:
        raise V1ReconError(f"{source}: IndexSeries {series_path(series)!r} points to no images.")
    return [target.data[i] for i in range(len(target.data))]


def _indexed_frames(series, source: Path, times: np.ndarray) -> tuple[callable, str]:
    """frames(indices) of an IndexSeries: each presentation shows one of its images."""
    _check_rows(series, times, source, (1,), "(presentations,)")
    images = _images(series, source)
    index = np.asarray(series.data[:], int)
    bad = np.flatnonzero((index < 0) | (index >= len(images)))
    if bad.size:
        raise V1ReconError(
            f"{source}: IndexSeries {series_path(series)!r} presentation {bad[0]} shows image {index[bad[0]]}, "
            f"but there are {len(images)} images."
        )
    converted: dict[int, np.ndarray] = {}

    def one(k: int) -> np.ndarray:
        if k not in converted:
            image = images[k]
            raw = np.asarray(image.data if hasattr(image, "data") else image)
            if raw.ndim not in (2, 3):
                raise V1ReconError(
                    f"{source}: image {k} of {series_path(series)!r} has shape {raw.shape}, expected (height, "
                    f"width) or (height, width, 3)."
                )
            scale, _ = intensity_scale(raw.dtype, float(np.nanmax(raw)) if raw.size else 0.0)
            converted[k] = grey_frames(raw[None], scale)[0]
        return converted[k]

    def frames(indices: np.ndarray) -> np.ndarray:
        return np.stack([one(int(k)) for k in index[indices]])

    return frames, f"IndexSeries into {len(images)} images"


def _stimulus(nwbfile, wanted: str | None, source: Path) -> tuple[Stimulus, dict]:
    from pynwb.image import IndexSeries

    series = _stimulus_series(nwbfile, wanted, source)
    times = _timestamps(series, source)
    reader = _indexed_frames if isinstance(series, IndexSeries) else _image_frames
    frames, how = reader(series, source, times)
    return Stimulus(series_path(series), times, frames), {"type": type(series).__name__, "values": how}


# ---- behaviour and trials -----------------------------------------------------------------------------------------

BEHAVIOUR_OPTIONS = {
    "running speed": "--running",
    "pupil dilation": "--pupil-size",
    "pupil position": "--pupil-position",
}


def _behaviour_candidates(series, channel: str) -> bool:
    words = series_path(series).lower()
    if channel == "running speed":
        return any(w in words for w in ("running", "speed", "treadmill"))
    pupil = "pupil" in words or type(series.parent).__name__ == "PupilTracking"
    if channel == "pupil dilation":
        return pupil and any(w in words for w in ("area", "diam", "radius", "size", "dilation"))
    position = any(w in words for w in ("position", "pos", "center", "centre", "gaze", "xy"))
    return (pupil or "eye" in words or type(series.parent).__name__ == "EyeTracking") and position


def _behaviour(nwbfile, names: dict[str, str | None], source: Path) -> tuple[dict[str, Samples | None], dict]:
    from pynwb import TimeSeries
    from pynwb.image import ImageSeries, IndexSeries
    from pynwb.ophys import RoiResponseSeries

    pool = [
        o
        for o in nwbfile.objects.values()
        if isinstance(o, TimeSeries) and not isinstance(o, (RoiResponseSeries, ImageSeries, IndexSeries))
    ]
    out: dict[str, Samples | None] = {}
    used = {}
    for channel, option in BEHAVIOUR_OPTIONS.items():
        wanted = names.get(channel)
        if wanted is not None and wanted.lower() == "none":
            used[channel] = f"not read ({option} none)"
            continue
        candidates = pool if wanted is not None else [s for s in pool if _behaviour_candidates(s, channel)]
        if channel == "pupil position" and wanted is None:
            candidates = [s for s in candidates if len(s.data.shape) == 2 and s.data.shape[1] == 2]
        elif wanted is None:
            candidates = [s for s in candidates if len(s.data.shape) == 1 or s.data.shape[1] == 1]
        series = _pick(candidates, wanted, source, channel, option)
        if series is None:
            used[channel] = "absent"
            continue
        times = _timestamps(series, source)
        if channel == "pupil position":
            _check_rows(series, times, source, (2,), "(samples, 2) pupil x, y")
            if series.data.shape[1] != 2:
                raise V1ReconError(
                    f"{source}: series {series_path(series)!r} has data of shape {tuple(series.data.shape)}, "
                    f"expected (samples, 2) pupil x, y."
                )
            for k, axis in enumerate(("pupil x", "pupil y")):
                out[axis] = Samples(f"{series_path(series)}[{k}]", times, _scaled_reader(series, np.array([k])))
        else:
            shape = _check_rows(series, times, source, (1, 2), "(samples,)")
            if len(shape) == 2 and shape[1] != 1:
                raise V1ReconError(
                    f"{source}: series {series_path(series)!r} has data of shape {shape}, expected (samples,) "
                    f"for the {channel}."
                )
            out[channel] = Samples(series_path(series), times, _scaled_reader(series))
        used[channel] = series_path(series)
    return out, used


def _intervals(nwbfile, wanted: str, source: Path) -> tuple[np.ndarray | None, str]:
    tables = {"trials": nwbfile.trials, "epochs": nwbfile.epochs, **dict(nwbfile.intervals or {})}
    tables = {k: v for k, v in tables.items() if v is not None}
    if wanted == "fixed":
        return None, "fixed-length pieces (--trials fixed)"
    if wanted == "auto":
        name = next((n for n in ("trials", "epochs") if n in tables and len(tables[n]) > 0), None)
        if name is None:
            return None, "fixed-length pieces (no trials or epochs table)"
    elif wanted not in tables:
        raise V1ReconError(f"{source}: no interval table {wanted!r} (found: {', '.join(tables) or 'none'}).")
    else:
        name = wanted
    table = tables[name]
    start, stop = np.asarray(table["start_time"][:], np.float64), np.asarray(table["stop_time"][:], np.float64)
    bad = np.flatnonzero(~(np.isfinite(start) & np.isfinite(stop) & (stop > start)))
    if bad.size:
        i = int(bad[0])
        raise V1ReconError(
            f"{source}: table {name!r} row {i} does not stop after it starts ({start[i]:.3f} s to {stop[i]:.3f} s)."
        )
    return np.stack([start, stop], 1), f"the {name} table ({len(start)} rows)"


def _session_facts(nwbfile) -> dict:
    """Identifier, start time and subject of the session, which an export of its reconstructions carries over."""
    subject = nwbfile.subject
    fields = ("subject_id", "species", "sex", "age", "strain", "genotype", "description")
    return {
        "identifier": nwbfile.identifier,
        "start_time": nwbfile.session_start_time.isoformat(),
        **{k: list(v) if k == "experimenter" else str(v) for k in ("experimenter", "institution", "lab")
           if (v := getattr(nwbfile, k, None)) is not None},  # fmt: skip
        "subject": {f: str(getattr(subject, f)) for f in fields if getattr(subject, f, None)} if subject else None,
    }


# ---- the command's function ---------------------------------------------------------------------------------------


def read_session(nwbfile, source: Path, options: dict) -> Session:
    """A Session of an open NWB file (lazy: data stays in the file until `write_session` reads it)."""
    series, kind, how = _responses(nwbfile, options.get("responses"), source)
    times = _timestamps(series, source)
    shape = _check_rows(series, times, source, (1, 2), "(samples, ROIs)")
    n_columns = 1 if len(shape) == 1 else shape[1]
    columns, ids, coordinates, roi_choices = _neurons(series, source, options.get("cells_only", True), n_columns)
    responses = Samples(series_path(series), times, _scaled_reader(series, columns))
    stimulus, stim_choices = _stimulus(nwbfile, options.get("stimulus"), source)
    behaviour, used = _behaviour(nwbfile, options.get("behaviour", {}), source)
    intervals, interval_source = _intervals(nwbfile, options.get("trials", "auto"), source)
    chosen = how if isinstance(how, dict) else {"how": how}
    return Session(
        source=source,
        responses=responses,
        response_kind=kind,
        stimulus=stimulus,
        unit_ids=ids,
        coordinates=coordinates,
        behaviour=behaviour,
        intervals=intervals,
        interval_source=interval_source,
        choices={
            "responses": {**chosen, **roi_choices},
            "stimulus": stim_choices,
            "behaviour_series": used,
            "session": _session_facts(nwbfile),
        },
    )


def import_nwb(
    path: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    responses: str | None = None,
    stimulus: str | None = None,
    trials: str = "auto",
    running: str | None = None,
    pupil_size: str | None = None,
    pupil_position: str | None = None,
    cells_only: bool = True,
    trial_seconds: float = 10.0,
    max_trial_seconds: float = 60.0,
    max_test_fraction: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Write OUT/<name>/ (Sensorium layout) from an NWB file, and OUT/<name>.json (provenance).

    name: the mouse folder (default: the file's name without .nwb). responses / stimulus / running / pupil_size /
    pupil_position: a series name or path in the file (default: found as the module notes say; 'none' skips a
    behaviour series). trials: 'auto', 'fixed', 'trials', 'epochs' or another interval table's name.
    """
    pynwb = require_pynwb()
    path = Path(path)
    if not path.is_file():
        raise V1ReconError(f"{path}: file not found.")
    options = {
        "responses": responses,
        "stimulus": stimulus,
        "trials": trials,
        "cells_only": cells_only,
        "behaviour": {"running speed": running, "pupil dilation": pupil_size, "pupil position": pupil_position},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hdmf's notes on cached namespaces and links mean nothing to a user
        try:
            io = pynwb.NWBHDF5IO(str(path), "r")
            nwbfile = io.read()
        except Exception as err:  # h5py, hdmf and pynwb raise many kinds; all mean the same to a user
            raise V1ReconError(f"{path}: not a readable NWB file ({type(err).__name__}: {err}).") from err
        try:
            session = read_session(nwbfile, path, options)
            return write_session(
                session,
                out,
                name or path.stem,
                trial_seconds=trial_seconds,
                max_trial_seconds=max_trial_seconds,
                max_test_fraction=max_test_fraction,
                overwrite=overwrite,
                progress=progress,
                source_format="nwb",
            )
        finally:
            io.close()
