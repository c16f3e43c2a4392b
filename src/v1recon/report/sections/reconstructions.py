"""The reconstructions section: per-trial metrics with mean +- SD, the oracle and upper bound beside them, and for
every trial the side-by-side movie, a frame strip and the per-frame correlation.

Each folder of mouse folders under RUN/reconstructions is one reconstruction job ("set"). What a set measures is
the condition label its sidecars carry (written by the reconstruct job; for sidecars without one, the same label is
derived from their config by the job's own rule).
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v1recon import EVAL_START_FRAME
from v1recon.report import collect, figures
from v1recon.report import html as H
from v1recon.report.context import Context
from v1recon.report.published import PUBLISHED_BY_KEY
from v1recon.report.sections.common import mean_sd_n, mean_sd_text, missing

# Metrics shown per trial, in this order, when present (names as v1recon.metrics.video and the reconstruct job).
METRICS = {
    "video_correlation": "video r",
    "best_single_model": "best single model r",
    "frame_correlation": "frame r",
    "full_screen_correlation": "full-screen r",
    "ssim_global": "SSIM (published)",
    "ssim_windowed": "SSIM (windowed)",
    "rmse": "RMSE (grey levels)",
    "psnr": "PSNR (dB)",
    "motion_energy_correlation": "motion energy r",
    "response_consistency": "response consistency r",
}
DIGITS = {"rmse": 2, "psnr": 2}
MAIN = "main"
ORACLE = "oracle"
UPPER = "upper bound"
REFERENCES = (ORACLE, UPPER)
LABEL_KINDS = {  # condition labels of the reconstruct job -> what the report makes of a set
    "ensemble": MAIN,
    "oracle": ORACLE,
    "upper bound": UPPER,
    "gradient ensembling": "video_corr_gradient_ensembling",
    "no smoothing": "video_corr_no_smoothing",
    "no mask": "video_corr_no_mask",
}
STRIP_FRAMES = 4


@dataclass
class TrialView:
    """One reconstructed trial, its metrics, and the same movie's reference reconstructions (oracle, upper bound)."""

    files: collect.TrialFiles
    metrics: dict[str, float]
    references: dict[str, float] = field(default_factory=dict)  # reference -> its video correlation
    reference_files: dict[str, collect.TrialFiles] = field(default_factory=dict)


# -- what a set measures ---------------------------------------------------------------------------------------------
def trial_label(files: collect.TrialFiles) -> str | None:
    """The condition label of a reconstructed trial, from its sidecar."""
    from v1recon.jobs.reconstruct import condition

    side = files.sidecar or {}
    label = (side.get("condition") or {}).get("label")
    config = files.config
    if label is None and config:  # written before sidecars carried their condition
        encoders = (side.get("models") or {}).get("encoders") or []
        masked = not str((side.get("mask") or {}).get("source", "")).startswith("none")
        label = condition(bool(config.get("oracle")), bool(config.get("from_predicted")),
                          config.get("ensemble", "average"), config.get("smooth_sigma", 0.5), len(encoders),
                          masked)["label"]  # fmt: skip
    return label


def set_kind(trials: list[collect.TrialFiles]) -> str:
    """MAIN, ORACLE, UPPER or the published key of a variant (e.g. 'video_corr_gradient_ensembling')."""
    labels = {trial_label(t) for t in trials} - {None}
    return LABEL_KINDS.get(labels.pop(), MAIN) if len(labels) == 1 else MAIN


def sets(trials: list[collect.TrialFiles]) -> dict[str, tuple[str, list[collect.TrialFiles]]]:
    """set name -> (kind, trials)."""
    grouped: dict[str, list[collect.TrialFiles]] = defaultdict(list)
    for t in trials:
        grouped[t.set_name].append(t)
    return {name: (set_kind(ts), ts) for name, ts in grouped.items()}


def trial_metrics(files: collect.TrialFiles) -> dict[str, float]:
    """The trial's metrics from its sidecar, or computed from its npz (reconstruction, truth, mask)."""
    metrics = collect.flat_numbers(collect.sidecar_metrics(files.sidecar))
    if not any(m in metrics for m in METRICS):
        arrays = movies_of(files)
        if arrays is not None:
            from v1recon.metrics.video import video_metrics

            metrics.update(video_metrics(arrays[0], arrays[1], arrays[2]))
    return metrics


def views(ctx: Context) -> dict[str, tuple[str, list[TrialView]]]:
    """Every set with its trial views; trials of the main sets carry their oracle and upper-bound references.

    Computed once per report (kept on the context)."""
    cached = getattr(ctx, "_recon_views", None)
    if cached is None:
        cached = _views(ctx.trials)
        ctx._recon_views = cached
    return cached


def _views(trials_found: list[collect.TrialFiles]) -> dict[str, tuple[str, list[TrialView]]]:
    all_sets = sets(trials_found)
    refs: dict[str, dict[tuple, collect.TrialFiles]] = defaultdict(dict)
    for kind, trials in all_sets.values():
        if kind in REFERENCES:
            refs[kind].update({t.key: t for t in trials})
    out = {}
    for name, (kind, trials) in all_sets.items():
        vs = []
        for t in trials:
            view = TrialView(t, trial_metrics(t))
            if kind == MAIN:
                for ref, by_key in refs.items():
                    if t.key in by_key:
                        view.reference_files[ref] = by_key[t.key]
                        view.references.setdefault(ref, trial_metrics(by_key[t.key]).get("video_correlation"))
            vs.append(view)
        out[name] = (kind, vs)
    return out


def main_views(ctx: Context) -> list[TrialView]:
    """The trials of the main reconstruction sets, with their references."""
    return [v for kind, vs in views(ctx).values() if kind == MAIN for v in vs]


# -- the section ----------------------------------------------------------------------------------------------------
def reconstructions_section(ctx: Context) -> str:
    if not ctx.trials:
        return missing("No reconstructions yet", "v1recon reconstruct RUN")
    all_views = views(ctx)
    has_main = any(kind == MAIN for kind, _ in all_views.values())
    parts = []
    for name, (kind, vs) in sorted(all_views.items(), key=lambda item: (item[1][0] != MAIN, item[0])):
        parts.append(_set_block(name, kind, vs, movies=kind == MAIN or not has_main))
    if not has_main:
        parts.insert(
            0,
            H.note(
                "Only reference reconstructions (oracle or upper bound) so far: run v1recon "
                "reconstruct RUN for the encoders' own reconstructions."
            ),
        )
    return "".join(parts)


def _kind_label(kind: str) -> str:
    if kind == MAIN:
        return "reconstruction from recorded responses through the trained encoders"
    if kind == ORACLE:
        return "oracle: reconstruction through the true model of the in-silico mouse, same responses"
    if kind == UPPER:
        return "upper bound: reconstruction from the encoders' own predicted responses"
    published = PUBLISHED_BY_KEY.get(kind)
    return f"variant: {published.quantity}" if published else kind


def _set_block(name: str, kind: str, vs: list[TrialView], movies: bool) -> str:
    vs = sorted(vs, key=lambda v: (v.files.mouse, v.files.trial_id))
    parts = [f"<h3>{H.esc(name)}</h3>", f'<p class="lead">{H.esc(_kind_label(kind))}</p>', _config_line(vs)]
    parts.append(_metrics_table(vs))
    plots = _metric_plot(vs) + _optimisation_plot(vs) if movies else ""
    if plots:
        parts.append(f'<div class="row">{plots}</div>')
    if movies:
        parts.append('<div class="grid">' + "".join(_trial_card(v) for v in vs) + "</div>")
    return "".join(parts)


def _config_line(vs: list[TrialView]) -> str:
    config = vs[0].files.config if vs else {}
    keep = ("method", "iterations", "ensemble", "smooth_sigma", "seed")
    items = [f"{k} = {config[k]}" for k in keep if k in config and not isinstance(config[k], dict)]
    sidecar = vs[0].files.sidecar or {} if vs else {}
    encoders = (sidecar.get("models") or {}).get("encoders") if isinstance(sidecar.get("models"), dict) else None
    if isinstance(encoders, list):
        items.append(f"encoders = {', '.join(map(str, encoders))}")
    mask = sidecar.get("mask")
    if isinstance(mask, dict) and mask.get("source"):
        items.append(f"mask = {mask['source']}" + (f" ({mask['note']})" if mask.get("note") else ""))
    return f'<p class="muted">{H.esc("; ".join(items))}</p>' if items else ""


def _metrics_table(vs: list[TrialView]) -> str:
    metrics = [m for m in METRICS if any(m in v.metrics for v in vs)]
    refs = [r for r in REFERENCES if any(r in v.references for v in vs)]
    if not metrics:
        return H.note("These trials carry no metrics and no truth to compute them from.")
    several_mice = len({v.files.mouse for v in vs}) > 1
    lead = ["mouse", "trial"] if several_mice else ["trial"]
    headers = [*lead, *[METRICS[m] for m in metrics], *[f"{r}: video r" for r in refs]]
    rows = [
        [*([v.files.mouse] if several_mice else []), v.files.trial_id]
        + [v.metrics.get(m) for m in metrics]
        + [v.references.get(r) for r in refs]
        for v in vs
    ]
    digits = [0] * len(lead) + [DIGITS.get(m, 3) for m in metrics] + [3] * len(refs)
    columns = [[v.metrics.get(m) for v in vs] for m in metrics] + [[v.references.get(r) for v in vs] for r in refs]
    pad = [""] * (len(lead) - 1)
    summary = [
        [
            "mean \u00b1 SD",
            *pad,
            *[mean_sd_text(c, d, with_n=False) for c, d in zip(columns, digits[len(lead) :], strict=True)],
        ],
        ["n", *pad, *[mean_sd_n(c)[2] for c in columns]],
    ]
    caption = (
        f"Every metric per trial, frames {EVAL_START_FRAME} on, inside the evaluation mask (full-screen r: all "
        "pixels). r: Pearson correlation with the true movie; SSIM (published): global, c1 = c2 = 255\u00b2; "
        "response consistency: responses predicted from the reconstruction vs recorded. Oracle: reconstruction "
        "through the true model of the in-silico mouse from the same responses; upper bound: from the encoders' "
        "own predicted responses."
    )
    return H.table(headers, rows, caption=caption, summary_rows=summary, digits=digits)


def _metric_plot(vs: list[TrialView]) -> str:
    values = {"reconstruction": [v.metrics.get("video_correlation") for v in vs]}
    for ref in REFERENCES:
        vals = [v.references.get(ref) for v in vs]
        if any(x is not None for x in vals):
            values[ref] = vals
    if mean_sd_n(values["reconstruction"])[2] == 0:
        return ""
    png = figures.metric_by_trial(values, list(values), "video correlation r", "Video correlation per trial")
    return H.image(png, "video correlation per trial", "Dots: trials; squares and bars: mean \u00b1 SD.", width=560)


def _optimisation_plot(vs: list[TrialView]) -> str:
    """Video correlation against iteration, from the 'correlation' (K, I) arrays of the npz files."""
    curves = {}
    for v in vs:
        corr = collect.load_npz_arrays(v.files.npz).get("correlation")
        if corr is not None and corr.ndim in (1, 2) and np.isfinite(corr).any():
            curves[f"{v.files.mouse} trial {v.files.trial_id}"] = np.nanmean(np.atleast_2d(corr), axis=0)
    if not curves:
        return ""
    png = figures.optimisation_curves(curves)
    caption = "Video correlation with the true movie during the optimisation (mean over the models)."
    return H.image(png, "optimisation curves", caption, width=560)


# -- one trial ------------------------------------------------------------------------------------------------------
def movies_of(files: collect.TrialFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(reconstruction, truth, evaluation mask) from the trial's npz, when it holds both movies."""
    arrays = collect.load_npz_arrays(files.npz)
    recon, truth, mask = (arrays.get(k) for k in ("reconstruction", "truth", "eval_mask"))
    if recon is None or truth is None or recon.ndim != 3 or recon.shape != truth.shape:
        return None
    if mask is not None:
        mask = mask.astype(bool) if mask.shape == recon.shape[1:] else None
    return recon.astype(np.float32), truth.astype(np.float32), mask


def _trial_card(view: TrialView) -> str:
    files = view.files
    title = f"{files.mouse} \u00b7 trial {files.trial_id}"
    r = view.metrics.get("video_correlation")
    if r is not None:
        title += f" \u00b7 video r = {r:.3f}"
    parts = [f'<div class="trial"><h4>{H.esc(title)}</h4>']
    movies = movies_of(files)
    mp4 = files.mp4.read_bytes() if files.mp4 else (_make_movie(movies) if movies else None)
    if mp4:
        parts.append(H.video(mp4, f"trial {files.trial_id}: truth and reconstruction"))
    else:
        parts.append(H.note("No movie for this trial (no .mp4 and no reconstruction with truth in the .npz)."))
    if movies:
        parts.append(H.image(_make_strip(movies), f"frame strip of trial {files.trial_id}"))
        parts.append(_frame_plot(view, movies))
    elif files.png:
        parts.append(H.image(files.png.read_bytes(), f"figure of trial {files.trial_id}"))
    parts.append("</div>")
    return "".join(parts)


def _frame_plot(view: TrialView, movies) -> str:
    """Per-frame correlation of the reconstruction and, when present, of its oracle and upper bound."""
    from v1recon.metrics.video import frame_correlations

    recon, truth, mask = movies
    curves = {"reconstruction": frame_correlations(recon, truth, mask)}
    for ref, files in view.reference_files.items():
        ref_movies = movies_of(files)
        if ref_movies is not None and ref_movies[0].shape == recon.shape:
            curves[ref] = frame_correlations(ref_movies[0], truth, mask)
    return H.image(figures.frame_correlation_plot(curves), f"per-frame correlation of trial {view.files.trial_id}")


def _make_movie(movies) -> bytes:
    """A side-by-side MP4 (truth | reconstruction | error) written to a temporary file and read back."""
    from v1recon.report.media import error_panel, write_side_by_side_movie

    recon, truth, mask = movies
    panels = {"truth": truth, "reconstruction": recon, "error": error_panel(recon, truth)}
    with tempfile.TemporaryDirectory() as tmp:
        return write_side_by_side_movie(Path(tmp) / "trial.mp4", panels, mask=mask).read_bytes()


def _make_strip(movies) -> bytes:
    from v1recon.report.media import frame_strip

    recon, truth, mask = movies
    t = recon.shape[0]
    frames = np.unique(np.linspace(min(EVAL_START_FRAME, t - 1), t - 1, STRIP_FRAMES).astype(int))
    with tempfile.TemporaryDirectory() as tmp:
        path = frame_strip(Path(tmp) / "strip.png", {"truth": truth, "reconstruction": recon}, frames, mask=mask)
        return path.read_bytes()
