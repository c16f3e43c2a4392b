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

from pathlib import Path

import numpy as np

from v1recon.experiments import common, results
from v1recon.experiments.registry import Settings, UpperBounds
from v1recon.experiments.stats import paired_wilcoxon
from v1recon.jobs.mouse import MouseSetup, load_trials, predicted_responses
from v1recon.report.figures import pyplot

NAME = "upper-bounds"


def run(setup: MouseSetup, cfg: UpperBounds, recon, settings: Settings) -> tuple[dict, dict]:
    """Reconstruct each trial under every condition; return (arrays, summary)."""
    trial_ids = common.held_out_trials(setup, cfg.trials)
    trials = load_trials(setup.recording, trial_ids, cfg.frames)
    beh, mask = trials.behaviours, setup.update_mask
    predicted = predicted_responses(setup.encoders, trials.videos, beh, setup.device)
    plan = [("recorded", setup.encoders, trials.responses), ("predicted", setup.encoders, predicted)]
    if setup.truth is not None:
        true_resp = predicted_responses([setup.truth], trials.videos, beh, setup.device)
        plan += [("oracle", [setup.truth], trials.responses), ("true model, noise-free", [setup.truth], true_resp)]
    r = np.zeros((len(trial_ids), len(plan)))
    examples = {}
    for c, (name, encoders, responses) in enumerate(plan):
        recs = common.reconstruct_set(encoders, responses, beh, mask, recon, name, settings.progress, trials.names)
        for t, rec in enumerate(recs):
            r[t, c] = common.video_r(rec.video, trials.videos[t], setup.eval_mask)
        examples[name] = recs[0].video
    names = [p[0] for p in plan]
    tests = [paired_wilcoxon(r[:, 1], r[:, 0], "predicted", "recorded")]
    if setup.truth is not None:
        tests.append(paired_wilcoxon(r[:, 2], r[:, 0], "oracle", "recorded"))
    arrays = {
        "trial_ids": np.asarray(trial_ids),
        "conditions": np.asarray(names),
        "r": r,
        "example_truth": trials.videos[0].astype(np.float16),
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
