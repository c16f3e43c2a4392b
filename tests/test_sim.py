"""The in-silico mouse: stimuli, ground-truth model, observation noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v1recon.errors import V1ReconError
from v1recon.sim import (
    GroundTruthV1,
    behaviour_trace,
    drifting_grating,
    gaussian_noise_movie,
    natural_movie,
    sample_responses,
)
from v1recon.sim.model import DEG_PER_PX, random_population
from v1recon.sim.stimuli import TEST_PHOTOS, TRAIN_PHOTOS


@pytest.fixture(scope="module")
def model() -> GroundTruthV1:
    return GroundTruthV1.random(40, seed=3, calibration_trials=1)


def _autocorr_sigma(movie: np.ndarray, axis: int) -> float:
    """Length constant (sigma of the smoothing Gaussian) from the autocorrelation along `axis`.

    Gaussian-smoothed white noise has autocorrelation exp(-d^2 / (4 sigma^2)); fit it on lags 1..3 sigma.
    """
    x = movie - movie.mean()
    lags = np.arange(1, min(x.shape[axis] // 3, 12))
    rho = []
    for lag in lags:
        a, b = np.take(x, range(x.shape[axis] - lag), axis), np.take(x, range(lag, x.shape[axis]), axis)
        rho.append((a * b).mean() / x.var())
    rho = np.array(rho)
    keep = (rho > 0.15) & (rho < 0.95)
    slope = np.sum(lags[keep] ** 2 * -np.log(rho[keep])) / np.sum(lags[keep] ** 4)  # -log rho = d^2 / (4 s^2)
    return float(np.sqrt(1 / (4 * slope)))


@pytest.mark.parametrize(("spatial", "temporal"), [(2, 4), (4, 2)])
def test_gaussian_noise_has_the_requested_length_constants(spatial, temporal):
    movie = gaussian_noise_movie(np.random.default_rng(0), spatial, temporal, n_frames=240)
    assert movie.shape == (240, 36, 64) and movie.dtype == np.float32
    assert abs(movie.mean() - 127.5) < 3 and abs(movie.std() - 51) < 3
    assert _autocorr_sigma(movie, 2) == pytest.approx(spatial, rel=0.15)
    assert _autocorr_sigma(movie, 1) == pytest.approx(spatial, rel=0.15)
    assert _autocorr_sigma(movie, 0) == pytest.approx(temporal, rel=0.15)


def test_white_noise_is_uncorrelated_and_inversion_mirrors_grey_levels():
    white = gaussian_noise_movie(np.random.default_rng(1), 0, 0, n_frames=60)
    x = white - white.mean()
    assert abs((x[:, :, 1:] * x[:, :, :-1]).mean() / x.var()) < 0.03
    inverted = gaussian_noise_movie(np.random.default_rng(1), 0, 0, n_frames=60, invert=True)
    np.testing.assert_allclose(white + inverted, 255.0, atol=1e-4)


def test_grating_has_the_requested_spatial_and_temporal_frequency_and_direction():
    movie = drifting_grating(4 / 64, 3.0, 0.0, n_frames=60)  # 4 cycles across, 3 Hz, rightwards
    assert movie.min() >= 0 and movie.max() <= 255
    assert np.abs(np.fft.rfft(movie[0, 10] - 127.5)).argmax() == 4  # cycles per 64 px
    assert np.abs(np.fft.rfft(movie[:, 10, 10] - 127.5)).argmax() == 6  # 3 Hz over 2 s: bin 6
    # rightwards: the next frame is the current one shifted right by tf / sf / 30 = 1.6 px
    shifts = [np.sum(movie[1, 5] * np.roll(movie[0, 5], s)) for s in range(-4, 5)]
    assert int(np.argmax(shifts)) - 4 == 2
    vertical = drifting_grating(3 / 36, 1.0, 90.0, n_frames=30)
    assert np.abs(np.fft.rfft(vertical[0, :, 7] - 127.5)).argmax() == 3
    assert np.ptp(vertical[0, 5]) < 1e-3  # moving upwards: constant along a row


def test_natural_movies_are_deterministic_and_train_test_sources_disjoint():
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    a = natural_movie(np.random.default_rng(5), 90, "train")
    b = natural_movie(np.random.default_rng(5), 90, "train")
    c = natural_movie(np.random.default_rng(5), 90, "test")
    assert a.shape == (90, 36, 64) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 255 and a.std() > 10
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(ValueError):
        natural_movie(np.random.default_rng(0), 10, "validation")


def test_behaviour_is_plausible():
    b = behaviour_trace(np.random.default_rng(0), 3000)
    assert b.shape == (4, 3000)
    assert b[1].min() >= 0  # running speed
    assert 5 < b[0].mean() < 60  # pupil dilation, camera px
    # pupil dilation is slow: neighbouring frames nearly identical, unlike running onsets or saccades
    assert np.corrcoef(b[0, 1:], b[0, :-1])[0, 1] > 0.95


def test_model_is_deterministic_and_round_trips(tmp_path, model):
    again = GroundTruthV1.random(40, seed=3, calibration_trials=1)
    video = torch.from_numpy(natural_movie(np.random.default_rng(0), 60, "test"))[None]
    behaviour = torch.from_numpy(behaviour_trace(np.random.default_rng(0), 60))[None]
    with torch.no_grad():
        out = model(video, behaviour)
        assert torch.equal(out, again(video, behaviour))
        path = model.save(tmp_path / "truth.safetensors")
        loaded = GroundTruthV1.load(path)
        assert torch.equal(out, loaded(video, behaviour))
    assert out.shape == (1, 40, 60) and (out >= 0).all()
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.receptive_fields(), model.receptive_fields())
    assert model.receptive_fields().shape == (40, 36, 64)


def test_load_rejects_missing_and_bad_files(tmp_path):
    with pytest.raises(V1ReconError, match="not found"):
        GroundTruthV1.load(tmp_path / "absent.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    (tmp_path / "bad.json").write_text('{"kind": "GroundTruthV1", "config": {}}')
    with pytest.raises(V1ReconError, match="cannot read"):
        GroundTruthV1.load(tmp_path / "bad.safetensors")


def test_gradient_lives_inside_the_population_rf(model):
    video = torch.from_numpy(natural_movie(np.random.default_rng(2), 60, "test"))[None].requires_grad_(True)
    behaviour = torch.from_numpy(model.resting_behaviour(60))[None]
    model(video, behaviour)[..., 30:].sum().backward()
    grad = video.grad.abs().mean((0, 1)).numpy()
    assert np.isfinite(grad).all()
    pop = model.population_rf()
    inside, outside = grad[pop > 0.5].mean(), grad[pop < 1e-4]
    assert inside > 0 and outside.size > 20
    assert outside.max() < 5e-3 * inside  # only the wide contrast pool reaches this far


def test_direction_selective_cells_prefer_one_direction():
    params = random_population(np.random.default_rng(0), 2)
    params.update(
        azimuth_deg=np.zeros(2), elevation_deg=np.zeros(2), orientation_rad=np.zeros(2), sf_cpd=np.full(2, 0.04),
        sigma_deg=np.full(2, 8.0), ds=np.array([1.0, 0.0]), is_complex=np.ones(2), offset=np.zeros(2),
    )  # fmt: skip
    truth = GroundTruthV1(params)
    mean = []
    for direction in (0.0, 180.0):
        video = torch.from_numpy(drifting_grating(0.04 * DEG_PER_PX[1], 2.0, direction, n_frames=90))[None]
        with torch.no_grad():
            mean.append(truth(video, torch.from_numpy(truth.resting_behaviour(90))[None])[0, :, 30:].mean(1))
    ratio = (mean[0] / mean[1]).numpy()
    assert max(ratio[0], 1 / ratio[0]) > 1.5  # inseparable RF: one direction wins
    assert ratio[1] == pytest.approx(1.0, abs=0.05)  # separable complex cell: no preference


def test_responses_are_non_negative_with_the_model_mean(model):
    rng = np.random.default_rng(0)
    rate = np.full((1, 3, 4000), 0.2)
    rate[0, 1] = 0.0
    responses = sample_responses(rng, rate, model.calcium.numpy())
    assert responses.shape == rate.shape and (responses >= 0).all()
    assert responses[0, 0].mean() == pytest.approx(0.2, rel=0.15)  # E[response] = calcium kernel * rate
    assert responses[0, 1].max() == 0.0


def test_neuron_groups_partition_the_population_by_type_and_spatial_frequency(model):
    groups = model.neuron_groups()
    types = [m for name, m in groups.items() if not name.startswith("sf")]
    bands = [m for name, m in groups.items() if name.startswith("sf")]
    assert len(types) == 4 and len(bands) == 4
    for family in (types, bands):
        assert np.array_equal(np.sum(family, axis=0), np.ones(model.n_neurons))  # every neuron exactly once
    sf = model.sf_cpd.numpy()
    assert np.all(sf[groups["sf < 0.035 c/deg"]] < 0.035) and np.all(sf[groups["sf >= 0.07 c/deg"]] >= 0.07)
    assert np.array_equal(groups["complex-ds"], (model.is_complex.numpy() == 1) & (model.ds.numpy() != 0))
