"""How well an encoder predicts recorded responses: the Sensorium 2023 measures.

Trials are given as lists of (N, T_i) arrays (N neurons, T_i valid frames; trials may differ in length), or as
one (K, N, T) array of K equal-length trials. Predictions and responses are in the same units. Every measure is
computed per neuron in float64; a neuron whose correlation is undefined (a constant trace) scores 0, as the
Sensorium definition says, so no NaN reaches a summary.

    single_trial_correlation   prediction vs response on single trials, first `skip` frames of each trial dropped
    correlation_to_average     the same on the averages over repeats of each stimulus
    feve                       fraction of explainable variance explained (and the explainable fraction itself)
    oracle_correlation         the data's own ceiling: each trial vs the mean of the other repeats of its stimulus
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np

from v1recon.errors import V1ReconError

SKIP_FRAMES = 50  # Sensorium 2023 drops the first 50 frames of every trial before scoring


class NeuronScores(NamedTuple):
    """A per-neuron measure and its mean over neurons; `float(scores)` gives the mean."""

    per_neuron: np.ndarray  # (N,) float64, NaN-free
    mean: float

    def __float__(self) -> float:
        return float(self.mean)


class FeveScores(NamedTuple):
    """FEVE per neuron, and the mean over the neurons whose explainable fraction reaches the threshold."""

    fev: np.ndarray  # (N,) fraction of the response variance that is stimulus-driven
    feve: np.ndarray  # (N,) fraction of that explainable variance the prediction explains
    mean: float  # mean feve over neurons with fev >= threshold (NaN when there are none)
    selected: np.ndarray  # (N,) bool, fev >= threshold

    def __float__(self) -> float:
        return float(self.mean)


def _as_array(x: Any) -> np.ndarray:
    """numpy float64 from numpy arrays or (detached, CPU-moved) torch tensors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_trials(trials: Any, what: str) -> list[np.ndarray]:
    """A list of (N, T_i) float64 arrays from a list of arrays or one (K, N, T) array."""
    if hasattr(trials, "detach") or isinstance(trials, np.ndarray):
        arr = _as_array(trials)
        if arr.ndim == 2:
            raise V1ReconError(f"{what}: got one (N, T) array; pass a list of trials or a (K, N, T) array.")
        if arr.ndim != 3:
            raise V1ReconError(f"{what}: expected a list of (N, T) trials or a (K, N, T) array, got {arr.shape}.")
        out = list(arr)
    else:
        out = [_as_array(t) for t in trials]
    if not out:
        raise V1ReconError(f"{what}: no trials given.")
    for i, t in enumerate(out):
        if t.ndim != 2:
            raise V1ReconError(f"{what}: trial {i} has shape {t.shape}, expected (N, T).")
        if t.shape[0] != out[0].shape[0]:
            raise V1ReconError(f"{what}: trial {i} has {t.shape[0]} neurons, trial 0 has {out[0].shape[0]}.")
        if not np.all(np.isfinite(t)):
            raise V1ReconError(f"{what}: trial {i} contains NaN or infinite values.")
    return out


def _paired_trials(predictions: Any, responses: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    preds = _as_trials(predictions, "predictions")
    resps = _as_trials(responses, "responses")
    if len(preds) != len(resps):
        raise V1ReconError(f"predictions hold {len(preds)} trials but responses hold {len(resps)}.")
    for i, (p, r) in enumerate(zip(preds, resps, strict=True)):
        if p.shape != r.shape:
            raise V1ReconError(f"trial {i}: prediction shape {p.shape} differs from response shape {r.shape}.")
    return preds, resps


def pearson_per_row(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r between matching rows of two (N, T) arrays -> (N,); 0 where a row is constant."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    num = (x * y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / denom
    # Rounding can push |r| a hair past 1 for perfectly (anti-)correlated rows.
    return np.clip(np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)


def _concat_skipped(trials: list[np.ndarray], skip: int, what: str) -> np.ndarray:
    if skip < 0:
        raise V1ReconError(f"{what}: skip must be >= 0 frames, got {skip}.")
    kept = [t[:, skip:] for t in trials]
    out = np.concatenate(kept, axis=1)
    if out.shape[1] < 2:
        raise V1ReconError(f"{what}: fewer than 2 frames remain after skipping the first {skip} of each trial.")
    return out


def _scores(per_neuron: np.ndarray) -> NeuronScores:
    return NeuronScores(per_neuron, float(per_neuron.mean()) if per_neuron.size else float("nan"))


def single_trial_correlation(predictions: Any, responses: Any, skip: int = SKIP_FRAMES) -> NeuronScores:
    """Sensorium single-trial correlation.

    Drop the first `skip` frames of each trial, concatenate all trials along time, take Pearson r per neuron
    between prediction and response, and average over neurons.

    predictions, responses: lists of (N, T_i) arrays (or (K, N, T) arrays), paired trial by trial.
    """
    preds, resps = _paired_trials(predictions, responses)
    p = _concat_skipped(preds, skip, "single-trial correlation")
    r = _concat_skipped(resps, skip, "single-trial correlation")
    return _scores(pearson_per_row(p, r))


def _group_by_stimulus(stimulus_ids: Sequence[Hashable], n_trials: int) -> dict[Hashable, list[int]]:
    ids = list(np.asarray(stimulus_ids).tolist()) if isinstance(stimulus_ids, np.ndarray) else list(stimulus_ids)
    if len(ids) != n_trials:
        raise V1ReconError(f"stimulus_ids has {len(ids)} entries but there are {n_trials} trials.")
    groups: dict[Hashable, list[int]] = {}
    for i, sid in enumerate(ids):
        groups.setdefault(sid, []).append(i)
    return groups


def _stack_repeats(trials: list[np.ndarray], idx: list[int], sid: Hashable) -> np.ndarray:
    """(K, N, T) array of the repeats of one stimulus; repeats of one stimulus must have equal length."""
    lengths = {trials[i].shape[1] for i in idx}
    if len(lengths) > 1:
        raise V1ReconError(f"stimulus {sid!r}: its repeats differ in length ({sorted(lengths)} frames).")
    return np.stack([trials[i] for i in idx])


def correlation_to_average(
    predictions: Any, responses: Any, stimulus_ids: Sequence[Hashable], skip: int = SKIP_FRAMES
) -> NeuronScores:
    """Sensorium correlation to average.

    Average responses and predictions over the repeats of each stimulus, drop the first `skip` frames of each
    average, concatenate the stimuli along time and take Pearson r per neuron. Stimuli seen once take part as
    they are (their "average" is the single trial).

    stimulus_ids: one hashable id per trial; trials with equal ids are repeats of one stimulus.
    """
    preds, resps = _paired_trials(predictions, responses)
    groups = _group_by_stimulus(stimulus_ids, len(resps))
    mean_p = [_stack_repeats(preds, idx, sid).mean(axis=0) for sid, idx in groups.items()]
    mean_r = [_stack_repeats(resps, idx, sid).mean(axis=0) for sid, idx in groups.items()]
    p = _concat_skipped(mean_p, skip, "correlation to average")
    r = _concat_skipped(mean_r, skip, "correlation to average")
    return _scores(pearson_per_row(p, r))


def feve(
    predictions: Any,
    responses: Any,
    stimulus_ids: Sequence[Hashable],
    fev_threshold: float = 0.15,
    skip: int = SKIP_FRAMES,
) -> FeveScores:
    """Fraction of explainable variance explained, per neuron, with frames as samples.

    total_var = variance of the response over all trials and frames (ddof=1);
    noise_var = mean over stimuli and frames of the variance across repeats (ddof=1);
    fev       = (total_var - noise_var) / total_var;
    pred_var  = mean over trials and frames of (response - prediction)^2;
    feve      = 1 - (pred_var - noise_var) / (total_var - noise_var).
    The summary is the mean feve over neurons with fev >= `fev_threshold`. Only stimuli with at least two
    repeats contribute. `skip` drops the first frames of every trial, as for the correlations. Neurons with no
    explainable variance get fev 0 and feve 0.
    """
    preds, resps = _paired_trials(predictions, responses)
    groups = _group_by_stimulus(stimulus_ids, len(resps))
    groups = {sid: idx for sid, idx in groups.items() if len(idx) >= 2}
    if not groups:
        raise V1ReconError("FEVE needs at least one stimulus shown two or more times; none is repeated.")
    if skip < 0:
        raise V1ReconError(f"FEVE: skip must be >= 0 frames, got {skip}.")
    resp_rep = [_stack_repeats(resps, idx, sid)[:, :, skip:] for sid, idx in groups.items()]
    pred_rep = [_stack_repeats(preds, idx, sid)[:, :, skip:] for sid, idx in groups.items()]
    if sum(r.shape[2] for r in resp_rep) == 0:
        raise V1ReconError(f"FEVE: no frames remain after skipping the first {skip} of each trial.")

    # Samples are (trial, frame) pairs, per neuron.
    all_resp = np.concatenate([r.transpose(1, 0, 2).reshape(r.shape[1], -1) for r in resp_rep], axis=1)
    total_var = all_resp.var(axis=1, ddof=1)
    noise = np.concatenate([r.var(axis=0, ddof=1) for r in resp_rep], axis=1)  # (N, stimulus frames)
    noise_var = noise.mean(axis=1)
    sq_err = np.concatenate(
        [((r - p) ** 2).transpose(1, 0, 2).reshape(r.shape[1], -1) for r, p in zip(resp_rep, pred_rep, strict=True)],
        axis=1,
    )
    pred_var = sq_err.mean(axis=1)

    with np.errstate(invalid="ignore", divide="ignore"):
        fev = (total_var - noise_var) / total_var
        feve_n = 1.0 - (pred_var - noise_var) / (total_var - noise_var)
    fev = np.nan_to_num(fev, nan=0.0, posinf=0.0, neginf=0.0)
    feve_n = np.where(total_var - noise_var > 0, feve_n, 0.0)
    feve_n = np.nan_to_num(feve_n, nan=0.0, posinf=0.0, neginf=0.0)
    selected = fev >= fev_threshold
    mean = float(feve_n[selected].mean()) if selected.any() else float("nan")
    return FeveScores(fev, feve_n, mean, selected)


def oracle_correlation(responses: Any, stimulus_ids: Sequence[Hashable], skip: int = SKIP_FRAMES) -> NeuronScores:
    """Leave-one-out oracle: each trial vs the mean of the other repeats of its stimulus.

    Trials and their leave-one-out means are pooled over all repeated stimuli (first `skip` frames of each
    dropped) and correlated per neuron. It estimates how well any predictor of the stimulus-driven response
    could do on single trials. Stimuli seen once are left out.
    """
    resps = _as_trials(responses, "responses")
    groups = _group_by_stimulus(stimulus_ids, len(resps))
    trials, oracles = [], []
    for sid, idx in groups.items():
        if len(idx) < 2:
            continue
        rep = _stack_repeats(resps, idx, sid)
        loo = (rep.sum(axis=0, keepdims=True) - rep) / (len(idx) - 1)
        trials.extend(rep)
        oracles.extend(loo)
    if not trials:
        raise V1ReconError("oracle correlation needs at least one stimulus shown two or more times; none is repeated.")
    r = _concat_skipped(trials, skip, "oracle correlation")
    o = _concat_skipped(oracles, skip, "oracle correlation")
    return _scores(pearson_per_row(r, o))


def encoder_metrics(
    predictions: Any,
    responses: Any,
    stimulus_ids: Sequence[Hashable] | None = None,
    skip: int = SKIP_FRAMES,
    fev_threshold: float = 0.15,
) -> dict[str, float]:
    """Summary of the encoder measures as plain floats.

    Always: single_trial_correlation. With stimulus_ids: correlation_to_average; and when some stimulus is
    repeated: feve (with fev_threshold, n_neurons_feve = neurons that pass it), oracle_correlation and
    single_trial_to_oracle (the ratio of the two single-trial correlations).
    """
    out: dict[str, float] = {"single_trial_correlation": single_trial_correlation(predictions, responses, skip).mean}
    if stimulus_ids is None:
        return out
    out["correlation_to_average"] = correlation_to_average(predictions, responses, stimulus_ids, skip).mean
    ids = list(stimulus_ids)
    if len(set(ids)) < len(ids):
        fe = feve(predictions, responses, stimulus_ids, fev_threshold=fev_threshold, skip=skip)
        out["feve"] = fe.mean
        out["n_neurons_feve"] = float(fe.selected.sum())
        oracle = oracle_correlation(responses, stimulus_ids, skip).mean
        out["oracle_correlation"] = oracle
        out["single_trial_to_oracle"] = out["single_trial_correlation"] / oracle if oracle > 0 else float("nan")
    return out
