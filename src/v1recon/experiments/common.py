"""What the analyses compute with: the held-out trials, constant behaviour, sets of reconstructions and their
scores, nested neuron subsets. A mouse of a run is opened with v1recon.jobs.mouse.open_setup (the one per-mouse
loader); results are written by experiments.results; the configs live in experiments.registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from v1recon import EVAL_START_FRAME
from v1recon.data.recording import TEST_TIERS
from v1recon.errors import V1ReconError
from v1recon.jobs.mouse import MouseSetup, predicted_responses


def held_out_trials(setup: MouseSetup, n_trials: int | None) -> list[int]:
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
    setup: MouseSetup,
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
    responses = predicted_responses(setup.encoders, movies, behaviours, setup.device)
    recs = reconstruct_set(setup.encoders, responses, behaviours, setup.update_mask, config, "ensemble", progress)
    videos = np.stack([r.video for r in recs])
    r = np.array([video_r(v, m, setup.eval_mask) for v, m in zip(videos, movies, strict=True)])
    r_models = np.array(
        [[video_r(pm, m, setup.eval_mask) for pm in rec.per_model] for rec, m in zip(recs, movies, strict=True)]
    )
    r_oracle = oracle_videos = None
    if oracle and setup.truth is not None:
        true_resp = predicted_responses([setup.truth], movies, behaviours, setup.device)
        orecs = reconstruct_set([setup.truth], true_resp, behaviours, setup.update_mask, config, "true model", progress)
        oracle_videos = np.stack([o.video for o in orecs])
        r_oracle = np.array([video_r(v, m, setup.eval_mask) for v, m in zip(oracle_videos, movies, strict=True)])
    return PredictedRecon(videos, r, r_models, r_oracle, oracle_videos)


def predicted_unit(
    setup: MouseSetup, movies: np.ndarray, behaviour: np.ndarray, config, oracle: bool, progress
) -> dict:
    """`reconstruct_from_predicted` of some movies as the arrays of one analysis unit."""
    res = reconstruct_from_predicted(setup, movies, behaviour, config, oracle, progress)
    out = {"videos": res.videos, "r": res.r, "r_models": res.r_models}
    if res.r_oracle is not None:
        out.update(r_oracle=res.r_oracle, oracle_videos=res.oracle_videos)
    return out


def joined_predicted(parts: Sequence[dict]) -> PredictedRecon:
    """The units of `predicted_unit`, in order, as one PredictedRecon."""

    def joined(key: str):
        return np.concatenate([p[key] for p in parts]) if key in parts[0] else None

    return PredictedRecon(
        joined("videos"), joined("r"), joined("r_models"), joined("r_oracle"), joined("oracle_videos")
    )


CHANCE_R = 0.05  # below this mean video correlation a comparison between conditions says nothing


def chance_note(r_mean: float, what: str = "reconstructions from recorded activity") -> str:
    """A sentence for the result when reconstructions are at chance level (why an expected effect may not show)."""
    if not np.isfinite(r_mean) or r_mean >= CHANCE_R:
        return ""
    return (
        f"; {what} are at chance level (mean r {r_mean:.3f} < {CHANCE_R}), so the encoders are too weak for this "
        "comparison: train them longer (see the run's validation correlation)"
    )
