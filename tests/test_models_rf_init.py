"""Receptive-field centres estimated from movies and responses, checked against the in-silico mouse's truth."""

import numpy as np
import pytest
import torch

from v1recon import FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.models import build_model
from v1recon.models.rf_init import energy_maps, estimate_gaze, gaze_corrected, rf_positions
from v1recon.sim import DEG_PER_PX, GroundTruthV1
from v1recon.sim.stimuli import natural_movie


@pytest.mark.parametrize("full_resolution", [False, True])
def test_energy_maps_shape_and_delay(full_resolution):
    video = np.full((40, *FRAME_SHAPE), 127.5, np.float32)
    video[10, 10:20, 20:30] = 255  # one bright patch in frame 10
    e = energy_maps(video, full_resolution)
    assert e.shape == (40, 8 if full_resolution else 4, 18, 32)
    per_frame = e.sum((1, 2, 3))
    assert per_frame[:12].abs().max() < 1e-4  # the response kernel starts 2 frames after the stimulus
    assert int(per_frame.argmax()) == 12


@pytest.mark.parametrize("full_resolution", [False, True])
def test_positions_match_the_true_receptive_fields(full_resolution):
    truth = GroundTruthV1.random(40, seed=3, calibration_trials=1)
    rng = np.random.default_rng(0)
    videos = [natural_movie(rng, 150, "train") for _ in range(10)]
    behaviour = torch.from_numpy(np.stack([truth.resting_behaviour(150)] * len(videos)))
    with torch.no_grad():
        responses = truth(torch.from_numpy(np.stack(videos)), behaviour).numpy()
    positions, peak = rf_positions(videos, list(responses), full_resolution=full_resolution)
    row, col = truth.rf_centres_px().T
    true_xy = np.stack([(col + 0.5) * 2 / FRAME_SHAPE[1] - 1, (row + 0.5) * 2 / FRAME_SHAPE[0] - 1], axis=1)
    error_px = np.abs(positions - true_xy) * np.array(FRAME_SHAPE[::-1]) / 2  # back to pixels
    assert positions.shape == (40, 2) and peak.shape == (40,)
    assert np.median(np.hypot(*error_px.T)) < 3.0  # the RF sigma is 3-4 px
    # a random guess over the population RF would be several times further off
    shuffled = np.hypot(*(np.abs(positions - true_xy[::-1]) * np.array(FRAME_SHAPE[::-1]) / 2).T)
    assert np.median(shuffled) > 2 * np.median(np.hypot(*error_px.T))


def test_fast3d_readout_starts_at_given_positions():
    model = build_model("fast3d", [5])
    positions = np.linspace(-0.5, 0.5, 10).reshape(5, 2)
    model.set_readout_positions(0, positions)
    masks = model.readouts[0].masks(9, 16).view(5, 9, 16)
    assert torch.allclose(model.readouts[0].position, torch.as_tensor(positions, dtype=torch.float32))
    peak_rows, peak_cols = np.unravel_index(masks.reshape(5, -1).argmax(1).numpy(), (9, 16))
    assert np.allclose((peak_cols + 0.5) * 2 / 16 - 1, positions[:, 0], atol=1 / 16 + 1e-6)


def test_mismatched_lengths_are_refused():
    with pytest.raises(V1ReconError, match="video frames"):
        rf_positions([np.zeros((60, *FRAME_SHAPE), np.float32)], [np.zeros((3, 50), np.float32)])


def test_gaze_correction_moves_each_frame_back_by_the_gaze():
    video = np.full((2, *FRAME_SHAPE), 128, np.uint8)
    video[:, 10, 20] = 255
    pupil = np.array([[5.0, 7.0], [3.0, 3.0]])  # frame 1: gaze 2 units right of the reference (5, 3)
    moved = gaze_corrected(video, pupil, gain=np.array([1.5, 1.0]), reference=np.array([5.0, 3.0]))
    assert moved.dtype == np.uint8 and np.array_equal(moved[0], video[0])
    assert np.argwhere(moved[1] == 255).tolist() == [[10, 17]]  # shown 3 px further left: 1.5 px per unit


def _gaze_recordings(gain_deg_per_unit: float, trials: int = 12, frames: int = 150):
    """Responses of a small in-silico population whose eye wanders (x SD 5, y SD 2 pupil units)."""
    truth = GroundTruthV1.random(60, seed=3, calibration_trials=1)
    truth.config["gaze_deg_per_cam_px"] = gain_deg_per_unit
    rng = np.random.default_rng(1)
    videos = [natural_movie(rng, frames, "train") for _ in range(trials)]
    behaviour = np.stack([truth.resting_behaviour(frames)] * trials)
    walk = np.cumsum(rng.normal(0, 1, size=(trials, 2, frames)), axis=2)
    walk = (walk - walk.mean(2, keepdims=True)) / walk.std(2, keepdims=True)
    behaviour[:, 2:4] += walk * np.array([5.0, 2.0])[None, :, None]
    with torch.no_grad():
        responses = truth(torch.from_numpy(np.stack(videos)), torch.from_numpy(behaviour)).numpy()
    return videos, [b[2:4] for b in behaviour], list(responses)


def test_estimate_gaze_finds_the_horizontal_gain_of_the_in_silico_eye():
    videos, pupils, responses = _gaze_recordings(1.0)
    gain, reference = estimate_gaze(videos, pupils, responses)
    assert np.allclose(reference, np.concatenate(pupils, 1).mean(1))
    assert abs(gain[0] - 1.0 / DEG_PER_PX[1]) < 0.15  # px per pupil unit; a still eye would give ~0
    flipped = estimate_gaze(videos, [p * np.array([[-1.0], [1.0]]) for p in pupils], responses)[0]
    assert abs(flipped[0] + 1.0 / DEG_PER_PX[1]) < 0.15  # a mirrored camera gives the opposite sign


@pytest.mark.parametrize("architecture", ["fast3d", "subunit"])
def test_the_shifter_starts_at_the_estimated_gaze_correction(architecture):
    from tests.models_toy import TINY_FAST, TINY_SUBUNIT

    model = build_model(architecture, [3], **(TINY_FAST if architecture == "fast3d" else TINY_SUBUNIT))
    model.set_behaviour_statistics(0, [10.0, 1.0, 200.0, 100.0], [2.0, 1.0, 4.0, 2.0])
    gain, reference = np.array([0.5, -0.4]), np.array([198.0, 101.0])
    model.set_gaze(0, gain, reference)
    rng = np.random.default_rng(0)
    video = np.clip(rng.normal(128, 40, size=(5, *FRAME_SHAPE)), 0, 255).astype(np.uint8)
    pupil = np.array([[190.0, 196.0, 200.0, 204.0, 208.0], [97.0, 99.0, 100.0, 102.0, 104.0]])
    behaviour = torch.as_tensor(np.stack([np.full(5, 10.0), np.ones(5), *pupil]), dtype=torch.float32)
    z = model.readouts[0].behaviour_norm.eval()(behaviour[None])[:, 2:]
    x = torch.as_tensor(video, dtype=torch.float32)[None, None] - 127.5
    with torch.no_grad():
        shifted = model.shifters[0](x, z)[0, 0] + 127.5
    expected = gaze_corrected(video, pupil, gain, reference).astype(np.float32)
    inside = (slice(None), slice(4, -4), slice(6, -6))  # away from the grey fill at the edges
    assert np.abs(shifted.numpy()[inside] - expected[inside]).mean() < 2.0  # grey levels (uint8 rounding, tanh)
    assert np.abs(x[0, 0].numpy()[inside] + 127.5 - expected[inside]).mean() > 10.0  # the shift is not nothing
