"""Update masks: does restricting the reconstruction to the population receptive field help?

Three reconstructions of each held-out trial from recorded activity, differing only in the pixels the
optimisation may change: none (every pixel), standard (alpha >= 0.5, as published) and strict (alpha >= 1); all
scored on the same evaluation mask (alpha >= 1). Published (real data): none 0.510, standard 0.569, strict 0.551.
Statistics: Friedman test over the three and one-sided paired Wilcoxon tests of standard against the others.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from v1recon.experiments import common, results
from v1recon.experiments.registry import Settings, UpdateMasks, run_units
from v1recon.experiments.stats import paired_wilcoxon, repeated_measures
from v1recon.jobs.mouse import MouseSetup, load_trials
from v1recon.report.figures import pyplot

NAME = "masks"
VARIANTS = ("none", "standard", "strict")


def update_masks(alpha: np.ndarray, standard: float = 0.5, strict: float = 1.0) -> dict[str, np.ndarray]:
    """The three update masks (36, 64) bool from an alpha map."""
    return {"none": np.ones(alpha.shape, bool), "standard": alpha >= standard, "strict": alpha >= strict}


def run(setup: MouseSetup, cfg: UpdateMasks, recon, settings: Settings) -> tuple[dict, dict]:
    """Reconstruct each trial with each update mask; return (arrays, summary)."""
    return run_units(sys.modules[__name__], setup, cfg, recon, settings)


def units(setup: MouseSetup, cfg: UpdateMasks, settings: Settings) -> dict[str, dict]:
    return {name: {"mask": name} for name in VARIANTS}


def reconstruct_unit(setup: MouseSetup, cfg: UpdateMasks, recon, settings: Settings, spec: dict) -> dict:
    """Every held-out trial with one update mask: its video r per trial."""
    trials = load_trials(setup.recording, common.held_out_trials(setup, cfg.trials), cfg.frames)
    mask = update_masks(setup.alpha)[spec["mask"]]
    name = f"mask {spec['mask']}"
    recs = common.reconstruct_set(
        setup.encoders, trials.responses, trials.behaviours, mask, recon, name, settings.progress
    )
    return {
        "r": np.array(
            [common.video_r(rec.video, v, setup.eval_mask) for rec, v in zip(recs, trials.videos, strict=True)]
        )
    }


def combine(setup: MouseSetup, cfg: UpdateMasks, recon, settings: Settings, parts: dict) -> tuple[dict, dict]:
    trial_ids = common.held_out_trials(setup, cfg.trials)
    masks = update_masks(setup.alpha)
    r = np.stack([parts[name]["r"] for name in VARIANTS], axis=1)
    stats = repeated_measures(r, list(VARIANTS))
    stats["wilcoxon"] = [
        paired_wilcoxon(r[:, 1], r[:, 0], "standard", "none"),
        paired_wilcoxon(r[:, 1], r[:, 2], "standard", "strict"),
    ]
    arrays = {
        "trial_ids": np.asarray(trial_ids),
        "r": r,
        "update_none": masks["none"],
        "update_standard": masks["standard"],
        "update_strict": masks["strict"],
        "eval_mask": setup.eval_mask,
    }
    means = r.mean(0)
    pixels = {k: int(m.sum()) for k, m in masks.items()}
    summary = {
        "title": "Update masks",
        "description": (
            f"{len(trial_ids)} held-out trials reconstructed from recorded activity with three update masks (pixels "
            f"the optimisation may change: none = all {pixels['none']}, standard alpha >= 0.5 = {pixels['standard']},"
            f" strict alpha >= 1 = {pixels['strict']}), all scored on the same evaluation mask "
            f"({int(setup.eval_mask.sum())} pixels). Published: 0.510 / 0.569 / 0.551."
        ),
        "table": {
            "headers": ["update mask", "pixels", "r mean", "r SD"],
            "rows": [
                [name, pixels[name], float(means[v]), float(r[:, v].std(ddof=1)) if len(r) > 1 else None]
                for v, name in enumerate(VARIANTS)
            ],
        },
        "statistics": stats,
        "expected": [
            {
                "effect": "the training (standard) mask helps over updating every pixel",
                "holds": bool(means[1] > means[0]),
                "why": f"r {means[1]:.3f} with the standard mask vs {means[0]:.3f} without"
                + common.chance_note(float(means.mean())),
            }
        ],
    }
    return arrays, summary


def draw(path: Path, arrays: dict, summary: dict) -> None:
    plt = pyplot()
    r = arrays["r"]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), gridspec_kw={"width_ratios": [1.1, 1]})
    ax = axes[0]
    x = np.arange(len(VARIANTS))
    for row in r:
        ax.plot(x, row, color="0.8", lw=0.8)
    sd = r.std(0, ddof=1) if len(r) > 1 else np.zeros(len(VARIANTS))
    ax.errorbar(x, r.mean(0), yerr=sd, marker="o", capsize=3, color="#2458a6")
    ax.set_xticks(x, list(VARIANTS))
    ax.set_xlabel("update mask")
    ax.set_ylabel("video correlation r")
    ax.set_title("Update masks (same evaluation mask)", fontsize=10)
    ax = axes[1]
    shown = arrays["update_standard"].astype(float) + arrays["update_strict"] + arrays["eval_mask"] * 0.0
    ax.imshow(shown, cmap="Greys", vmin=0, vmax=2.5)
    ax.contour(arrays["eval_mask"].astype(float), levels=[0.5], colors="tab:orange", linewidths=1.2)
    ax.set_title("standard (grey), strict (dark), evaluation (orange)", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    results.save_figure(fig, path)
