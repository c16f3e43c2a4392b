"""Where an analysis writes: RUN/analyses/<name>/ (result.npz, result.json sidecar, figure.png), in one piece.

An analysis folder appears complete or not at all, and an existing one is only replaced with `overwrite`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from v1recon.errors import V1ReconError

ANALYSES_DIR = "analyses"
RESULT_NPZ = "result.npz"
FIGURE_PNG = "figure.png"


def analysis_dir(run_dir: str | Path, name: str) -> Path:
    """RUN/analyses/<name>: where one analysis writes result.npz, result.json and figure.png."""
    return Path(run_dir) / ANALYSES_DIR / name


def check_output(run_dir: str | Path, name: str, overwrite: bool) -> Path:
    """The analysis folder; refuses (before any computation) to replace existing results without `overwrite`."""
    out = analysis_dir(run_dir, name)
    if out.exists() and not overwrite:
        raise V1ReconError(f"{out}: already holds results of this analysis; pass --overwrite to replace them.")
    return out


def write_analysis(
    run_dir: str | Path,
    name: str,
    arrays: dict[str, np.ndarray],
    summary: dict,
    config: dict,
    figure: Callable[[Path], None],
    setup=None,
    seconds: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write RUN/analyses/<name>/{result.npz, result.json, figure.png} as one atomic folder and return it.

    summary: what the report shows ("title", "description", "table": {"headers", "rows"}, "findings": [...],
    "expected": [{"effect", "holds", "why"}], "statistics": {...}); figure(path) draws figure.png.
    """
    from v1recon.io import atomic_path, save_npz, write_sidecar

    out = check_output(run_dir, name, overwrite)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_npz(tmp / RESULT_NPZ, **arrays)
        identity = setup.identity() if setup is not None else {}
        write_sidecar(
            tmp / RESULT_NPZ, analysis=name, config=config, identity=identity, summary=summary, seconds=seconds
        )
        figure(tmp / FIGURE_PNG)
    return out


class Timer:
    """Wall time since construction, in seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
