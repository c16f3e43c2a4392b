"""The reconstructions section: per-trial metrics with mean +- SD, the oracle and upper bound beside them, and for
every trial the side-by-side movie, a frame strip and the per-frame correlation."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v1recon import EVAL_START_FRAME
from v1recon.report import collect, figures
from v1recon.report import html as H
from v1recon.report.sections.common import mean_sd_n, mean_sd_text, missing, pretty

# Metrics shown per trial, in this order, when present (names of v1recon.metrics.video.video_metrics).
METRICS = (
    "video_correlation",
    "frame_correlation",
    "full_screen_correlation",
    "ssim_global",
    "ssim_windowed",
    "rmse",
    "psnr",
    "motion_energy_correlation",
    "response_correlation",
)
UNITS = {"rmse": "grey levels", "psnr": "dB"}
DIGITS = {"rmse": 2, "psnr": 2}
# Reference reconstructions shown beside ours: name -> words a set's folder or sidecar key contains.
REFERENCES = {
    "oracle": ("oracle", "truth_model", "true_model"),
    "upper bound": ("upper_bound", "predicted_responses", "from_predicted"),
}
VIDEO_KEYS = ("video", "reconstruction", "recon")
TRUTH_KEYS = ("truth", "target", "ground_truth")
MASK_KEYS = ("eval_mask", "evaluation_mask", "mask")
STRIP_FRAMES = 4


@dataclass
class TrialView:
    """What the section knows about one reconstructed trial."""

    files: collect.TrialFiles
    metrics: dict[str, float]
    references: dict[str, float] = field(default_factory=dict)  # reference name -> its video correlation

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.files.tier, self.files.mouse, self.files.trial_id)


def reconstructions_section(ctx) -> str:
    if not ctx.trials:
        return missing("No reconstructions yet", "v1recon reconstruct RUN")
    sets = _sets(ctx.trials)
    main, refs = _split_references(sets)
    parts = []
    for name, trials in main.items():
        views = [_view(t, refs) for t in trials]
        parts.append(_set_block(ctx, name, views))
    for name, trials in refs.items():
        views = [_view(t, {}) for t in trials]
        parts.append(_set_block(ctx, name, views, movies=False))
    parts.append(_summaries(ctx.recon_summaries))
    return "".join(parts)


def _sets(trials: list[collect.TrialFiles]) -> dict[str, list[collect.TrialFiles]]:
    """Trials grouped into reconstruction sets: group folder (if any) / tier / mouse."""
    sets: dict[str, list[collect.TrialFiles]] = defaultdict(list)
    for t in trials:
        sets["/".join(p for p in (t.group, t.tier, t.mouse) if p)].append(t)
    return dict(sets)


def _reference_of(name: str) -> str | None:
    lowered = name.lower()
    for ref, words in REFERENCES.items():
        if any(w in lowered for w in words):
            return ref
    return None


def _split_references(sets: dict[str, list]) -> tuple[dict[str, list], dict[str, list]]:
    main = {k: v for k, v in sets.items() if _reference_of(k) is None}
    refs = {k: v for k, v in sets.items() if _reference_of(k) is not None}
    return (main or refs), (refs if main else {})


def trial_metrics(files: collect.TrialFiles) -> dict[str, float]:
    """The trial's metrics from its sidecar, or computed from its npz (reconstruction, truth, mask)."""
    metrics = collect.flat_numbers(collect.sidecar_metrics(files.sidecar))
    if not any(m in metrics for m in METRICS):
        arrays = _movies(files)
        if arrays is not None:
            from v1recon.metrics.video import video_metrics

            metrics.update(video_metrics(arrays[0], arrays[1], arrays[2]))
    return metrics


def _view(files: collect.TrialFiles, refs: dict[str, list[collect.TrialFiles]]) -> TrialView:
    metrics = trial_metrics(files)
    view = TrialView(files, metrics)
    # References written inside the trial's own sidecar, e.g. {"oracle": {"metrics": {...}}}.
    for key, value in collect.flat_numbers(files.sidecar or {}).items():
        ref = _reference_of(key)
        if ref and key.endswith("video_correlation"):
            view.references.setdefault(ref, value)
    # References written as their own sets, matched by tier, mouse and trial.
    for name, trials in refs.items():
        for t in trials:
            if (t.tier, t.mouse, t.trial_id) == view.key:
                view.references.setdefault(_reference_of(name), trial_metrics(t).get("video_correlation"))
    return view


def _set_block(ctx, name: str, views: list[TrialView], movies: bool = True) -> str:
    views = sorted(views, key=lambda v: v.files.trial_id)
    config = collect.first_key(views[0].files.sidecar, "config", default={}) if views else {}
    parts = [f"<h3>{H.esc(name)}</h3>", _config_line(config), _metrics_table(views)]
    plots = _metric_plot(views) + _optimisation_plot(views)
    if plots:
        parts.append(f'<div class="row">{plots}</div>')
    if movies:
        parts.append('<div class="grid">' + "".join(_trial_card(v) for v in views) + "</div>")
    return "".join(parts)


def _config_line(config) -> str:
    if not isinstance(config, dict) or not config:
        return ""
    keep = ("method", "iterations", "ensemble", "smooth_sigma", "seed", "n_models", "models", "encoders")
    items = [f"{k} = {config[k]}" for k in keep if k in config and not isinstance(config[k], dict)]
    return f'<p class="muted">{H.esc(", ".join(items))}</p>' if items else ""


def _metrics_table(views: list[TrialView]) -> str:
    metrics = [m for m in METRICS if any(m in v.metrics for v in views)]
    refs = [r for r in REFERENCES if any(r in v.references for v in views)]
    headers = ["trial", *[pretty(m) + (f" ({UNITS[m]})" if m in UNITS else "") for m in metrics]]
    headers += [f"{r}: video correlation" for r in refs]
    rows = [
        [v.files.trial_id, *[v.metrics.get(m) for m in metrics], *[v.references.get(r) for r in refs]] for v in views
    ]
    digits = [0, *[DIGITS.get(m, 3) for m in metrics], *[3] * len(refs)]
    columns = [[v.metrics.get(m) for v in views] for m in metrics] + [
        [v.references.get(r) for v in views] for r in refs
    ]
    summary = [
        ["mean \u00b1 SD", *[mean_sd_text(c, d, with_n=False) for c, d in zip(columns, digits[1:], strict=True)]],
        ["n", *[mean_sd_n(c)[2] for c in columns]],
    ]
    caption = (
        f"Every metric per trial, frames {EVAL_START_FRAME} on, inside the evaluation mask (full-screen correlation: "
        "all pixels). Oracle: reconstruction through the true model of the in-silico mouse from the same responses; "
        "upper bound: reconstruction from the encoders' own predicted responses."
    )
    if not metrics:
        return H.note("These trials carry no metrics and no truth to compute them from.")
    return H.table(headers, rows, caption=caption, summary_rows=summary, digits=digits)


def _metric_plot(views: list[TrialView]) -> str:
    values = {"this reconstruction": [v.metrics.get("video_correlation") for v in views]}
    for ref in REFERENCES:
        vals = [v.references.get(ref) for v in views]
        if any(x is not None for x in vals):
            values[ref] = vals
    if mean_sd_n(values["this reconstruction"])[2] == 0:
        return ""
    png = figures.metric_by_trial(values, list(values), "video correlation r", "Video correlation per trial")
    return H.image(png, "video correlation per trial", "Dots: trials; squares and bars: mean \u00b1 SD.", width=560)


def _optimisation_plot(views: list[TrialView]) -> str:
    """Video correlation against iteration, from the 'correlation' (K, I) arrays of the npz files."""
    curves = {}
    for v in views:
        arrays = collect.load_npz_arrays(v.files.npz)
        corr = arrays.get("correlation")
        if corr is not None and corr.ndim in (1, 2) and np.isfinite(corr).any():
            curves[f"trial {v.files.trial_id}"] = np.nanmean(np.atleast_2d(corr), axis=0)
    if not curves:
        return ""
    png = figures.optimisation_curves(curves)
    return H.image(
        png,
        "optimisation curves",
        "Video correlation with the truth during the optimisation (mean over the ensemble's models).",
        width=560,
    )


# -- one trial ------------------------------------------------------------------------------------------------------
def _movies(files: collect.TrialFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(reconstruction, truth, evaluation mask) from the trial's npz, when it holds both movies."""
    arrays = collect.load_npz_arrays(files.npz)
    recon = next((arrays[k] for k in VIDEO_KEYS if k in arrays and arrays[k].ndim == 3), None)
    truth = next((arrays[k] for k in TRUTH_KEYS if k in arrays and arrays[k].ndim == 3), None)
    if recon is None or truth is None or recon.shape != truth.shape:
        return None
    mask = next((arrays[k] for k in MASK_KEYS if k in arrays and arrays[k].shape == recon.shape[1:]), None)
    return (
        recon.astype(np.float32),
        truth.astype(np.float32),
        (None if mask is None else mask >= 1 if mask.dtype.kind == "f" else mask.astype(bool)),
    )


def _trial_card(view: TrialView) -> str:
    files = view.files
    title = f"Trial {files.trial_id}"
    r = view.metrics.get("video_correlation")
    if r is not None:
        title += f" \u00b7 video r = {r:.3f}"
    parts = [f'<div class="trial"><h4>{H.esc(title)}</h4>']
    movies = _movies(files)
    mp4 = files.mp4.read_bytes() if files.mp4 else (_make_movie(movies) if movies else None)
    if mp4:
        parts.append(H.video(mp4, f"trial {files.trial_id}: truth and reconstruction"))
    else:
        parts.append(H.note("No movie for this trial (no .mp4 and no reconstruction with truth in the .npz)."))
    strip = files.png.read_bytes() if files.png else (_make_strip(movies) if movies else None)
    if strip:
        parts.append(H.image(strip, f"frame strip of trial {files.trial_id}"))
    if movies:
        recon, truth, mask = movies
        from v1recon.metrics.video import frame_correlations

        curve = frame_correlations(recon, truth, mask)
        parts.append(
            H.image(
                figures.frame_correlation_plot({"reconstruction": curve}),
                f"per-frame correlation of trial {files.trial_id}",
            )
        )
    parts.append("</div>")
    return "".join(parts)


def _make_movie(movies) -> bytes | None:
    """A side-by-side MP4 (truth | reconstruction) written to a temporary file and read back."""
    from v1recon.report.media import write_side_by_side_movie

    recon, truth, mask = movies
    with tempfile.TemporaryDirectory() as tmp:
        path = write_side_by_side_movie(Path(tmp) / "trial.mp4", {"truth": truth, "reconstruction": recon}, mask=mask)
        return path.read_bytes()


def _make_strip(movies) -> bytes | None:
    from v1recon.report.media import frame_strip

    recon, truth, mask = movies
    t = recon.shape[0]
    start = min(EVAL_START_FRAME, t - 1)
    frames = np.unique(np.linspace(start, t - 1, STRIP_FRAMES).astype(int))
    with tempfile.TemporaryDirectory() as tmp:
        path = frame_strip(Path(tmp) / "strip.png", {"truth": truth, "reconstruction": recon}, frames, mask=mask)
        return path.read_bytes()


def _summaries(summaries: dict[str, dict]) -> str:
    if not summaries:
        return ""
    rows = []
    for folder, content in sorted(summaries.items()):
        for key, value in collect.flat_numbers(content).items():
            if not key.startswith("provenance"):
                rows.append([folder or ".", key, value])
    if not rows:
        return ""
    return "<h4>Summary files</h4>" + H.table(
        ["folder", "quantity", "value"], rows[:80], caption="Numbers of the summary.json files under reconstructions/."
    )


def main_views(ctx) -> list[TrialView]:
    """The trials of the main reconstruction sets (not the oracle or upper-bound sets), with their references."""
    main, refs = _split_references(_sets(ctx.trials))
    return [_view(t, refs) for trials in main.values() for t in trials]
