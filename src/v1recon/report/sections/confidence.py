"""Confidence movies in the report: per reconstruction set, the reliability diagram and the calibration of every
confidence method against the true movie; per trial, the confidence strip beside |error|.

A trial's confidence movies are the `confidence` / `confidence_<method>` arrays of its npz (named in its sidecar's
confidence.arrays), predicted standard deviations of the reconstruction's error in grey levels.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from v1recon import EVAL_START_FRAME
from v1recon.errors import V1ReconError
from v1recon.report import collect, figures
from v1recon.report import html as H

STRIP_FRAMES = 4


def confidence_of(files: collect.TrialFiles) -> dict[str, np.ndarray]:
    """method -> confidence movie (T, H, W) of one trial (empty without any)."""
    arrays = collect.load_npz_arrays(files.npz)
    named = ((files.sidecar or {}).get("confidence") or {}).get("arrays")
    if not isinstance(named, dict):
        named = {k: (k.removeprefix("confidence_") or "confidence") for k in arrays if k.startswith("confidence")}
    return {str(m): arrays[k] for k, m in named.items() if k in arrays and arrays[k].ndim == 3}


def _scale_note(vs) -> str:
    notes = set()
    for v in vs:
        for m, s in (((v.files.sidecar or {}).get("confidence") or {}).get("scale") or {}).items():
            if isinstance(s, dict) and s.get("factor", 1.0) != 1.0:
                notes.add(f"{m} x {s['factor']:.3g} (fitted on {s.get('fitted_on', '?')})")
    return "Scale factors: " + "; ".join(sorted(notes)) + "." if notes else "Unscaled estimates."


def confidence_block(vs, movies_of) -> str:
    """The calibration table and reliability diagram of the trials `vs` (TrialView) that carry confidence movies;
    `movies_of(files)` -> (reconstruction, truth, evaluation mask) or None. Empty when none does."""
    from v1recon.metrics.calibration import pooled_calibration, weighted_video_metrics
    from v1recon.metrics.video import video_correlation

    per_method: dict[str, list] = {}
    weighted: dict[str, list[float]] = {}
    plain = []
    for v in vs:
        movies, confidence = movies_of(v.files), confidence_of(v.files)
        if movies is None or not confidence:
            continue
        recon, truth, mask = movies
        plain.append(video_correlation(recon, truth, mask))
        for m, std in confidence.items():
            if std.shape != recon.shape:
                continue
            per_method.setdefault(m, []).append((std, recon, truth, mask))
            weighted.setdefault(m, []).append(
                weighted_video_metrics(std, recon, truth, mask)["video_correlation_weighted"]
            )
    if not per_method:
        return ""
    try:
        pooled = {m: pooled_calibration(items) for m, items in per_method.items()}
    except V1ReconError as err:
        return H.note(f"Confidence movies could not be scored: {err}", error=True)
    headers = ["method", "trials", "Spearman std vs |error|", "slope", "intercept", "RMS error / RMS std",
               "within 1 std", "Spearman frame std vs frame r", "weighted video r", "video r"]  # fmt: skip
    rows = [
        [
            m,
            c["trials"],
            c["spearman"],
            c["slope"],
            c["intercept"],
            c["rms_ratio"],
            c["coverage_1sd"],
            c["frame_spearman_correlation"],
            float(np.mean(weighted[m])),
            float(np.mean(plain)),
        ]  # fmt: skip
        for m, c in pooled.items()
    ]
    caption = (
        f"Calibration of each confidence method against the true movie, pooled over the pixel-frames inside the "
        f"evaluation mask, frames {EVAL_START_FRAME} on. A calibrated estimate has slope 1, intercept 0 (grey "
        "levels), RMS ratio 1 and 68 % of the errors within 1 std; the frame Spearman should be negative (frames "
        "predicted uncertain reconstructed worse). Weighted video r: each pixel-frame weighted by 1 / std\u00b2. "
        + _scale_note(vs)
    )
    table = H.table(headers, rows, caption=caption, digits=[0, 0, 3, 2, 1, 2, 2, 3, 3, 3])
    png = figures.reliability_diagram(
        {m: c["reliability"] for m, c in pooled.items()}, {m: c["frame_reliability"] for m, c in pooled.items()}
    )
    fig = H.image(png, "reliability diagram", "Bins of equal count by predicted std against the observed RMS error.")
    return "<h4>Confidence</h4>" + table + fig


def confidence_strip(movies, confidence: dict[str, np.ndarray]) -> bytes | None:
    """A strip of the trial's confidence movies beside |error| on one colour scale (grey levels), or None."""
    from v1recon.report.media import error_panel, frame_strip

    recon, truth, mask = movies
    rows = {f"std ({m})": std for m, std in confidence.items() if std.shape == recon.shape}
    if not rows:
        return None
    rows["|error|"] = error_panel(recon, truth)
    t = recon.shape[0]
    start = min(EVAL_START_FRAME, t - 1)
    frames = np.unique(np.linspace(start, t - 1, STRIP_FRAMES).astype(int))
    top = float(max(np.percentile(r[start:], 99) for r in rows.values())) or 1.0
    with tempfile.TemporaryDirectory() as tmp:
        path = frame_strip(Path(tmp) / "strip.png", rows, frames, mask=mask, vmax=top, cmap="magma")
        return path.read_bytes()
