"""Baselines: ridge decoder on a known linear map, lag fit of the invertible model, lagged design matrix."""

import numpy as np
import pytest

from v1recon.errors import V1ReconError
from v1recon.experiments.baselines import (
    RIDGE_GRID,
    fit_invertible,
    fit_response_basis,
    fit_ridge_decoder,
    lagged,
)


def test_lagged_rows_hold_future_frames():
    z = np.arange(12, dtype=np.float32).reshape(2, 6)  # 2 features, 6 frames
    x = lagged(z, 2)
    assert x.shape == (6, 6)
    np.testing.assert_array_equal(x[1], [1, 7, 2, 8, 3, 9])  # frame 1: lag 0, 1, 2
    np.testing.assert_array_equal(x[5], [5, 11, 0, 0, 0, 0])  # past the end: zero


def test_response_basis_standardises_and_keeps_leading_components():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((2, 500))
    resp = np.abs(rng.standard_normal((10, 2)) @ latent + 0.05 * rng.standard_normal((10, 500))) + 1
    basis = fit_response_basis([resp[:, :250], resp[:, 250:]], n_components=2)
    z = basis.standardise(resp)
    np.testing.assert_allclose(z.mean(1), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(1), 1, atol=1e-9)
    assert basis.transform(resp).shape == (2, 500) and basis.explained > 0.8


def synthetic_pairs(rng, movies, lag_map, n_frames=80):
    """Videos whose frame t is a known linear map of the responses at t and t+1 (plus a little noise)."""
    pairs = []
    for _ in range(movies):
        resp = rng.gamma(2.0, 1.0, size=(6, n_frames))
        frames = resp[:, :n_frames].T @ lag_map[0] + np.vstack([resp[:, 1:].T, np.zeros((1, 6))]) @ lag_map[1]
        frames = 127.5 + frames + 0.5 * rng.standard_normal(frames.shape)
        pairs.append((resp.astype(np.float32), frames.reshape(n_frames, 36, 64).astype(np.float32)))
    return pairs


def test_ridge_decoder_recovers_a_known_linear_map():
    rng = np.random.default_rng(1)
    lag_map = 2 * rng.standard_normal((2, 6, 36 * 64))
    train, val, test = (synthetic_pairs(rng, k, lag_map) for k in (6, 3, 2))
    dec = fit_ridge_decoder(train, val, lags=2, n_components=None, start=0)
    assert dec.alpha_relative in RIDGE_GRID and len(dec.val_scores) == len(RIDGE_GRID)
    assert dec.val_scores[list(RIDGE_GRID).index(dec.alpha_relative)] == pytest.approx(np.nanmax(dec.val_scores))
    for resp, video in test:
        pred = dec.predict(resp)
        assert pred.shape == video.shape
        # the last frames see zero future activity; the rest is exact up to the noise
        assert np.corrcoef(pred[:-2].ravel(), video[:-2].ravel())[0, 1] > 0.99
    # a very strong penalty shrinks the decoder towards the mean frame: it must not win here
    assert dec.alpha_relative < 100


def test_ridge_decoder_with_components_and_errors():
    rng = np.random.default_rng(2)
    lag_map = 2 * rng.standard_normal((2, 6, 36 * 64))
    train, val = synthetic_pairs(rng, 4, lag_map), synthetic_pairs(rng, 2, lag_map)
    dec = fit_ridge_decoder(train, val, lags=1, n_components=3, start=0)
    assert dec.basis.n_features == 3 and dec.weights.shape == (3 * 2, 36 * 64)
    with pytest.raises(V1ReconError, match="validation"):
        fit_ridge_decoder(train, [], lags=1, n_components=None)
    with pytest.raises(V1ReconError, match="lags"):
        fit_ridge_decoder(train, val, lags=-1)


def test_invertible_model_finds_a_known_lag_and_gain():
    rng = np.random.default_rng(3)
    rfs = rng.standard_normal((8, 36, 64))
    true_lag, gain, offset = 3, 0.7, 120.0
    pairs = []
    for _ in range(4):
        resp = rng.gamma(2.0, 1.0, size=(8, 100))
        basis = fit_response_basis([resp])
        drive = basis.standardise(resp).T @ rfs.reshape(8, -1)  # (T, px), frame t is encoded at t + lag
        frames = np.full((100, 36 * 64), offset)
        frames[: 100 - true_lag] += gain * drive[true_lag:]
        pairs.append((resp, frames.reshape(100, 36, 64)))
    model = fit_invertible(pairs, rfs, max_lag=6)
    assert model.lag == true_lag
    assert int(np.argmax(model.lag_scores)) == true_lag and model.lag_scores[true_lag] > 0.9
    assert model.gain > 0
    pred = model.predict(pairs[0][0])
    assert np.corrcoef(pred[:90].ravel(), pairs[0][1][:90].ravel())[0, 1] > 0.9


def test_invertible_model_checks_shapes():
    resp = np.ones((4, 20))
    with pytest.raises(V1ReconError, match="receptive fields"):
        fit_invertible([(resp, np.zeros((20, 36, 64)))], np.zeros((3, 36, 64)))


def test_comparison_counts_lower_rmse_as_a_win():
    from v1recon.experiments.baselines import METRICS, _compare

    values = np.zeros((2, 3, len(METRICS)))  # methods x trials x metrics
    values[0, :, METRICS.index("video_correlation")] = [0.5, 0.6, 0.4]
    values[1, :, METRICS.index("video_correlation")] = [0.2, 0.7, 0.1]
    values[0, :, METRICS.index("rmse")] = [10, 10, 10]
    values[1, :, METRICS.index("rmse")] = [20, 5, 30]
    out = _compare(values, ["input optimisation", "ridge decoder"], reference=0)
    vc, err = out["video_correlation"]["ridge decoder"], out["rmse"]["ridge decoder"]
    assert vc["input_optimisation_wins"] and vc["trials_won"] == pytest.approx(2 / 3)
    assert vc["mean_difference"] == pytest.approx(0.5 - 1.0 / 3)
    assert err["input_optimisation_wins"] and err["trials_won"] == pytest.approx(2 / 3)
    assert err["mean_difference"] == pytest.approx(10 - 55 / 3)  # input optimisation minus ridge, in RMSE units
