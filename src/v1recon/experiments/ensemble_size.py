"""Ensemble size: reconstruction quality with 1..K models.

Every model reconstructs each held-out trial alone (recorded activity); an ensemble of k models is the average of
k of those reconstructions, then the published 3-D blur (sigma 0.5 frames/pixels). For each k the curve averages
over up to `max_subsets` different k-model subsets (all of them when there are few), so no single model decides
the point. Both the blurred (as published) and the unblurred average are reported, so that the gain from
averaging is not confused with the gain from blurring. Statistics: Friedman test over k (repeated measures over
trials) and one-sided paired Wilcoxon tests of k + 1 against k models.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

from v1recon.experiments import common, results
from v1recon.experiments.registry import EnsembleSize, Settings, run_units
from v1recon.experiments.stats import repeated_measures
from v1recon.jobs.mouse import MouseSetup, load_trials
from v1recon.report.figures import pyplot


def model_subsets(n_models: int, k: int, max_subsets: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Up to `max_subsets` distinct k-model subsets (all of them when there are at most that many)."""
    combos = list(itertools.combinations(range(n_models), k))
    if len(combos) <= max_subsets:
        return combos
    pick = rng.choice(len(combos), size=max_subsets, replace=False)
    return [combos[i] for i in sorted(pick)]


NAME = "ensemble-size"


def run(setup: MouseSetup, cfg: EnsembleSize, recon, settings: Settings) -> tuple[dict, dict]:
    """Reconstruct each trial with every model alone and score every ensemble size; return (arrays, summary)."""
    return run_units(sys.modules[__name__], setup, cfg, recon, settings)


def units(setup: MouseSetup, cfg: EnsembleSize, settings: Settings) -> dict[str, dict]:
    """One unit per model."""
    return {f"model-{k}": {"model": k} for k in range(len(setup.encoders))}


def reconstruct_unit(setup: MouseSetup, cfg: EnsembleSize, recon, settings: Settings, spec: dict) -> dict:
    """Every held-out trial through one model alone: its clipped reconstructions (trials, T, 36, 64)."""
    trials = load_trials(setup.recording, common.held_out_trials(setup, cfg.trials), cfg.frames)
    encoder = setup.encoders[spec["model"]]
    recs = common.reconstruct_set(
        [encoder], trials.responses, trials.behaviours, setup.update_mask, recon, f"model {spec['model']}",
        settings.progress, trials.names,
    )  # fmt: skip
    return {"videos": np.stack([rec.per_model[0] for rec in recs])}


def combine(setup: MouseSetup, cfg: EnsembleSize, recon, settings: Settings, parts: dict) -> tuple[dict, dict]:
    """Every ensemble size from the models' reconstructions: averages of up to `max_subsets` model subsets."""
    from v1recon.recon import average_reconstructions

    trial_ids = common.held_out_trials(setup, cfg.trials)
    trials = load_trials(setup.recording, trial_ids, cfg.frames)
    max_subsets, seed = cfg.max_subsets, settings.seed
    per_model = np.stack([parts[k]["videos"] for k in units(setup, cfg, settings)], axis=1)  # (trials, K, T, H, W)
    K = len(setup.encoders)
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, K + 1)
    r_blur = np.zeros((len(trial_ids), K))
    r_plain = np.zeros((len(trial_ids), K))
    for t, movies in enumerate(per_model):
        for k in sizes:
            subsets = model_subsets(K, int(k), max_subsets, rng)
            blurred = [average_reconstructions(movies[list(s)], recon.smooth_sigma) for s in subsets]
            plain = [average_reconstructions(movies[list(s)], 0.0) for s in subsets]
            r_blur[t, k - 1] = np.mean([common.video_r(v, trials.videos[t], setup.eval_mask) for v in blurred])
            r_plain[t, k - 1] = np.mean([common.video_r(v, trials.videos[t], setup.eval_mask) for v in plain])
    labels = [f"{k} model{'s' if k > 1 else ''}" for k in sizes[::-1]]
    stats = repeated_measures(r_blur[:, ::-1], labels, alternative="greater") if K > 1 else {}
    arrays = {"trial_ids": np.asarray(trial_ids), "sizes": sizes, "r": r_blur, "r_unblurred": r_plain}
    return arrays, _summary(trial_ids, sizes, r_blur, r_plain, stats, recon.smooth_sigma)


def _summary(trial_ids, sizes, r_blur, r_plain, stats, sigma) -> dict:
    rows = [[int(k), float(r_blur[:, i].mean()), float(r_plain[:, i].mean())] for i, k in enumerate(sizes)]
    expected = []
    if len(sizes) > 1:
        gain = float(r_blur[:, -1].mean() - r_blur[:, 0].mean())
        expected.append(
            {
                "effect": "more models give better reconstructions",
                "holds": bool(gain > 0 and np.all(np.diff(r_blur.mean(0)) >= -1e-3)),
                "why": f"r {r_blur[:, 0].mean():.3f} with 1 model, {r_blur[:, -1].mean():.3f} with {sizes[-1]}"
                f" (unblurred: {r_plain[:, 0].mean():.3f} -> {r_plain[:, -1].mean():.3f})"
                + common.chance_note(float(r_blur.mean())),
            }
        )
    else:
        expected.append({"effect": "more models give better reconstructions", "holds": None, "why": "one model"})
    return {
        "title": "Ensemble size",
        "description": (
            f"{len(trial_ids)} held-out trials reconstructed from recorded activity by every model alone; an ensemble "
            f"of k models averages k reconstructions (mean over up to 10 subsets per k), blurred with sigma {sigma:g} "
            "as published, and without the blur. Statistics: Friedman test over k and one-sided paired Wilcoxon "
            "tests of k + 1 vs k models (repeated measures over trials)."
        ),
        "table": {"headers": ["models", "r (average + blur)", "r (average only)"], "rows": rows},
        "statistics": stats,
        "expected": expected,
    }


def draw(path: Path, arrays: dict, summary: dict) -> None:
    plt = pyplot()
    sizes, r, plain = arrays["sizes"], arrays["r"], arrays["r_unblurred"]
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for row in r:
        ax.plot(sizes, row, color="0.8", lw=0.8)
    sd = r.std(0, ddof=1) if len(r) > 1 else np.zeros(len(sizes))
    ax.errorbar(sizes, r.mean(0), yerr=sd, marker="o", capsize=3, color="#2458a6", label="average + blur (published)")
    ax.plot(sizes, plain.mean(0), marker="s", ls="--", color="#d0621b", label="average only")
    ax.set_xticks(sizes)
    ax.set_xlabel("models in the ensemble")
    ax.set_ylabel("video correlation r")
    ax.set_title("Ensemble size", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    results.save_figure(fig, path)
