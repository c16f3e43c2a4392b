"""Calibration of confidence movies: known answers on synthetic errors drawn with a known standard deviation."""

from __future__ import annotations

import numpy as np
import pytest

from v1recon.errors import V1ReconError
from v1recon.metrics.calibration import (
    calibration_metrics,
    fit_scale,
    pooled_calibration,
    pooled_points,
    reliability,
    weighted_video_metrics,
)
from v1recon.metrics.video import rmse, video_correlation


def _calibrated_trial(seed: int = 0, frames: int = 60):
    """truth, recon = truth + N(0, std^2) with a std that varies over pixels and frames, the std, a mask."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(40, 215, size=(frames, 36, 64))
    std = rng.uniform(2, 30, size=(frames, 36, 64))
    recon = truth + rng.normal(size=truth.shape) * std
    mask = np.zeros((36, 64), bool)
    mask[8:28, 16:48] = True
    return std, recon, truth, mask


def test_calibrated_estimate_lies_on_the_diagonal():
    std, recon, truth, mask = _calibrated_trial()
    c = calibration_metrics(std, recon, truth, mask)
    assert c["spearman"] > 0.3
    assert c["slope"] == pytest.approx(1.0, abs=0.05) and abs(c["intercept"]) < 1.0
    assert c["rms_ratio"] == pytest.approx(1.0, abs=0.02)
    assert c["coverage_1sd"] == pytest.approx(0.683, abs=0.01)
    rel = c["reliability"]
    assert len(rel["std"]) == 10 and sum(rel["count"]) == 30 * mask.sum()  # frames 30.. inside the mask
    assert np.allclose(rel["rms_error"], rel["std"], rtol=0.08)
    # a frame whose pixels are predicted uncertain has a larger error: frames with a larger std
    frames = np.linspace(2, 40, 60)[:, None, None] * np.ones((1, 36, 64))
    rng = np.random.default_rng(1)
    c = calibration_metrics(frames, truth + rng.normal(size=truth.shape) * frames, truth, mask)
    assert c["frame_spearman_rmse"] > 0.9 and c["frame_spearman_correlation"] < -0.5
    assert c["frame_slope"] == pytest.approx(1.0, abs=0.1)


def test_uninformative_and_misscaled_estimates():
    std, recon, truth, mask = _calibrated_trial()
    shuffled = np.random.default_rng(5).permutation(std.ravel()).reshape(std.shape)
    assert abs(calibration_metrics(shuffled, recon, truth, mask)["spearman"]) < 0.03
    doubled = calibration_metrics(2 * std, recon, truth, mask)
    assert doubled["slope"] == pytest.approx(0.5, abs=0.03) and doubled["coverage_1sd"] > 0.9
    s, e = pooled_points([(2 * std, recon, truth, mask)])
    assert fit_scale(s, e) == pytest.approx(0.5, abs=0.01)
    pooled = pooled_calibration([(2 * std, recon, truth, mask), _calibrated_trial(3)], scale=1.0)
    assert pooled["trials"] == 2 and pooled["points"] == 2 * 30 * mask.sum()
    rescaled = pooled_calibration([(2 * std, recon, truth, mask)], scale=0.5)
    assert rescaled["slope"] == pytest.approx(1.0, abs=0.05)
    with pytest.raises(V1ReconError, match="every predicted"):
        fit_scale(np.zeros(4), np.ones(4))
    with pytest.raises(V1ReconError, match="negative"):
        calibration_metrics(-std, recon, truth, mask)
    with pytest.raises(V1ReconError, match="confidence shape"):
        calibration_metrics(std[:-1], recon, truth, mask)


def test_reliability_bins_and_weighted_metrics():
    rel = reliability(np.arange(100.0), np.full(100, 3.0), bins=4)
    assert rel["count"] == [25, 25, 25, 25] and rel["std"] == [12.0, 37.0, 62.0, 87.0]
    assert rel["rms_error"] == pytest.approx([3.0] * 4)
    std, recon, truth, mask = _calibrated_trial()
    flat = weighted_video_metrics(np.full_like(std, 7.0), recon, truth, mask)
    assert flat["video_correlation_weighted"] == pytest.approx(video_correlation(recon, truth, mask), abs=1e-9)
    assert flat["rmse_weighted"] == pytest.approx(rmse(recon, truth, mask), abs=1e-9)
    weighted = weighted_video_metrics(std, recon, truth, mask)  # the confident pixels are the accurate ones
    assert weighted["rmse_weighted"] < 0.5 * rmse(recon, truth, mask)
    assert weighted["video_correlation_weighted"] > video_correlation(recon, truth, mask)
