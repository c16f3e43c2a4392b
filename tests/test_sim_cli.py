"""`v1recon simulate` end to end on the tiny preset: folders the reader opens, ground truth beside them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from v1recon.data import open_recordings
from v1recon.sim import load_truth, simulate, truth_path
from v1recon.sim.simulate import PRESETS


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "mice"
    args = [sys.executable, "-m", "v1recon", "simulate", str(out), "--preset", "tiny", "--mice", "2", "--seed", "0"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out, done


def test_cli_writes_recordings_the_reader_opens(simulated):
    out, done = simulated
    recordings = open_recordings(out)
    preset = PRESETS["tiny"]
    assert [r.name for r in recordings] == ["insilico-s0-m0", "insilico-s0-m1"]
    for rec in recordings:
        assert rec.n_neurons == preset.n_neurons
        assert len(rec.trial_ids("train")) == preset.n_train
        for tier in ("oracle", "live_test", "final_test"):
            assert len(rec.trial_ids(tier, with_responses=True)) == preset.n_test_movies * preset.n_repeats
        tiers = [info.tier for info in sorted(rec.trials, key=lambda i: i.trial_id)]
        assert tiers != sorted(tiers)  # ids do not follow the tier blocks
        trial = rec.trial(rec.trial_ids("oracle")[0])
        assert trial.video.shape == (preset.n_frames, 36, 64) and (trial.responses >= 0).all()
        assert rec.coordinates.shape == (preset.n_neurons, 3)
        truth = load_truth(rec.path)
        assert truth is not None and truth.n_neurons == rec.n_neurons
        assert (out / f"{rec.name}.png").is_file()
        with torch.no_grad():
            pred = truth(torch.from_numpy(trial.video)[None], torch.from_numpy(trial.behaviour)[None])[0].numpy()
        corr = np.corrcoef(pred.ravel(), trial.responses.ravel())[0, 1]
        assert corr > 0.3  # the stored truth explains the stored responses
    # different mice differ
    a, b = (load_truth(r.path).rf_centres_px() for r in recordings)
    assert not np.allclose(a, b)
    assert "median single-trial correlation" in done.stdout


def test_noise_calibration_of_tiny_preset_is_in_range(simulated):
    out, _ = simulated
    summary = json.loads((out / "simulation.json").read_text())
    for mouse in summary["mice"]:
        assert 0.30 <= mouse["single_trial_correlation_median"] <= 0.45, mouse
        calibration = json.loads(truth_path(out / mouse["name"]).with_suffix(".json").read_text())["calibration"]
        assert calibration["single_trial_correlation_median"] == mouse["single_trial_correlation_median"]


def test_cli_refuses_to_overwrite(simulated):
    out, _ = simulated
    args = [sys.executable, "-m", "v1recon", "simulate", str(out), "--preset", "tiny", "--mice", "1"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "--overwrite" in done.stderr
    assert len(open_recordings(out)) == 2  # untouched


def test_simulation_is_deterministic_for_a_seed_and_worker_count(simulated, tmp_path):
    out, _ = simulated  # seed 0, two mice, one after the other
    again = simulate(tmp_path / "b", "tiny", 2, seed=0, workers=2, progress=False, figure=False, log=lambda _: None)
    assert again["workers"] == 2
    first = json.loads((out / "simulation.json").read_text())
    assert first["workers"] == 1
    medians = [[m["single_trial_correlation_median"] for m in run["mice"]] for run in (first, again)]
    assert medians[0] == medians[1]
    for mouse in ("insilico-s0-m0", "insilico-s0-m1"):
        for kind in ("videos", "responses", "behavior", "pupil_center"):
            for i in (0, 7):
                a = np.load(out / mouse / "data" / kind / f"{i}.npy")
                b = np.load(tmp_path / "b" / mouse / "data" / kind / f"{i}.npy")
                np.testing.assert_array_equal(a, b)
