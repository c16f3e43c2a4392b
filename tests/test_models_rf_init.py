"""Receptive-field centres estimated from movies and responses, checked against the in-silico mouse's truth."""

import numpy as np
import pytest
import torch

from v1recon import FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.models import build_model
from v1recon.models.rf_init import energy_maps, rf_positions
from v1recon.sim import GroundTruthV1
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
