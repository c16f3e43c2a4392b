"""Figure of a simulated mouse: RF mosaic, population RF, responses against the noise-free rates, behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from v1recon import FRAME_RATE_HZ, FRAME_SHAPE
from v1recon.sim.model import SCREEN_DEG, GroundTruthV1

TYPE_COLOURS = {"simple": "tab:blue", "complex": "tab:orange", "simple-ds": "tab:green", "complex-ds": "tab:red",
                "end-stopped": "tab:purple", "pooling": "tab:brown", "corner": "tab:pink", "on-centre": "tab:olive",
                "off-centre": "tab:cyan"}  # fmt: skip
EXTENT = (-SCREEN_DEG[1] / 2, SCREEN_DEG[1] / 2, -SCREEN_DEG[0] / 2, SCREEN_DEG[0] / 2)  # degrees


def mouse_figure(
    path: str | os.PathLike,
    model: GroundTruthV1,
    example: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
    title: str = "",
    max_contours: int = 120,
) -> Path:
    """Write a PNG (matplotlib Agg). example = (video (T,36,64), behaviour (4,T), rates (N,T), responses (N,T))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 10.5))
    grid = fig.add_gridspec(3, 3, height_ratios=[1.0, 1.0, 0.8], left=0.05, right=0.98, bottom=0.05, top=0.93,
                            wspace=0.22, hspace=0.35)  # fmt: skip
    _mosaic(fig.add_subplot(grid[0, 0]), model, max_contours)
    _population(fig.add_subplot(grid[0, 1]), model, None if example is None else example[0])
    _tuning(fig.add_subplot(grid[0, 2]), model)
    if example is not None:
        video, behaviour, rates, responses = example
        order = _raster_neurons(rates, 60)
        _raster(fig.add_subplot(grid[1, 0]), rates[order], "noise-free rates (expected response)")
        _raster(fig.add_subplot(grid[1, 1]), responses[order], "single-trial responses")
        _traces(fig.add_subplot(grid[1, 2]), rates[order[:4]], responses[order[:4]])
        _behaviour(fig, grid[2, :], behaviour)
    fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _mosaic(ax, model: GroundTruthV1, max_contours: int) -> None:
    """1-sigma ellipses of the RF envelopes of a random subset of neurons, coloured by cell type."""
    from matplotlib.collections import EllipseCollection

    p = model.parameters_numpy()
    types = model.cell_types()
    pick = np.random.default_rng(0).permutation(model.n_neurons)[:max_contours]
    ellipses = EllipseCollection(
        widths=2 * p["sigma_deg"][pick],
        heights=2 * p["sigma_deg"][pick] * p["aspect"][pick],
        angles=np.rad2deg(p["orientation_rad"][pick]),
        units="xy",
        offsets=np.column_stack([p["azimuth_deg"][pick], p["elevation_deg"][pick]]),
        offset_transform=ax.transData,
        facecolors="none",
        edgecolors=[TYPE_COLOURS[t] for t in types[pick]],
        linewidths=0.8,
    )
    ax.add_collection(ellipses)
    for kind in model.cell_type_names:
        ax.plot([], [], color=TYPE_COLOURS[kind], label=f"{kind} ({np.mean(types == kind):.0%})")
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    _screen_axes(ax, f"RF mosaic: 1-sigma envelopes of {len(pick)} of {model.n_neurons} neurons")


def _population(ax, model: GroundTruthV1, frame_source: np.ndarray | None) -> None:
    """The population RF (summed envelopes) over a frame of the example movie."""
    pop = model.population_rf()
    if frame_source is not None:
        ax.imshow(frame_source[len(frame_source) // 2], cmap="gray", vmin=0, vmax=255, extent=EXTENT)
    ax.imshow(pop, cmap="magma", alpha=0.55, extent=EXTENT)
    az = np.linspace(EXTENT[0], EXTENT[1], FRAME_SHAPE[1])
    el = np.linspace(EXTENT[3], EXTENT[2], FRAME_SHAPE[0])
    cs = ax.contour(az, el, pop, levels=[0.2, 0.5, 0.8], colors=["cyan", "yellow", "white"], linewidths=1.2)
    ax.clabel(cs, fontsize=7)
    covered = np.mean(pop > 0.2)
    _screen_axes(ax, f"population RF (summed envelopes; > 0.2 covers {covered:.0%} of the screen)")


def _tuning(ax, model: GroundTruthV1) -> None:
    """Distributions of RF size and spatial frequency (degrees), the ranges reported for mouse V1."""
    p = model.parameters_numpy()
    ax.scatter(p["sigma_deg"], p["sf_cpd"], s=4, c=p["latency_frames"] * 1000 / FRAME_RATE_HZ, cmap="viridis")
    ax.set_yscale("log")
    ax.set_xlabel("RF sigma (deg)")
    ax.set_ylabel("spatial frequency (cycles/deg)")
    ax.set_title(
        f"RF sigma median {np.median(p['sigma_deg']):.1f} deg, SF median {np.median(p['sf_cpd']):.3f} cpd\n"
        "(colour: temporal latency 50-100 ms)",
        fontsize=9,
    )


def _raster_neurons(rates: np.ndarray, n: int) -> np.ndarray:
    """The n most modulated neurons, ordered by the time of their peak."""
    top = np.argsort(-rates.std(1))[:n]
    return top[np.argsort(rates[top].argmax(1))]


def _raster(ax, values: np.ndarray, title: str) -> None:
    t = values.shape[1] / FRAME_RATE_HZ
    vmax = np.quantile(values, 0.99) + 1e-6
    ax.imshow(values, aspect="auto", cmap="Greys", vmin=0, vmax=vmax, extent=(0, t, values.shape[0], 0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("neuron (by peak time)")
    ax.set_title(title, fontsize=9)


def _traces(ax, rates: np.ndarray, responses: np.ndarray) -> None:
    t = np.arange(rates.shape[1]) / FRAME_RATE_HZ
    scale = max(rates.max(), 1e-6)
    for i in range(len(rates)):
        ax.plot(t, responses[i] / scale + 1.2 * i, color="0.6", lw=0.7)
        ax.plot(t, rates[i] / scale + 1.2 * i, color="tab:red", lw=1.0)
    ax.plot([], [], color="0.6", label="response")
    ax.plot([], [], color="tab:red", label="noise-free rate")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title("four neurons: single trial vs rate", fontsize=9)


def _behaviour(fig, cell, behaviour: np.ndarray) -> None:
    sub = cell.subgridspec(1, 3, wspace=0.25)
    t = np.arange(behaviour.shape[1]) / FRAME_RATE_HZ
    ax = fig.add_subplot(sub[0])
    ax.plot(t, behaviour[1], color="tab:green")
    ax.set_ylim(0, max(5.0, 1.1 * float(behaviour[1].max())))
    ax.set_ylabel("running speed (cm/s)")
    ax.set_xlabel("time (s)")
    ax = fig.add_subplot(sub[1])
    ax.plot(t, behaviour[0], color="tab:purple")
    ax.set_ylabel("pupil dilation (camera px)")
    ax.set_xlabel("time (s)")
    ax = fig.add_subplot(sub[2])
    ax.plot(t, behaviour[2] - behaviour[2].mean(), label="x")
    ax.plot(t, behaviour[3] - behaviour[3].mean(), label="y")
    ax.legend(fontsize=7)
    ax.set_ylabel("pupil centre - mean (camera px)")
    ax.set_xlabel("time (s)")


def _screen_axes(ax, title: str) -> None:
    ax.set_xlim(EXTENT[0], EXTENT[1])
    ax.set_ylim(EXTENT[2], EXTENT[3])
    ax.set_aspect("equal")
    ax.set_xlabel("azimuth (deg)")
    ax.set_ylabel("elevation (deg)")
    ax.set_title(title, fontsize=9)
