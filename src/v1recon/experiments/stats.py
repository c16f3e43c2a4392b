"""Statistics of the analyses: a Monte-Carlo test of reconstructions against unrelated stimuli, repeated-measures
tests across trials, and Holm's correction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def null_test(observed: np.ndarray, null: np.ndarray, draws: int = 9999, seed: int = 0) -> dict:
    """Is a set of reconstructions closer to its own stimuli than to stimuli it was not reconstructed from?

    observed (M,): correlation of reconstruction i with its own stimulus. null (M, J): correlation of
    reconstruction i with J other stimuli of the same statistics (other repeats, fresh draws). Statistic: the
    mean over the M reconstructions. Null distribution: the same mean when each reconstruction is paired with a
    random one of its J null stimuli (`draws` Monte-Carlo draws). One-sided p = (1 + #null >= observed) /
    (1 + draws). Also the per-reconstruction p (1 + #null_ij >= observed_i) / (1 + J).
    """
    observed = np.asarray(observed, dtype=float)
    null = np.asarray(null, dtype=float)
    if observed.ndim != 1 or null.shape[:1] != observed.shape or null.ndim != 2 or null.shape[1] < 1:
        raise ValueError(f"observed (M,) and null (M, J) expected, got {observed.shape} and {null.shape}")
    rng = np.random.default_rng(seed)
    m, j = null.shape
    picks = rng.integers(j, size=(draws, m))
    null_means = null[np.arange(m)[None, :], picks].mean(axis=1)
    stat = float(observed.mean())
    p = (1 + int(np.sum(null_means >= stat))) / (1 + draws)
    per_item = (1 + np.sum(null >= observed[:, None], axis=1)) / (1 + j)
    return {
        "test": "Monte-Carlo test: mean correlation with own stimulus vs with unrelated stimuli of the same statistics",
        "statistic": stat,
        "null_mean": float(null.mean()),
        "null_sd": float(null.std()),
        "p": float(p),
        "p_per_reconstruction": per_item.tolist(),
        "n_reconstructions": int(m),
        "n_null_stimuli": int(j),
        "draws": int(draws),
    }


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok])]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def repeated_measures(values: np.ndarray, labels: Sequence[str], alternative: str = "greater") -> dict:
    """Conditions measured on the same trials: values (n_trials, n_conditions), conditions in `labels` order.

    Friedman test across all conditions (needs >= 3 conditions and >= 2 trials), and a one-sided paired Wilcoxon
    signed-rank test of every condition against the next one (`alternative`: the earlier condition is greater).
    With n trials the smallest possible exact Wilcoxon p is 2^-n (0.0625 for 4 trials).
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n, k = values.shape
    out: dict = {"n_trials": int(n), "conditions": list(labels), "mean": values.mean(0).tolist()}
    if n >= 2 and k >= 3:
        res = stats.friedmanchisquare(*values.T)
        out["friedman"] = {"chi2": float(res.statistic), "p": float(res.pvalue), "df": k - 1}
    pairs = []
    for a in range(k - 1):
        pairs.append(paired_wilcoxon(values[:, a], values[:, a + 1], labels[a], labels[a + 1], alternative))
    out["wilcoxon"] = pairs
    return out


def paired_wilcoxon(x: np.ndarray, y: np.ndarray, name_x: str, name_y: str, alternative: str = "greater") -> dict:
    """One-sided paired Wilcoxon signed-rank test of x against y (exact for small samples); NaN if not testable."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    diff = x - y
    result = {"a": name_x, "b": name_y, "alternative": f"{name_x} {alternative} than {name_y}"}
    result["mean_difference"] = float(diff.mean()) if diff.size else float("nan")
    result["a_better_in"] = int(np.sum(diff > 0))
    result["n"] = int(diff.size)
    if diff.size < 2 or np.all(diff == 0):
        result["p"] = float("nan")
        return result
    res = stats.wilcoxon(x, y, alternative=alternative)
    result["p"] = float(res.pvalue)
    return result
