"""Export the reconstructions of a `v1recon reconstruct` output folder as one NWB file (pynwb, `v1recon[nwb]`).

What the file holds:
- processing/reconstruction: per trial an `ImageSeries` `<mouse>_trial<id>_reconstruction` (frames, 36, 64) grey
  levels 0..255 at 30 Hz, `<mouse>_trial<id>_stimulus` (the movie shown, on the same clock) and, where the
  reconstruction has one, `<mouse>_trial<id>_confidence`; each series' comments hold its trial's sidecar (config,
  models, data identity, metrics) as JSON; an `Images` container `masks` with each mouse's alpha and evaluation
  mask.
- intervals/reconstructed_trials: one row per trial (mouse, trial id, tier, video correlation, series name).
- notes: the job's summary and, for recordings imported with `v1recon import`, their import provenance, as JSON.
When every trial comes from one imported NWB session the file takes that session's start time, identifier and
subject, and each series starts at its trial's time in that session; otherwise times count from 0 per trial.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from v1recon import __version__
from v1recon.data.convert import FRAME_RATE
from v1recon.data.nwb import require_pynwb
from v1recon.errors import V1ReconError
from v1recon.io import read_json

UNIT = "grey level (0-255)"


def _trials(recon_dir: Path) -> list[dict]:
    """Every reconstructed trial of the folder: npz and sidecar paths, sidecar content."""
    summary = recon_dir / "summary.json"
    if not summary.is_file():
        raise V1ReconError(f"{recon_dir}: no summary.json; expected a folder written by `v1recon reconstruct`.")
    out = []
    for npz in sorted(recon_dir.glob("*/trial-*.npz"), key=lambda p: (p.parent.name, int(p.stem.split("-")[1]))):
        side = read_json(npz.with_suffix(".json"))
        out.append({"npz": npz, "mouse": npz.parent.name, "sidecar": side})
    if not out:
        raise V1ReconError(f"{recon_dir}: holds no reconstructed trial (<mouse>/trial-<id>.npz).")
    return out


def _import_record(sidecar: dict) -> dict | None:
    """The import provenance beside the recording a trial came from, if it was imported."""
    path = sidecar.get("data", {}).get("path")
    if not path:
        return None
    record = Path(path).with_suffix(".json")
    if not record.is_file():
        return None
    info = read_json(record)
    return info if "trials" in info and "source" in info else None


def _start_times(trials: list[dict], imports: dict[str, dict | None]) -> tuple[dict | None, list[float]]:
    """The one imported NWB session all trials come from (or None) and each trial's start in it."""
    sessions = {json.dumps((imports[t["mouse"]] or {}).get("choices", {}).get("session")) for t in trials}
    session = json.loads(sessions.pop()) if len(sessions) == 1 else None
    if not session:
        return None, [0.0] * len(trials)
    starts = []
    for t in trials:
        table = {row["id"]: row["start_s"] for row in imports[t["mouse"]]["trials"]}
        starts.append(float(table.get(t["sidecar"]["data"]["trial"], 0.0)))
    return session, starts


def _new_file(pynwb, session: dict | None, recon_dir: Path, when: str | None):
    from pynwb.file import Subject

    if session:
        start = datetime.fromisoformat(session["start_time"])
        subject = Subject(**session["subject"]) if session.get("subject") else None
        identifier = f"{session['identifier']}-v1recon-reconstructions"
        description = f"Movies reconstructed by v1recon from the activity recorded in session {session['identifier']}"
    else:
        start = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else datetime.now(timezone.utc)
        subject, identifier = None, str(uuid.uuid4())
        description = f"Movies reconstructed by v1recon from recorded V1 activity ({recon_dir.name})"
    carried = {k: session[k] for k in ("experimenter", "institution", "lab") if session and session.get(k)}
    return pynwb.NWBFile(
        session_description=description,
        identifier=identifier,
        session_start_time=start,
        subject=subject,
        experiment_description="Reconstruction of the movie a mouse saw from the activity of its V1 neurons, by "
        "optimising the input of an ensemble of trained encoding models (v1recon).",
        keywords=["v1recon", "movie reconstruction", "primary visual cortex", "two-photon imaging"],
        **carried,
        source_script=f"v1recon {__version__} (export nwb)",
        source_script_file_name="v1recon",
    )


def _series(name: str, frames: np.ndarray, start: float, description: str, comments: str):
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.image import ImageSeries

    return ImageSeries(
        name=name,
        data=H5DataIO(np.asarray(frames, np.float32), compression="gzip"),
        unit=UNIT,
        starting_time=start,
        rate=FRAME_RATE,
        description=description,
        comments=comments,
    )


def export_nwb(recon_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> dict:
    """Write the NWB file `out` from a reconstruction folder; returns a summary (trials, series, session)."""
    pynwb = require_pynwb()
    from pynwb.base import Images
    from pynwb.epoch import TimeIntervals
    from pynwb.image import GrayscaleImage

    from v1recon.io import atomic_path

    recon_dir, out = Path(recon_dir), Path(out)
    if not recon_dir.is_dir():
        raise V1ReconError(f"{recon_dir}: reconstruction folder not found.")
    if out.suffix != ".nwb":
        raise V1ReconError(f"{out}: the output file name must end in .nwb.")
    if out.exists() and not overwrite:
        raise V1ReconError(f"{out}: already exists; pass --overwrite to replace it.")
    trials = _trials(recon_dir)
    summary = read_json(recon_dir / "summary.json")
    imports = {t["mouse"]: _import_record(t["sidecar"]) for t in trials}
    session, starts = _start_times(trials, imports)
    when = trials[0]["sidecar"].get("provenance", {}).get("time_utc")
    nwbfile = _new_file(pynwb, session, recon_dir, when)
    module = nwbfile.create_processing_module(
        name="reconstruction", description="Movies reconstructed by v1recon (encoder input optimisation)."
    )
    table = TimeIntervals(name="reconstructed_trials", description="Trials whose movie was reconstructed.")
    for column, text in (
        ("mouse", "recording (mouse folder) of the trial"),
        ("trial_id", "trial id in that recording"),
        ("tier", "tier of the trial"),
        ("video_correlation", "correlation of reconstruction and movie inside the evaluation mask, frames 30 on"),
        ("series", "name of the reconstruction ImageSeries"),
    ):
        table.add_column(name=column, description=text)
    masks, names = {}, []
    for t, start in zip(trials, starts, strict=True):
        side, mouse = t["sidecar"], t["mouse"]
        trial_id = int(side["data"]["trial"])
        with np.load(t["npz"]) as f:
            arrays = {k: f[k] for k in f.files}
        base = f"{mouse}_trial{trial_id}"
        comments = json.dumps({k: side.get(k) for k in ("config", "seed", "data", "models", "mask", "metrics")})
        frames = arrays["reconstruction"]
        shown = f"trial {trial_id} of {mouse} ({side['data'].get('tier')})"
        parts = {
            "reconstruction": ("reconstruction", f"Reconstruction of the movie of {shown}."),
            "stimulus": ("truth", f"The movie shown in {shown}, 36 x 64 at 30 Hz."),
            "confidence": ("confidence", f"Per-pixel confidence of the reconstruction of {shown}."),
        }
        for suffix, (key, description) in parts.items():
            if key in arrays:
                module.add(_series(f"{base}_{suffix}", arrays[key], start, description, comments))
        masks.setdefault(mouse, arrays)
        table.add_row(
            start_time=start, stop_time=start + frames.shape[0] / FRAME_RATE, mouse=mouse, trial_id=trial_id,
            tier=str(side["data"].get("tier")), video_correlation=float(side["metrics"]["video_correlation"]),
            series=f"{base}_reconstruction",
        )  # fmt: skip
        names.append(f"{base}_reconstruction")
    images = []
    for mouse, arrays in masks.items():
        alpha = np.asarray(arrays["alpha"], np.float32)
        inside = np.asarray(arrays["eval_mask"]).astype(np.uint8)
        images.append(GrayscaleImage(name=f"{mouse}_alpha", data=alpha, description="Alpha mask, 0..1."))
        images.append(GrayscaleImage(name=f"{mouse}_evaluation_mask", data=inside, description="Evaluated pixels (1)."))
    module.add(Images(name="masks", images=images, description="Masks of each mouse's reconstructions."))
    nwbfile.add_time_intervals(table)
    nwbfile.notes = json.dumps({"summary": summary, "imports": imports}, default=str)
    with atomic_path(out) as tmp:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)
    return {"trials": len(trials), "series": names, "session": (session or {}).get("identifier")}
