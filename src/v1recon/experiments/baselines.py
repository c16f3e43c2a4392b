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
from v1recon.experiments import results
from v1recon.experiments.registry import DECODER_COMPONENTS, DECODER_LAGS
from v1recon.metrics.encoder import pearson
from v1recon.report.figures import pyplot

N_PIXELS = FRAME_SHAPE[0] * FRAME_SHAPE[1]
DEFAULT_LAGS, DEFAULT_COMPONENTS = DECODER_LAGS, DECODER_COMPONENTS
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
        # float32 products (twice as fast) per trial, float64 totals: features are z-scored, so this is exact enough
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        self.xx += x32.T @ x32
        self.xy += x32.T @ y32
        self.sx += x32.sum(0, dtype=np.float64)
        self.sy += y32.sum(0, dtype=np.float64)
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
    # validation scores need only the evaluated pixels of the evaluated frames
    sel = np.ones(N_PIXELS, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    val = []
    for r, v in validation:
        x = (lagged(basis.transform(r), lags) - mx.astype(np.float32))[min(start, len(v) - 1) :]
        val.append((x, np.asarray(v, np.float32).reshape(len(v), -1)[min(start, len(v) - 1) :, sel]))
    if not val:
        raise V1ReconError("no validation trials to choose the decoder's regularisation.")
    scores = []
    for rel in grid:
        w = weights(rel)[0][:, sel].astype(np.float32)
        scores.append(float(np.mean([pearson(np.clip(x @ w + my[sel], 0, 255), y) for x, y in val])))
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


# -- the analysis (v1recon analyse baselines) -------------------------------------------------------------------------
NAME = "baselines"
RIDGE = "ridge decoder"
INVERTIBLE = "invertible linear"
INVERTIBLE_TRUE = "invertible linear (true-model RFs)"
INPUT_OPT = "input optimisation"
ORACLE = "input optimisation (oracle)"
METRICS = (
    "video_correlation",
    "frame_correlation",
    "ssim_global",
    "ssim_windowed",
    "rmse",
    "psnr",
    "motion_energy_correlation",
    "full_screen_correlation",
)
LOWER_IS_BETTER = ("rmse",)
DEFAULT_TRIALS = 6


class RecordingPairs:
    """Re-iterable (responses (N, T), video (T, 36, 64)) pairs of some trials of a recording.

    Read once on first use and kept in memory (videos as float16), because the fits pass over them several times
    and reading is the slow part (~2.5 MB per 300-frame trial of 1000 neurons).
    """

    def __init__(self, recording, trial_ids: Sequence[int]) -> None:
        self.recording, self.trial_ids = recording, list(trial_ids)
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.trial_ids)

    def __iter__(self):
        if self._cache is None:
            self._cache = []
            for t in self.trial_ids:
                trial = self.recording.trial(t)
                self._cache.append((np.asarray(trial.responses, np.float32), np.asarray(trial.video, np.float16)))
        for responses, video in self._cache:
            yield responses, video.astype(np.float32)


def input_optimisation_sets(run_dir, mouse: str) -> dict[str, dict[int, object]]:
    """Reconstructions of this mouse under RUN/reconstructions: label -> {trial id: npz path}, the ensemble's
    ("input optimisation") and the true model's ("... (oracle)"); upper bounds and variants are left out."""
    from pathlib import Path

    from v1recon.report import collect
    from v1recon.report.sections.reconstructions import MAIN, sets
    from v1recon.report.sections.reconstructions import ORACLE as ORACLE_KIND

    files, _ = collect.reconstructions(Path(run_dir))
    out: dict[str, dict[int, object]] = {}
    for name, (kind, trials) in sorted(sets(files).items()):
        if kind not in (MAIN, ORACLE_KIND):
            continue
        mine = {t.trial_id: t.npz for t in trials if t.mouse == mouse and t.npz is not None}
        if mine:
            label = ORACLE if kind == ORACLE_KIND else INPUT_OPT
            out[label if label not in out else f"{label} [{name}]"] = mine
    return out


def split_training_trials(setup, evaluated: Sequence[int], max_trials: int | None, seed: int = 0):
    """(train ids, validation ids): training-tier trials with responses, none showing a movie of the run's held-out
    fold or of an evaluated trial; validation = the movies of the first model's validation fold."""
    from v1recon.data.folds import movie_hashes

    rec, run = setup.recording, setup.run
    hashes = movie_hashes(rec)
    banned = {hashes[t] for t in evaluated}
    val_fold = run.splits[0].val_fold if run.splits else (run.test_fold + 1) % run.n_folds
    train, val = [], []
    for t in rec.trial_ids(tier="train", with_responses=True):
        h = hashes[t]
        if h in banned or h % run.n_folds == run.test_fold:
            continue
        (val if h % run.n_folds == val_fold else train).append(t)
    if max_trials is not None and len(train) + len(val) > max_trials:
        rng = np.random.default_rng(seed)
        n_val = max(1, round(max_trials * len(val) / (len(train) + len(val))))
        val = sorted(rng.choice(val, min(n_val, len(val)), replace=False).tolist())
        train = sorted(rng.choice(train, min(max_trials - len(val), len(train)), replace=False).tolist())
    if len(train) < 2 or not val:
        raise V1ReconError(
            f"{rec.path}: {len(train)} training and {len(val)} validation trials are left for the baselines; "
            "need at least 2 and 1."
        )
    return train, val


def load_rf_mapping(run_dir, mouse: str, key: str = "signed") -> np.ndarray | None:
    """The signed RFs (N, 36, 64) of RUN/analyses/rf-mapping if it mapped this mouse, else None.

    key "signed": mapped through the ensemble; "true_model_signed": through the in-silico true model."""
    from v1recon.io import read_json

    folder = results.analysis_dir(run_dir, "rf-mapping")
    if not (folder / "result.json").is_file():
        return None
    name = ((read_json(folder / "result.json").get("identity") or {}).get("data") or {}).get("name")
    if name != mouse:
        return None
    with np.load(folder / results.RESULT_NPZ) as f:
        return f[key].astype(np.float32) if key in f else None


def _compare(values: np.ndarray, methods: list[str], reference: int) -> dict:
    """Per metric, the reference method against every other: mean difference, trials won, paired Wilcoxon."""
    from v1recon.experiments.stats import paired_wilcoxon

    out = {}
    for j, metric in enumerate(METRICS):
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        rows = {}
        for m, name in enumerate(methods):
            if m == reference:
                continue
            a, b = sign * values[reference, :, j], sign * values[m, :, j]
            rows[name] = {
                "input_optimisation_wins": bool(a.mean() > b.mean()),
                "mean_difference": float(sign * (a.mean() - b.mean())),
                "trials_won": float(np.mean(a > b)),
                "wilcoxon": paired_wilcoxon(a, b, methods[reference], name) if len(a) > 1 else None,
            }
        out[metric] = rows
    return out


def run(setup, cfg, recon_config=None, settings=None):
    """Fit both baselines, evaluate them with input optimisation on the same trials (cfg: registry.Baselines;
    `recon_config` reconstructs the trials RUN/reconstructions lacks); (arrays, summary)."""
    import sys
    import time

    from v1recon.experiments import common
    from v1recon.jobs.mouse import load_trials
    from v1recon.metrics.video import video_metrics

    n_trials, lags, components = cfg.trials, cfg.lags, cfg.components
    progress = settings is None or settings.progress

    def log(message: str) -> None:
        if progress:
            print(message, file=sys.stderr)

    rec = setup.recording
    sets = input_optimisation_sets(setup.run.path, setup.mouse)
    if sets:
        main = sets.get(INPUT_OPT) or next(iter(sets.values()))
        trial_ids = sorted(main)[:n_trials] if n_trials else sorted(main)
    else:
        trial_ids = common.held_out_trials(setup, n_trials or DEFAULT_TRIALS)
    trials = load_trials(setup.recording, trial_ids)
    recons: dict[str, list[np.ndarray]] = {}
    masks = [setup.eval_mask] * len(trial_ids)
    notes = []
    for label, files in sets.items():
        if not all(t in files for t in trial_ids):
            notes.append(f"{label}: left out, it lacks some of trials {trial_ids}")
            continue
        loaded = [np.load(files[t]) for t in trial_ids]
        recons[label] = [f["reconstruction"].astype(np.float32) for f in loaded]
        if label == INPUT_OPT and all("eval_mask" in f for f in loaded):
            masks = [f["eval_mask"].astype(bool) for f in loaded]
    if not recons and cfg.reconstruct:
        if recon_config is None:
            recon_config = common.recon_config("fast", None, 0)
        log(f"no reconstructions of trials {trial_ids} under {setup.run.path / 'reconstructions'}: reconstructing")
        plan = [(INPUT_OPT, setup.encoders)] + ([(ORACLE, [setup.truth])] if setup.truth is not None else [])
        for label, encoders in plan:
            out = common.reconstruct_set(
                encoders, trials.responses, trials.behaviours, setup.update_mask, recon_config, label, progress
            )
            recons[label] = [r.video for r in out]
        notes.append(f"input optimisation ({recon_config.method}) run by this analysis")
    elif not recons:
        notes.append("no input-optimisation reconstructions of these trials: baselines only")

    timings = {}
    train_ids, val_ids = split_training_trials(setup, trial_ids, cfg.max_train_trials)
    log(f"baselines: fitting on {len(train_ids)} training and {len(val_ids)} validation trials")
    started = time.perf_counter()
    decoder = fit_ridge_decoder(
        RecordingPairs(rec, train_ids), RecordingPairs(rec, val_ids), lags, components, mask=setup.eval_mask
    )
    timings["ridge_fit_s"] = round(time.perf_counter() - started, 1)
    recons[RIDGE] = [decoder.predict(r) for r in trials.responses]
    rfs = load_rf_mapping(setup.run.path, setup.mouse)
    invertible = None
    if rfs is None:
        notes.append("invertible linear model skipped: run `v1recon analyse rf-mapping` on this mouse first")
    else:
        started = time.perf_counter()
        invertible = fit_invertible(RecordingPairs(rec, train_ids + val_ids), rfs, lags, setup.eval_mask)
        timings["invertible_fit_s"] = round(time.perf_counter() - started, 1)
        recons[INVERTIBLE] = [invertible.predict(r) for r in trials.responses]
        true_rfs = load_rf_mapping(setup.run.path, setup.mouse, "true_model_signed")
        if true_rfs is not None:  # in silico: the same model with the true model's RFs (is the RF the limit?)
            ref = fit_invertible(RecordingPairs(rec, train_ids + val_ids), true_rfs, lags, setup.eval_mask)
            recons[INVERTIBLE_TRUE] = [ref.predict(r) for r in trials.responses]

    methods = list(recons)
    values = np.array(
        [
            [
                [video_metrics(v, truth, m)[k] for k in METRICS]
                for v, truth, m in zip(recons[name], trials.videos, masks, strict=True)
            ]
            for name in methods
        ]
    )  # (methods, trials, metrics)
    return _result(setup, methods, values, recons, trials, masks, trial_ids, decoder, invertible, notes, timings,
                   train_ids, val_ids)  # fmt: skip


def _result(setup, methods, values, recons, trials, masks, trial_ids, decoder, invertible, notes, timings,
            train_ids, val_ids):  # fmt: skip
    means = values.mean(1)
    arrays = {
        "methods": np.asarray(methods),
        "metrics": np.asarray(METRICS),
        "trial_ids": np.asarray(trial_ids),
        "values": values,
        "example_truth": trials.videos[0].astype(np.float16),
        "example_eval_mask": masks[0],
        **{f"example_{i}": recons[name][0].astype(np.float16) for i, name in enumerate(methods)},
        "ridge_grid": decoder.grid,
        "ridge_val_scores": decoder.val_scores,
    }
    if invertible is not None:
        arrays["invertible_lag_scores"] = invertible.lag_scores
    rows = [[name, *[float(v) for v in means[m]]] for m, name in enumerate(methods)]
    reference = methods.index(INPUT_OPT) if INPUT_OPT in methods else None
    comparison = _compare(values, methods, reference) if reference is not None else {}
    findings = []
    if reference is not None:
        for base in (RIDGE, INVERTIBLE):
            if base not in methods:
                continue
            won = [k for k in METRICS if comparison[k][base]["input_optimisation_wins"]]
            lost = [k for k in METRICS if not comparison[k][base]["input_optimisation_wins"]]
            findings.append(
                f"input optimisation vs {base}: better in {', '.join(won) or 'no metric'}"
                + (f"; not better in {', '.join(lost)}" if lost else "")
                + f" (video r {means[reference, 0]:.3f} vs {means[methods.index(base), 0]:.3f})."
            )
    for m, name in enumerate(methods):
        if reference is None or m != reference:
            findings.append(f"{name}: mean video correlation {means[m, 0]:.3f} over {len(trial_ids)} trials.")
    findings += [n + "." for n in notes]
    expected = []
    if reference is not None:
        for base in (RIDGE, INVERTIBLE):
            if base in methods:
                row = comparison["video_correlation"][base]
                expected.append({
                    "effect": f"input optimisation reconstructs better than the {base} (video correlation)",
                    "holds": row["input_optimisation_wins"],
                    "why": f"difference {row['mean_difference']:+.3f}, input optimisation better in "
                    f"{100 * row['trials_won']:.0f}% of trials",
                })  # fmt: skip
    fit = {
        "train_trials": len(train_ids),
        "validation_trials": len(val_ids),
        "ridge": {
            "lags": decoder.lags,
            "components": decoder.basis.n_features,
            "explained_variance": decoder.basis.explained,
            "alpha_relative": decoder.alpha_relative,
            "grid": decoder.grid.tolist(),
            "validation_video_correlation": decoder.val_scores.tolist(),
        },
        "timings": timings,
    }
    if invertible is not None:
        fit["invertible"] = {"lag_frames": invertible.lag, "gain": invertible.gain, "offset": invertible.offset,
                             "lag_scores": invertible.lag_scores.tolist()}  # fmt: skip
    summary = {
        "title": "Baselines: direct decoding and the invertible linear model vs input optimisation",
        "description": (
            f"The same {len(trial_ids)} held-out trials and metrics (evaluation mask, frames 30 on) for every method. "
            f"Ridge decoder: responses at t..t+{decoder.lags} (ReLU, z-scored, {decoder.basis.n_features} principal "
            f"components) -> frame t, regularisation chosen on validation movies ({len(val_ids)} trials), refitted "
            f"on {len(train_ids) + len(val_ids)} training trials. Invertible linear model: activity-weighted sum of "
            "the signed RF-mapping RFs (ON - OFF) with a fitted lag, gain and offset; in silico also with the RFs "
            "mapped through the true model (a reference that uses the ground truth)."
        ),
        "table": {"headers": ["method", *METRICS], "rows": rows},
        "findings": findings,
        "expected": expected,
        "statistics": {"comparison": comparison, "fit": fit, "notes": notes},
    }
    return arrays, summary


def draw(path, arrays: dict, summary: dict) -> None:
    """Bars per method for four metrics (trials as dots), example frames of every method, the fits' curves."""

    plt = pyplot()
    methods = [str(m) for m in arrays["methods"]]
    metrics = [str(m) for m in arrays["metrics"]]
    values = arrays["values"]
    short = [m.replace("input optimisation", "input opt.").replace("invertible linear", "invertible") for m in methods]
    shown = ["video_correlation", "frame_correlation", "ssim_global", "motion_energy_correlation"]
    truth = arrays["example_truth"].astype(np.float32)
    frames = np.linspace(min(45, len(truth) - 1), len(truth) - 1, 4).astype(int)
    rows = [("truth", truth)] + [(s, arrays[f"example_{i}"].astype(np.float32)) for i, s in enumerate(short)]
    fig = plt.figure(figsize=(14, 3.2 + 1.15 * len(rows)))
    outer = fig.add_gridspec(2, 1, height_ratios=[3.2, 1.15 * len(rows)], hspace=0.45)
    top = outer[0].subgridspec(1, len(shown), wspace=0.35)
    for j, metric in enumerate(shown):
        ax = fig.add_subplot(top[0, j])
        col = metrics.index(metric)
        for m in range(len(methods)):
            ax.bar(m, values[m, :, col].mean(), color=f"C{m}", alpha=0.7)
            ax.plot(np.full(values.shape[1], m), values[m, :, col], "k.", ms=3)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(short, rotation=30, ha="right", fontsize=7)
    bottom = outer[1].subgridspec(len(rows), 6, width_ratios=[1, 1, 1, 1, 0.25, 2.2], hspace=0.08, wspace=0.04)
    mask = arrays["example_eval_mask"]
    for r, (label, movie) in enumerate(rows):
        for c, f in enumerate(frames):
            ax = fig.add_subplot(bottom[r, c])
            ax.imshow(movie[f], cmap="gray", vmin=0, vmax=255)
            ax.contour(mask.astype(float), levels=[0.5], colors="lime", linewidths=0.5)
            ax.set(xticks=[], yticks=[])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
            if r == 0:
                ax.set_title(f"frame {f}", fontsize=8)
    right = bottom[:, 5].subgridspec(2, 1, hspace=0.7)
    ax = fig.add_subplot(right[0])
    ax.semilogx(arrays["ridge_grid"], arrays["ridge_val_scores"], "o-")
    ax.set_title("ridge decoder: validation", fontsize=8)
    ax.set_xlabel("penalty (relative)", fontsize=7)
    ax.set_ylabel("video r", fontsize=7)
    if "invertible_lag_scores" in arrays:
        ax = fig.add_subplot(right[1])
        ax.plot(arrays["invertible_lag_scores"], "o-")
        ax.set_title("invertible model: lag (training)", fontsize=8)
        ax.set_xlabel("lag (frames)", fontsize=7)
        ax.set_ylabel("r", fontsize=7)
    fig.suptitle(summary["title"], fontsize=10)
    results.save_figure(fig, path)
