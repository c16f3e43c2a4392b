"""Per-pixel confidence of a reconstruction: the predicted standard deviation of its error, in grey levels.

Three estimates, all through the encoder contract or the reconstruction alone (a trained ensemble or the in-silico
mouse's true model):

    spread = ensemble_spread(result.per_model, result.smooth_sigma)                      # (T, 36, 64)
    std = laplace_std(encoders, videos, responses, behaviours, update_mask, prior_std)   # [(T, 36, 64), ...]
    std = unexplained_std(result.video, prior_std)                                       # (T, 36, 64)

The prior shared by all three: before the neurons are seen, a pixel is the grey start (127.5) plus independent
Gaussian variation of `prior_std` grey levels (`stimulus_std`: the RMS deviation from grey of the mouse's
training movies, about 45 in silico). Outside the update mask the reconstruction is fixed grey and says nothing,
so every estimate is `prior_std` there (`fill_outside`).

- ensemble: per pixel and frame, the standard deviation across the members of the ensemble (each model's own
  reconstruction, and each restart from a jittered start when `ReconConfig.restarts` > 1), every member clipped
  and blurred as the ensemble average is. Nearly free: the members exist anyway. It measures how much the members
  disagree, not how far they all are from the truth: a bias they share (above all the attenuation of contrast that
  every early-stopped reconstruction has) is invisible to it, and where no neuron constrains a pixel every member
  stays at the grey start, so the spread there is 0.
- laplace: a Gaussian approximation of the posterior over the movie at the reconstruction. The negative log
  posterior is the Poisson negative log-likelihood of the recorded (ReLU'd) responses summed over neurons and
  frames (the reconstruction loss is its mean, so the curvature of the sum is N*T times that of the loss; with
  several models their likelihoods are averaged, as gradient ensembling does) plus the prior above. The diagonal
  of the likelihood's Hessian with respect to the pixels of the update mask, h (1 / grey level^2), is estimated by
  Hutchinson's method, mean over Rademacher probes z of z * (H z), with Hessian-vector products by double
  back-propagation, then averaged locally (`DIAGONAL_SIGMA`: one probe's estimate is dominated by the couplings
  between the pixels of a receptive field); negative estimates (the likelihood is not convex in the video) count
  as 0. The posterior standard deviation per pixel-frame is (max(h, 0) + 1 / prior_std^2)^(-1/2) grey levels:
  the prior keeps it finite, equal to prior_std, wherever the Hessian diagonal is ~0 (outside the population
  receptive field, in frames no response depends on). The diagonal ignores the correlations between pixels (a
  neuron constrains a weighted sum over its receptive field, not each pixel), and on the in-silico mouse h is at
  most about the prior precision, so the estimate stays close to prior_std; its ranking of pixels is what it offers.
- unexplained: the stimulus variance the reconstruction has not recovered. For a posterior mean m the law of total
  variance gives posterior variance = prior variance - E[(m - grey)^2]; with E[.] taken as a local average L of
  (m - grey)^2 over `UNEXPLAINED_SIGMA` frames and pixels, and written so that it stays positive (equal to first
  order in L / prior_std^2): std^2 = prior_std^2 / (1 + L / prior_std^2). Free, needs one reconstruction only,
  and sees where the reconstruction is attenuated towards grey, which is where its error is largest.

A single scale factor fitted on other trials (v1recon.metrics.calibration.fit_scale) may set any estimate's
overall level; it never changes its ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from v1recon.errors import V1ReconError
from v1recon.recon.ensemble import smooth_movie
from v1recon.recon.objective import encoder_device, frozen, poisson_nll

METHODS = ("ensemble", "laplace", "unexplained")
GREY = 127.5  # the reconstruction's start and the prior mean, grey levels
LAPLACE_PROBES = 8  # Rademacher probes per trial (each one Hessian-vector product per model)
# frames and pixels: local average of the Hutchinson estimate; in silico its split-half reliability with 8 probes
# is 0.07 per pixel-frame, 0.63 averaged with sigma 1 and 0.88 with sigma 2
DIAGONAL_SIGMA = 2.0
UNEXPLAINED_SIGMA = 2.0  # frames and pixels: the local average of (m - grey)^2 (chosen on training-tier trials)
DEFAULT_PRIOR_STD = 45.0  # grey levels; used when no training movie gives the stimulus spread


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
    """The prior std, grey levels: RMS deviation from grey (127.5) of all pixel values of `videos` (T, H, W)."""
    if not videos:
        return DEFAULT_PRIOR_STD
    squares = [np.mean((np.asarray(v, dtype=np.float64) - GREY) ** 2) for v in videos]
    sizes = [np.size(v) for v in videos]
    return float(np.sqrt(np.average(squares, weights=sizes)))


def unexplained_std(video: np.ndarray, prior_std: float, sigma: float = UNEXPLAINED_SIGMA) -> np.ndarray:
    """The stimulus variance a reconstruction (T, H, W) has not recovered, as a std (T, H, W) float32 grey levels:
    prior_std^2 / sqrt(prior_std^2 + L), L the local mean of (video - grey)^2 (Gaussian, `sigma` frames and
    pixels); see the module docstring."""
    if not prior_std > 0:
        raise V1ReconError(f"the prior standard deviation must be positive, got {prior_std} grey levels.")
    deviation = (np.asarray(video, dtype=np.float64) - GREY) ** 2
    local = gaussian_filter(deviation, sigma=sigma, mode="reflect") if sigma > 0 else deviation
    return (prior_std**2 / np.sqrt(prior_std**2 + local)).astype(np.float32)


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


def parse_methods(spec: str | None, members: int) -> list[str]:
    """--confidence: a method, a comma-separated list, "both" (ensemble and laplace), "all" or "none".

    None (the default) means ensemble when a trial has at least 2 members (models x restarts), else none."""
    if spec is None:
        return ["ensemble"] if members >= 2 else []
    names = {"both": ["ensemble", "laplace"], "all": list(METHODS), "none": []}
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        for name in names.get(part, [part]):
            if name not in METHODS:
                raise V1ReconError(
                    f"--confidence {spec!r}: unknown method {name!r}; choose from "
                    f"{', '.join(METHODS)}, both, all or none."
                )
            if name not in chosen:
                chosen.append(name)
    if "ensemble" in chosen and members < 2:
        raise V1ReconError(
            f"--confidence ensemble needs at least 2 reconstructions per trial, this job makes {members}: "
            "use several models or --restarts 2 or more."
        )
    return chosen


def array_names(methods: Sequence[str]) -> dict[str, str]:
    """npz array name -> method: `confidence` for one method, `confidence_<method>` for each of several."""
    if len(methods) == 1:
        return {"confidence": methods[0]}
    return {f"confidence_{m}": m for m in methods}


def confidence_movies(
    methods: Sequence[str],
    results: Sequence,
    encoders: Sequence,
    responses: Sequence[np.ndarray],
    behaviours: Sequence[np.ndarray],
    update_mask: np.ndarray,
    prior_std: float,
    probes: int = LAPLACE_PROBES,
    seed: int = 0,
    on_probe: Callable[[], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Per trial, method -> confidence movie (T, H, W) float32 grey levels, prior_std outside the update mask.

    results: the trials' `Reconstruction`s (v1recon.recon.reconstructor); the Laplace estimate is taken at each
    trial's reconstruction (the ensemble average) through all `encoders`."""
    out: list[dict[str, np.ndarray]] = [{} for _ in results]
    if "laplace" in methods:
        videos = [r.video for r in results]
        stds = laplace_std(
            encoders, videos, responses, behaviours, update_mask, prior_std, probes, seed, on_probe=on_probe
        )
        for movies, std in zip(out, stds, strict=True):
            movies["laplace"] = std
    for movies, res in zip(out, results, strict=True):
        if "ensemble" in methods:
            movies["ensemble"] = fill_outside(ensemble_spread(res.per_model, res.smooth_sigma), update_mask, prior_std)
        if "unexplained" in methods:
            movies["unexplained"] = fill_outside(unexplained_std(res.video, prior_std), update_mask, prior_std)
    return [{m: movies[m] for m in methods} for movies in out]
