"""End to end through NWB: the tiny in-silico mouse written as a pynwb session (movie at twice the resolution,
running speed but no eye tracking) -> `import nwb` -> `train` -> `evaluate` -> `mask` -> `reconstruct` ->
`export nwb` -> pynwb and NWB Inspector read it back. No hand-editing in between."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pynwb")
pytest.importorskip("nwbinspector")

from conftest import cli, simulate_tiny, train_tiny  # noqa: E402
from nwb_build import from_recording  # noqa: E402

from v1recon.data import open_recordings  # noqa: E402

TRAIN_ARGS = ["--preset", "fast3d", "--models", "2", "--epochs", "1", "--samples-per-epoch", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nwb-pipeline")
    (original,) = open_recordings(simulate_tiny(root, n_mice=1))
    session = from_recording(original, root / "session.nwb")
    data = root / "imported"  # simulate_tiny wrote root/data
    imported = cli("import", "nwb", session, data, "--no-progress")
    assert imported.returncode == 0, imported.stderr
    run = train_tiny(data, root, TRAIN_ARGS)
    evaluated = cli("evaluate", run, "--data", data, "--no-truth", "--device", "cpu", "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr
    masked = cli("mask", run, "--data", data, "--iterations", "3", "--device", "cpu")
    assert masked.returncode == 0, masked.stderr
    recon = root / "recon"
    args = ["--out", recon, "--trials", "2", "--iterations", "3", "--device", "cpu", "--no-movies"]
    reconstructed = cli("reconstruct", run, "--data", data, *args)
    assert reconstructed.returncode == 0, reconstructed.stderr
    exported = cli("export", "nwb", recon, root / "recon.nwb")
    assert exported.returncode == 0, exported.stderr
    (mouse,) = open_recordings(data)
    return {
        "original": original, "imported": mouse, "recon": recon, "file": root / "recon.nwb",
        "stdout": imported.stdout, "reconstruct_stderr": reconstructed.stderr, "export_stdout": exported.stdout,
    }  # fmt: skip


def test_imported_trials_are_the_simulated_ones(pipeline):
    original, imported = pipeline["original"], pipeline["imported"]
    assert imported.n_neurons == original.n_neurons and len(imported.trials) == len(original.trials)
    for info in imported.trials:
        mine, theirs = imported.trial(info.trial_id), original.trial(info.trial_id)  # written in id order
        assert mine.length == theirs.length
        np.testing.assert_allclose(mine.video, theirs.video, atol=0.5 + 1e-3)  # 8-bit frames in the file
        np.testing.assert_allclose(mine.responses, theirs.responses, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mine.behaviour[1], theirs.behaviour[1], rtol=1e-5, atol=1e-5)  # running
        assert (mine.behaviour[[0, 2, 3]] == 0).all()  # no eye tracking in the file: filled with 0
        if info.tier != "train":  # repeated movies became test trials: they were test trials in silico
            assert theirs.tier in ("oracle", "live_test", "final_test")
    assert "behaviour not recorded: pupil dilation (34 trials)" in pipeline["stdout"]


def test_reconstruction_says_which_behaviour_was_filled(pipeline):
    assert "behaviour not recorded" in pipeline["reconstruct_stderr"]
    (sidecar,) = sorted(pipeline["recon"].glob("*/trial-*.json"))[:1]
    filled = json.loads(sidecar.read_text())["data"]["filled_behaviour"]
    assert filled == dict.fromkeys(["pupil dilation", "pupil x", "pupil y"], "0 (no statistics)")


def test_export_is_readable_by_pynwb_and_clean_for_nwb_inspector(pipeline):
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import NWBHDF5IO, validate

    path = pipeline["file"]
    assert validate(path=str(path)) == []  # the NWB schema
    problems = [
        m for m in inspect_nwbfile(nwbfile_path=str(path))
        if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION, Importance.ERROR)
    ]  # fmt: skip
    assert not problems, [f"{m.check_function_name}: {m.message}" for m in problems]
    provenance = json.loads((pipeline["imported"].path.with_suffix(".json")).read_text())
    starts = {row["id"]: row["start_s"] for row in provenance["trials"]}
    npzs = sorted(pipeline["recon"].glob("*/trial-*.npz"))
    assert len(npzs) == 2
    with NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        assert nwbfile.identifier == "insilico-s0-m0-v1recon-reconstructions"  # the imported session's
        assert nwbfile.subject.subject_id == "m1" and list(nwbfile.experimenter) == ["Doe, Jane"]
        module = nwbfile.processing["reconstruction"]
        for npz in npzs:
            trial = int(npz.stem.split("-")[1])
            series = module[f"session_trial{trial}_reconstruction"]
            with np.load(npz) as f:
                np.testing.assert_array_equal(series.data[:], f["reconstruction"])
                np.testing.assert_array_equal(module[f"session_trial{trial}_stimulus"].data[:], f["truth"])
            assert series.rate == 30.0 and series.starting_time == pytest.approx(starts[trial])
            assert json.loads(series.comments)["data"]["trial"] == trial
        table = nwbfile.intervals["reconstructed_trials"]
        assert sorted(table["trial_id"][:]) == sorted(int(p.stem.split("-")[1]) for p in npzs)
        assert json.loads(nwbfile.notes)["imports"]["session"]["source"]["format"] == "nwb"
    assert "2 reconstructed trials, on the clock of session insilico-s0-m0" in pipeline["export_stdout"]
