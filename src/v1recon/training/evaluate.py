"""Score a trained run on the test tiers: every model, the ensemble, and (in silico) the ground-truth model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from v1recon.data.recording import TEST_TIERS
from v1recon.errors import V1ReconError

EVALUATION_FILE = Path("evaluation") / "encoders.json"


def stimulus_ids(videos: list[np.ndarray]) -> list[str]:
    """One id per trial; trials showing the identical movie (repeats) share it."""
    return [hashlib.sha1(np.ascontiguousarray(v, dtype=np.float32).tobytes()).hexdigest()[:16] for v in videos]


def _load_trials(recording, tiers) -> tuple[list[int], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    ids = recording.trial_ids(tier=tiers, with_responses=True)
    if not ids:
        raise V1ReconError(f"{recording.path}: no {'/'.join(tiers)} trials with responses to evaluate on.")
    trials = [recording.trial(i) for i in ids]
    return ids, [t.video for t in trials], [t.behaviour for t in trials], [t.responses for t in trials]


def _metrics(preds, responses, stim) -> dict[str, float]:
    from v1recon.metrics.encoder import encoder_metrics

    return {k: float(v) for k, v in encoder_metrics(preds, responses, stim).items()}


def evaluate_mouse(run, recording, device, tiers=TEST_TIERS, with_truth: bool = True, progress: bool = True) -> dict:
    """Metrics of each model, the ensemble (mean prediction) and the ground truth (if any) for one mouse."""
    from tqdm.auto import tqdm

    from v1recon.metrics.encoder import single_trial_correlation
    from v1recon.runs import load_encoders
    from v1recon.training.trainer import predict_trials

    encoders = load_encoders(run.path, recording.name, device)
    ids, videos, behaviour, responses = _load_trials(recording, tiers)
    stim = stimulus_ids(videos)
    result: dict = {"tiers": list(tiers), "n_trials": len(ids), "n_stimuli": len(set(stim)), "encoders": {}}
    preds_sum = None
    for encoder in tqdm(encoders, desc=recording.name, leave=False, disable=not progress):
        preds = predict_trials(encoder, videos, behaviour, encoder.device)
        result["encoders"][encoder.name] = _metrics(preds, responses, stim)
        preds_sum = preds if preds_sum is None else [a + b for a, b in zip(preds_sum, preds, strict=True)]
    ensemble = [p / len(encoders) for p in preds_sum]
    result["encoders"]["ensemble"] = _metrics(ensemble, responses, stim)
    if with_truth:
        from v1recon.sim import load_truth

        truth = load_truth(recording.path)
        if truth is not None:
            truth = truth.to(device).eval()
            preds = predict_trials(truth, videos, behaviour, device)
            result["encoders"]["truth"] = _metrics(preds, responses, stim)
            result["ratio_by_group"] = group_ratios(
                single_trial_correlation(ensemble, responses).per_neuron,
                single_trial_correlation(preds, responses).per_neuron,
                truth.cpu().neuron_groups(),
            )
    _summarise(result)
    return result


def group_ratios(model_r: np.ndarray, truth_r: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per group of neurons: its size, the truth's mean single-trial r and the model's mean r relative to it.

    model_r, truth_r (N,) per-neuron correlations on the same trials; groups name -> (N,) bool mask. Empty groups
    are left out.
    """
    out = {}
    for name, mask in groups.items():
        mask = np.asarray(mask, bool)
        if mask.shape != np.shape(model_r) or mask.shape != np.shape(truth_r):
            raise V1ReconError(f"neuron group {name!r} has {mask.size} entries for {np.size(model_r)} neurons.")
        if mask.any():
            truth = float(np.mean(truth_r[mask]))
            ratio = float(np.mean(model_r[mask])) / truth if truth > 0 else float("nan")
            out[name] = {"n_neurons": int(mask.sum()), "truth": truth, "ratio": ratio}
    return out


def _summarise(result: dict) -> None:
    """Best member, whether the ensemble beats it, and the ensemble/truth ratio of single-trial correlations."""
    enc = result["encoders"]
    members = {k: v["single_trial_correlation"] for k, v in enc.items() if k.startswith("model-")}
    best = max(members, key=members.get)
    ens = enc["ensemble"]["single_trial_correlation"]
    result["best_model"] = best
    result["ensemble_beats_best_model"] = bool(ens > members[best])
    oracle = enc["ensemble"].get("oracle_correlation")
    if oracle is not None:
        result["data_oracle_correlation"] = oracle
    if "truth" in enc:
        truth = enc["truth"]["single_trial_correlation"]
        result["ratio_to_truth"] = {
            "ensemble": ens / truth if truth > 0 else float("nan"),
            "best_model": members[best] / truth if truth > 0 else float("nan"),
        }


def evaluate_run(
    run_dir: str | Path,
    data: str | Path | None = None,
    device: str = "auto",
    tiers=TEST_TIERS,
    with_truth: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Evaluate every mouse of a run; write RUN/evaluation/encoders.json; return its content."""
    from v1recon.device import pick_device
    from v1recon.io import provenance as _provenance
    from v1recon.io import write_json
    from v1recon.runs import load_run, match_recordings

    run = load_run(run_dir)
    out = run.path / EVALUATION_FILE
    if out.exists() and not overwrite:
        raise V1ReconError(f"{out}: already exists; pass --overwrite to replace it.")
    data = Path(data) if data is not None else Path(run.data)
    unknown = set(tiers) - set(TEST_TIERS) - {"train", "none", "live_bonus", "final_bonus"}
    if unknown:
        raise V1ReconError(f"unknown tier(s) {', '.join(sorted(unknown))}; test tiers are {', '.join(TEST_TIERS)}.")
    recordings = match_recordings(run, data)
    torch_device = pick_device(device)
    mice = {r.name: evaluate_mouse(run, r, torch_device, tiers, with_truth, progress) for r in recordings}
    payload = {
        "run": str(run.path.resolve()),
        "data": str(data.resolve()),
        "preset": run.preset,
        "models": run.complete_models(),
        "mice": mice,
        "provenance": _provenance(),
    }
    write_json(out, payload)
    return payload


def format_table(evaluation: dict) -> str:
    """A plain-text table per mouse: one row per model, the ensemble and the truth, then the ratio."""
    cols = ("single_trial_correlation", "correlation_to_average", "feve")
    heads = ("single-trial r", "r to average", "FEVE")
    lines = []
    for mouse, res in evaluation["mice"].items():
        lines.append(f"{mouse}: {res['n_trials']} test trials, {res['n_stimuli']} movies ({'/'.join(res['tiers'])})")
        lines.append(f"  {'encoder':<10}" + "".join(f"{h:>16}" for h in heads))
        for name, m in res["encoders"].items():
            lines.append(f"  {name:<10}" + "".join(f"{_fmt(m.get(c)):>16}" for c in cols))
        if "data_oracle_correlation" in res:
            lines.append(
                f"  data oracle correlation (leave-one-out over repeats): {res['data_oracle_correlation']:.3f}"
            )
        beats = "beats" if res["ensemble_beats_best_model"] else "does NOT beat"
        lines.append(f"  ensemble {beats} its best member ({res['best_model']})")
        if "ratio_to_truth" in res:
            r = res["ratio_to_truth"]
            lines.append(f"  single-trial r relative to the ground truth: ensemble {r['ensemble']:.3f}, "
                         f"best model {r['best_model']:.3f}")  # fmt: skip
        by_family: dict[str, list[str]] = {}
        for k, g in res.get("ratio_by_group", {}).items():
            by_family.setdefault(group_family(k), []).append(f"{k} {g['ratio']:.2f} ({g['n_neurons']})")
        for family, parts in by_family.items():
            lines.append(f"  ensemble relative to the truth by {family} (neurons): {', '.join(parts)}")
    return "\n".join(lines)


GROUP_FAMILIES = {"sf": "spatial frequency", "surround": "surround suppression", "adaptation": "contrast adaptation",
                  "running": "running gain"}  # fmt: skip


def group_family(name: str) -> str:
    """The family of a neuron group of `neuron_groups` by its first word: a cell type unless GROUP_FAMILIES names it."""
    return GROUP_FAMILIES.get(name.split(" ")[0], "cell type")


def _fmt(value) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"
