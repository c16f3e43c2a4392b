"""Per-pixel confidence of a reconstruction: the predicted standard deviation of its error, in grey levels.

Two estimates, both through the encoder contract only (a trained ensemble or the in-silico mouse's true model):

    spread = ensemble_spread(result.per_model, result.smooth_sigma)            # (T, 36, 64)
    std = laplace_std(encoders, videos, responses, behaviours, update_mask, prior_std)   # [(T, 36, 64), ...]

- Ensemble spread: per pixel and frame, the standard deviation across the members of the ensemble (each model's
  own reconstruction, and each restart from a jittered start when `ReconConfig.restarts` > 1), every member
  clipped and blurred as the ensemble average is. Nearly free: the members exist anyway. It measures how much the
  members disagree, not how far they all are from the truth (a bias they share is invisible to it), and where no
  neuron constrains a pixel every member stays at the grey start, so the spread there is 0. A scale factor fitted
  on other trials (v1recon.metrics.calibration.fit_scale) corrects the first; `fill_outside` the second outside
  the update mask, where the reconstruction is fixed grey and says nothing.
- Laplace: a Gaussian approximation of the posterior over the movie at the reconstruction. The negative log
  posterior is the Poisson negative log-likelihood of the recorded (ReLU'd) responses summed over neurons and
  frames (the reconstruction loss is its mean, so the curvature of the sum is N*T times that of the loss; with
  several models their likelihoods are averaged, as gradient ensembling does) plus an independent Gaussian prior
  per pixel with standard deviation `prior_std` grey levels (the spread of the stimulus itself, e.g.
  `stimulus_std` of the mouse's training movies). The diagonal of the likelihood's Hessian with respect to the
  video, h (1 / grey level^2), is estimated by Hutchinson's method, mean over Rademacher probes z of z * (H z),
  with Hessian-vector products by double back-propagation; negative estimates (the likelihood is not convex
  in the video, and a few probes are noisy) count as 0. The posterior standard deviation per pixel-frame is
  (max(h, 0) + 1 / prior_std^2)^(-1/2) grey levels: the prior keeps it finite, equal to prior_std, wherever the
  Hessian diagonal is ~0 (outside the population receptive field, in frames no response depends on) and outside
  the update mask. The diagonal ignores the correlations between pixels (a neuron constrains a weighted sum over
  its receptive field, not each pixel), so it is over-confident in absolute terms; the calibration scale factor
  corrects the overall level, the ranking of pixels is what the estimate offers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from v1recon.errors import V1ReconError
from v1recon.recon.ensemble import smooth_movie
from v1recon.recon.objective import encoder_device, frozen, poisson_nll

METHODS = ("ensemble", "laplace")
LAPLACE_PROBES = 8  # Rademacher probes per trial (each one Hessian-vector product per model)
DIAGONAL_SIGMA = 1.0  # frames and pixels: local average of the Hutchinson estimate (its noise falls ~ 1/neighbours)
DEFAULT_PRIOR_STD = 50.0  # grey levels; used when no training movie gives the stimulus spread


def ensemble_spread(members: np.ndarray, smooth_sigma: float = 0.0) -> np.ndarray:
    """Standard deviation (ddof = 1) across ensemble members (K, T, H, W) -> (T, H, W) float32 grey levels.

    Each member is clipped to [0, 255] and blurred with `smooth_sigma` (frames, pixels) first, as the ensemble
    average is (`Reconstruction.smooth_sigma`), so the spread is that of the averaged quantity's members.
    """
    members = np.asarray(members, dtype=np.float64)
    if members.ndim != 4:
        raise V1ReconError(f"ensemble members must be (K, T, H, W), got shape {members.shape}.")
    if members.shape[0] < 2:
        raise V1ReconError(
            f"the ensemble spread needs at least 2 reconstructions of the trial, got {members.shape[0]} "
            "(use several models or restarts)."
        )
    members = np.clip(members, 0, 255)
    if smooth_sigma > 0:
        members = np.stack([gaussian_filter(m, sigma=smooth_sigma, mode="reflect") for m in members])
    centred = members - members.mean(axis=0)
    return np.sqrt((centred**2).sum(axis=0) / (members.shape[0] - 1)).astype(np.float32)


def fill_outside(std: np.ndarray, update_mask: np.ndarray, value: float) -> np.ndarray:
    """`std` (T, H, W) with the pixels outside the update mask (H, W) set to `value` (the prior std)."""
    out = np.array(std, dtype=np.float32, copy=True)
    out[:, ~(np.asarray(update_mask) > 0)] = value
    return out


def stimulus_std(videos: Sequence[np.ndarray]) -> float:
    """The spread of the stimulus, grey levels: std of all pixel values of `videos` (each (T, H, W))."""
    if not videos:
        return DEFAULT_PRIOR_STD
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in videos])
    return float(values.std())


# -- Hutchinson's estimator -----------------------------------------------------------------------------------------
def rademacher(shape: Sequence[int], generator: torch.Generator, device=None) -> torch.Tensor:
    """A tensor of independent +-1 entries (float32), drawn on the CPU from `generator`, moved to `device`."""
    z = torch.randint(0, 2, tuple(shape), generator=generator, dtype=torch.int8).float() * 2 - 1
    return z.to(device) if device is not None else z


def hutchinson_diagonal(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    like: torch.Tensor,
    probes: int,
    seed: int = 0,
    support: torch.Tensor | None = None,
    on_probe: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Estimate diag(H) of a symmetric H given only products H z: mean over Rademacher z of z * (H z).

    Unbiased (E[z_i z_j] = 1 if i = j else 0); the variance of entry i per probe is sum_{j != i} H_ij^2, so it is
    exact for a diagonal H and needs many probes (or local averaging) where H couples many entries.
    `like`: a tensor of the shape and device of H's input; returns the same shape. `support` (broadcastable to
    it, 0/1): probes are 0 outside, so the estimate is the diagonal of H restricted to the support (0 outside),
    without the noise that couplings to entries outside it would add.
    """
    if probes < 1:
        raise V1ReconError(f"the Hutchinson estimator needs at least 1 probe, got {probes}.")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    total = torch.zeros_like(like, dtype=torch.float32)
    for _ in range(probes):
        z = rademacher(like.shape, gen, like.device)
        if support is not None:
            z = z * support
        total += z * hvp(z)
        if on_probe is not None:
            on_probe()
    return total / probes


def nll_sum(encoders: Sequence, video: torch.Tensor, behaviour: torch.Tensor, responses: torch.Tensor):
    """Poisson negative log-likelihood summed over neurons and frames, averaged over models: (B,)."""
    total = 0.0
    for enc in encoders:
        pred = enc(video, behaviour).float()
        total = total + poisson_nll(pred, responses) * (pred.shape[-2] * pred.shape[-1])
    return total / len(encoders)


def likelihood_hvp(encoders: Sequence, video: torch.Tensor, behaviour: torch.Tensor, responses: torch.Tensor):
    """Hessian-vector products of `nll_sum` (summed over the batch; trials do not interact) at `video`.

    Returns hvp(z) -> H z, both (B, T, H, W); the gradient graph is built once and kept for every probe.
    """
    x = video.detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(nll_sum(encoders, x, behaviour, responses).sum(), x, create_graph=True)

    def hvp(z: torch.Tensor) -> torch.Tensor:
        (hz,) = torch.autograd.grad(grad, x, grad_outputs=z, retain_graph=True)
        return hz.detach()

    return hvp


def posterior_std(diagonal: np.ndarray, prior_std: float) -> np.ndarray:
    """Per-pixel Gaussian posterior std (grey levels) from the likelihood's Hessian diagonal (1 / grey level^2)."""
    if not prior_std > 0:
        raise V1ReconError(f"the prior standard deviation must be positive, got {prior_std} grey levels.")
    precision = np.maximum(np.asarray(diagonal, dtype=np.float64), 0) + 1.0 / prior_std**2
    return (1.0 / np.sqrt(precision)).astype(np.float32)


def laplace_std(
    encoders: Sequence,
    videos: Sequence[np.ndarray],
    responses: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    update_mask: np.ndarray,
    prior_std: float,
    probes: int = LAPLACE_PROBES,
    seed: int = 0,
    diagonal_sigma: float = DIAGONAL_SIGMA,
    on_probe: Callable[[], None] | None = None,
) -> list[np.ndarray]:
    """Laplace posterior std (T, H, W) float32 grey levels for each trial, at its reconstruction `videos[i]`.

    responses (N, T) recorded traces (ReLU'd here, as for reconstruction), behaviours (4, T); see the module
    docstring for the model. `diagonal_sigma` (frames, pixels) averages the Hutchinson estimate locally before
    it is inverted (0 = none); pixels outside `update_mask` get `prior_std`. Trial i uses probe seed `seed + i`.
    """
    encoders = list(encoders)
    device = encoder_device(encoders[0], torch.device("cpu"))
    inside = np.asarray(update_mask) > 0
    support = torch.as_tensor(inside, dtype=torch.float32, device=device)
    out = []
    with frozen(encoders):
        for i, (video, resp, beh) in enumerate(zip(videos, responses, behaviours, strict=True)):
            v = torch.as_tensor(np.asarray(video, np.float32)[None], device=device)
            r = torch.as_tensor(np.asarray(resp, np.float32)[None], device=device).clamp_min(0)
            b = torch.as_tensor(np.asarray(beh, np.float32)[None], device=device)
            hvp = likelihood_hvp(encoders, v, b, r)
            diag = hutchinson_diagonal(hvp, v, probes, seed + i, support, on_probe)[0].cpu().numpy()
            diag = smooth_movie(diag, diagonal_sigma) if diagonal_sigma > 0 else diag
            out.append(fill_outside(posterior_std(diag, prior_std), inside, prior_std))
    return out
