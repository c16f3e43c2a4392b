"""The cascade family of the in-silico mouse: every effect where it should be, the contract, persistence, noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from v1recon.errors import V1ReconError
from v1recon.sim import load_truth, sample_responses, simulate, truth_path
from v1recon.sim.cascade import CELL_TYPES, CascadeV1, random_cascade_population
from v1recon.sim.model import DEG_PER_PX, GroundTruthV1, _pixel_grid_deg
from v1recon.sim.stimuli import drifting_grating, natural_movie

AZ, EL = _pixel_grid_deg()  # (36, 64) degrees of every pixel, screen centre 0
SF_PX = 0.04 * DEG_PER_PX[1]  # 0.04 cycles/deg in cycles per pixel, horizontally


def cells(n: int, **overrides) -> CascadeV1:
    """n neurons at the screen centre, vertical bars (wave vector along azimuth), 0.04 cycles/deg, sigma 7 deg, no
    adaptation, surround, cross-orientation suppression or behaviour; overrides set (broadcast) parameters."""
    p = random_cascade_population(np.random.default_rng(0), n)
    fixed = dict(azimuth_deg=0.0, elevation_deg=0.0, orientation_rad=0.0, sf_cpd=0.04, sigma_deg=7.0, aspect=1.2,
                 ds=0.0, offset=0.0, selectivity=1.0, amplitude=0.1, adapt_strength=0.0, surround_weight=0.0,
                 cross_weight=0.0, run_gain=0.0, pupil_gain=0.0, latency_frames=2.0, transience=0.7,
                 phase_rad=0.0)  # fmt: skip
    for name, value in {**fixed, **overrides}.items():
        p[name] = np.broadcast_to(np.asarray(value, float), (n,)).copy()
    return CascadeV1(p)


def mean_response(model: CascadeV1, video: np.ndarray, frames=slice(30, None)) -> np.ndarray:
    """(N,) mean expected response over `frames` of a (T, 36, 64) movie at rest."""
    beh = torch.from_numpy(model.resting_behaviour(len(video)))[None]
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(video, np.float32))[None], beh)[0, :, frames].mean(1).numpy()


def aperture(movie: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (127.5 + (movie - 127.5) * mask).astype(np.float32)


def test_a_grating_growing_beyond_the_rf_suppresses_a_surround_suppressed_cell():
    model = cells(2, cell_type=1, surround_weight=[0.0, 2.0], iso_fraction=1.0, surround_ratio=2.5)
    grating = drifting_grating(SF_PX, 2.0, 0.0, n_frames=60)
    radius = np.hypot(AZ, EL)
    sizes = (10, 20, 30, 45, 70, 130)  # diameters, degrees
    tuning = np.stack([mean_response(model, aperture(grating, radius <= d / 2)) for d in sizes], 1)
    peak = tuning.max(1)
    assert tuning[1].argmax() < len(sizes) - 2  # the suppressed cell peaks at an intermediate size ...
    assert tuning[1, -1] < 0.6 * peak[1]  # ... and loses most of it on the full screen
    assert tuning[0, -1] > 0.95 * peak[0]  # without a surround the full screen is (near) the best


def test_an_orthogonal_grating_suppresses_cells_with_cross_orientation_weight():
    model = cells(2, cell_type=1, cross_weight=[0.0, 1.5])
    preferred = drifting_grating(SF_PX, 2.0, 0.0, n_frames=60, contrast=0.5)
    orthogonal = drifting_grating(SF_PX * 1.33, 2.0, 90.0, n_frames=60, contrast=0.5)  # same cycles/deg upwards
    ratio = mean_response(model, preferred + orthogonal - 127.5) / mean_response(model, preferred)
    assert ratio[1] < 0.7 * ratio[0]


def test_an_end_stopped_cell_prefers_a_short_bar_and_a_complex_cell_a_long_one():
    model = cells(2, cell_type=[2, 1], end_weight=0.8, end_offset=2.0)
    grating = drifting_grating(SF_PX, 2.0, 0.0, n_frames=60)
    lengths = (10, 20, 30, 50, 90)  # along the bars (elevation), degrees; 24 degrees wide
    tuning = np.stack([mean_response(model, aperture(grating, (np.abs(EL) <= n / 2) & (np.abs(AZ) <= 12)))
                       for n in lengths], 1)  # fmt: skip
    assert tuning[0].argmax() <= 2 and tuning[0, -1] < 0.3 * tuning[0].max()
    assert tuning[1, -1] > 0.95 * tuning[1].max()


def test_a_corner_cell_needs_both_arms():
    model = cells(2, cell_type=[4, 1], arm_angle_rad=np.pi / 2, aspect=1.8)
    reach = 0.9 * 7.0 * 1.8  # arm centres: along each arm's bars from the vertex at the screen centre
    arm1 = aperture(drifting_grating(SF_PX, 2.0, 0.0, 60), np.hypot(AZ, EL - reach) <= 10) - 127.5
    arm2 = aperture(drifting_grating(SF_PX * 1.33, 2.0, 90.0, 60), np.hypot(AZ + reach, EL) <= 10) - 127.5
    single = np.maximum(mean_response(model, arm1 + 127.5), mean_response(model, arm2 + 127.5))
    both = mean_response(model, arm1 + arm2 + 127.5)
    assert both[0] > 1.4 * single[0]  # AND-like: each arm alone drives it little
    assert both[1] < single[1]  # a complex cell at the vertex is not


def test_pooling_over_positions_and_phases_makes_responses_phase_invariant():
    model = cells(2, cell_type=[3, 0], subunit_spread=1.5)
    grating = drifting_grating(SF_PX, 2.0, 0.0, n_frames=90)  # 2 Hz: 6 cycles in 3 s
    beh = torch.from_numpy(model.resting_behaviour(90))[None]
    with torch.no_grad():
        r = model(torch.from_numpy(grating)[None], beh)[0, :, 30:].numpy()
    spectrum = np.abs(np.fft.rfft(r - r.mean(1, keepdims=True), axis=1))
    f1_over_f0 = spectrum[:, 4] / r.mean(1) / r.shape[1] * 2  # 4 cycles in the last 60 frames
    assert f1_over_f0[0] < 0.5 * f1_over_f0[1]  # simple cell: modulated at the drift frequency


def test_off_dominance_darkening_drives_the_population_more_than_brightening():
    model = CascadeV1.random(200, seed=2, calibration_trials=1)
    beh = torch.from_numpy(model.resting_behaviour(40))[None]
    types = model.cell_types()
    out = {}
    for step in (-40.0, 40.0):
        with torch.no_grad():
            out[step] = model(torch.full((1, 40, 36, 64), 127.5 + step), beh)[0, :, 5:25].mean(1).numpy()
    assert out[-40.0].mean() > 1.3 * out[40.0].mean()
    off, on = types == "off-centre", types == "on-centre"
    assert out[-40.0][off].mean() > out[40.0][off].mean() and out[40.0][on].mean() > out[-40.0][on].mean()
    assert off.sum() > 1.3 * on.sum()


def test_adaptation_lowers_the_response_to_a_sustained_grating_over_about_a_second():
    model = cells(2, cell_type=1, adapt_strength=[0.0, 1.0], adapt_tau_frames=30.0, adapt_ref=2.0)
    grey = np.full((30, 36, 64), 127.5, np.float32)
    video = np.concatenate([grey, drifting_grating(SF_PX, 2.0, 0.0, n_frames=150)])
    beh = torch.from_numpy(model.resting_behaviour(len(video)))[None]
    with torch.no_grad():
        r = model(torch.from_numpy(video)[None], beh)[0].numpy()
    early, at_1s, late = (r[:, a:b].mean(1) for a, b in ((36, 45), (57, 66), (150, 180)))  # 0.2-0.5, 0.9-1.2, 4-5 s
    assert late[0] == pytest.approx(early[0], rel=0.05)  # without adaptation the response is sustained
    assert late[1] < 0.75 * early[1]
    assert (early[1] - at_1s[1]) > 0.5 * (early[1] - late[1])  # most of the decline within about a second


def test_running_suppresses_some_cells_and_enhances_others():
    model = CascadeV1.random(300, seed=4, calibration_trials=1)
    video = torch.from_numpy(natural_movie(np.random.default_rng(0), 90, "test"))[None]
    rest = torch.from_numpy(model.resting_behaviour(90))[None]
    running = rest.clone()
    running[:, 1] = 30.0  # cm/s
    with torch.no_grad():
        ratio = (model(video, running)[0, :, 30:].mean(1) / model(video, rest)[0, :, 30:].mean(1)).numpy()
    assert 0.2 < np.mean(ratio < 0.9) < 0.4 and np.mean(ratio > 1.1) > 0.4


def test_the_gradient_at_a_uniform_grey_screen_is_not_zero():
    model = CascadeV1.random(60, seed=5, calibration_trials=1)
    video = torch.full((1, 60, 36, 64), 127.5, requires_grad=True)
    model(video, torch.from_numpy(model.resting_behaviour(60))[None])[..., 30:].sum().backward()
    grad = video.grad.abs().sum((0, 1)).numpy()
    assert np.isfinite(grad).all() and (grad > 0).mean() > 0.2
    assert grad[model.population_rf() > 0.5].min() > 0


def test_the_shared_brain_state_correlates_neurons_and_keeps_the_mean():
    rng = np.random.default_rng(0)
    rate = np.full((200, 20, 300), 0.3)
    kernel = np.array([1.0])
    independent = sample_responses(rng, rate, kernel)
    shared = sample_responses(rng, rate, kernel, state_sd=np.full(20, 0.5))
    assert shared.mean() == pytest.approx(0.3, rel=0.05) and independent.mean() == pytest.approx(0.3, rel=0.05)

    def halves_correlation(x):  # of the two halves' population means, over trials and 30-frame bins
        a, b = (x[:, k : k + 10].reshape(200, 10, 10, 30).mean((1, 3)).ravel() for k in (0, 10))
        return np.corrcoef(a, b)[0, 1]

    assert halves_correlation(shared) > 0.5 and abs(halves_correlation(independent)) < 0.1


def test_round_trip_and_load_truth_returns_the_family(tmp_path):
    model = CascadeV1.random(30, seed=6, calibration_trials=1)
    folder = tmp_path / "mouse"
    model.save(truth_path(folder))
    loaded = load_truth(folder)
    assert type(loaded) is CascadeV1 and loaded.family == "cascade" and loaded.config == model.config
    video = torch.from_numpy(natural_movie(np.random.default_rng(1), 40, "test"))[None]
    beh = torch.from_numpy(model.resting_behaviour(40))[None]
    with torch.no_grad():
        assert torch.equal(model(video, beh), loaded(video, beh))
    np.testing.assert_array_equal(loaded.receptive_fields(), model.receptive_fields())
    np.testing.assert_array_equal(loaded.state_sd(), model.state_sd())
    with pytest.raises(V1ReconError, match="CascadeV1"):
        GroundTruthV1.load(truth_path(folder))  # a cascade truth is not an energy one
    meta = truth_path(folder).with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "kind": "Unknown"}))
    with pytest.raises(V1ReconError, match="kind"):
        load_truth(folder)


def test_neuron_groups_partition_by_type_band_and_effect():
    model = CascadeV1.random(200, seed=7, calibration_trials=1)
    groups = model.neuron_groups()
    families = {
        "type": [groups[t] for t in CELL_TYPES],
        "sf": [m for k, m in groups.items() if k.startswith("sf")],
        **{e: [m for k, m in groups.items() if k.startswith(e)] for e in ("surround", "adaptation", "running")},
    }
    for masks in families.values():
        assert len(masks) >= 2 and np.array_equal(np.sum(masks, axis=0), np.ones(200))
    assert all(groups[t].any() for t in CELL_TYPES)
    assert model.receptive_fields().shape == model.rf_envelopes().shape == (200, 36, 64)


def test_simulate_cascade_is_calibrated_and_records_the_family(tmp_path):
    out = simulate(tmp_path / "mice", "tiny", n_mice=1, seed=1, family="cascade", progress=False, figure=False,
                   log=lambda _: None)  # fmt: skip
    assert out["family"] == "cascade"
    assert 0.30 <= out["mice"][0]["single_trial_correlation_median"] <= 0.45
    truth = load_truth(tmp_path / "mice" / out["mice"][0]["name"])
    assert isinstance(truth, CascadeV1)
    with pytest.raises(V1ReconError, match="family"):
        simulate(tmp_path / "other", "tiny", family="gabor", progress=False, figure=False, log=lambda _: None)
