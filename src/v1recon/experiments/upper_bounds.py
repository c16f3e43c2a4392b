"""Upper bounds: reconstruction from recorded activity against reconstruction from the encoders' own predicted
activity (the ensemble's noise-free responses to the true movie), and in silico through the true model.

Conditions per held-out trial (all through the same update mask, scored on the same evaluation mask):
- recorded: the ensemble from the recorded single-trial responses (the normal reconstruction);
- predicted: the ensemble from its own mean predicted responses (published upper bound: 0.766 vs 0.569);
- oracle (in silico): the true model from the same recorded responses;
- true model, noise-free (in silico): the true model from its own expected responses (the ceiling of the setup).
Statistics: one-sided paired Wilcoxon test of predicted against recorded (and oracle against recorded).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from v1recon.experiments import common, results
from v1recon.experiments.registry import Settings, UpperBounds, run_units
from v1recon.experiments.stats import paired_wilcoxon
from v1recon.jobs.mouse import MouseSetup, load_trials, predicted_responses
from v1recon.report.figures import pyplot

NAME = "upper-bounds"


# unit -> condition: the ensemble from recorded / its own predicted responses, the true model from recorded / its own
CONDITIONS = {
    "recorded": "recorded",
    "predicted": "predicted",
    "oracle": "oracle",
    "noise-free": "true model, noise-free",
}


def run(setup: MouseSetup, cfg: UpperBounds, recon, settings: Settings) -> tuple[dict, dict]:
    """Reconstruct each trial under every condition; return (arrays, summary)."""
    return run_units(sys.modules[__name__], setup, cfg, recon, settings)


def units(setup: MouseSetup, cfg: UpperBounds, settings: Settings) -> dict[str, dict]:
    """One unit per condition (the true model's two only in silico)."""
    keys = list(CONDITIONS) if setup.truth is not None else ["recorded", "predicted"]
    return {k: {"condition": k} for k in keys}


def reconstruct_unit(setup: MouseSetup, cfg: UpperBounds, recon, settings: Settings, spec: dict) -> dict:
    """Every held-out trial under one condition: its video r per trial and the first trial's reconstruction."""
    trials = load_trials(setup.recording, common.held_out_trials(setup, cfg.trials), cfg.frames)
    condition = spec["condition"]
    encoders = setup.encoders if condition in ("recorded", "predicted") else [setup.truth]
    if condition in ("recorded", "oracle"):
        responses = trials.responses
    else:
        responses = predicted_responses(encoders, trials.videos, trials.behaviours, setup.device)
    recs = common.reconstruct_set(
        encoders, responses, trials.behaviours, setup.update_mask, recon, CONDITIONS[condition], settings.progress,
        trials.names,
    )  # fmt: skip
    r = [common.video_r(rec.video, video, setup.eval_mask) for rec, video in zip(recs, trials.videos, strict=True)]
    return {"r": np.asarray(r), "example": recs[0].video.astype(np.float16)}


def combine(setup: MouseSetup, cfg: UpperBounds, recon, settings: Settings, parts: dict) -> tuple[dict, dict]:
    """The conditions side by side, with the paired tests."""
    trial_ids = common.held_out_trials(setup, cfg.trials)
    first = load_trials(setup.recording, trial_ids[:1], cfg.frames).videos[0]
    keys = list(parts)
    r = np.stack([parts[k]["r"] for k in keys], axis=1)
    examples = {CONDITIONS[k]: parts[k]["example"] for k in keys}
    names = [CONDITIONS[k] for k in keys]
    tests = [paired_wilcoxon(r[:, 1], r[:, 0], "predicted", "recorded")]
    if setup.truth is not None:
        tests.append(paired_wilcoxon(r[:, 2], r[:, 0], "oracle", "recorded"))
    arrays = {
        "trial_ids": np.asarray(trial_ids),
        "conditions": np.asarray(names),
        "r": r,
        "example_truth": first.astype(np.float16),
        **{f"example_{n.split(',')[0].replace(' ', '_')}": v.astype(np.float16) for n, v in examples.items()},
        "eval_mask": setup.eval_mask,
    }
    means = r.mean(0)
    rows = [[n, float(means[c]), float(r[:, c].std(ddof=1)) if len(r) > 1 else None] for c, n in enumerate(names)]
    summary = {
        "title": "Upper bounds",
        "description": (
            f"{len(trial_ids)} held-out trials reconstructed from recorded activity, from the ensemble's own predicted "
            "activity, and (in silico) through the true model from the recorded and from its own noise-free "
            "responses. Statistics: one-sided paired Wilcoxon signed-rank tests over trials. Published: recorded "
            "0.569, predicted 0.766."
        ),
        "table": {"headers": ["condition", "r mean", "r SD"], "rows": rows},
        "statistics": {"wilcoxon": tests},
        "expected": [
            {
                "effect": "reconstructions from predicted activity beat those from recorded activity",
                "holds": bool(means[1] > means[0]),
                "why": f"r {means[1]:.3f} from predicted vs {means[0]:.3f} from recorded activity"
                + common.chance_note(float(means[0])),
            }
        ],
    }
    return arrays, summary


def draw(path: Path, arrays: dict, summary: dict) -> None:
    """Bars per condition with trials as dots, and frame 45 of the first trial under each condition."""
    plt = pyplot()
    r, names = arrays["r"], [str(n) for n in arrays["conditions"]]
    examples = [("truth", arrays["example_truth"])] + [
        (n, arrays[f"example_{n.split(',')[0].replace(' ', '_')}"]) for n in names
    ]
    fig = plt.figure(figsize=(2.0 * len(examples) + 1, 5.4))
    grid = fig.add_gridspec(2, len(examples), height_ratios=[1.6, 1])
    ax = fig.add_subplot(grid[0, :])
    x = np.arange(len(names))
    ax.bar(x, r.mean(0), color="#9db7de", width=0.6)
    for row in r:
        ax.plot(x, row, "o", color="#2458a6", ms=3)
    ax.set_xticks(x, names)
    ax.set_ylabel("video correlation r")
    ax.set_title("Upper bounds (bars: mean over trials)", fontsize=10)
    frame = min(45, len(arrays["example_truth"]) - 1)
    for i, (name, movie) in enumerate(examples):
        a = fig.add_subplot(grid[1, i])
        a.imshow(np.asarray(movie[frame], float), cmap="gray", vmin=0, vmax=255)
        a.contour(arrays["eval_mask"].astype(float), levels=[0.5], colors="tab:orange", linewidths=0.8)
        a.set_title(name, fontsize=7)
        a.set_xticks([])
        a.set_yticks([])
    results.save_figure(fig, path)
