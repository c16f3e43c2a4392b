"""Combining the reconstructions of several models, as published: average, then a light 3-D Gaussian blur."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

ENSEMBLE_SIGMA = 0.5  # frames and pixels (published)


def smooth_movie(movie: np.ndarray, sigma: float = ENSEMBLE_SIGMA) -> np.ndarray:
    """3-D Gaussian blur of a movie (T, H, W) with `sigma` in frames and pixels (edges reflected); 0 = no blur."""
    movie = np.asarray(movie, dtype=np.float32)
    if sigma <= 0:
        return movie.copy()
    return gaussian_filter(movie, sigma=sigma, mode="reflect").astype(np.float32)


def average_reconstructions(movies: np.ndarray, sigma: float = ENSEMBLE_SIGMA) -> np.ndarray:
    """Ensemble of per-model reconstructions (K, T, H, W): clip each to [0, 255], average, blur -> (T, H, W)."""
    movies = np.clip(np.asarray(movies, dtype=np.float32), 0, 255)
    return smooth_movie(movies.mean(axis=0), sigma)


def ensemble_movie(per_model: np.ndarray, n_encoders: int, sigma: float = ENSEMBLE_SIGMA) -> np.ndarray:
    """The reconstruction of a trial from its per-model movies (K, T, H, W): several (average ensembling) are
    averaged and blurred; one movie optimised through several encoders (gradient ensembling) is blurred; one
    encoder's movie is kept as it is."""
    if len(per_model) > 1:
        return average_reconstructions(per_model, sigma)
    return smooth_movie(per_model[0], sigma) if n_encoders > 1 else per_model[0]
