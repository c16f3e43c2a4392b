"""What every analysis shares: opening a run, the held-out trials, predicted responses, running a set of
reconstructions, and writing RUN/analyses/<name>/ (result.npz, result.json sidecar, figure.png) atomically.

An analysis folder is written in one piece: it appears complete or not at all, and an existing one is only
replaced with `overwrite`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v1recon import EVAL_START_FRAME, FRAME_SHAPE
from v1recon.errors import V1ReconError

ANALYSES_DIR = "analyses"
RESULT_NPZ = "result.npz"
FIGURE_PNG = "figure.png"
TEST_TIERS = ("oracle", "live_test", "final_test")


def analysis_dir(run_dir: str | Path, name: str) -> Path:
    """RUN/analyses/<name>: where one analysis writes result.npz, result.json and figure.png."""
    return Path(run_dir) / ANALYSES_DIR / name


def check_output(run_dir: str | Path, name: str, overwrite: bool) -> Path:
    """The analysis folder; refuses (before any computation) to replace existing results without `overwrite`."""
    out = analysis_dir(run_dir, name)
    if out.exists() and not overwrite:
        raise V1ReconError(f"{out}: already holds results of this analysis; pass --overwrite to replace them.")
    return out


@dataclass
class Setup:
    """One mouse of a trained run, ready for analyses: its encoders, masks, recording and (in silico) true model."""

    run: Any  # v1recon.training.run.RunInfo
    recording: Any  # v1recon.data.Recording
    encoders: list
    update_mask: np.ndarray  # (36, 64) bool, pixels the reconstruction may change
    eval_mask: np.ndarray  # (36, 64) bool, pixels scored
    alpha: np.ndarray | None  # (36, 64) the learned alpha map, None without a mask file
    mask_source: str
    truth: torch.nn.Module | None  # the in-silico mouse's true model (encoder contract), None for real data
    device: torch.device
    recordings: list = field(default_factory=list)  # every mouse of the run (for statistics over mice)

    @property
    def mouse(self) -> str:
        return self.recording.name

    def identity(self) -> dict:
        """Data and model identities for the sidecar."""
        from v1recon.training.run import recording_identity

        return {
            "run": str(Path(self.run.path).resolve()),
            "data": recording_identity(self.recording),
            "models": [getattr(e, "name", repr(e)) for e in self.encoders],
            "n_models": len(self.encoders),
            "mask": self.mask_source,
            "update_pixels": int(self.update_mask.sum()),
            "eval_pixels": int(self.eval_mask.sum()),
            "true_model": self.truth is not None,
        }


def open_setup(
    run_dir: str | Path,
    data: str | Path | None = None,
    mouse: str | None = None,
    device: str = "auto",
    need_mask: bool = False,
    log: Callable[[str], None] = print,
) -> Setup:
    """Load a mouse of a run (default: the first) with its encoders, its alpha mask and, in silico, its true model.

    Without RUN/masks/<mouse>.npz every pixel is updated and scored (said in the result), unless `need_mask`.
    """
    from v1recon.device import pick_device
    from v1recon.recon.masks import load_mask, mask_path
    from v1recon.sim import load_truth
    from v1recon.training.evaluate import match_recordings
    from v1recon.training.run import load_encoders, load_run

    run = load_run(run_dir)
    recordings = match_recordings(run, data if data is not None else run.data)
    name = mouse or run.mouse_names[0]
    run.mouse_index(name)  # a clear error for an unknown mouse
    recording = next(r for r in recordings if r.name == name)
    torch_device = pick_device(device)
    encoders = load_encoders(run.path, name, torch_device)
    path = mask_path(run.path, name)
    if path.is_file():
        mask = load_mask(path)
        alpha, update, evaluation, source = mask.alpha, mask.update_mask, mask.eval_mask, str(path)
        if not evaluation.any():
            raise V1ReconError(f"{path}: the evaluation mask (alpha >= {mask.eval_threshold:g}) holds no pixel.")
    elif need_mask:
        raise V1ReconError(f"{path}: no alpha mask for mouse {name}; run `v1recon mask {run.path}` first.")
    else:
        log(f"no alpha mask at {path}: every pixel is updated and scored (run `v1recon mask` for the published setup)")
        alpha, update, evaluation = None, np.ones(FRAME_SHAPE, bool), np.ones(FRAME_SHAPE, bool)
        source = "none (all pixels)"
    truth = load_truth(recording.path)
    if truth is not None:
        truth = truth.to(torch_device).eval()
    return Setup(run, recording, encoders, update, evaluation, alpha, source, truth, torch_device, recordings)


def held_out_trials(setup: Setup, n_trials: int | None) -> list[int]:
    """Trials to reconstruct: one per distinct movie of the test tiers (never trained on), with responses.

    Recordings without test tiers fall back to training-tier trials whose movie lies in the run's held-out fold.
    At most `n_trials` (None: all), in trial-id order.
    """
    from v1recon.data import movie_hash

    rec = setup.recording
    ids = rec.trial_ids(tier=TEST_TIERS, with_responses=True)
    if not ids:
        from v1recon.data.folds import fold_of_trials

        folds = fold_of_trials(rec, setup.run.n_folds)
        ids = [t for t in rec.trial_ids(with_responses=True) if folds[t] == setup.run.test_fold]
    chosen, seen = [], set()
    for trial_id in sorted(ids):
        key = movie_hash(rec.trial(trial_id).video)
        if key not in seen:
            seen.add(key)
            chosen.append(trial_id)
        if n_trials is not None and len(chosen) >= n_trials:
            break
    if not chosen:
        raise V1ReconError(f"{rec.path}: no held-out trials with responses to reconstruct.")
    return chosen


@dataclass
class TrialSet:
    """Movies with behaviour and responses, as the reconstructor takes them (lists, one entry per movie)."""

    videos: list[np.ndarray]  # (T, 36, 64) grey levels
    behaviours: list[np.ndarray]  # (4, T)
    responses: list[np.ndarray]  # (N, T)
    names: list[str]


def load_trials(setup: Setup, trial_ids: Sequence[int], frames: int | None = None) -> TrialSet:
    """The recorded trials: movie, behaviour and recorded responses, cut to their first `frames` frames (None or
    0: whole trials). Cutting keeps every frame from 30 on scored, and shortens each reconstruction in proportion."""
    trials = [setup.recording.trial(t) for t in trial_ids]
    if frames is not None and 0 < frames <= EVAL_START_FRAME:
        raise V1ReconError(f"--frames must exceed the {EVAL_START_FRAME} unscored context frames, got {frames}.")
    cut = slice(None, frames or None)
    return TrialSet(
        [t.video[cut] for t in trials],
        [t.behaviour[:, cut] for t in trials],
        [t.responses[:, cut] for t in trials],
        [f"{setup.recording.path / 'data' / 'responses' / f'{t.trial_id}.npy'}" for t in trials],
    )


def predict(encoders: Sequence, videos: Sequence[np.ndarray], behaviours: Sequence[np.ndarray], device) -> list:
    """Noise-free responses (N, T) per movie: the mean prediction of `encoders` (one encoder: its own)."""
    from v1recon.models import EnsembleEncoder
    from v1recon.training.trainer import predict_trials

    model = encoders[0] if len(encoders) == 1 else EnsembleEncoder(list(encoders))
    with torch.no_grad():
        preds = predict_trials(model, list(videos), list(behaviours), torch.device(device))
    return [np.maximum(p, 0).astype(np.float32) for p in preds]


def constant_behaviour(recordings: Sequence, n_frames: int) -> np.ndarray:
    """Behaviour (4, n_frames) held constant: per channel the maximum over mice of the recordings' mean statistic
    (pupil dilation, running speed, pupil x, pupil y), as in the published resolution experiments."""
    rows = []
    for rec in recordings:
        beh = np.asarray(rec.statistics("behavior")["mean"], np.float32).reshape(-1)[:2]
        pupil = np.asarray(rec.statistics("pupil_center")["mean"], np.float32).reshape(-1)[:2]
        rows.append(np.concatenate([beh, pupil]))
    # a channel no trial recorded has NaN statistics; the reader fills it with 0, and so does this
    values = np.max(np.nan_to_num(np.stack(rows), nan=0.0), axis=0)
    return np.repeat(values[:, None], n_frames, axis=1).astype(np.float32)


def recon_config(method: str, iterations: int | None, seed: int, batch_size: int = 4):
    """ReconConfig of the analyses (averaged ensemble + published blur); an unknown method is a clear error."""
    from v1recon.recon import ReconConfig

    if method not in ("fast", "paper"):
        raise V1ReconError(f"unknown reconstruction method {method!r}; choose fast or paper.")
    return ReconConfig(method=method, iterations=iterations, seed=seed, batch_size=batch_size)


def reconstruct_set(
    encoders: Sequence,
    responses: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    update_mask: np.ndarray,
    config,
    desc: str,
    progress: bool = True,
    sources: Sequence[str] | None = None,
) -> list:
    """v1recon.recon.reconstruct_trials with a progress bar (movies done); returns its Reconstructions."""
    from tqdm.auto import tqdm

    from v1recon.recon import reconstruct_trials

    with tqdm(total=len(responses), desc=desc, unit="movie", disable=not progress, leave=False) as bar:
        return reconstruct_trials(
            list(encoders), list(responses), list(behaviours), update_mask, config, sources=sources, progress=bar.update
        )


def video_r(recon: np.ndarray, truth: np.ndarray, mask: np.ndarray, start: int = EVAL_START_FRAME) -> float:
    """Video correlation: one Pearson r over the masked pixels of frames >= start."""
    from v1recon.metrics.video import video_correlation

    return float(video_correlation(recon, truth, mask, start=start))


def write_analysis(
    run_dir: str | Path,
    name: str,
    arrays: dict[str, np.ndarray],
    summary: dict,
    config: dict,
    figure: Callable[[Path], None],
    setup: Setup | None = None,
    seconds: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write RUN/analyses/<name>/{result.npz, result.json, figure.png} as one atomic folder and return it.

    summary: what the report shows ("title", "description", "table": {"headers", "rows"}, "findings": [...],
    "expected": [{"effect", "holds", "why"}], "statistics": {...}); figure(path) draws figure.png.
    """
    from v1recon.io import atomic_path, save_npz, write_sidecar

    out = check_output(run_dir, name, overwrite)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_npz(tmp / RESULT_NPZ, **arrays)
        identity = setup.identity() if setup is not None else {}
        write_sidecar(
            tmp / RESULT_NPZ, analysis=name, config=config, identity=identity, summary=summary, seconds=seconds
        )
        figure(tmp / FIGURE_PNG)
    return out


class Timer:
    """Wall time since construction, in seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


class NeuronSubset:
    """An encoder restricted to some of its neurons (Encoder contract): the others leave every loss entirely.

    encoder(video (B, T, 36, 64), behaviour (B, 4, T)) -> (B, len(index), T). Windowed encoders keep their
    windows (`predict_windows` returns (B, W, len(index), 16)).
    """

    def __init__(self, encoder, index: np.ndarray) -> None:
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1 or index.size == 0 or index.min() < 0 or index.max() >= encoder.n_neurons:
            raise V1ReconError(f"a neuron subset must pick 1..{encoder.n_neurons} valid neuron indices.")
        self.encoder = encoder  # named `encoder` so that recon.objective finds the modules behind it
        self.index = torch.from_numpy(index)
        self.n_neurons = int(index.size)
        self.name = f"{getattr(encoder, 'name', 'encoder')}[{self.n_neurons} neurons]"

    @property
    def windowed(self) -> bool:
        from v1recon.recon.objective import is_windowed

        return is_windowed(self.encoder)

    def __call__(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        out = self.encoder(video, behaviour)
        return out[:, self.index.to(out.device)]

    def predict_windows(self, video: torch.Tensor, behaviour: torch.Tensor, ends) -> torch.Tensor:
        out = self.encoder.predict_windows(video, behaviour, ends)
        return out[:, :, self.index.to(out.device)]


def nested_subsets(n_neurons: int, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Sorted neuron indices for each fraction, nested: every smaller subset lies inside every larger one.

    One random order of the neurons; fraction f keeps its first round(f * n_neurons) (at least 1).
    """
    order = rng.permutation(n_neurons)
    out = []
    for f in fractions:
        if not 0 < f <= 1:
            raise V1ReconError(f"neuron fractions must lie in (0, 1], got {f}.")
        out.append(np.sort(order[: max(1, int(round(f * n_neurons)))]))
    return out


def parse_floats(text: str, what: str) -> list[float]:
    """'0, 1, 2' -> [0.0, 1.0, 2.0]; a clear error otherwise."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise V1ReconError(f"{what}: expected comma-separated numbers, got {text!r}.") from err
    if not values:
        raise V1ReconError(f"{what}: expected at least one number.")
    return values


def correlation_matrix(
    recons: np.ndarray, stimuli: np.ndarray, mask: np.ndarray, start: int = EVAL_START_FRAME
) -> np.ndarray:
    """Video correlation of every reconstruction with every stimulus: (M, T, H, W) x (J, T, H, W) -> (M, J).

    The same Pearson r as `video_r` (masked pixels of frames >= start, flattened), computed in one product.
    """

    def zscored(movies: np.ndarray) -> np.ndarray:
        x = np.asarray(movies, dtype=np.float64)[:, start:][:, :, np.asarray(mask, bool)].reshape(len(movies), -1)
        x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.maximum(norm, 1e-12)

    return zscored(recons) @ zscored(stimuli).T


@dataclass
class PredictedRecon:
    """Reconstructions of stimuli from predicted (noise-free) activity, and how well they match the stimuli."""

    videos: np.ndarray  # (M, T, 36, 64) ensemble reconstructions
    r: np.ndarray  # (M,) video correlation of the ensemble reconstruction with its stimulus
    r_models: np.ndarray  # (M, K) the same for each model's own reconstruction
    r_oracle: np.ndarray | None  # (M,) through the true model from its own responses (in silico), else None
    oracle_videos: np.ndarray | None


def reconstruct_from_predicted(
    setup: Setup,
    movies: np.ndarray,
    behaviour: np.ndarray,
    config,
    oracle: bool = True,
    progress: bool = True,
) -> PredictedRecon:
    """Feed each movie (M, T, 36, 64) to the encoders, reconstruct it from their mean predicted responses (the
    upper-bound setting of the resolution experiments), and score it inside the evaluation mask (frames >= 30).
    With `oracle` and a true model, also reconstruct through the true model from the true model's responses."""
    behaviours = [behaviour] * len(movies)
    responses = predict(setup.encoders, movies, behaviours, setup.device)
    recs = reconstruct_set(setup.encoders, responses, behaviours, setup.update_mask, config, "ensemble", progress)
    videos = np.stack([r.video for r in recs])
    r = np.array([video_r(v, m, setup.eval_mask) for v, m in zip(videos, movies, strict=True)])
    r_models = np.array(
        [[video_r(pm, m, setup.eval_mask) for pm in rec.per_model] for rec, m in zip(recs, movies, strict=True)]
    )
    r_oracle = oracle_videos = None
    if oracle and setup.truth is not None:
        true_resp = predict([setup.truth], movies, behaviours, setup.device)
        orecs = reconstruct_set([setup.truth], true_resp, behaviours, setup.update_mask, config, "true model", progress)
        oracle_videos = np.stack([o.video for o in orecs])
        r_oracle = np.array([video_r(v, m, setup.eval_mask) for v, m in zip(oracle_videos, movies, strict=True)])
    return PredictedRecon(videos, r, r_models, r_oracle, oracle_videos)


CHANCE_R = 0.05  # below this mean video correlation a comparison between conditions says nothing


def chance_note(r_mean: float, what: str = "reconstructions from recorded activity") -> str:
    """A sentence for the result when reconstructions are at chance level (why an expected effect may not show)."""
    if not np.isfinite(r_mean) or r_mean >= CHANCE_R:
        return ""
    return (
        f"; {what} are at chance level (mean r {r_mean:.3f} < {CHANCE_R}), so the encoders are too weak for this "
        "comparison: train them longer (see the run's validation correlation)"
    )
