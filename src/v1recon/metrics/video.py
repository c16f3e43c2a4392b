"""How close a reconstructed movie is to the movie the mouse saw.

Inputs are one movie each: `recon` and `truth` (T, H, W) grey levels 0..255 (numpy arrays or torch tensors),
and an evaluation `mask` (H, W) bool (True = evaluated pixel; None = the whole frame). Every measure uses the
frames from `start` on (default: frame 30, the first with a full second of context) and the pixels inside the
mask. Correlations of a constant signal are undefined and score 0.

    video_correlation          the headline: one Pearson r over all masked pixels of all evaluated frames
    frame_correlation          spatial r inside the mask per frame, averaged over frames
    ssim_global                published SSIM: unwindowed over the masked pixels of a frame, c1 = c2 = 255^2
    ssim_windowed              standard 7x7 windowed SSIM (scikit-image), its map averaged inside the mask
    rmse, psnr                 grey-level error (PSNR against a peak of 255)
    motion_energy_correlation  r between the per-frame mean |frame difference| of the two movies
    full_screen_correlation    video_correlation without the mask
"""

from __future__ import annotations

from typing import Any

import numpy as np

from v1recon import EVAL_START_FRAME
from v1recon.errors import V1ReconError
from v1recon.metrics.encoder import NeuronScores, pearson, pearson_per_row, single_trial_correlation

PEAK = 255.0  # grey-level range of the stimulus


def as_movie(x: Any, what: str, dtype=np.float64) -> np.ndarray:
    """One movie (T, H, W) as a finite numpy array (torch tensors accepted); `what` names it in errors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    v = np.asarray(x, dtype=dtype)
    if v.ndim != 3:
        raise V1ReconError(f"{what}: expected one movie (T, H, W), got shape {v.shape}.")
    if not np.all(np.isfinite(v)):
        raise V1ReconError(f"{what}: movie contains NaN or infinite values.")
    return v


def _as_mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.shape != shape:
        raise V1ReconError(f"evaluation mask has shape {m.shape}, the frames are {shape}.")
    if m.dtype != bool:
        if not np.all((m == 0) | (m == 1)):
            raise V1ReconError("evaluation mask must be boolean (threshold an alpha mask at 1 first).")
        m = m.astype(bool)
    if not m.any():
        raise V1ReconError("evaluation mask is empty: no pixel would be evaluated.")
    return m


def _prepare(recon: Any, truth: Any, mask: Any, start: int, min_frames: int = 1):
    """Check shapes and return (recon, truth) cut to the evaluated frames, and the bool mask."""
    r = as_movie(recon, "reconstruction")
    t = as_movie(truth, "ground truth")
    if r.shape != t.shape:
        raise V1ReconError(f"reconstruction shape {r.shape} differs from ground-truth shape {t.shape}.")
    m = _as_mask(mask, r.shape[1:])
    if start < 0:
        raise V1ReconError(f"start frame must be >= 0, got {start}.")
    if r.shape[0] - start < min_frames:
        raise V1ReconError(
            f"movie has {r.shape[0]} frames; evaluating from frame {start} needs at least {start + min_frames}."
        )
    return r[start:], t[start:], m


def video_correlation(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> float:
    """One Pearson r over all masked pixels of all frames from `start` on, flattened (the headline measure)."""
    r, t, m = _prepare(recon, truth, mask, start)
    return pearson(r[:, m], t[:, m])


def full_screen_correlation(recon: Any, truth: Any, start: int = EVAL_START_FRAME) -> float:
    """video_correlation over every pixel of the frame (no evaluation mask)."""
    return video_correlation(recon, truth, None, start)


def frame_correlations(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> np.ndarray:
    """Spatial Pearson r inside the mask for each frame from `start` on -> (T - start,); 0 for flat frames."""
    r, t, m = _prepare(recon, truth, mask, start)
    return pearson_per_row(r[:, m], t[:, m])


def frame_correlation(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> float:
    """Mean over frames of the spatial correlation inside the mask."""
    return float(frame_correlations(recon, truth, mask, start).mean())


def ssim_global(
    recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME, k1: float = 1.0, k2: float = 1.0
) -> float:
    """SSIM as published: one unwindowed SSIM per frame over its masked pixels, averaged over frames.

    SSIM = (2 mu_x mu_y + c1)(2 cov_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(var_x + var_y + c2)), with
    c1 = (k1 * 255)^2 and c2 = (k2 * 255)^2 and population (co)variances. The published k1 = k2 = 1 makes
    the constants large, so values sit close to 1 and differences between methods look small.
    """
    r, t, m = _prepare(recon, truth, mask, start)
    x, y = r[:, m], t[:, m]
    c1, c2 = (k1 * PEAK) ** 2, (k2 * PEAK) ** 2
    mx, my = x.mean(axis=1), y.mean(axis=1)
    vx, vy = x.var(axis=1), y.var(axis=1)
    cov = ((x - mx[:, None]) * (y - my[:, None])).mean(axis=1)
    ssim = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim.mean())


def ssim_windowed(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> float:
    """Standard windowed SSIM per frame (scikit-image defaults: 7x7 uniform window, data_range 255).

    The full-frame SSIM map is averaged over the masked pixels, then over frames; windows at the mask edge
    see pixels outside it.
    """
    from skimage.metrics import structural_similarity

    r, t, m = _prepare(recon, truth, mask, start)
    if min(r.shape[1:]) < 7:
        raise V1ReconError(f"windowed SSIM needs frames of at least 7x7 pixels, got {r.shape[1:]}.")
    per_frame = []
    for a, b in zip(r, t, strict=True):
        _, ssim_map = structural_similarity(a, b, data_range=PEAK, full=True)
        per_frame.append(ssim_map[m].mean())
    return float(np.mean(per_frame))


def rmse(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> float:
    """Root mean squared grey-level error over the masked pixels of the evaluated frames."""
    r, t, m = _prepare(recon, truth, mask, start)
    return float(np.sqrt(np.mean((r[:, m] - t[:, m]) ** 2)))


def psnr(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> float:
    """Peak signal-to-noise ratio in dB, 20 log10(255 / rmse); inf for identical movies."""
    e = rmse(recon, truth, mask, start)
    return float("inf") if e == 0 else float(20 * np.log10(PEAK / e))


def motion_energy(video: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> np.ndarray:
    """Mean |frame difference| inside the mask for each pair of consecutive frames from `start` on.

    Returns (T - start - 1,) grey levels per frame.
    """
    v = as_movie(video, "movie")
    m = _as_mask(mask, v.shape[1:])
    if start < 0 or v.shape[0] - start < 2:
        raise V1ReconError(f"motion energy needs at least 2 frames from frame {start} on; movie has {v.shape[0]}.")
    return np.abs(np.diff(v[start:, m], axis=0)).mean(axis=1)


def motion_energy_correlation(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> float:
    """Pearson r between the motion-energy traces of reconstruction and truth (0 if either is flat)."""
    _prepare(recon, truth, mask, start, min_frames=3)
    return pearson(motion_energy(recon, mask, start), motion_energy(truth, mask, start))


def response_consistency(predicted_from_recon: Any, recorded: Any, skip: int = EVAL_START_FRAME) -> NeuronScores:
    """Single-trial correlation between responses predicted from the reconstruction and the recorded ones.

    predicted_from_recon, recorded: one (N, T) trial, a list of them, or a (K, N, T) array. Frames before
    `skip` (default: the evaluation start) are left out.
    """

    def as_list(x: Any) -> Any:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return [x] if isinstance(x, np.ndarray) and x.ndim == 2 else x

    return single_trial_correlation(as_list(predicted_from_recon), as_list(recorded), skip=skip)


def video_metrics(recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME) -> dict[str, float]:
    """Every video measure of one movie as plain floats (keys named as the functions of this module).

    Also motion_energy_recon / motion_energy_truth (mean grey-level change per frame inside the mask).
    """
    r, t, m = _prepare(recon, truth, mask, start, min_frames=3)
    # Pass the cut movies with start=0 so every measure sees the same frames.
    me_r, me_t = motion_energy(r, m, 0), motion_energy(t, m, 0)
    return {
        "video_correlation": video_correlation(r, t, m, 0),
        "frame_correlation": frame_correlation(r, t, m, 0),
        "ssim_global": ssim_global(r, t, m, 0),
        "ssim_windowed": ssim_windowed(r, t, m, 0),
        "rmse": rmse(r, t, m, 0),
        "psnr": psnr(r, t, m, 0),
        "motion_energy_correlation": pearson(me_r, me_t),
        "motion_energy_recon": float(me_r.mean()),
        "motion_energy_truth": float(me_t.mean()),
        "full_screen_correlation": full_screen_correlation(r, t, 0),
    }


def average_metrics(per_movie: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each measure over movies (the paper reports per-movie values averaged over movies)."""
    if not per_movie:
        raise V1ReconError("no movies to average metrics over.")
    keys = [k for k in per_movie[0] if all(k in m for m in per_movie)]
    return {k: float(np.mean([m[k] for m in per_movie])) for k in keys}
