"""Population ablation: how reconstruction quality depends on the number of recorded neurons.

For every held-out trial one random order of the neurons is drawn (seeded by the trial); keeping a fraction f
keeps the first round(f N) neurons of that order, so the subsets are nested and identical for every model of the
ensemble. Default: the dropped neurons leave the loss entirely (the encoders are restricted to the kept neurons,
`v1recon.models.NeuronSubset`). Published variant (`zero_dropped`): every neuron stays in the loss and the dropped
ones get a target response of 0, which also asks the movie to silence them.

Statistics across trials (repeated measures): Friedman test over the fractions, and one-sided paired Wilcoxon
signed-rank tests of each fraction against the next smaller one. Published (real data, 7 models): 12.5 / 25 / 50 /
100 % -> r = 0.344 / 0.427 / 0.512 / 0.569.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from v1recon.experiments import common, results
from v1recon.experiments.registry import Population, Settings, run_units
from v1recon.experiments.stats import repeated_measures
from v1recon.jobs.mouse import MouseSetup, load_trials
from v1recon.models import NeuronSubset
from v1recon.report.figures import pyplot

NAME = "population"


def subset_inputs(encoders, responses: np.ndarray, keep: np.ndarray, zero_dropped: bool):
    """(encoders, responses) for one trial keeping neurons `keep`: restricted encoders and the kept responses, or
    (published variant) all encoders and responses with the dropped neurons' targets set to 0."""
    if zero_dropped:
        out = np.zeros_like(responses)
        out[keep] = responses[keep]
        return list(encoders), out
    return [NeuronSubset(e, keep) for e in encoders], responses[keep]


def run(setup: MouseSetup, cfg: Population, recon, settings: Settings) -> tuple[dict, dict]:
    """Reconstruct each trial from each nested neuron subset; return (arrays, summary)."""
    return run_units(sys.modules[__name__], setup, cfg, recon, settings)


def units(setup: MouseSetup, cfg: Population, settings: Settings) -> dict[str, dict]:
    """One unit per fraction of the neurons."""
    return {f"fraction-{f:g}": {"index": i} for i, f in enumerate(cfg.fractions)}


def reconstruct_unit(setup: MouseSetup, cfg: Population, recon, settings: Settings, spec: dict) -> dict:
    """Every held-out trial from its subset at one fraction (the subsets of a trial are drawn, nested, from the
    seed and the trial id, so every unit sees the same ones): video r and neurons kept per trial."""
    from tqdm.auto import tqdm

    trial_ids = common.held_out_trials(setup, cfg.trials)
    trials = load_trials(setup.recording, trial_ids, cfg.frames)
    n = setup.recording.n_neurons
    r, kept = np.full(len(trial_ids), np.nan), np.zeros(len(trial_ids), np.int64)
    label = f"population {100 * cfg.fractions[spec['index']]:g}%"
    for t, trial_id in enumerate(tqdm(trial_ids, desc=label, unit="recon", disable=not settings.progress)):
        rng = np.random.default_rng([settings.seed, int(trial_id)])
        keep = common.nested_subsets(n, list(cfg.fractions), rng)[spec["index"]]
        encs, resp = subset_inputs(setup.encoders, trials.responses[t], keep, cfg.zero_dropped)
        rec = common.reconstruct_set(
            encs, [resp], [trials.behaviours[t]], setup.update_mask, recon, "trial", False, [trials.names[t]]
        )[0]
        r[t], kept[t] = common.video_r(rec.video, trials.videos[t], setup.eval_mask), keep.size
    return {"r": r, "kept": kept}


def combine(setup: MouseSetup, cfg: Population, recon, settings: Settings, parts: dict) -> tuple[dict, dict]:
    """The fractions side by side, with the Friedman and paired tests."""
    trial_ids = common.held_out_trials(setup, cfg.trials)
    fractions = list(cfg.fractions)
    keys = list(units(setup, cfg, settings))
    r = np.stack([parts[k]["r"] for k in keys], axis=1)
    kept = np.stack([parts[k]["kept"] for k in keys], axis=1)
    labels = [f"{100 * f:g}%" for f in fractions]
    order = np.argsort(fractions)[::-1]  # largest fraction first: "more neurons are better" is 'greater'
    stats = repeated_measures(r[:, order], [labels[i] for i in order], alternative="greater")
    arrays = {"trial_ids": np.asarray(trial_ids), "fractions": np.asarray(fractions, np.float32), "r": r, "kept": kept}
    n = setup.recording.n_neurons
    return arrays, _summary(trial_ids, fractions, r, kept, stats, cfg.zero_dropped, n)


def _summary(trial_ids, fractions, r, kept, stats, zero_dropped, n) -> dict:
    rows = []
    for f, frac in enumerate(fractions):
        sd = float(r[:, f].std(ddof=1)) if len(trial_ids) > 1 else None
        rows.append([f"{100 * frac:g}%", int(kept[0, f]), float(r[:, f].mean()), sd])
    order = np.argsort(fractions)
    means = r.mean(0)[order]
    monotone = bool(np.all(np.diff(means) >= 0))
    friedman = stats.get("friedman", {}).get("p")
    why = f"mean r from the smallest to the largest fraction: {', '.join(f'{m:.3f}' for m in means)}"
    if friedman is not None:
        why += f"; Friedman p = {friedman:.3g} over {len(trial_ids)} trials"
    why += common.chance_note(float(r.mean()))
    return {
        "title": "Population ablation: fraction of neurons",
        "description": (
            f"{len(trial_ids)} held-out trials reconstructed from recorded activity of nested random neuron subsets "
            f"(of {n} neurons; the same subset for every model of a trial). Dropped neurons "
            + ("keep a target of 0 in the loss (published variant)." if zero_dropped else "leave the loss entirely.")
            + " Statistics: Friedman test across fractions and one-sided paired Wilcoxon tests between neighbouring "
            "fractions (repeated measures over trials). Published: 0.344 / 0.427 / 0.512 / 0.569 for 12.5-100 %."
        ),
        "table": {"headers": ["neurons kept", "count", "r mean", "r SD"], "rows": rows},
        "statistics": stats,
        "expected": [{"effect": "more neurons give better reconstructions", "holds": monotone, "why": why}],
        "dropped_neurons": "target 0 (published)" if zero_dropped else "left out of the loss",
    }


def draw(path: Path, arrays: dict, summary: dict) -> None:
    """Video correlation against the number of neurons kept: trials as thin lines, mean +- SD."""
    plt = pyplot()
    fr, r, kept = arrays["fractions"], arrays["r"], arrays["kept"]
    order = np.argsort(fr)
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    x = kept[0, order]
    for row in r:
        ax.plot(x, row[order], color="0.75", lw=0.8)
    sd = r.std(0, ddof=1) if len(r) > 1 else np.zeros(r.shape[1])
    ax.errorbar(x, r.mean(0)[order], yerr=sd[order], color="#2458a6", marker="o", capsize=3, label="mean \u00b1 SD")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{k}\n({100 * f:g}%)" for k, f in zip(x, fr[order], strict=True)])
    ax.set_xlabel("neurons kept")
    ax.set_ylabel("video correlation r")
    p = summary.get("statistics", {}).get("friedman", {}).get("p")
    ax.set_title("Population ablation" + (f" (Friedman p = {p:.2g})" if p is not None else ""), fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    results.save_figure(fig, path)
