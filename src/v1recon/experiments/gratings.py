"""Resolution from drifting gratings: spatial x temporal frequency, 4 directions, 60 frames each.

Published: spatial frequency 0.5 / 0.25 / 0.125 / 0.0625 cycles/px, temporal frequency 15, 7.5, 3.75, 1.875,
0.94, 0.47, 0 Hz, 4 directions, reconstructed from the ensemble's predicted activity (constant behaviour), scored
on frames 30..59 inside the evaluation mask; up to r = 0.85 at the lowest spatial frequency. At 0.5 cycles/px
(the Nyquist limit) and 15 Hz (half the frame rate) the grating alternates between two frames or pixels, and with
the default phase it can be all grey: such cells have no contrast to reconstruct and are reported as NaN.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from v1recon.experiments import common, results
from v1recon.experiments.registry import Gratings, Settings, run_units
from v1recon.jobs.mouse import MouseSetup
from v1recon.report.figures import pyplot

NAME = "gratings"
N_FRAMES = 60
PHASE_DEG = 45.0  # keeps the Nyquist-frequency gratings from landing on their zero crossings


def grating_movies(
    sf: Sequence[float], tf: Sequence[float], directions: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Movies (M, 60, 36, 64) and their table (M, 3) of (sf index, tf index, direction index)."""
    from v1recon.sim import drifting_grating

    movies, table = [], []
    for i, s in enumerate(sf):
        for j, t in enumerate(tf):
            for k, d in enumerate(directions):
                movies.append(drifting_grating(s, t, d, N_FRAMES, phase_deg=PHASE_DEG))
                table.append((i, j, k))
    return np.stack(movies).astype(np.float32), np.asarray(table, dtype=np.int64)


def run(setup: MouseSetup, cfg: Gratings, recon, settings: Settings) -> tuple[dict, dict]:
    """Reconstruct every grating; return (arrays, summary) for `results.write_analysis`."""
    return run_units(sys.modules[__name__], setup, cfg, recon, settings)


def units(setup: MouseSetup, cfg: Gratings, settings: Settings) -> dict[str, dict]:
    """One unit per grid cell (spatial x temporal frequency; its directions together)."""
    return {f"cell-{i}-{j}": {"cell": [i, j]} for i in range(len(cfg.sf)) for j in range(len(cfg.tf))}


def reconstruct_unit(setup: MouseSetup, cfg: Gratings, recon, settings: Settings, spec: dict) -> dict:
    """The gratings of one cell, reconstructed from the ensemble's predicted activity (and the true model's)."""
    i, j = spec["cell"]
    movies, _ = grating_movies([cfg.sf[i]], [cfg.tf[j]], list(cfg.directions))
    behaviour = common.constant_behaviour(setup.recordings or [setup.recording], N_FRAMES)
    return common.predicted_unit(setup, movies, behaviour, recon, cfg.oracle, settings.progress)


def combine(setup: MouseSetup, cfg: Gratings, recon, settings: Settings, parts: dict) -> tuple[dict, dict]:
    """The map over spatial x temporal frequency (mean over directions)."""
    sf, tf, directions = list(cfg.sf), list(cfg.tf), list(cfg.directions)
    movies, table = grating_movies(sf, tf, directions)
    res = common.joined_predicted([parts[u] for u in units(setup, cfg, settings)])  # the table's cell-major order
    contrast = movies[:, common.EVAL_START_FRAME :][:, :, setup.eval_mask].std(axis=(1, 2))
    r = np.where(contrast > 1.0, res.r, np.nan)  # no contrast inside the mask: nothing to correlate with
    r_oracle = None if res.r_oracle is None else np.where(contrast > 1.0, res.r_oracle, np.nan)
    r_map = _cell_means(r, table, len(sf), len(tf))
    oracle_map = None if r_oracle is None else _cell_means(r_oracle, table, len(sf), len(tf))
    first = np.flatnonzero(table[:, 2] == 0)
    arrays = {
        "sf": np.asarray(sf, np.float32),
        "tf": np.asarray(tf, np.float32),
        "directions": np.asarray(directions, np.float32),
        "table": table,
        "r": r.astype(np.float32),
        "r_models": res.r_models.astype(np.float32),
        "r_map": r_map,
        "example_stimulus": movies[first].astype(np.float16),
        "example_reconstruction": res.videos[first].astype(np.float16),
        "eval_mask": setup.eval_mask,
    }
    if oracle_map is not None:
        arrays["r_oracle"] = r_oracle.astype(np.float32)
        arrays["r_oracle_map"] = oracle_map
    return arrays, _summary(sf, tf, r_map, oracle_map, len(movies), len(directions))


def _cell_means(values: np.ndarray, table: np.ndarray, n_sf: int, n_tf: int) -> np.ndarray:
    out = np.full((n_sf, n_tf), np.nan)
    for i in range(n_sf):
        for j in range(n_tf):
            v = values[(table[:, 0] == i) & (table[:, 1] == j)]
            if np.isfinite(v).any():
                out[i, j] = np.nanmean(v)
    return out


def _summary(sf, tf, r_map, oracle_map, n_movies, n_dirs) -> dict:
    rows = []
    for i, s in enumerate(sf):
        for j, t in enumerate(tf):
            o = None if oracle_map is None or np.isnan(oracle_map[i, j]) else float(oracle_map[i, j])
            rows.append([s, t, None if np.isnan(r_map[i, j]) else float(r_map[i, j]), o])
    by_sf = np.nanmean(np.where(np.isfinite(r_map), r_map, np.nan), axis=1) if np.isfinite(r_map).any() else None
    effect = "coarse gratings (lowest spatial frequency) are reconstructed best"
    expected = [{"effect": effect, "holds": None, "why": "fewer than two spatial frequencies with contrast"}]
    if by_sf is not None and len(sf) > 1 and np.isfinite(by_sf).sum() > 1:
        lowest, highest = int(np.argmin(sf)), int(np.argmax(sf))
        expected[0] = {
            "effect": effect,
            "holds": bool(by_sf[lowest] >= np.nanmax(by_sf) - 1e-9),
            "why": f"mean r {by_sf[lowest]:.3f} at {sf[lowest]:g} cycles/px vs {by_sf[highest]:.3f} at "
            f"{sf[highest]:g} cycles/px",
        }
    return {
        "title": "Resolution: drifting gratings",
        "description": (
            f"{n_movies} drifting gratings of 60 frames ({n_dirs} directions per spatial x temporal frequency), "
            "constant behaviour, reconstructed from the ensemble's predicted activity; video correlation on frames "
            "30..59 inside the evaluation mask, averaged over directions. Published: up to 0.85 at 0.0625 cycles/px."
        ),
        "table": {"headers": ["SF (cycles/px)", "TF (Hz)", "r ensemble", "r true model"], "rows": rows},
        "expected": expected,
        "headline": {"best_r": float(np.nanmax(r_map)) if np.isfinite(r_map).any() else None},
    }


def draw(path: Path, arrays: dict, summary: dict) -> None:
    """Correlation maps over spatial x temporal frequency (ensemble; true model when present)."""
    plt = pyplot()
    maps = [("ensemble (predicted activity)", arrays["r_map"])]
    if "r_oracle_map" in arrays:
        maps.append(("true model (in silico)", arrays["r_oracle_map"]))
    sf, tf = arrays["sf"], arrays["tf"]
    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps) + 0.6, 0.55 * len(sf) + 1.8), squeeze=False)
    for ax, (title, r) in zip(axes[0], maps, strict=True):
        im = ax.imshow(r, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(r.shape[0]):
            for j in range(r.shape[1]):
                text = "n/a" if np.isnan(r[i, j]) else f"{r[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if not r[i, j] > 0.6 else "k")
        ax.set_xticks(range(len(tf)), [f"{t:g}" for t in tf])
        ax.set_yticks(range(len(sf)), [f"{s:g}" for s in sf])
        ax.set_xlabel("temporal frequency (Hz)")
        ax.set_ylabel("spatial frequency (cycles/px)")
        ax.set_title(f"video r: {title}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, label="video correlation r")
    fig.suptitle("Drifting gratings (mean over directions)", fontsize=10)
    results.save_figure(fig, path)
