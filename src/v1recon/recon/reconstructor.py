"""Reconstruct movies from recorded responses through one or more encoders: validation, batching, ensembling.

    results = reconstruct_trials(encoders, responses, behaviours, update_mask, ReconConfig(method="fast"))

responses: list of (N, T) recorded single-trial traces (ReLU'd here), behaviours: list of (4, T), update_mask
(36, 64) bool/float (pixels that may change; the rest stays grey). Any object following the encoder contract
works: a trained model bound to a mouse, an ensemble, or the in-silico mouse's true model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch

from v1recon import EVAL_START_FRAME, FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.recon.ensemble import ENSEMBLE_SIGMA, ensemble_movie, ensemble_sigma
from v1recon.recon.fast import FastSettings, reconstruct_fast
from v1recon.recon.objective import CLIP_FRAMES, encoder_device, frozen
from v1recon.recon.paper import PAPER_ITERATIONS, reconstruct_paper

Method = Literal["fast", "paper"]
RESTART_JITTER = 16.0  # grey levels (std): white noise inside the update mask on the grey start of restarts 2..K
EnsembleMode = Literal["average", "gradient"]


@dataclass
class ReconConfig:
    """How to reconstruct. `iterations`: paper iterations (published 1000) or the fast method's step limit."""

    method: Method = "fast"
    iterations: int | None = None
    ensemble: EnsembleMode = "average"  # each model alone then average + blur, or gradients averaged every step
    smooth_sigma: float = ENSEMBLE_SIGMA  # 3-D blur of the ensemble average (frames, pixels); 0 = none
    batch_size: int = 4  # trials optimised together in one batch
    paper_chunk: int = 35  # sub-batches per forward pass in the paper method (1 = the published sequential loop)
    seed: int = 0
    fast: FastSettings = field(default_factory=FastSettings)
    restarts: int = 1  # each model (group) optimised this many times; restart r uses seed + r and a jittered start
    restart_jitter: float = RESTART_JITTER

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reconstruction:
    """One trial's result."""

    video: np.ndarray  # (T, 36, 64) the (ensemble) reconstruction, grey levels 0..255
    # (K, T, 36, 64) each member's clipped reconstruction: models (1 for gradient ensembling) x restarts,
    # restart-major (member k = restart k // models, model k % models)
    per_model: np.ndarray
    loss: np.ndarray  # (K, I) loss per iteration (NaN after a run that stopped early)
    correlation: np.ndarray  # (K, I) video correlation with the truth per iteration (NaN without a truth)
    iterations: list[int]  # iterations run, per model
    window_passes: float  # cost of this trial, all models together (see v1recon.recon.objective)
    seconds: float  # wall time of this trial, all models together
    smooth_sigma: float = 0.0  # blur applied to the average of the members (frames, pixels)


def masked_correlation(video: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
    """Video correlation per trial: Pearson r over mask pixels of frames >= start. (B, T, H, W) x2 -> (B,)."""
    sel = mask.bool()
    x = video[:, start:][:, :, sel].flatten(1).double()
    y = truth[:, start:][:, :, sel].flatten(1).double()
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    denom = (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-12)
    return ((x * y).sum(1) / denom).float()


def check_inputs(encoders, responses, behaviours, sources, update_mask=None) -> None:
    """Raise a one-sentence V1ReconError naming the source of the first bad input (see reconstruct_trials)."""
    n = encoders[0].n_neurons
    for enc in encoders:
        if enc.n_neurons != n:
            raise V1ReconError(f"the encoders predict different neuron counts ({enc.n_neurons} and {n}).")
    if update_mask is not None and np.shape(update_mask) != FRAME_SHAPE:
        raise V1ReconError(f"update mask must be {FRAME_SHAPE} pixels, got {np.shape(update_mask)}.")
    if len(behaviours) != len(responses):
        raise V1ReconError(f"{len(responses)} response traces but {len(behaviours)} behaviour traces were given.")
    for src, resp, beh in zip(sources, responses, behaviours, strict=True):
        if resp is None:
            raise V1ReconError(f"{src}: has no recorded responses to reconstruct from.")
        if beh is None:
            raise V1ReconError(f"{src}: behaviour is missing.")
        if resp.ndim != 2 or resp.shape[0] != n:
            raise V1ReconError(f"{src}: responses have shape {resp.shape}, but the encoders predict {n} neurons.")
        if beh.shape != (4, resp.shape[1]):
            raise V1ReconError(f"{src}: behaviour has shape {beh.shape}, expected (4, {resp.shape[1]}).")
        if resp.shape[1] < CLIP_FRAMES:
            raise V1ReconError(f"{src}: {resp.shape[1]} frames is shorter than one {CLIP_FRAMES}-frame window.")
        if not (np.all(np.isfinite(resp)) and np.all(np.isfinite(beh))):
            raise V1ReconError(f"{src}: responses or behaviour contain NaN inside the valid frames.")


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Trial indices grouped by length (a batch needs one length), at most `batch_size` per batch."""
    by_len: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        by_len.setdefault(length, []).append(i)
    out = []
    for idx in by_len.values():
        out += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    return out


def restart_start(shape, mask: torch.Tensor, jitter: float, seed: int, base: torch.Tensor | None = None):
    """`base` (default grey 127.5) plus seeded white noise of std `jitter` grey levels inside the mask, clipped:
    (B, T, H, W)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(tuple(shape), generator=gen).to(mask.device) * jitter * (mask > 0)
    return ((127.5 if base is None else base) + noise).clamp_(0, 255)


def masked_start(movies: np.ndarray, mask: torch.Tensor) -> torch.Tensor:
    """Start movies (B, T, H, W) inside the update mask, grey outside (the pixels that never change stay grey)."""
    video = torch.as_tensor(np.asarray(movies, np.float32), device=mask.device).clamp(0, 255)
    keep = (mask > 0).to(video.dtype)
    return video * keep + 127.5 * (1 - keep)


def _run_method(encoders, resp, beh, mask, config: ReconConfig, callback, restart: int = 0, base=None):
    seed = config.seed + restart
    start = base
    if restart > 0:
        shape = (resp.shape[0], resp.shape[2], *mask.shape)
        start = restart_start(shape, mask, config.restart_jitter, seed, base)
    if config.method == "paper":
        return reconstruct_paper(
            encoders,
            resp,
            beh,
            mask,
            iterations=config.iterations or PAPER_ITERATIONS,
            chunk=config.paper_chunk,
            seed=seed,
            callback=callback,
            start=start,
        )
    if config.method == "fast":
        settings = config.fast
        if config.iterations:
            settings = FastSettings(**{**asdict(settings), "max_steps": config.iterations})
        return reconstruct_fast(encoders, resp, beh, mask, settings, seed=seed, callback=callback, start=start)
    raise V1ReconError(f"unknown reconstruction method {config.method!r}; choose fast or paper.")


def reconstruct_trials(
    encoders: Sequence,
    responses: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    update_mask: np.ndarray,
    config: ReconConfig | None = None,
    truths: Sequence[np.ndarray] | None = None,
    eval_mask: np.ndarray | None = None,
    sources: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    on_iteration: Callable[[], None] | None = None,
    restarts: Sequence[int] | None = None,
    starts: Sequence[np.ndarray] | None = None,
) -> list[Reconstruction]:
    """Reconstruct every trial; see the module docstring. `truths` (T, 36, 64) only feed the per-iteration
    correlation (inside `eval_mask`, frames >= 30); `progress(n_trials_done)` is called after every batch and
    `on_iteration()` after every iteration of every model. With `config.restarts` = K > 1 every model (or, for
    gradient ensembling, the ensemble) is optimised K times, restart r >= 1 from `restart_start` with seed
    config.seed + r; the reconstruction is the average of all members. `restarts` runs only those restart indices
    (a job's task runs one). `starts`: a first movie (T, 36, 64) per trial instead of grey (a warm start, e.g. a
    decoder's estimate), used inside the update mask only."""
    config = config or ReconConfig()
    if config.ensemble not in ("average", "gradient"):
        raise V1ReconError(f"unknown ensemble mode {config.ensemble!r}; choose average or gradient.")
    if config.restarts < 1:
        raise V1ReconError(f"restarts {config.restarts}: must be at least 1.")
    encoders = list(encoders)
    sources = list(sources) if sources is not None else [f"trial {i}" for i in range(len(responses))]
    check_inputs(encoders, responses, behaviours, sources, update_mask)
    for src, first, resp in zip(sources, starts if starts is not None else [], responses, strict=False):
        expected = (resp.shape[1], *FRAME_SHAPE)
        if np.shape(first) != expected:
            raise V1ReconError(f"{src}: start movie has shape {np.shape(first)}, expected {expected}.")
    device = encoder_device(encoders[0], torch.device("cpu"))
    mask_t = torch.as_tensor(np.asarray(update_mask, dtype=np.float32), device=device)
    emask = np.ones(FRAME_SHAPE, bool) if eval_mask is None else np.asarray(eval_mask) > 0
    emask_t = torch.as_tensor(emask, device=device)
    groups = [[enc] for enc in encoders] if config.ensemble == "average" else [encoders]
    members = [(r, group) for r in (restarts if restarts is not None else range(config.restarts)) for group in groups]
    results: list[Reconstruction | None] = [None] * len(responses)
    with frozen(encoders):
        for batch in length_batches([r.shape[1] for r in responses], config.batch_size):
            resp = torch.as_tensor(np.stack([responses[i] for i in batch]), dtype=torch.float32, device=device)
            resp = resp.clamp_min(0)  # recorded traces are ReLU'd, as published
            beh = torch.as_tensor(np.stack([behaviours[i] for i in batch]), dtype=torch.float32, device=device)
            base = None if starts is None else masked_start(np.stack([starts[i] for i in batch]), mask_t)
            truth = None
            if truths is not None:
                truth = torch.as_tensor(np.stack([truths[i] for i in batch]), dtype=torch.float32, device=device)
            start = time.perf_counter()
            movies, losses, corrs, iters, passes = [], [], [], [], 0.0
            for restart, group in members:
                loss_log, corr_log = [], []

                def log(_i, video, loss, loss_log=loss_log, corr_log=corr_log, truth=truth):
                    loss_log.append(loss.float().cpu().numpy())
                    if on_iteration is not None:
                        on_iteration()
                    if truth is not None and video.shape[1] > EVAL_START_FRAME:
                        corr_log.append(masked_correlation(video, truth, emask_t, EVAL_START_FRAME).cpu().numpy())

                video, cost, n_iter = _run_method(group, resp, beh, mask_t, config, log, restart, base)
                movies.append(video.clamp(0, 255).cpu().numpy())
                losses.append(np.stack(loss_log, axis=1))  # (B, I)
                corrs.append(np.stack(corr_log, axis=1) if corr_log else np.full_like(losses[-1], np.nan))
                iters.append(n_iter)
                passes += cost
            seconds = time.perf_counter() - start
            for j, i in enumerate(batch):
                per_model = np.stack([m[j] for m in movies])
                results[i] = Reconstruction(
                    video=ensemble_movie(per_model, len(encoders), config.smooth_sigma),
                    per_model=per_model,
                    loss=pad_rows([lg[j] for lg in losses]),
                    correlation=pad_rows([c[j] for c in corrs]),
                    iterations=iters,
                    window_passes=passes / len(batch),
                    seconds=seconds / len(batch),
                    smooth_sigma=ensemble_sigma(len(per_model), len(encoders), config.smooth_sigma),
                )
            if progress is not None:
                progress(len(batch))
    return results  # type: ignore[return-value]


def pad_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of different lengths (per-iteration logs of runs that stopped at different steps) -> (K, I), NaN-padded."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan, dtype=np.float32)
    for k, r in enumerate(rows):
        out[k, : len(r)] = r
    return out
