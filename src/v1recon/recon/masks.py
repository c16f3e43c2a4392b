"""Transparency ("alpha") masks: the part of the screen a mouse's neurons see, learned through its encoders.

Published procedure (one mask per mouse): a map m (36 x 64 here; 64 x 64 on the padded published canvas)
starts as 0.05 * uniform noise. Each iteration takes 32 frames of two random training trials A and B, feeds
A * clip(m, 0, 1) + B * (1 - clip(m, 0, 1)) with A's behaviour, and scores MSE(prediction * (1 - mean(m)),
responses of A); the factor (1 - mean(m)) makes a large mask costly. The input gradient (per frame) is divided by
its L2 norm, clipped to [-1, 1], averaged over the 32 frames, blurred with a Gaussian of sigma 5 px, and
m -= 10 * gradient. Pixels with m >= 0.5 are updated during reconstruction, pixels with m >= 1 are evaluated.
Several encoders: their per-iteration gradients are averaged (each normalised on its own).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from v1recon import EVAL_THRESHOLD, FRAME_SHAPE, PUBLISHED_ITERATIONS, UPDATE_THRESHOLD
from v1recon.errors import V1ReconError
from v1recon.recon.objective import CLIP_FRAMES, encoder_device, frozen, predict_clips
from v1recon.recon.paper import GRAD_NORM_EPS

MASK_STEP = 10.0
MASK_BLUR_SIGMA = 5.0  # pixels
MASK_INIT_SCALE = 0.05


@dataclass
class AlphaMask:
    """A learned transparency map and the two masks thresholded from it."""

    alpha: np.ndarray  # (36, 64) float
    update_threshold: float = UPDATE_THRESHOLD
    eval_threshold: float = EVAL_THRESHOLD
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (iterations,)
    info: dict = field(default_factory=dict)

    @property
    def update_mask(self) -> np.ndarray:
        """(36, 64) bool: pixels the reconstruction may change."""
        return self.alpha >= self.update_threshold

    @property
    def eval_mask(self) -> np.ndarray:
        """(36, 64) bool: pixels where reconstructions are scored."""
        return self.alpha >= self.eval_threshold

    def with_thresholds(self, update: float | None = None, evaluation: float | None = None) -> AlphaMask:
        return AlphaMask(
            self.alpha,
            self.update_threshold if update is None else update,
            self.eval_threshold if evaluation is None else evaluation,
            self.loss,
            dict(self.info),
        )

    def summary(self) -> dict:
        return {
            "update_threshold": self.update_threshold,
            "eval_threshold": self.eval_threshold,
            "update_pixels": int(self.update_mask.sum()),
            "eval_pixels": int(self.eval_mask.sum()),
            "alpha_min": float(self.alpha.min()),
            "alpha_max": float(self.alpha.max()),
        }


def mask_path(run_dir: str | os.PathLike, mouse: str) -> Path:
    """Where the mask of a mouse lives in a run folder: RUN/masks/<mouse>.npz (+ .json sidecar)."""
    return Path(run_dir) / "masks" / f"{mouse}.npz"


def save_mask(path: str | os.PathLike, mask: AlphaMask, **sidecar) -> Path:
    """Write the mask (.npz: alpha, update_mask, eval_mask, loss, thresholds) and its JSON sidecar, atomically."""
    from v1recon.io import save_npz, write_sidecar

    path = Path(path)
    save_npz(
        path,
        alpha=mask.alpha.astype(np.float32),
        update_mask=mask.update_mask,
        eval_mask=mask.eval_mask,
        loss=np.asarray(mask.loss, np.float32),
        update_threshold=np.float32(mask.update_threshold),
        eval_threshold=np.float32(mask.eval_threshold),
    )
    write_sidecar(path, **sidecar, mask=mask.summary(), info=mask.info)
    return path


def load_mask(path: str | os.PathLike) -> AlphaMask:
    """Read a mask written by `save_mask`; a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise V1ReconError(f"{path}: mask file not found.")
    try:
        with np.load(path) as f:
            alpha = f["alpha"].astype(np.float32)
            upd, ev = float(f["update_threshold"]), float(f["eval_threshold"])
            loss = f["loss"] if "loss" in f else np.zeros(0, np.float32)
    except (KeyError, ValueError, OSError) as err:
        raise V1ReconError(f"{path}: not a v1recon mask file ({err}).") from err
    if alpha.shape != FRAME_SHAPE:
        raise V1ReconError(f"{path}: mask has shape {alpha.shape}, expected {FRAME_SHAPE}.")
    return AlphaMask(alpha, upd, ev, loss)


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of an (H, W) map, sigma in pixels (edges reflected)."""
    if sigma <= 0:
        return image
    out = gaussian_filter(image.detach().cpu().double().numpy(), sigma=sigma, mode="reflect")
    return torch.as_tensor(out, dtype=image.dtype, device=image.device)


def mask_gradient(encoder, alpha: torch.Tensor, clip_a, clip_b, behaviour_a, responses_a) -> tuple[torch.Tensor, float]:
    """One model's mask gradient (H, W) (normalised, clipped, time-averaged; not yet blurred) and its loss.

    clip_a, clip_b (T, H, W) grey levels; behaviour_a (4, T); responses_a (N, T). The map is repeated per frame
    so that the gradient is per frame, as published.
    """
    per_frame = alpha.detach().expand(clip_a.shape[0], *alpha.shape).clone().requires_grad_(True)
    a = per_frame.clamp(0, 1)
    video = clip_a * a + clip_b * (1 - a)
    pred, _ = predict_clips(encoder, video[None], behaviour_a[None])
    loss = torch.mean((pred[0].float() * (1 - per_frame.mean()) - responses_a) ** 2)
    (grad,) = torch.autograd.grad(loss, per_frame)
    grad = (grad / (grad.norm() + GRAD_NORM_EPS)).clamp(-1, 1).mean(0)
    return grad, float(loss.detach())


def train_alpha_mask(
    encoders: Sequence,
    sample_clip: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    iterations: int = PUBLISHED_ITERATIONS,
    seed: int = 0,
    step: float | None = None,
    blur_sigma: float = MASK_BLUR_SIGMA,
    update_threshold: float = UPDATE_THRESHOLD,
    eval_threshold: float = EVAL_THRESHOLD,
    progress: Callable[[int], None] | None = None,
) -> AlphaMask:
    """Learn a mouse's alpha mask through its encoders (see the module docstring).

    sample_clip(rng) -> (clip A (32, 36, 64), clip B (32, 36, 64), behaviour A (4, 32), responses A (N, 32)):
    32 frames of two random training trials. progress(1) is called after every iteration.
    step: the published 10 for 1000 iterations; by default a shorter run takes proportionally larger steps
    (10 x 1000 / iterations) so that the map travels as far as in the published run and the thresholds 0.5 / 1.0
    keep their meaning (the map grows about linearly with iterations: after 150 published-size steps its peak is
    only ~0.2 on the in-silico mouse).
    """
    if step is None:
        step = MASK_STEP * max(1.0, PUBLISHED_ITERATIONS / iterations)
    rng = np.random.default_rng(seed)
    device = encoder_device(encoders[0], torch.device("cpu"))
    alpha = torch.as_tensor(MASK_INIT_SCALE * rng.uniform(size=FRAME_SHAPE), dtype=torch.float32, device=device)
    losses = np.zeros(iterations, np.float32)

    def tensor(x):
        return torch.as_tensor(np.asarray(x, np.float32), device=device)

    with frozen(encoders):
        for i in range(iterations):
            clip_a, clip_b, beh_a, resp_a = (tensor(x) for x in sample_clip(rng))
            resp_a = resp_a.clamp_min(0)
            grads, loss = [], 0.0
            for enc in encoders:
                g, lv = mask_gradient(enc, alpha, clip_a, clip_b, beh_a, resp_a)
                grads.append(g)
                loss += lv / len(encoders)
            alpha = alpha - step * blur(torch.stack(grads).mean(0), blur_sigma)
            losses[i] = loss
            if progress is not None:
                progress(1)
    info = {"iterations": iterations, "seed": seed, "step": step, "blur_sigma": blur_sigma, "models": len(encoders)}
    return AlphaMask(alpha.cpu().numpy(), update_threshold, eval_threshold, losses, info)


def recording_clip_sampler(recording, trial_ids: Sequence[int], frames: int = CLIP_FRAMES):
    """sample_clip for `train_alpha_mask` drawing from a recording's trials (two distinct random trials A, B)."""
    lengths = {info.trial_id: info.length for info in recording.trials}
    ids = [t for t in trial_ids if lengths.get(t, 0) >= frames]
    if len(ids) < 2:
        raise V1ReconError(f"{recording.path}: the mask needs at least 2 training trials of >= {frames} frames.")

    def sample(rng: np.random.Generator):
        a, b = rng.choice(len(ids), size=2, replace=False)
        ta, tb = recording.trial(ids[a]), recording.trial(ids[b])
        sa = int(rng.integers(ta.video.shape[0] - frames + 1))
        sb = int(rng.integers(tb.video.shape[0] - frames + 1))
        return (
            ta.video[sa : sa + frames],
            tb.video[sb : sb + frames],
            ta.behaviour[:, sa : sa + frames],
            ta.responses[:, sa : sa + frames],
        )

    return sample


def draw_mask(path: str | os.PathLike, mask: AlphaMask, frame: np.ndarray, title: str = "") -> Path:
    """PNG: a frame with the update (dashed) and evaluation (solid) mask outlines, beside the alpha map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v1recon.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    axes[0].imshow(frame, cmap="gray", vmin=0, vmax=255)
    for level, style in ((mask.update_threshold, "--"), (mask.eval_threshold, "-")):
        if mask.alpha.min() < level < mask.alpha.max():
            axes[0].contour(mask.alpha, levels=[level], colors="tab:orange", linestyles=style, linewidths=1.2)
    axes[0].set_title(f"{title} update >= {mask.update_threshold:g} (dashed), eval >= {mask.eval_threshold:g}")
    im = axes[1].imshow(mask.alpha, cmap="magma")
    axes[1].set_title("alpha map")
    fig.colorbar(im, ax=axes[1], fraction=0.03)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)
