"""Report figures (matplotlib, Agg backend), each returned as PNG bytes with labelled axes and units."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

from v1recon import BEHAVIOUR_CHANNELS, EVAL_START_FRAME, FRAME_RATE_HZ
from v1recon.metrics.encoder import pearson

DPI = 110
# Units of the Sensorium behaviour channels, in the order of BEHAVIOUR_CHANNELS.
BEHAVIOUR_UNITS = ("a.u.", "cm/s", "eye-camera px", "eye-camera px")
CURVE_TITLES = {
    "train_loss": "training loss",
    "val_loss": "validation loss",
    "val_corr": "validation single-trial r",
    "lr": "learning rate",
}
COLOURS = ("#2458a6", "#d0621b", "#2e8b57", "#8e44ad", "#b5892a", "#c0392b", "#16a0a0", "#7f8c8d")


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10})
    return plt


def to_png(fig) -> bytes:
    """Render and close a figure."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def training_curves(logs: Mapping[str, Mapping[str, np.ndarray]]) -> bytes:
    """Per-epoch curves of every model: one panel per logged quantity (losses, validation correlation).

    `logs` maps a model name to columns (name -> values per epoch); the column `epoch` is the x axis.
    """
    plt = pyplot()
    quantities = sorted({k for cols in logs.values() for k in cols if k != "epoch"}, key=_curve_order)
    quantities = quantities[:4] or ["(nothing logged)"]
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.2 * len(quantities), 3.0), squeeze=False)
    for ax, q in zip(axes[0], quantities, strict=True):
        for i, (name, cols) in enumerate(sorted(logs.items())):
            if q not in cols:
                continue
            y = np.asarray(cols[q], dtype=float)
            x = np.asarray(cols.get("epoch", np.arange(1, len(y) + 1)), dtype=float)
            ax.plot(x, y, marker="o", ms=3, lw=1.2, color=COLOURS[i % len(COLOURS)], label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(_curve_label(q))
        ax.set_title(CURVE_TITLES.get(q, q.replace("_", " ")))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return to_png(fig)


def _curve_order(name: str) -> tuple[int, str]:
    return (0 if "loss" in name else 1 if "corr" in name else 2, name)


def _curve_label(name: str) -> str:
    if "corr" in name:
        return "correlation r"
    if "loss" in name:
        return "loss (Poisson NLL per neuron-frame)" if "poisson" in name else "loss"
    if name in ("lr", "learning_rate"):
        return "learning rate"
    if "time" in name or name.endswith("_s"):
        return "seconds"
    return name.replace("_", " ")


def encoder_bars(rows: Sequence[tuple[str, str, float | None]], ceiling: Mapping[str, float] | None = None) -> bytes:
    """Single-trial correlation per (mouse, encoder) as grouped bars; `ceiling` (mouse -> r) of the true model
    is drawn as a dashed line over each mouse's group."""
    plt = pyplot()
    mice = list(dict.fromkeys(m for m, _, _ in rows))
    encoders = list(dict.fromkeys(e for _, e, _ in rows))
    values = {(m, e): v for m, e, v in rows}
    width = 0.8 / max(len(encoders), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(mice) * max(len(encoders), 2) * 0.5 + 2), 3.0))
    for j, enc in enumerate(encoders):
        xs = [i + (j - (len(encoders) - 1) / 2) * width for i in range(len(mice))]
        ys = [values.get((m, enc)) for m in mice]
        colour = "#17233b" if enc == "ensemble" else COLOURS[j % len(COLOURS)]
        ax.bar(xs, [np.nan if y is None else y for y in ys], width * 0.9, color=colour, label=enc)
    for i, m in enumerate((ceiling or {}).keys()):
        if m in mice:
            i = mice.index(m)
            ax.plot([i - 0.45, i + 0.45], [ceiling[m]] * 2, "k--", lw=1.2, label="true model" if i == 0 else None)
    ax.set_xticks(range(len(mice)), mice)
    ax.set_ylabel("single-trial correlation r")
    ax.set_xlabel("mouse")
    ax.legend(fontsize=7, frameon=False, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_png(fig)


def mask_figure(mask: np.ndarray | None, title: str, rfs: np.ndarray | None = None, max_contours: int = 150) -> bytes:
    """The alpha mask (H, W) over the screen (colour, with the update m >= 0.5 and evaluation m >= 1 borders) and,
    when `rfs` (N, H, W) are given, a mosaic of receptive fields (half-maximum contours) and the population RF."""
    plt = pyplot()
    mask = None if mask is None else np.asarray(mask, dtype=float)
    n_panels = (mask is not None) + (2 if rfs is not None else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.4 * n_panels, 2.8), squeeze=False)
    h, w = (mask if mask is not None else rfs[0]).shape
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    panels = iter(axes[0])
    if mask is not None:
        ax = next(panels)
        im = ax.imshow(mask, cmap="viridis", extent=extent, vmin=0, vmax=max(1.0, float(np.nanmax(mask))))
        _mask_borders(ax, mask)
        fig.colorbar(im, ax=ax, fraction=0.03, label="mask value m")
        ax.set_title(f"{title}: alpha mask")
    if rfs is not None:
        rfs = np.asarray(rfs, dtype=float)
        ax = next(panels)
        ax.imshow(np.full(rfs.shape[1:], 0.96), cmap="gray", vmin=0, vmax=1, extent=extent)
        rng = np.random.default_rng(0)
        pick = rng.choice(len(rfs), size=min(max_contours, len(rfs)), replace=False)
        for k, idx in enumerate(np.sort(pick)):
            rf = np.abs(rfs[idx])
            if rf.max() > 0:
                ax.contour(rf / rf.max(), levels=[0.5], colors=[COLOURS[k % len(COLOURS)]], linewidths=0.6)
        ax.set_title(f"RF mosaic ({len(pick)} of {len(rfs)} neurons, half-max contours)")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax = next(panels)
        pop = np.abs(rfs).sum(axis=0)
        pop = pop / pop.max() if pop.max() > 0 else pop
        im = ax.imshow(pop, cmap="magma", extent=extent)
        _mask_borders(ax, mask if mask is not None and mask.shape == pop.shape else None)
        fig.colorbar(im, ax=ax, fraction=0.03, label="summed |RF| (normalised)")
        ax.set_title("population RF" + (" with mask borders" if mask is not None else ""))
    for ax in axes[0]:
        ax.set_xlabel("screen x (pixels)")
        ax.set_ylabel("screen y (pixels)")
        ax.set_aspect("equal")
    fig.tight_layout()
    return to_png(fig)


def _mask_borders(ax, mask: np.ndarray | None) -> None:
    if mask is None or np.nanmax(mask) <= 0.5:
        return
    levels = [lv for lv in (0.5, 1.0) if np.nanmin(mask) < lv <= np.nanmax(mask)]
    if levels:
        ax.contour(mask, levels=levels, colors=["white", "#ff4040"][: len(levels)], linewidths=1.2)


def behaviour_figure(behaviour: np.ndarray, title: str) -> bytes:
    """The four behaviour channels (4, T) of one trial against time in seconds."""
    plt = pyplot()
    behaviour = np.asarray(behaviour, dtype=float)
    t = np.arange(behaviour.shape[1]) / FRAME_RATE_HZ
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.2))
    for i, ax in enumerate(axes):
        ax.plot(t, behaviour[i], color=COLOURS[i], lw=1.0)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"{BEHAVIOUR_CHANNELS[i].replace('_', ' ')} ({BEHAVIOUR_UNITS[i]})")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def prediction_traces(predicted: np.ndarray, recorded: np.ndarray, neurons: Sequence[int], title: str) -> bytes:
    """Recorded (grey) and predicted (colour) responses (N, T) of a few neurons against time in seconds;
    the shaded start is the context that evaluation skips."""
    plt = pyplot()
    fig, axes = plt.subplots(len(neurons), 1, figsize=(9, 1.15 * len(neurons) + 0.6), sharex=True, squeeze=False)
    t = np.arange(recorded.shape[1]) / FRAME_RATE_HZ
    for ax, n in zip(axes[:, 0], neurons, strict=True):
        ax.plot(t, recorded[n], color="0.55", lw=0.9, label="recorded")
        ax.plot(t, predicted[n], color=COLOURS[0], lw=1.2, label="predicted")
        r = pearson(predicted[n, EVAL_START_FRAME:], recorded[n, EVAL_START_FRAME:])
        ax.set_ylabel(f"#{n}\n(a.u.)", rotation=0, ha="right", va="center", fontsize=8)
        ax.text(1.0, 0.85, f"r = {r:.2f}", transform=ax.transAxes, ha="right", fontsize=8)
        ax.axvspan(0, EVAL_START_FRAME / FRAME_RATE_HZ, color="0.93", lw=0)
    axes[0, 0].legend(fontsize=7, frameon=False, ncol=2, loc="upper left", bbox_to_anchor=(0, 1.5))
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def frame_correlation_plot(curves: Mapping[str, np.ndarray], start: int = EVAL_START_FRAME) -> bytes:
    """Per-frame spatial correlation (frames from `start` on) of one or more reconstructions of a trial."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 2.2))
    for i, (name, r) in enumerate(curves.items()):
        r = np.asarray(r, dtype=float)
        t = (start + np.arange(len(r))) / FRAME_RATE_HZ
        ax.plot(t, r, lw=1.1, color=COLOURS[i % len(COLOURS)], label=f"{name} (mean {np.nanmean(r):.2f})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frame correlation r")
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.0)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(curves))
    fig.tight_layout()
    return to_png(fig)


def metric_by_trial(values: Mapping[str, Sequence[float]], labels: Sequence[str], ylabel: str, title: str) -> bytes:
    """Dots per trial and mean +- SD bars for several conditions (our reconstruction, oracle, upper bound...)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(values) + 1.5), 2.8))
    rng = np.random.default_rng(0)
    for i, ys in enumerate(values.values()):
        ys = np.asarray([y for y in ys if y is not None], dtype=float)
        if ys.size == 0:
            continue
        ax.scatter(i + rng.uniform(-0.12, 0.12, ys.size), ys, s=14, color=COLOURS[i % len(COLOURS)], alpha=0.7)
        ax.errorbar(i + 0.25, ys.mean(), yerr=ys.std(ddof=1) if ys.size > 1 else 0, fmt="s", color="k", ms=5, capsize=3)
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_png(fig)


def comparison_figure(rows: Sequence[tuple[str, float, float | None]]) -> bytes:
    """Published values on real data beside this run's, as paired horizontal bars (only quantities with a value)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(rows) + 0.9))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[1] for r in rows], 0.38, color="#8fa8d6", label="real data (published)")
    ours = [np.nan if r[2] is None else r[2] for r in rows]
    ax.barh(y + 0.2, ours, 0.38, color="#2e8b57", label="in-silico mouse (this run)")
    ax.set_yticks(y, [_short(r[0]) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("correlation r")
    ax.set_xlim(min(0.0, np.nanmin(ours) - 0.05 if np.isfinite(ours).any() else 0.0), 1)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return to_png(fig)


def _short(label: str, width: int = 48) -> str:
    """Axis labels without the 'Video correlation: ' prefix, cut to `width` characters."""
    label = label.removeprefix("Video correlation: ")
    return label if len(label) <= width else label[: width - 1] + "\u2026"


def optimisation_curves(curves: Mapping[str, np.ndarray]) -> bytes:
    """Video correlation with the truth against optimisation iteration, one line per trial."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    for i, (name, r) in enumerate(curves.items()):
        ax.plot(np.arange(len(r)), r, lw=1.0, color=COLOURS[i % len(COLOURS)], label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("video correlation r")
    ax.grid(alpha=0.3)
    if len(curves) <= 8:
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return to_png(fig)


Reliability = Mapping[str, Sequence[float]]  # {"std": [...], "rms_error": [...], "count": [...]} per bin


def reliability_diagram(pixels: Mapping[str, Reliability], frames: Mapping[str, Reliability] | None = None) -> bytes:
    """Predicted std against observed RMS error (grey levels), one line per confidence estimate; the diagonal is
    a calibrated estimate. `pixels` / `frames`: name -> a reliability dict (v1recon.metrics.calibration) over
    pixel-frames and over frames (the frame's RMS std and RMS error); the second panel only when given."""
    plt = pyplot()
    panels = [("pixel-frames", pixels)] + ([("frames", frames)] if frames else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels, strict=True):
        top = 1.0
        for i, (name, rel) in enumerate(curves.items()):
            x, y = np.asarray(rel["std"], float), np.asarray(rel["rms_error"], float)
            ax.plot(x, y, marker="o", ms=4, lw=1.2, color=COLOURS[i % len(COLOURS)], label=name)
            top = max(top, np.nanmax(x, initial=0), np.nanmax(y, initial=0))
        ax.plot([0, 1.05 * top], [0, 1.05 * top], color="0.5", lw=0.8, ls="--", label="calibrated")
        ax.set(xlim=(0, 1.05 * top), ylim=(0, 1.05 * top), aspect="equal")
        ax.set_xlabel("predicted std (grey levels)")
        ax.set_ylabel("observed RMS error (grey levels)")
        ax.set_title(f"reliability over {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return to_png(fig)
