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
from v1recon.recon.ensemble import ENSEMBLE_SIGMA, ensemble_movie
from v1recon.recon.fast import FastSettings, reconstruct_fast
from v1recon.recon.objective import CLIP_FRAMES, encoder_device, frozen
from v1recon.recon.paper import PAPER_ITERATIONS, reconstruct_paper

Method = Literal["fast", "paper"]
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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reconstruction:
    """One trial's result."""

    video: np.ndarray  # (T, 36, 64) the (ensemble) reconstruction, grey levels 0..255
    per_model: np.ndarray  # (K, T, 36, 64) each model's clipped reconstruction (K = 1 for gradient ensembling)
    loss: np.ndarray  # (K, I) loss per iteration (NaN after a run that stopped early)
    correlation: np.ndarray  # (K, I) video correlation with the truth per iteration (NaN without a truth)
    iterations: list[int]  # iterations run, per model
    window_passes: float  # cost of this trial, all models together (see v1recon.recon.objective)
    seconds: float  # wall time of this trial, all models together


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


def _run_method(encoders, resp, beh, mask, config: ReconConfig, callback):
    if config.method == "paper":
        return reconstruct_paper(
            encoders,
            resp,
            beh,
            mask,
            iterations=config.iterations or PAPER_ITERATIONS,
            chunk=config.paper_chunk,
            seed=config.seed,
            callback=callback,
        )
    if config.method == "fast":
        settings = config.fast
        if config.iterations:
            settings = FastSettings(**{**asdict(settings), "max_steps": config.iterations})
        return reconstruct_fast(encoders, resp, beh, mask, settings, seed=config.seed, callback=callback)
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
) -> list[Reconstruction]:
    """Reconstruct every trial; see the module docstring. `truths` (T, 36, 64) only feed the per-iteration
    correlation (inside `eval_mask`, frames >= 30); `progress(n_trials_done)` is called after every batch and
    `on_iteration()` after every iteration of every model."""
    config = config or ReconConfig()
    if config.ensemble not in ("average", "gradient"):
        raise V1ReconError(f"unknown ensemble mode {config.ensemble!r}; choose average or gradient.")
    encoders = list(encoders)
    sources = list(sources) if sources is not None else [f"trial {i}" for i in range(len(responses))]
    check_inputs(encoders, responses, behaviours, sources, update_mask)
    device = encoder_device(encoders[0], torch.device("cpu"))
    mask_t = torch.as_tensor(np.asarray(update_mask, dtype=np.float32), device=device)
    emask = np.ones(FRAME_SHAPE, bool) if eval_mask is None else np.asarray(eval_mask) > 0
    emask_t = torch.as_tensor(emask, device=device)
    groups = [[enc] for enc in encoders] if config.ensemble == "average" else [encoders]
    results: list[Reconstruction | None] = [None] * len(responses)
    with frozen(encoders):
        for batch in length_batches([r.shape[1] for r in responses], config.batch_size):
            resp = torch.as_tensor(np.stack([responses[i] for i in batch]), dtype=torch.float32, device=device)
            resp = resp.clamp_min(0)  # recorded traces are ReLU'd, as published
            beh = torch.as_tensor(np.stack([behaviours[i] for i in batch]), dtype=torch.float32, device=device)
            truth = None
            if truths is not None:
                truth = torch.as_tensor(np.stack([truths[i] for i in batch]), dtype=torch.float32, device=device)
            start = time.perf_counter()
            movies, losses, corrs, iters, passes = [], [], [], [], 0.0
            for group in groups:
                loss_log, corr_log = [], []

                def log(_i, video, loss, loss_log=loss_log, corr_log=corr_log, truth=truth):
                    loss_log.append(loss.float().cpu().numpy())
                    if on_iteration is not None:
                        on_iteration()
                    if truth is not None and video.shape[1] > EVAL_START_FRAME:
                        corr_log.append(masked_correlation(video, truth, emask_t, EVAL_START_FRAME).cpu().numpy())

                video, cost, n_iter = _run_method(group, resp, beh, mask_t, config, log)
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
                    loss=_pad([lg[j] for lg in losses]),
                    correlation=_pad([c[j] for c in corrs]),
                    iterations=iters,
                    window_passes=passes / len(batch),
                    seconds=seconds / len(batch),
                )
            if progress is not None:
                progress(len(batch))
    return results  # type: ignore[return-value]


def _pad(rows: list[np.ndarray]) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan, dtype=np.float32)
    for k, r in enumerate(rows):
        out[k, : len(r)] = r
    return out
