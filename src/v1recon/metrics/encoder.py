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
    """numpy float array (float32 kept, anything else float64) from numpy arrays or torch tensors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _as_trials(trials: Any, what: str) -> list[np.ndarray]:
    """A list of (N, T_i) float arrays from a list of arrays or one (K, N, T) array; no copies of float data."""
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
        if not np.isfinite(t).all():
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


def _safe_ratio(num: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """num / denom with 0 where the ratio is undefined (constant traces)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / denom
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def pearson_per_row(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r between matching rows of two (N, T) arrays -> (N,); 0 where a row is constant."""
    x = x - x.mean(axis=1, keepdims=True, dtype=np.float64)
    y = y - y.mean(axis=1, keepdims=True, dtype=np.float64)
    r = _safe_ratio(np.einsum("ij,ij->i", x, y), np.sqrt(np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", y, y)))
    # Rounding can push |r| a hair past 1 for perfectly (anti-)correlated rows.
    return np.clip(r, -1.0, 1.0)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two arrays of the same size, flattened; 0 if either is constant."""
    return float(pearson_per_row(np.reshape(x, (1, -1)), np.reshape(y, (1, -1)))[0])


class _PooledPearson:
    """Per-neuron Pearson r over (N, T_i) chunks pooled along time, without concatenating them.

    One pass with sums taken about a per-neuron shift (the first chunk's means), which keeps float64 sums
    accurate even when traces sit far from zero; memory stays O(N) beyond one chunk.
    """

    def __init__(self) -> None:
        self.n = 0
        self.shift_x = self.shift_y = None
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if x.shape[1] == 0:
            return
        if self.shift_x is None:
            self.shift_x = x.mean(axis=1, keepdims=True, dtype=np.float64)
            self.shift_y = y.mean(axis=1, keepdims=True, dtype=np.float64)
        dx, dy = x - self.shift_x, y - self.shift_y
        self.n += x.shape[1]
        self.sx = self.sx + dx.sum(axis=1)
        self.sy = self.sy + dy.sum(axis=1)
        self.sxx = self.sxx + np.einsum("ij,ij->i", dx, dx)
        self.syy = self.syy + np.einsum("ij,ij->i", dy, dy)
        self.sxy = self.sxy + np.einsum("ij,ij->i", dx, dy)

    def result(self, what: str, skip: int) -> NeuronScores:
        if self.n < 2:
            raise V1ReconError(f"{what}: fewer than 2 frames remain after skipping the first {skip} of each trial.")
        cov = self.sxy - self.sx * self.sy / self.n
        var_x = np.maximum(self.sxx - self.sx**2 / self.n, 0.0)
        var_y = np.maximum(self.syy - self.sy**2 / self.n, 0.0)
        # A trace that is constant up to rounding counts as constant.
        var_x[var_x <= 1e-12 * np.maximum(self.sxx, 1e-300)] = 0.0
        var_y[var_y <= 1e-12 * np.maximum(self.syy, 1e-300)] = 0.0
        r = np.clip(_safe_ratio(cov, np.sqrt(var_x * var_y)), -1.0, 1.0)
        return NeuronScores(r, float(r.mean()) if r.size else float("nan"))


def _check_skip(skip: int, what: str) -> None:
    if skip < 0:
        raise V1ReconError(f"{what}: skip must be >= 0 frames, got {skip}.")


def single_trial_correlation(predictions: Any, responses: Any, skip: int = SKIP_FRAMES) -> NeuronScores:
    """Sensorium single-trial correlation.

    Drop the first `skip` frames of each trial, concatenate all trials along time, take Pearson r per neuron
    between prediction and response, and average over neurons.

    predictions, responses: lists of (N, T_i) arrays (or (K, N, T) arrays), paired trial by trial.
    """
    what = "single-trial correlation"
    _check_skip(skip, what)
    preds, resps = _paired_trials(predictions, responses)
    acc = _PooledPearson()
    for p, r in zip(preds, resps, strict=True):
        acc.add(p[:, skip:], r[:, skip:])
    return acc.result(what, skip)


def _group_by_stimulus(stimulus_ids: Sequence[Hashable], n_trials: int) -> dict[Hashable, list[int]]:
    ids = np.asarray(stimulus_ids).tolist() if isinstance(stimulus_ids, np.ndarray) else list(stimulus_ids)
    if len(ids) != n_trials:
        raise V1ReconError(f"stimulus_ids has {len(ids)} entries but there are {n_trials} trials.")
    groups: dict[Hashable, list[int]] = {}
    for i, sid in enumerate(ids):
        groups.setdefault(sid, []).append(i)
    return groups


def _stack_repeats(trials: list[np.ndarray], idx: list[int], sid: Hashable, skip: int = 0) -> np.ndarray:
    """(K, N, T - skip) float64 array of the repeats of one stimulus, which must have equal length."""
    lengths = {trials[i].shape[1] for i in idx}
    if len(lengths) > 1:
        raise V1ReconError(f"stimulus {sid!r}: its repeats differ in length ({sorted(lengths)} frames).")
    return np.stack([trials[i][:, skip:] for i in idx]).astype(np.float64, copy=False)


def _repeated(groups: dict[Hashable, list[int]], what: str) -> dict[Hashable, list[int]]:
    rep = {sid: idx for sid, idx in groups.items() if len(idx) >= 2}
    if not rep:
        raise V1ReconError(f"{what} needs at least one stimulus shown two or more times; none is repeated.")
    return rep


def correlation_to_average(
    predictions: Any, responses: Any, stimulus_ids: Sequence[Hashable], skip: int = SKIP_FRAMES
) -> NeuronScores:
    """Sensorium correlation to average.

    Average responses and predictions over the repeats of each stimulus, drop the first `skip` frames of each
    average, concatenate the stimuli along time and take Pearson r per neuron. Stimuli seen once take part as
    they are (their "average" is the single trial).

    stimulus_ids: one hashable id per trial; trials with equal ids are repeats of one stimulus.
    """
    what = "correlation to average"
    _check_skip(skip, what)
    preds, resps = _paired_trials(predictions, responses)
    acc = _PooledPearson()
    for sid, idx in _group_by_stimulus(stimulus_ids, len(resps)).items():
        acc.add(_stack_repeats(preds, idx, sid, skip).mean(axis=0), _stack_repeats(resps, idx, sid, skip).mean(axis=0))
    return acc.result(what, skip)


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
    _check_skip(skip, "FEVE")
    preds, resps = _paired_trials(predictions, responses)
    groups = _repeated(_group_by_stimulus(stimulus_ids, len(resps)), "FEVE")

    # Samples are (trial, frame) pairs, per neuron; sums run stimulus by stimulus to bound memory.
    n_samples = n_stim_frames = 0
    total = _PooledPearson()  # its sum of squares about the mean gives total_var
    noise_sum = sq_err_sum = 0.0
    for sid, idx in groups.items():
        r = _stack_repeats(resps, idx, sid, skip)
        p = _stack_repeats(preds, idx, sid, skip)
        for trial in r:
            total.add(trial, trial)
        noise_sum = noise_sum + r.var(axis=0, ddof=1).sum(axis=1)
        sq_err_sum = sq_err_sum + ((r - p) ** 2).sum(axis=(0, 2))
        n_samples += r.shape[0] * r.shape[2]
        n_stim_frames += r.shape[2]
    if n_samples < 2:
        raise V1ReconError(f"FEVE: fewer than 2 frames remain after skipping the first {skip} of each trial.")
    total_var = (total.sxx - total.sx**2 / total.n) / (total.n - 1)
    noise_var = noise_sum / n_stim_frames
    pred_var = sq_err_sum / n_samples

    explainable = total_var - noise_var
    fev = _safe_ratio(explainable, total_var)
    feve_n = np.where(explainable > 0, 1.0 - _safe_ratio(pred_var - noise_var, explainable), 0.0)
    selected = fev >= fev_threshold
    mean = float(feve_n[selected].mean()) if selected.any() else float("nan")
    return FeveScores(fev, feve_n, mean, selected)


def oracle_correlation(responses: Any, stimulus_ids: Sequence[Hashable], skip: int = SKIP_FRAMES) -> NeuronScores:
    """Leave-one-out oracle: each trial vs the mean of the other repeats of its stimulus.

    Trials and their leave-one-out means are pooled over all repeated stimuli (first `skip` frames of each
    dropped) and correlated per neuron. It estimates how well any predictor of the stimulus-driven response
    could do on single trials. Stimuli seen once are left out.
    """
    what = "oracle correlation"
    _check_skip(skip, what)
    resps = _as_trials(responses, "responses")
    acc = _PooledPearson()
    for sid, idx in _repeated(_group_by_stimulus(stimulus_ids, len(resps)), what).items():
        rep = _stack_repeats(resps, idx, sid, skip)
        loo = (rep.sum(axis=0, keepdims=True) - rep) / (len(idx) - 1)
        for trial, oracle in zip(rep, loo, strict=True):
            acc.add(trial, oracle)
    return acc.result(what, skip)


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
