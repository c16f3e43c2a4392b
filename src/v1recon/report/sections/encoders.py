"""The encoders section: metrics per model, ensemble and true model, training curves, example predictions."""

from __future__ import annotations

from typing import Any

import numpy as np

from v1recon import EVAL_START_FRAME
from v1recon.errors import V1ReconError
from v1recon.report import collect, figures
from v1recon.report import html as H
from v1recon.report.context import Context
from v1recon.report.sections.common import missing, ratio

METRIC_HEADERS = {
    "single_trial_correlation": "single-trial r",
    "correlation_to_average": "r to average",
    "feve": "FEVE",
}
CURVE_COLUMNS = ("train_loss", "val_loss", "val_corr", "lr")
EXAMPLE_NEURONS = 4
MAX_EXAMPLE_FRAMES = 300


def encoders_section(ctx: Context) -> str:
    parts = [_evaluation(ctx), "<h3>Training</h3>", _models_table(ctx), _curves(ctx), _examples(ctx)]
    return "".join(parts)


def ceilings(rows: list[tuple[str, str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """mouse -> metrics of its true model (the in-silico ceiling)."""
    return {mouse: m for mouse, enc, m in rows if collect.is_truth(enc)}


def _evaluation(ctx: Context) -> str:
    if ctx.evaluation is None:
        if (ctx.run_dir / "evaluation" / "encoders.json").is_file():
            return H.note("evaluation/encoders.json could not be read (not valid JSON); rerun v1recon evaluate RUN.")
        return missing("No encoder evaluation yet", "v1recon evaluate RUN")
    rows = collect.encoder_rows(ctx.evaluation)
    if not rows:
        return H.note(
            "evaluation/encoders.json holds no recognisable metrics (single-trial correlation, "
            "correlation to average, FEVE)."
        )
    ceiling = ceilings(rows)
    metrics = [m for m in METRIC_HEADERS if any(m in r[2] for r in rows)]
    table_rows = []
    for mouse, enc, values in sorted(rows, key=lambda r: (r[0], _encoder_order(r[1]))):
        truth = ceiling.get(mouse, {})
        cells: list[object] = [mouse, _encoder_label(enc)]
        cells += [values.get(m) for m in metrics]
        cells.append(None if collect.is_truth(enc) else ratio(values.get(metrics[0]), truth.get(metrics[0])))
        table_rows.append(cells)
    headers = [
        "mouse",
        "encoder",
        *[METRIC_HEADERS[m] for m in metrics],
        f"ratio to true model ({METRIC_HEADERS[metrics[0]]})",
    ]
    caption = (
        "Encoder quality on held-out trials. Single-trial r: Sensorium single-trial correlation (per neuron, "
        "averaged); r to average: correlation with the mean over repeats; FEVE: fraction of explainable variance "
        "explained. The true model of the in-silico mouse sets the ceiling that noise allows."
    )
    parts = [H.table(headers, table_rows, caption=caption), _evaluation_notes(ctx.evaluation)]
    bars = [
        (mouse, _encoder_label(enc), values.get("single_trial_correlation"))
        for mouse, enc, values in rows
        if not collect.is_truth(enc)
    ]
    if any(v is not None for *_, v in bars):
        ceil = {m: v["single_trial_correlation"] for m, v in ceiling.items() if "single_trial_correlation" in v}
        parts.append(
            H.image(
                figures.encoder_bars(bars, ceil),
                "single-trial correlation per encoder",
                "Single-trial correlation per model and ensemble; dashed: the true model.",
            )
        )
    return "".join(parts)


def _evaluation_notes(evaluation: dict[str, Any]) -> str:
    """Per mouse: how many test trials and movies were scored, and the data's own repeat-oracle correlation."""
    mice = evaluation.get("mice")
    lines = []
    for mouse, res in mice.items() if isinstance(mice, dict) else ():
        if not isinstance(res, dict) or "n_trials" not in res:
            continue
        tiers = "/".join(res.get("tiers", []))
        line = f"{mouse}: {res['n_trials']} test trials, {res.get('n_stimuli', '?')} movies ({tiers})"
        oracle = res.get("data_oracle_correlation")
        if isinstance(oracle, (int, float)):
            line += f"; oracle correlation of the data (leave-one-out over repeats) {oracle:.3f}"
        lines.append(f"<li>{H.esc(line)}</li>")
    return f'<ul class="muted">{"".join(lines)}</ul>' if lines else ""


def _encoder_order(name: str) -> tuple[int, str]:
    return (2 if collect.is_truth(name) else 1 if collect.is_ensemble(name) else 0, name)


def _encoder_label(name: str) -> str:
    if collect.is_truth(name):
        return "true model (ceiling)"
    return name


def _models_table(ctx: Context) -> str:
    if not ctx.models:
        return missing("No trained models yet", "v1recon train DATA --out RUN")
    rows = []
    for m in ctx.models:
        extra = _extra(m.sidecar)
        split = extra.get("split") or {}
        rows.append(
            [
                m.name,
                extra.get("preset"),
                split.get("val_fold", split.get("fold")) if isinstance(split, dict) else None,
                extra.get("seed", split.get("seed") if isinstance(split, dict) else None),
                f"{extra.get('epoch', '?')}/{extra.get('planned_epochs', '?')}",
                extra.get("val_corr"),
                extra.get("train_seconds"),
                extra.get("complete"),
            ]
        )
    headers = ["model", "preset", "validation fold", "seed", "epochs", "validation r", "training time (s)", "complete"]
    return H.table(headers, rows, caption="Models of the ensemble (from models/model-<k>.json).")


def _extra(sidecar: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(sidecar, dict):
        return {}
    extra = sidecar.get("extra")
    return {**sidecar, **extra} if isinstance(extra, dict) else sidecar


def _curves(ctx: Context) -> str:
    logs = {}
    for m in ctx.models:
        cols = {k: v for k, v in m.log.items() if k in CURVE_COLUMNS or k == "epoch"}
        if len(cols) > 1:
            logs[m.name] = cols
    if not logs:
        return H.note("No training logs (models/model-<k>.log.csv) to plot yet.") if ctx.models else ""
    caption = "Per-epoch training loss (Poisson, per neuron and frame), validation single-trial r and learning rate."
    return H.image(figures.training_curves(logs), "training curves", caption)


# -- example predictions -------------------------------------------------------------------------------------------
def _examples(ctx: Context) -> str:
    parts = ["<h3>Predicted vs recorded responses</h3>"]
    for mouse in ctx.mouse_names:
        try:
            pair = _saved_example(ctx, mouse) or (_computed_example(ctx, mouse) if ctx.compute else None)
        except V1ReconError as err:  # e.g. no complete model yet
            parts.append(H.note(f"No example predictions for {mouse}: {err}"))
            continue
        except Exception as err:  # noqa: BLE001 - a model that will not load costs only this figure
            parts.append(
                H.note(
                    f"Example predictions for {mouse} could not be computed: {type(err).__name__}: {err}", error=True
                )
            )
            continue
        if pair is None:
            continue
        predicted, recorded, label = pair
        neurons = _pick_neurons(predicted, recorded)
        png = figures.prediction_traces(predicted, recorded, neurons, f"{mouse}: {label}")
        parts.append(
            H.image(
                png,
                f"example neurons of {mouse}",
                "Recorded (grey) and predicted (blue) responses of neurons at the 100th, 75th, 50th "
                "and 25th percentile of correlation; r from frame 30 on (the shaded context is skipped).",
            )
        )
    if len(parts) == 1:
        parts.append(
            H.note(
                "No example predictions: no trained model and recorded trial to predict"
                + ("" if ctx.compute else " (computation disabled by --no-compute)")
                + "."
            )
        )
    return "".join(parts)


def _saved_example(ctx: Context, mouse: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Arrays 'predicted' and 'recorded' (N, T) saved by the evaluation, if any."""
    folder = ctx.run_dir / "evaluation"
    for path in sorted(folder.glob(f"*{mouse}*.npz")) if folder.is_dir() else ():
        arrays = collect.load_npz_arrays(path)
        pred = arrays.get("predicted", arrays.get("prediction"))
        rec = arrays.get("recorded", arrays.get("responses"))
        if pred is not None and rec is not None and pred.shape == rec.shape and pred.ndim == 2:
            return pred, rec, f"{path.name}"
    return None


def _computed_example(ctx: Context, mouse: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Predict one held-out recorded trial with the run's ensemble (a few seconds on a CPU for small presets)."""
    rec = ctx.recordings.get(mouse)
    if rec is None or not ctx.models:
        return None
    ids = rec.trial_ids(tier=("oracle", "live_test", "final_test"), with_responses=True) or rec.trial_ids(
        with_responses=True
    )
    if not ids:
        return None
    import torch

    from v1recon.models import EnsembleEncoder
    from v1recon.runs import load_encoders

    encoders = load_encoders(ctx.run_dir, mouse)
    trial = rec.trial(ids[0])
    t = min(trial.length, MAX_EXAMPLE_FRAMES)
    encoder = EnsembleEncoder(encoders) if len(encoders) > 1 else encoders[0]
    with torch.no_grad():
        video = torch.from_numpy(np.ascontiguousarray(trial.video[None, :t]))
        behaviour = torch.from_numpy(np.ascontiguousarray(trial.behaviour[None, :, :t]))
        predicted = encoder(video, behaviour)[0].float().numpy()
    what = f"{len(encoders)}-model ensemble" if len(encoders) > 1 else "model"
    return predicted, trial.responses[:, :t], f"trial {ids[0]} ({trial.tier}), {what}"


def _pick_neurons(predicted: np.ndarray, recorded: np.ndarray) -> list[int]:
    """Neurons at the 100/75/50/25th percentile of their prediction correlation (frames from 30 on)."""
    p, r = predicted[:, EVAL_START_FRAME:], recorded[:, EVAL_START_FRAME:]
    p = p - p.mean(axis=1, keepdims=True)
    r = r - r.mean(axis=1, keepdims=True)
    denom = np.sqrt((p * p).sum(axis=1) * (r * r).sum(axis=1))
    corr = np.where(denom > 0, (p * r).sum(axis=1) / np.where(denom > 0, denom, 1), -np.inf)
    order = np.argsort(-corr)
    picks = [order[int(q * (len(order) - 1))] for q in (0.0, 0.25, 0.5, 0.75)][:EXAMPLE_NEURONS]
    return list(dict.fromkeys(int(i) for i in picks))
