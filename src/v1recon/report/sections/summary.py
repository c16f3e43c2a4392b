"""The top of the report: headline numbers as cards and which stages are still to run."""

from __future__ import annotations

from v1recon.report import collect
from v1recon.report import html as H
from v1recon.report.context import Context
from v1recon.report.published import PUBLISHED_BY_KEY, format_published
from v1recon.report.sections.common import mean_sd_n, ratio


def summary_section(ctx: Context) -> str:
    from v1recon.report.sections.encoders import ceilings
    from v1recon.report.sections.paper import run_values
    from v1recon.report.sections.reconstructions import main_views

    values = run_values(ctx)
    cards = []
    if "video_corr" in values:
        views = main_views(ctx)
        mean, sd, n = mean_sd_n([v.metrics.get("video_correlation") for v in views])
        oracle = mean_sd_n([v.references.get("oracle") for v in views])[0]
        spread = f"SD {sd:.3f}, " if sd is not None else ""
        cards.append(
            (
                f"{mean:.3f}",
                f"mean video correlation ({spread}n = {n} trials)",
                f"published on real data: {format_published(PUBLISHED_BY_KEY['video_corr'])}",
            )
        )
        if oracle is not None:
            cards.append(
                (
                    f"{oracle:.3f}",
                    "oracle (true model, same responses)",
                    f"ratio ours / oracle: {ratio(mean, oracle):.2f}",
                )
            )
        upper = values.get("video_corr_upper_bound")
        if upper is not None:
            cards.append(
                (
                    f"{upper:.3f}",
                    "upper bound (from predicted responses)",
                    f"published on real data: {format_published(PUBLISHED_BY_KEY['video_corr_upper_bound'])}",
                )
            )
    if ctx.evaluation is not None:
        rows = collect.encoder_rows(ctx.evaluation)
        ens = mean_sd_n([m.get("single_trial_correlation") for _, e, m in rows if collect.is_ensemble(e)])[0]
        truth = mean_sd_n([m.get("single_trial_correlation") for m in ceilings(rows).values()])[0]
        single = values.get("encoder_single_trial_corr")
        if single is not None:
            cards.append(
                (
                    f"{single:.3f}",
                    "encoder single-trial r (one model)",
                    f"published (DwiseNeuro): {format_published(PUBLISHED_BY_KEY['encoder_single_trial_corr'])}",
                )
            )
        if ens is not None:
            ref = f"ratio to true model: {ratio(ens, truth):.2f}" if truth else "no true model to compare"
            cards.append((f"{ens:.3f}", "ensemble single-trial r", ref))
    neurons = sum(int(m.get("n_neurons", 0)) for m in ctx.info.get("mice", []) if isinstance(m, dict))
    cards.append((str(len(ctx.mouse_names)), "mice", f"{neurons} neurons in all" if neurons else ""))
    cards.append((str(len(ctx.models)), "trained models", f"preset {ctx.info.get('preset', '?')}"))
    return H.cards(cards) + _todo(ctx)


def _todo(ctx: Context) -> str:
    steps = []
    if not ctx.models:
        steps.append("train the encoders (v1recon train)")
    if ctx.evaluation is None:
        steps.append("evaluate them (v1recon evaluate RUN)")
    if not ctx.masks:
        steps.append("learn the masks (v1recon mask RUN)")
    if not ctx.trials:
        steps.append("reconstruct the test trials (v1recon reconstruct RUN)")
    if not steps:
        return ""
    return H.note("Stages not run yet, so parts of this report are empty: " + "; ".join(steps) + ".")
