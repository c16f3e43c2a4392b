"""The published numbers beside this run's, and how a run's own values for them are found."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from v1recon.report import collect, figures
from v1recon.report import html as H
from v1recon.report.context import Context
from v1recon.report.published import (
    NOT_MEASURED,
    PUBLISHED,
    PUBLISHED_BY_KEY,
    REAL_DATA_LABEL,
    RUN_LABEL,
    format_published,
    format_value,
)
from v1recon.report.sections.common import mean_sd_n
from v1recon.report.sections.reconstructions import MAIN, ORACLE, UPPER, movies_of, views


def run_values(ctx: Context) -> dict[str, float]:
    """This run's value for every published key it measured (means over trials, or over models and mice)."""
    return {k: v for k, (v, _) in run_values_with_sources(ctx).items()}


def run_values_with_sources(ctx: Context) -> dict[str, tuple[float, str]]:
    """key -> (value, where it comes from: a reconstruction folder, an analysis, the evaluation, a declaration).

    Precedence: reconstruction jobs, then analyses for what they did not measure, then values a summary.json
    declares outright."""
    values: dict[str, list[float]] = {}
    sources: dict[str, set[str]] = {}

    def add(key: str, value: float | None, source: str) -> None:
        if value is not None and np.isfinite(value):
            values.setdefault(key, []).append(float(value))
            sources.setdefault(key, set()).add(source)

    for name, (kind, vs) in views(ctx).items():
        where = f"reconstructions/{name}"
        for v in vs:
            r = v.metrics.get("video_correlation")
            if kind == MAIN:
                add("video_corr", r, where)
                add("video_corr_population_100", r, where)  # the main reconstruction uses every neuron
                add("full_screen_corr", v.metrics.get("full_screen_correlation"), where)
                add("video_corr_no_smoothing", _unsmoothed_correlation(v.files), f"{where} (per-model average)")
                if UPPER in v.references and UPPER not in v.reference_files:
                    add("video_corr_upper_bound", v.references[UPPER], where)
            elif kind == UPPER:
                add("video_corr_upper_bound", r, where)
            elif kind != ORACLE:
                add(kind, r, where)
    out = {k: (float(np.mean(v)), ", ".join(sorted(sources[k]))) for k, v in values.items()}
    from v1recon.report.sections.analyses import analysis_values

    for key, (value, source) in analysis_values(ctx.run_dir).items():
        out.setdefault(key, (value, source))
    encoder = _encoder_value(ctx)
    if encoder is not None:
        out["encoder_single_trial_corr"] = (encoder, "evaluation/encoders.json (mean over single models)")
    out.update(_declared_values(ctx.run_dir))
    return out


def _unsmoothed_correlation(t: collect.TrialFiles) -> float | None:
    """Video correlation of the plain average of the per-model reconstructions (K > 1), without the blur."""
    if t.config.get("smooth_sigma") == 0:
        return None  # then the main reconstruction is itself unsmoothed
    arrays = collect.load_npz_arrays(t.npz)
    per_model, movies = arrays.get("per_model"), movies_of(t)
    if per_model is None or per_model.ndim != 4 or per_model.shape[0] < 2 or movies is None:
        return None
    from v1recon.metrics.video import video_correlation

    return video_correlation(per_model.mean(axis=0), movies[1], movies[2])


def _encoder_value(ctx: Context) -> float | None:
    """Mean single-trial correlation of the single models (not the ensemble, not the true model)."""
    if ctx.evaluation is None:
        return None
    rows = collect.encoder_rows(ctx.evaluation)
    singles = [
        m.get("single_trial_correlation")
        for _, enc, m in rows
        if not collect.is_truth(enc) and not collect.is_ensemble(enc)
    ]
    return mean_sd_n(singles)[0]


def _declared_values(run_dir: Path) -> dict[str, tuple[float, str]]:
    """Values a stage states outright: a 'comparison' object {published key: value} in any summary.json under
    RUN/reconstructions or RUN/experiments (experiments such as the population ablation report this way)."""
    out = {}
    for sub in ("reconstructions", "experiments"):
        folder = run_dir / sub
        for path in sorted(folder.rglob("summary.json")) if folder.is_dir() else ():
            content = collect.read_json_quiet(path) or {}
            declared = content.get("comparison")
            if isinstance(declared, dict):
                for key, value in declared.items():
                    if key in PUBLISHED_BY_KEY and isinstance(value, (int, float)) and np.isfinite(value):
                        out[key] = (float(value), f"{path.relative_to(run_dir)} (declared)")
    return out


def paper_section(ctx: Context) -> str:
    found = run_values_with_sources(ctx)
    values = {k: v for k, (v, _) in found.items()}
    rows = []
    for p in PUBLISHED:
        ours = values.get(p.key)
        if ours is None:
            cell = H.Raw(f'<span class="muted">{NOT_MEASURED}</span>')
        else:
            cell = H.Raw(f'{H.esc(format_value(ours))} <span class="src">{H.esc(found[p.key][1])}</span>')
        rows.append([p.quantity, H.Raw(f"<b>{H.esc(format_published(p))}</b>"), cell, p.source])
    headers = ["quantity (Pearson r)", REAL_DATA_LABEL, RUN_LABEL, "source of the published value"]
    intro = (
        '<p><span class="tag paper">' + H.esc(REAL_DATA_LABEL) + "</span> 5 mice \u00d7 10 movies of 10 s, "
        "Sensorium 2023 recordings, 7 DwiseNeuro models. "
        '<span class="tag run">' + H.esc(RUN_LABEL) + "</span> the mice, models and trials of this run. "
        "The quantities are defined the same way; the in-silico mouse is not the real one, so the numbers compare "
        "methods and definitions, not difficulty.</p>"
    )
    parts = [intro, H.table(headers, rows)]
    plotted = [(p.quantity, p.value, values.get(p.key)) for p in PUBLISHED if p.key in values]
    if plotted:
        parts.append(
            H.image(
                figures.comparison_figure(plotted),
                "published vs this run",
                "Quantities this run measured, beside the published values.",
                width=820,
            )
        )
    return "".join(parts)
