"""The published numbers, kept in one place so that the README and the HTML report quote the same values.

Sources: Bauer, Margrie & Clopath, "Movie reconstruction from mouse visual cortex activity", eLife 2025
(RP105081), measured on the Sensorium 2023 recordings (5 mice x 10 movies of 10 s, fold 0), and the
DwiseNeuro encoder that won Sensorium 2023. All values are Pearson correlations (dimensionless).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PAPER = "Bauer, Margrie & Clopath, eLife 2025"
DWISENEURO = "DwiseNeuro, Sensorium 2023 winner"

REAL_DATA_LABEL = "real data (published)"
RUN_LABEL = "in-silico mouse (this run)"
NOT_MEASURED = "not measured in this run"


@dataclass(frozen=True)
class PublishedResult:
    """One published number and the quantity of a run it is compared with.

    `key` names the quantity in both places: a run reports its own value under the same key
    (see `v1recon.report.comparison_values`).
    """

    key: str
    quantity: str
    value: float
    source: str
    approximate: bool = False
    decimals: int = 3  # as printed in the source


PUBLISHED: tuple[PublishedResult, ...] = (
    PublishedResult(
        "video_corr", "Video correlation: 7-model average + 3-D Gaussian smoothing (sigma 0.5), headline", 0.569, PAPER
    ),
    PublishedResult("video_corr_no_smoothing", "Video correlation: same, no smoothing", 0.533, PAPER),
    PublishedResult("video_corr_gradient_ensembling", "Video correlation: gradient ensembling", 0.552, PAPER),
    PublishedResult("video_corr_no_mask", "Video correlation: no training mask (all pixels updated)", 0.510, PAPER),
    PublishedResult("video_corr_strict_mask", "Video correlation: strict mask (update only m >= 1)", 0.551, PAPER),
    PublishedResult(
        "video_corr_upper_bound",
        "Upper bound: reconstruction from the ensemble's own predicted responses",
        0.766,
        PAPER,
    ),
    PublishedResult("video_corr_population_12.5", "Population kept 12.5% (~1k neurons)", 0.344, PAPER),
    PublishedResult("video_corr_population_25", "Population kept 25% (~2k neurons)", 0.427, PAPER),
    PublishedResult("video_corr_population_50", "Population kept 50% (~4k neurons)", 0.512, PAPER),
    PublishedResult("video_corr_population_100", "Population kept 100% (~8k neurons)", 0.569, PAPER),
    PublishedResult(
        "full_screen_corr", "Full-screen correlation (no evaluation mask)", 0.2, PAPER, approximate=True, decimals=1
    ),
    PublishedResult(
        "static_image_prior_art",
        "Earlier state of the art: static images, awake mouse V1",
        0.24,
        PAPER + " (cited prior work)",
        decimals=2,
    ),
    PublishedResult(
        "encoder_single_trial_corr", "Encoder single-trial correlation (one model)", 0.2913, DWISENEURO, decimals=4
    ),
)

PUBLISHED_BY_KEY: dict[str, PublishedResult] = {p.key: p for p in PUBLISHED}


def format_value(value: float | None, approximate: bool = False, digits: int = 3) -> str:
    """`0.56912 -> '0.569'`; None -> the 'not measured' phrase; approximate values get a '~'."""
    if value is None:
        return NOT_MEASURED
    return ("~" if approximate else "") + f"{value:.{digits}f}"


def format_published(p: PublishedResult) -> str:
    """A published number as printed in its source (`0.2913`, `0.24`, `~0.2`)."""
    return ("~" if p.approximate else "") + f"{p.value:.{p.decimals}f}"


def comparison_rows(run_values: Mapping[str, float | None] | None = None) -> list[tuple[str, str, str]]:
    """Rows (quantity, published value on real data, value of this run) for every published number.

    `run_values` maps `PublishedResult.key` to the run's value; a missing or None entry reads
    "not measured in this run".
    """
    run_values = run_values or {}
    rows = []
    for p in PUBLISHED:
        rows.append((p.quantity, format_published(p), format_value(run_values.get(p.key))))
    return rows


def comparison_markdown(run_values: Mapping[str, float | None] | None = None) -> str:
    """The published results beside a run's, as a Markdown table (for the README)."""
    lines = [
        f"| quantity | {REAL_DATA_LABEL} | {RUN_LABEL} |",
        "|---|---|---|",
    ]
    for quantity, published, ours in comparison_rows(run_values):
        lines.append(f"| {quantity} | {published} | {ours} |")
    return "\n".join(lines) + "\n"
