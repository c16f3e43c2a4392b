"""Is a confidence movie honest? Its predicted standard deviation against the reconstruction's actual error.

Inputs per trial: `std` (T, H, W) predicted standard deviation of the reconstruction error in grey levels (a
confidence movie, v1recon.recon.confidence), `recon` and `truth` (T, H, W) grey levels, the evaluation `mask`
(H, W) bool; like the video metrics, only frames >= `start` (default 30) inside the mask count.

    calibration_metrics(std, recon, truth, mask)   one trial: the numbers below as plain floats and lists
    pooled_calibration([(std, recon, truth, mask), ...])   the same over pixel-frames of many trials (a job)
    fit_scale(std, error)                          one factor s so that s * std matches the error on average

    spearman                    Spearman rank correlation between std and |error| over pixel-frames (higher = the
                                estimate ranks where the reconstruction is wrong)
    reliability                 bins of equal count by predicted std -> mean predicted std and observed RMS error
                                per bin; a calibrated estimate lies on the diagonal
    slope, intercept            least-squares line through the bins (observed RMS = slope * predicted + intercept);
                                calibrated: slope 1, intercept 0
    rms_ratio                   RMS error / RMS predicted std over all pixel-frames (1 = right overall level)
    coverage_1sd                fraction of pixel-frames with |error| <= std (0.683 for a calibrated Gaussian)
    frame_spearman_correlation  Spearman between the frame's mean predicted std and its spatial correlation with
                                the truth (negative = frames predicted uncertain are reconstructed worse)
    frame_spearman_rmse         Spearman between the frame's RMS predicted std and its RMS error
    frame_reliability, frame_slope   the reliability diagram and its slope over frames instead of pixel-frames
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from v1recon import EVAL_START_FRAME
from v1recon.errors import V1ReconError
from v1recon.metrics.encoder import pearson_per_row
from v1recon.metrics.video import _prepare, as_movie

RELIABILITY_BINS = 10
STD_FLOOR = 1.0  # grey levels: no pixel is known better than the stimulus' quantisation (weights 1 / std^2)
MAX_POOLED_POINTS = 2_000_000  # pooled Spearman: a regular subsample beyond this many pixel-frames


def _points(std: Any, recon: Any, truth: Any, mask: Any, start: int):
    """(predicted std, |error|) per evaluated pixel-frame as (F, P) arrays (frames x mask pixels)."""
    r, t, m = _prepare(recon, truth, mask, start)
    s = as_movie(std, "confidence")
    if s.shape != np.shape(recon):
        raise V1ReconError(f"confidence shape {s.shape} differs from the reconstruction shape {np.shape(recon)}.")
    if np.any(s[start:, m] < 0):
        raise V1ReconError("confidence: a predicted standard deviation is negative.")
    return s[start:, m], np.abs(r[:, m] - t[:, m]), r[:, m], t[:, m]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two flat arrays; 0 when either is constant."""
    x, y = np.ravel(x), np.ravel(y)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def reliability(std: np.ndarray, error: np.ndarray, bins: int = RELIABILITY_BINS) -> dict[str, list[float]]:
    """Equal-count bins of predicted std -> {"std": mean predicted std, "rms_error": observed RMS |error|,
    "count": points} per bin (bins with tied edges merge, so there may be fewer)."""
    std, error = np.ravel(std).astype(np.float64), np.ravel(error).astype(np.float64)
    if std.size == 0:
        raise V1ReconError("reliability diagram: no pixel-frames to bin.")
    order = np.argsort(std, kind="stable")
    out: dict[str, list[float]] = {"std": [], "rms_error": [], "count": []}
    for part in np.array_split(order, min(bins, std.size)):
        if part.size == 0:
            continue
        out["std"].append(float(std[part].mean()))
        out["rms_error"].append(float(np.sqrt(np.mean(error[part] ** 2))))
        out["count"].append(int(part.size))
    return out


def line_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y on x; slope NaN when x does not vary."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), float(np.mean(y)) if y.size else float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def fit_scale(std: np.ndarray, error: np.ndarray) -> float:
    """The factor s with mean((s * std)^2) = mean(error^2): one number that sets the overall level right.

    Fit it on trials other than those it is judged on (training-tier trials)."""
    std, error = np.ravel(std).astype(np.float64), np.ravel(error).astype(np.float64)
    denom = np.mean(std**2)
    if not denom > 0:
        raise V1ReconError("cannot fit a confidence scale: every predicted standard deviation is 0.")
    return float(np.sqrt(np.mean(error**2) / denom))


def _summary(std: np.ndarray, error: np.ndarray, frame_std, frame_rmse, frame_r, bins: int, rank: bool = True):
    rel = reliability(std, error, bins)
    slope, intercept = line_fit(rel["std"], rel["rms_error"])
    frame_rel = reliability(frame_std, frame_rmse, bins)
    frame_slope, _ = line_fit(frame_rel["std"], frame_rel["rms_error"])
    return {
        "spearman": spearman(std, error) if rank else float("nan"),
        "slope": slope,
        "intercept": intercept,
        "rms_ratio": float(np.sqrt(np.mean(error.astype(np.float64) ** 2) / max(np.mean(std**2), 1e-12))),
        "coverage_1sd": float(np.mean(error <= std)),
        "mean_std": float(np.mean(std)),
        "rms_error": float(np.sqrt(np.mean(error.astype(np.float64) ** 2))),
        "frame_spearman_correlation": spearman(frame_std, frame_r),
        "frame_spearman_rmse": spearman(frame_std, frame_rmse),
        "frame_slope": frame_slope,
        "reliability": rel,
        "frame_reliability": frame_rel,
    }


def _frame_terms(s: np.ndarray, e: np.ndarray, r: np.ndarray, t: np.ndarray):
    """Per frame: RMS predicted std, RMS error, spatial correlation with the truth."""
    return np.sqrt(np.mean(s**2, axis=1)), np.sqrt(np.mean(e**2, axis=1)), pearson_per_row(r, t)


def calibration_metrics(
    std: Any, recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME, bins: int = RELIABILITY_BINS
) -> dict[str, Any]:
    """Calibration of one trial's confidence movie (see the module docstring for every key)."""
    s, e, r, t = _points(std, recon, truth, mask, start)
    return _summary(s.ravel(), e.ravel(), *_frame_terms(s, e, r, t), bins)


def pooled_calibration(
    trials: Sequence[tuple[Any, Any, Any, Any]],
    start: int = EVAL_START_FRAME,
    bins: int = RELIABILITY_BINS,
    scale: float = 1.0,
) -> dict[str, Any]:
    """Calibration over the pixel-frames (and frames) of many trials: (std, recon, truth, mask) each.

    `scale` multiplies every std first (a factor fitted elsewhere). Beyond MAX_POOLED_POINTS pixel-frames the
    Spearman correlation uses a regular subsample (every k-th point); bins and slopes use every point."""
    if not trials:
        raise V1ReconError("no trials to pool the calibration over.")
    stds, errs, fs, fe, fr = [], [], [], [], []
    for std, recon, truth, mask in trials:
        s, e, r, t = _points(std, recon, truth, mask, start)
        s = s * scale
        stds.append(s.ravel().astype(np.float32))
        errs.append(e.ravel().astype(np.float32))
        for acc, part in zip((fs, fe, fr), _frame_terms(s, e, r, t), strict=True):
            acc.append(part)
    s, e = np.concatenate(stds), np.concatenate(errs)
    out = _summary(s, e, np.concatenate(fs), np.concatenate(fe), np.concatenate(fr), bins, rank=False)
    stride = max(1, int(np.ceil(s.size / MAX_POOLED_POINTS)))
    out["spearman"] = spearman(s[::stride], e[::stride])
    out["points"] = int(s.size)
    out["trials"] = len(trials)
    return out


def pooled_points(trials: Sequence[tuple[Any, Any, Any, Any]], start: int = EVAL_START_FRAME):
    """(predicted std, |error|) flat float32 arrays over the evaluated pixel-frames of many trials (to fit_scale)."""
    parts = [_points(std, recon, truth, mask, start)[:2] for std, recon, truth, mask in trials]
    if not parts:
        raise V1ReconError("no trials to pool the calibration over.")
    return (
        np.concatenate([p[0].ravel() for p in parts]).astype(np.float32),
        np.concatenate([p[1].ravel() for p in parts]).astype(np.float32),
    )


def weighted_video_metrics(
    std: Any, recon: Any, truth: Any, mask: Any = None, start: int = EVAL_START_FRAME
) -> dict[str, float]:
    """Video correlation and RMSE with each pixel-frame weighted by its confidence, 1 / max(std, 1)^2.

    Beside the unweighted ones: how good the reconstruction is where it claims to be good."""
    s, e, r, t = _points(std, recon, truth, mask, start)
    w = 1.0 / np.maximum(s, STD_FLOOR) ** 2
    w = (w / w.sum()).ravel()
    x, y = r.ravel(), t.ravel()
    dx, dy = x - np.sum(w * x), y - np.sum(w * y)
    denom = np.sqrt(np.sum(w * dx**2) * np.sum(w * dy**2))
    return {
        "video_correlation_weighted": float(np.sum(w * dx * dy) / denom) if denom > 0 else 0.0,
        "rmse_weighted": float(np.sqrt(np.sum(w * e.ravel() ** 2))),
    }
