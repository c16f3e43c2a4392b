"""Streaming summary statistics of recordings and the standard response normalisation.

Statistics are accumulated one trial at a time, so a paper-size mouse (8000 neurons x 500 trials x 300 frames)
never has to sit in memory: mean and standard deviation are merged exactly (Chan et al. pairwise update in
float64), minimum and maximum exactly, and the median is taken from a seeded uniform sample of at most `budget`
values per kind, at most 2**18 samples per channel (exact whenever the kind holds fewer values than that).
"""

from __future__ import annotations

import numpy as np

STAT_NAMES = ("mean", "std", "min", "max", "median")


class RunningSummary:
    """Per-channel mean, std (ddof=0), min, max and median of columns fed one block at a time.

    Feed blocks shaped (C, K): C channels (neurons, behaviour rows, or 1 for all pixels of a video) and K samples.
    `summary()` returns float32 arrays shaped (C,), or 0-d arrays when `scalar=True` (C must be 1).
    """

    def __init__(self, n_channels: int, *, scalar: bool = False, budget: int = 1 << 22, seed: int = 0):
        self.n_channels = n_channels
        self.scalar = scalar
        self.count = 0
        self.mean = np.zeros(n_channels)
        self.m2 = np.zeros(n_channels)
        self.min = np.full(n_channels, np.inf)
        self.max = np.full(n_channels, -np.inf)
        # Bottom-k sampling: each column gets a random key; the `cap` smallest keys form a uniform sample.
        self.cap = int(np.clip(budget // max(n_channels, 1), 256, 1 << 18))
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._kept = np.empty((n_channels, 0), np.float32)

    def update(self, block: np.ndarray) -> None:
        """Add samples shaped (C, K); K may be 0."""
        k = block.shape[1]
        if k == 0:
            return
        x = block.astype(np.float64, copy=False)
        block_mean = x.mean(axis=1)
        block_m2 = ((x - block_mean[:, None]) ** 2).sum(axis=1)
        total = self.count + k
        delta = block_mean - self.mean
        self.mean += delta * (k / total)
        self.m2 += block_m2 + delta**2 * (self.count * k / total)
        self.count = total
        np.minimum(self.min, x.min(axis=1), out=self.min)
        np.maximum(self.max, x.max(axis=1), out=self.max)
        self._sample(block, self._rng.random(k))

    def _sample(self, block: np.ndarray, keys: np.ndarray) -> None:
        if self._keys.size >= self.cap:
            enter = keys < self._keys.max()  # only columns that can displace a kept one are copied
            block, keys = block[:, enter], keys[enter]
        keys = np.concatenate([self._keys, keys])
        kept = np.concatenate([self._kept, block.astype(np.float32)], axis=1)
        if keys.size > self.cap:
            order = np.argpartition(keys, self.cap - 1)[: self.cap]
            keys, kept = keys[order], kept[:, order]
        self._keys, self._kept = keys, kept

    def summary(self) -> dict[str, np.ndarray]:
        """{mean, std, min, max, median}; all zeros when nothing was fed (e.g. every trial lacks responses)."""
        if self.count == 0:
            stats = {name: np.zeros(self.n_channels, np.float32) for name in STAT_NAMES}
        else:
            stats = {
                "mean": self.mean,
                "std": np.sqrt(self.m2 / self.count),
                "min": self.min,
                "max": self.max,
                "median": np.median(self._kept, axis=1),
            }
        stats = {name: np.asarray(value, np.float32) for name, value in stats.items()}
        if self.scalar:
            stats = {name: value.reshape(()) for name, value in stats.items()}
        return stats


def response_precision(std: np.ndarray, length: int | None = None) -> np.ndarray:
    """Standard per-neuron response scale: multiply responses by it to normalise them.

    threshold = 0.01 * nanmean(std); precision = 1/std where std > threshold, else 1/threshold.

    std: (N,) per neuron, or (N, T_pad) per frame as in the public release; `length` slices the per-frame form to
    the trial's valid frames (N, length). Returns float32 of the same shape. If every std is 0 or NaN (no
    responses recorded), returns ones.
    """
    std = np.asarray(std, np.float64)
    threshold = 0.01 * np.nanmean(std) if np.isfinite(std).any() else np.nan
    if not np.isfinite(threshold) or threshold <= 0:
        precision = np.ones_like(std)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(std > threshold, 1.0 / std, 1.0 / threshold)
    if length is not None and precision.ndim == 2:
        precision = precision[:, :length]
    return precision.astype(np.float32)
