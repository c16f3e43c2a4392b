"""Folds by movie hash, the streaming statistics and the response precision."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.ndimage import gaussian_filter

from v1recon.data import (
    Recording,
    RunningSummary,
    Trial,
    fold_of_trials,
    frame_hash,
    movie_fold,
    movie_hash,
    response_precision,
    write_recording,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("V1RECON_CACHE_DIR", str(tmp_path_factory.mktemp("trial-table-cache")))


def smooth_movie(rng, length=40):
    """A natural-like movie: spatially and temporally smooth grey levels 0..255."""
    noise = rng.normal(size=(length, 36, 64))
    movie = gaussian_filter(noise, sigma=(3, 3, 3))
    movie = (movie - movie.min()) / (movie.max() - movie.min())
    return (255 * movie).astype(np.float32)


def test_frame_hash_known_answer():
    frame = np.zeros((36, 64))
    frame[:, :32] = 200.0  # left half bright: each row of the 8x8 grid reads 11110000
    assert frame_hash(frame) == 0xF0F0F0F0F0F0F0F0
    assert frame_hash(np.full((36, 64), 7.0)) == 0


def test_same_movie_same_fold_robust_to_float_noise():
    rng = np.random.default_rng(0)
    movie = smooth_movie(rng)
    noisy = movie + rng.normal(scale=1e-3, size=movie.shape).astype(np.float32)
    assert movie_hash(movie) == movie_hash(movie.copy()) == movie_hash(noisy.astype(np.float64))
    assert all(movie_fold(movie, k) == movie_fold(noisy, k) for k in (2, 5, 7, 8))
    assert 0 <= movie_fold(movie, 7) < 7


def test_different_movies_spread_over_folds():
    rng = np.random.default_rng(1)
    hashes = {movie_hash(smooth_movie(rng, 35)) for _ in range(60)}
    assert len(hashes) == 60
    for n_folds in (5, 7, 8):
        counts = np.bincount([h % n_folds for h in hashes], minlength=n_folds)
        expected = len(hashes) / n_folds
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert counts.min() >= 1 and chi2 < stats.chi2.ppf(0.999, n_folds - 1), counts


def test_fold_of_trials_keeps_repeats_together_across_tiers_and_mice(tmp_path):
    rng = np.random.default_rng(2)
    movies = [smooth_movie(rng, 40) for _ in range(6)]
    folds_per_mouse = []
    for mouse, n in (("a", 4), ("b", 6)):
        order = [0, 1, 2, 3, 4, 5, 0, 0, 3]  # repeats, some shown in test tiers
        tiers = ["train"] * 6 + ["oracle", "final_test", "live_test"]
        trials = [
            Trial(i, tier, movies[m], rng.random((n, 40)).astype(np.float32), rng.random((4, 40)).astype(np.float32))
            for i, (m, tier) in enumerate(zip(order, tiers, strict=True))
        ]
        rec = Recording(write_recording(tmp_path / mouse, trials, np.arange(n), np.zeros((n, 3))))
        folds = fold_of_trials(rec, n_folds=3)
        assert folds[0] == folds[6] == folds[7] and folds[3] == folds[8]
        assert folds == {t.trial_id: movie_fold(t.video, 3) for t in trials}
        folds_per_mouse.append(folds)
    assert folds_per_mouse[0] == folds_per_mouse[1]


@pytest.mark.parametrize("budget", [1 << 20, 300])
def test_running_summary_matches_numpy(budget):
    rng = np.random.default_rng(3)
    blocks = [rng.gamma(2.0, 1.5, size=(3, k)) + 100.0 for k in (50, 1, 200, 0, 120)]
    summary = RunningSummary(3, budget=budget)
    for block in blocks:
        summary.update(block)
    stats = summary.summary()
    data = np.concatenate(blocks, axis=1)
    np.testing.assert_allclose(stats["mean"], data.mean(1), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], data.std(1), rtol=1e-5)
    np.testing.assert_allclose(stats["min"], data.min(1), rtol=1e-6)
    np.testing.assert_allclose(stats["max"], data.max(1), rtol=1e-6)
    # exact median when everything fits the sample, a close estimate from a uniform sample otherwise
    tolerance = 1e-6 if budget > data.size else 0.1
    np.testing.assert_allclose(stats["median"], np.median(data, 1), rtol=tolerance)


def test_running_summary_empty_is_zeros():
    stats = RunningSummary(4).summary()
    assert all(v.shape == (4,) and not v.any() for v in stats.values())


def test_response_precision_formula_and_shapes():
    std = np.array([0.0, 0.001, 0.5, 2.0, np.nan])
    threshold = 0.01 * np.nanmean(std)  # 0.0062875
    expected = [1 / threshold, 1 / threshold, 2.0, 0.5, 1 / threshold]
    np.testing.assert_allclose(response_precision(std), expected, rtol=1e-6)
    per_frame = np.tile(std[:4, None], (1, 10))
    out = response_precision(per_frame, length=6)
    assert out.shape == (4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], response_precision(std[:4]), rtol=1e-6)
    np.testing.assert_array_equal(response_precision(np.zeros(3)), np.ones(3))
