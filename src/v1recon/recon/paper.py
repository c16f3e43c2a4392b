"""The published reconstruction procedure (Bauer, Margrie & Clopath, eLife 2025), reproduced step by step.

The optimised variable is the movie itself, (B, T, 36, 64) grey levels, initialised at 127.5 and clipped to
[0, 255] after every step. (The published DwiseNeuro canvas is 64x64; its padding rows outside 14..49 never get a
gradient through the model's input layout, so optimising the 36x64 frames is the same procedure.)

One iteration walks the movie in 32-frame sub-batches, stride 8, the last pinned to the end. Every sub-batch
gives its own input gradient (one backward pass on its own loss), which is divided by its L2 norm; gradients are
averaged over the sub-batches covering each frame, then over models, multiplied by the update mask and clipped to
[-1, 1]. The step is first-moment-only Adam with lr 1000 and a 10-iteration linear warm-up.

Sub-batches are independent copies of the movie, so they can be evaluated together in one batch (`chunk` of
them per forward pass) with exactly the gradients of the sequential published loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from v1recon import PUBLISHED_ITERATIONS
from v1recon.recon.objective import CLIP_FRAMES, escape_saddle, poisson_nll, predict_clips

SUBBATCH_STRIDE = 8
GRAD_NORM_EPS = 1e-6
PAPER_LR = 1000.0
PAPER_ITERATIONS = PUBLISHED_ITERATIONS
WARMUP_ITERATIONS = 10
BETA1, BETA2 = 0.9, 0.999


def subbatch_starts(n_frames: int, size: int = CLIP_FRAMES, stride: int = SUBBATCH_STRIDE) -> list[int]:
    """First frames of the published sub-batches: every `stride` frames, the last pinned to the end.

    300 frames -> 0, 8, ..., 264, 268 (35 sub-batches).
    """
    if n_frames < size:
        raise ValueError(f"a movie of {n_frames} frames is shorter than one {size}-frame sub-batch")
    starts = list(range(0, n_frames - size + 1, stride))
    if starts[-1] != n_frames - size:
        starts.append(n_frames - size)
    return starts


def warmup_lr(iteration: int, lr: float = PAPER_LR, warmup: int = WARMUP_ITERATIONS) -> float:
    """Linear warm-up: lr * i / warmup for the first `warmup` iterations (iteration 0 takes no step)."""
    return lr * min(1.0, iteration / warmup)


def paper_step(momentum: torch.Tensor, grad: torch.Tensor, iteration: int, lr: float = PAPER_LR) -> torch.Tensor:
    """First-moment-only Adam as published; updates `momentum` in place and returns the step to subtract.

    m = 0.9 m + 0.1 g;  lr_t = lr_i * sqrt(1 - 0.999^(i+1)) / (1 - 0.9^(i+1));  step = lr_t * m / (1 - 0.9^(i+1)),
    with lr_i the warmed-up learning rate of iteration i (0-based).
    """
    momentum.mul_(BETA1).add_(grad, alpha=1 - BETA1)
    bias1 = 1 - BETA1 ** (iteration + 1)
    lr_t = warmup_lr(iteration, lr) * math.sqrt(1 - BETA2 ** (iteration + 1)) / bias1
    return momentum * (lr_t / bias1)


def normalise_per_item(grad: torch.Tensor, eps: float = GRAD_NORM_EPS) -> torch.Tensor:
    """Divide each item of the leading dimension by its own L2 norm (+ eps)."""
    norms = grad.flatten(1).norm(dim=1) + eps
    return grad / norms.view(-1, *([1] * (grad.ndim - 1)))


def subbatch_gradient(
    encoder,
    video: torch.Tensor,
    behaviour: torch.Tensor,
    responses: torch.Tensor,
    starts: Sequence[int],
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-frame average of the L2-normalised sub-batch gradients of one model.

    video (B, T, H, W), behaviour (B, 4, T), responses (B, N, T) -> gradient (B, T, H, W), mean loss (B,),
    window passes.
    """
    B, T = video.shape[:2]
    grad_sum = torch.zeros_like(video)
    count = torch.zeros(T, device=video.device, dtype=video.dtype)
    loss_sum = torch.zeros(B, device=video.device)
    passes = 0.0
    pairs = [(b, s) for s in starts for b in range(B)]
    for k in range(0, len(pairs), chunk):
        part = pairs[k : k + chunk]
        clips = torch.stack([video[b, s : s + CLIP_FRAMES] for b, s in part]).detach().requires_grad_(True)
        beh = torch.stack([behaviour[b, :, s : s + CLIP_FRAMES] for b, s in part])
        resp = torch.stack([responses[b, :, s : s + CLIP_FRAMES] for b, s in part])
        pred, cost = predict_clips(encoder, clips, beh)
        losses = poisson_nll(pred.float(), resp)  # one loss per sub-batch
        (grad,) = torch.autograd.grad(losses.sum(), clips)  # sub-batches are independent: own gradients
        grad = normalise_per_item(grad)
        passes += cost
        for j, (b, s) in enumerate(part):
            grad_sum[b, s : s + CLIP_FRAMES] += grad[j]
            loss_sum[b] += losses[j].detach()
    for s in starts:
        count[s : s + CLIP_FRAMES] += 1
    return grad_sum / count.view(1, T, 1, 1), loss_sum / len(starts), passes


def reconstruct_paper(
    encoders: Sequence,
    responses: torch.Tensor,
    behaviour: torch.Tensor,
    update_mask: torch.Tensor,
    iterations: int = PAPER_ITERATIONS,
    lr: float = PAPER_LR,
    chunk: int = 35,
    seed: int = 0,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, float, int]:
    """Optimise one movie per trial jointly through `encoders` (gradient ensembling when several).

    responses (B, N, T) ReLU'd recorded traces, behaviour (B, 4, T), update_mask (H, W) binary.
    callback(iteration, video (B, T, H, W), loss (B,)) after every iteration (loss before the step).
    A movie whose first gradient is exactly zero (uniform grey is a saddle point of energy-model encoders such as
    the in-silico ground truth) restarts once from grey + N(0, 1) grey levels inside the mask (`escape_saddle`).
    Returns the movie (B, T, H, W) in [0, 255], window passes, iterations run.
    """
    B, _, T = responses.shape
    H, W = update_mask.shape
    video = torch.full((B, T, H, W), 127.5, device=responses.device)
    momentum = torch.zeros_like(video)
    starts = subbatch_starts(T)
    mask = (update_mask > 0).to(video.dtype)
    passes = 0.0

    def gradient() -> tuple[torch.Tensor, torch.Tensor, float]:
        grads, losses, cost = [], [], 0.0
        for enc in encoders:
            g, loss, c = subbatch_gradient(enc, video, behaviour, responses, starts, chunk)
            grads.append(g)
            losses.append(loss)
            cost += c
        return (torch.stack(grads).mean(0) * mask).clamp_(-1, 1), torch.stack(losses).mean(0), cost

    for i in range(iterations):
        grad, loss, cost = gradient()
        passes += cost
        if i == 0 and escape_saddle(video, grad, mask, seed):
            grad, loss, cost = gradient()  # from the jittered start
            passes += cost
        step = paper_step(momentum, grad, i, lr)
        if callback is not None:
            callback(i, video, loss)
        video = (video - step).clamp_(0, 255)
    return video, passes, iterations
