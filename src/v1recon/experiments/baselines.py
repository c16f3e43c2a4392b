"""Other families of reconstruction methods, to compare input optimisation against on the same trials.

Direct decoder (`fit_ridge_decoder`): a linear ridge map from time-lagged population activity to pixels. The
activity that encodes frame t follows it (response latency, calcium decay), so frame t is predicted from the
responses at t, t+1, ..., t+L. Responses are ReLU'd, standardised per neuron and projected on their first K
principal components (K x (L+1) features instead of N x (L+1)); the sums X'X, X'Y are accumulated trial by
trial (memory O(features^2 + features x pixels), not O(frames)), the ridge solution for every regularisation
comes from one eigendecomposition of X'X, the regularisation is picked on validation movies by the masked video
correlation, and the decoder is refitted on training + validation movies.

Invertible linear model (`fit_invertible`): the reconstruction is the activity-weighted sum of the neurons'
receptive fields, frame(t) = gain * sum_n z_n(t + lag) RF_n + offset, z the standardised responses and RF_n the
signed (ON - OFF) maps of in-silico RF mapping; the lag and the gain/offset to grey levels are fitted on training
movies (the lag by the pooled masked correlation, gain and offset by least squares).

Frames whose lagged responses run past the end of a trial see the mean activity there (zero features).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from v1recon import EVAL_START_FRAME, FRAME_SHAPE
from v1recon.errors import V1ReconError

N_PIXELS = FRAME_SHAPE[0] * FRAME_SHAPE[1]
DEFAULT_LAGS = 10  # frames of future activity per decoded frame (0..10: 333 ms)
DEFAULT_COMPONENTS = 256
RIDGE_GRID = tuple(10.0**k for k in range(-4, 3))  # regularisation relative to the mean eigenvalue of X'X

Pair = tuple[np.ndarray, np.ndarray]  # (responses (N, T), video (T, 36, 64))


def lagged(z: np.ndarray, lags: int) -> np.ndarray:
    """Lagged design matrix: z (K, T) -> (T, K * (lags + 1)); row t = z[:, t], z[:, t+1], ..., z[:, t+lags].

    Columns are grouped by lag (the first K columns lag 0). Lags past the last frame are 0.
    """
    k, t = z.shape
    out = np.zeros((t, lags + 1, k), dtype=z.dtype)
    for lag in range(lags + 1):
        out[: t - lag, lag] = z[:, lag:].T
    return out.reshape(t, k * (lags + 1))


@dataclass
class ResponseBasis:
    """ReLU, per-neuron standardisation and an optional projection on principal components.

    transform(responses (N, T)) -> (K, T) float32 (K = N without components).
    """

    mean: np.ndarray  # (N,)
    scale: np.ndarray  # (N,)
    components: np.ndarray | None = None  # (N, K) orthonormal columns
    explained: float = 1.0  # fraction of the standardised variance the components keep

    @property
    def n_neurons(self) -> int:
        return len(self.mean)

    @property
    def n_features(self) -> int:
        return self.n_neurons if self.components is None else self.components.shape[1]

    def standardise(self, responses: np.ndarray) -> np.ndarray:
        r = np.asarray(responses, np.float64)
        if r.ndim != 2 or r.shape[0] != self.n_neurons:
            raise V1ReconError(f"responses must be ({self.n_neurons}, T), got shape {r.shape}.")
        return (np.maximum(r, 0) - self.mean[:, None]) / self.scale[:, None]

    def transform(self, responses: np.ndarray) -> np.ndarray:
        z = self.standardise(responses)
        return (z if self.components is None else self.components.T @ z).astype(np.float32)


def fit_response_basis(responses: Iterable[np.ndarray], n_components: int | None = None) -> ResponseBasis:
    """Mean and std of the ReLU'd responses over all frames of all trials (N, T each), and (with n_components)
    the leading eigenvectors of their correlation matrix. Silent neurons get scale 1."""
    n = 0
    s1 = s2 = None
    for r in responses:
        x = np.maximum(np.asarray(r, np.float64), 0)
        if s1 is None:
            s1, s2 = np.zeros(x.shape[0]), np.zeros((x.shape[0], x.shape[0]))
        s1 += x.sum(1)
        s2 += x @ x.T
        n += x.shape[1]
    if s1 is None or n < 2:
        raise V1ReconError("fitting a response basis needs at least 2 frames of responses.")
    mean = s1 / n
    cov = s2 / n - np.outer(mean, mean)
    scale = np.sqrt(np.clip(np.diag(cov), 0, None))
    scale = np.where(scale > 1e-8, scale, 1.0)
    if n_components is None or n_components >= len(mean):
        return ResponseBasis(mean, scale)
    corr = cov / np.outer(scale, scale)
    values, vectors = np.linalg.eigh(corr)
    order = np.argsort(values)[::-1][:n_components]
    explained = float(values[order].clip(0).sum() / max(values.clip(0).sum(), 1e-12))
    return ResponseBasis(mean, scale, vectors[:, order], explained)


class _Moments:
    """Running X'X, X'Y, sum X, sum Y and the frame count of a linear regression, float64."""

    def __init__(self, p: int, q: int) -> None:
        self.xx, self.xy = np.zeros((p, p)), np.zeros((p, q))
        self.sx, self.sy, self.n = np.zeros(p), np.zeros(q), 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        self.xx += x64.T @ x64
        self.xy += x64.T @ y64
        self.sx += x64.sum(0)
        self.sy += y64.sum(0)
        self.n += len(x)

    def __iadd__(self, other: _Moments) -> _Moments:
        self.xx, self.xy = self.xx + other.xx, self.xy + other.xy
        self.sx, self.sy, self.n = self.sx + other.sx, self.sy + other.sy, self.n + other.n
        return self

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        mx, my = self.sx / self.n, self.sy / self.n
        return self.xx - self.n * np.outer(mx, mx), self.xy - self.n * np.outer(mx, my), mx, my


@dataclass
class RidgeDecoder:
    """Linear decoder: responses (N, T) -> video (T, 36, 64) grey levels (clipped to 0..255)."""

    basis: ResponseBasis
    lags: int
    weights: np.ndarray  # (features, pixels)
    x_mean: np.ndarray  # (features,)
    y_mean: np.ndarray  # (pixels,)
    alpha: float  # chosen regularisation (absolute)
    alpha_relative: float  # the same relative to the mean eigenvalue of X'X
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))  # relative regularisations tried
    val_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mean validation correlation per grid value

    def features(self, responses: np.ndarray) -> np.ndarray:
        return lagged(self.basis.transform(responses), self.lags)

    def predict(self, responses: np.ndarray) -> np.ndarray:
        x = self.features(responses).astype(np.float64) - self.x_mean
        video = x @ self.weights + self.y_mean
        return np.clip(video, 0, 255).reshape(-1, *FRAME_SHAPE).astype(np.float32)


def _moments(pairs: Iterable[Pair], basis: ResponseBasis, lags: int) -> _Moments:
    """Sums of the regression over frames whose whole lag window lies inside the trial."""
    m = None
    for responses, video in pairs:
        x = lagged(basis.transform(responses), lags)
        y = np.asarray(video, np.float32).reshape(len(video), -1)
        if len(x) != len(y):
            raise V1ReconError(f"responses have {len(x)} frames but the video has {len(y)}.")
        keep = max(len(x) - lags, 0)
        if m is None:
            m = _Moments(x.shape[1], y.shape[1])
        m.add(x[:keep], y[:keep])
    if m is None or m.n <= m.xx.shape[0] // 10:
        raise V1ReconError("too few training frames to fit a decoder.")
    return m


def _solve(m: _Moments, relative: Sequence[float]):
    """Eigen-decomposition of the centred X'X; returns a function relative alpha -> (weights, absolute alpha)."""
    xx, xy, mx, my = m.centred()
    values, vectors = np.linalg.eigh(xx)
    values = values.clip(0)
    rotated = vectors.T @ xy
    scale = float(values.mean()) or 1.0

    def weights(rel: float) -> tuple[np.ndarray, float]:
        alpha = rel * scale
        return vectors @ (rotated / (values + alpha)[:, None]), alpha

    return weights, mx, my


def _mean_correlation(predictions: Iterable[tuple[np.ndarray, np.ndarray]], mask: np.ndarray | None, start: int):
    from v1recon.metrics.video import video_correlation

    scores = [video_correlation(p, v, mask, start=min(start, len(v) - 1)) for p, v in predictions]
    return float(np.mean(scores)) if scores else float("nan")


def fit_ridge_decoder(
    train: Iterable[Pair],
    validation: Iterable[Pair],
    lags: int = DEFAULT_LAGS,
    n_components: int | None = DEFAULT_COMPONENTS,
    grid: Sequence[float] = RIDGE_GRID,
    mask: np.ndarray | None = None,
    start: int = EVAL_START_FRAME,
) -> RidgeDecoder:
    """Fit the ridge decoder (see the module docstring). `train` and `validation` are re-iterable collections of
    (responses (N, T), video (T, 36, 64)) pairs from different movies; the regularisation with the best mean video
    correlation on `validation` (inside `mask`, frames >= start) wins, then the fit is repeated on both."""
    if lags < 0:
        raise V1ReconError(f"decoder lags must be >= 0, got {lags}.")
    if not len(grid):
        raise V1ReconError("the regularisation grid is empty.")
    basis = fit_response_basis((r for r, _ in train), n_components)
    m_train = _moments(train, basis, lags)
    weights, mx, my = _solve(m_train, grid)
    val = [(lagged(basis.transform(r), lags).astype(np.float64) - mx, np.asarray(v, np.float32)) for r, v in validation]
    if not val:
        raise V1ReconError("no validation trials to choose the decoder's regularisation.")
    scores = []
    for rel in grid:
        w, _ = weights(rel)
        preds = ((x @ w + my).reshape(-1, *FRAME_SHAPE) for x, _ in val)
        scores.append(_mean_correlation(zip(preds, (v for _, v in val), strict=True), mask, start))
    best = int(np.nanargmax(scores))
    m_all = m_train
    m_all += _moments(validation, basis, lags)
    weights_all, mx_all, my_all = _solve(m_all, grid)
    w, alpha = weights_all(grid[best])
    return RidgeDecoder(
        basis, lags, w.astype(np.float32), mx_all, my_all, alpha, float(grid[best]), np.asarray(grid), np.array(scores)
    )


@dataclass
class InvertibleLinear:
    """frame(t) = gain * sum_n z_n(t + lag) RF_n + offset; responses (N, T) -> video (T, 36, 64) clipped to 0..255."""

    basis: ResponseBasis  # standardisation only
    rfs: np.ndarray  # (N, pixels) receptive fields
    lag: int
    gain: float
    offset: float
    lag_scores: np.ndarray  # (max_lag + 1,) pooled training correlation per lag

    def project(self, responses: np.ndarray) -> np.ndarray:
        """(T, pixels): the activity-weighted sum of RFs per frame, before shifting by the lag."""
        return self.basis.transform(responses).T.astype(np.float64) @ self.rfs

    def predict(self, responses: np.ndarray) -> np.ndarray:
        s = _shifted(self.project(responses), self.lag)
        return np.clip(self.gain * s + self.offset, 0, 255).reshape(-1, *FRAME_SHAPE).astype(np.float32)


def _shifted(s: np.ndarray, lag: int) -> np.ndarray:
    """out[t] = s[t + lag], zero past the end."""
    out = np.zeros_like(s)
    out[: len(s) - lag] = s[lag:]
    return out


def fit_invertible(
    train: Iterable[Pair],
    rfs: np.ndarray,
    max_lag: int = DEFAULT_LAGS,
    mask: np.ndarray | None = None,
) -> InvertibleLinear:
    """Fit lag, gain and offset of the invertible linear model on (responses, video) pairs; rfs (N, 36, 64).

    The lag maximises the Pearson r between sum_n z_n(t + lag) RF_n and frame t over the masked pixels of all
    training frames (pooled); gain and offset are the least-squares line at that lag.
    """
    rfs = np.asarray(rfs, np.float64).reshape(len(rfs), -1)
    if rfs.shape[1] != N_PIXELS:
        raise V1ReconError(f"receptive fields must be (N, 36, 64), got {rfs.shape[0]} maps of {rfs.shape[1]} px.")
    sel = np.ones(N_PIXELS, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    basis = fit_response_basis(r for r, _ in train)
    if basis.n_neurons != len(rfs):
        raise V1ReconError(f"{len(rfs)} receptive fields for {basis.n_neurons} neurons.")
    sums = np.zeros((max_lag + 1, 6))  # n, sx, sy, sxx, syy, sxy per lag
    for responses, video in train:
        s = (basis.transform(responses).T.astype(np.float64) @ rfs)[:, sel]
        y = np.asarray(video, np.float64).reshape(len(video), -1)[:, sel]
        for lag in range(min(max_lag, len(s) - 1) + 1):
            x, yy = s[lag:], y[: len(s) - lag]
            sums[lag] += [x.size, x.sum(), yy.sum(), (x * x).sum(), (yy * yy).sum(), (x * yy).sum()]
    n, sx, sy, sxx, syy, sxy = sums.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy / n - sx * sy / n**2
        var_x, var_y = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        r = np.nan_to_num(cov / np.sqrt(var_x * var_y))
    lag = int(np.argmax(r))
    gain = float(cov[lag] / var_x[lag]) if var_x[lag] > 0 else 0.0
    offset = float(sy[lag] / n[lag] - gain * sx[lag] / n[lag])
    return InvertibleLinear(basis, rfs.astype(np.float32), lag, gain, offset, r)
