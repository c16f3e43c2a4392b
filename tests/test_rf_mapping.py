"""In-silico RF mapping: a known encoder's RFs are recovered; comparisons with masks and true RFs."""

import numpy as np
import pytest
import torch

from v1recon.errors import V1ReconError
from v1recon.experiments.registry import RFMapping, Settings
from v1recon.experiments.rf_mapping import (
    compare_with_mask,
    map_correlation,
    map_receptive_fields,
    population_rf,
    probe_clips,
    probe_positions,
    rf_centres,
)

CENTRES = [(10, 20), (25, 50)]


def blob(row, col, sigma=2.0):
    rows, cols = np.mgrid[0:36, 0:64]
    return np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))


class BlobEncoder:
    """Neuron 0 answers to light at CENTRES[0], neuron 1 to darkness at CENTRES[1] (one frame late), neuron 2 is
    blind. Responses are baseline 1 plus the rectified drive."""

    n_neurons = 3

    def __init__(self):
        self.w = torch.tensor(np.stack([blob(*CENTRES[0]), -blob(*CENTRES[1])]), dtype=torch.float32)

    def __call__(self, video, behaviour):
        x = (video - 127.5) / 127.5
        drive = torch.relu(torch.einsum("bthw,nhw->bnt", x, self.w))
        drive = torch.nn.functional.pad(drive[..., :-1], (1, 0))  # one frame of latency
        return torch.cat([1 + drive, torch.ones_like(drive[:, :1])], dim=1)


BEHAVIOUR = np.array([20.0, 0.0, 250.0, 180.0])


def test_probe_clips_hold_one_pixel_during_the_stimulus():
    clips = probe_clips(np.array([3, 5]), np.array([7, 9]), np.array([255.0, 0.0]), phase=4)
    assert clips.shape == (2, 12, 36, 64)
    changed = (clips != 127.5).nonzero().tolist()
    assert {(b, t, r, c) for b, t, r, c in changed} == {(0, t, 3, 7) for t in range(4, 8)} | {
        (1, t, 5, 9) for t in range(4, 8)
    }
    assert probe_positions(2)[0][:3].tolist() == [0, 2, 4] and len(probe_positions(1)[1]) == 64


def test_mapping_recovers_a_known_encoder():
    m = map_receptive_fields(BlobEncoder(), BEHAVIOUR, stride=1, batch_size=256, phase=3)
    assert m.rf.shape == (3, 36, 64) and m.n_probes == 2 * 36 * 64
    assert m.mapped.tolist() == [True, True, False]
    np.testing.assert_allclose(m.rf[:2].reshape(2, -1).max(1), 1.0, rtol=1e-6)
    centres = rf_centres(m.rf[:2])
    np.testing.assert_allclose(centres, np.array(CENTRES, float), atol=0.5)
    # the published map is the smoothed, thresholded response; it correlates with the smoothed true blob
    assert map_correlation(m.rf[0], blob(*CENTRES[0], sigma=np.sqrt(4 + 4))) > 0.95
    # the signed map tells ON (neuron 0) from OFF (neuron 1)
    assert m.signed[0][CENTRES[0]] > 0 and m.signed[1][CENTRES[1]] < 0
    # only ON probes drive neuron 0, only OFF probes neuron 1
    assert m.on[0].max() > 0.5 and m.off[0].max() == pytest.approx(0, abs=1e-6)
    assert m.off[1].max() > 0.5 and m.on[1].max() == pytest.approx(0, abs=1e-6)


def test_stride_finds_the_same_centres_with_fewer_probes():
    m = map_receptive_fields(BlobEncoder(), BEHAVIOUR, stride=2, batch_size=256, phase=3)
    assert m.n_probes == 2 * 18 * 32
    np.testing.assert_allclose(rf_centres(m.rf[:2]), np.array(CENTRES, float), atol=1.0)


def test_population_rf_and_mask_comparison():
    m = map_receptive_fields(BlobEncoder(), BEHAVIOUR, stride=2, batch_size=256, phase=3)
    pop = population_rf(m.rf, m.mapped)
    assert pop.max() == pytest.approx(1.0)
    inside = (blob(*CENTRES[0], 6) + blob(*CENTRES[1], 6)) > 0.3
    good = compare_with_mask(pop, inside.astype(float), inside, inside)
    bad = compare_with_mask(pop, (~inside).astype(float), ~inside, ~inside)
    assert good["correlation_with_alpha"] > 0.5 > bad["correlation_with_alpha"]
    assert good["rf_mass_in_eval_mask"] > 0.8 and good["iou_halfmax_vs_eval_mask"] > bad["iou_halfmax_vs_eval_mask"]


def test_bad_inputs_are_clear_errors():
    with pytest.raises(V1ReconError, match="stride"):
        probe_positions(0)
    with pytest.raises(V1ReconError, match="behaviour"):
        map_receptive_fields(BlobEncoder(), np.zeros(3))


class FakeRecording:
    """Statistics of a recording at the true model's resting gaze."""

    def __init__(self, truth):
        self.rest = truth.resting_behaviour(1)[:, 0]

    def statistics(self, kind):
        values = self.rest[:2] if kind == "behavior" else self.rest[2:]
        return {"mean": values, "median": values}


def test_analysis_maps_the_true_model_and_draws(tmp_path):
    from types import SimpleNamespace

    from v1recon.experiments import rf_mapping
    from v1recon.sim import GroundTruthV1

    truth = GroundTruthV1.random(8, seed=5, calibration_trials=1)
    alpha = truth.population_rf() * 1.5
    setup = SimpleNamespace(
        recording=FakeRecording(truth),
        encoders=[truth],
        device=torch.device("cpu"),
        alpha=alpha,
        update_mask=alpha >= 0.5,
        eval_mask=alpha >= 1.0,
        truth=truth,
    )
    config = RFMapping(stride=4, batch_size=96, true_model=False, phase=6)
    arrays, summary = rf_mapping.run(setup, config, None, Settings(progress=False))
    assert arrays["rf"].shape == (8, 36, 64)
    stats = summary["statistics"]
    # mapping the true model itself: RFs land where the truth says they are
    assert stats["truth"]["mapped_fraction"] >= 0.75
    assert stats["truth"]["centre_error_px_median"] < 2.0
    assert stats["truth"]["rf_vs_envelope_median"] > 0.7
    assert stats["mask"]["correlation_with_alpha"] > 0.7
    rf_mapping.draw(tmp_path / "figure.png", arrays, summary)
    assert (tmp_path / "figure.png").stat().st_size > 10_000
