"""End-to-end training on the tiny in-silico mouse: run folder, checkpoints, log, resume, encoders, evaluate."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import cli, simulate_tiny, train_tiny

from v1recon.errors import V1ReconError

TRAIN_ARGS = ["--preset", "fast3d", "--models", "2", "--epochs", "2", "--samples-per-epoch", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return simulate_tiny(tmp_path_factory.mktemp("sim"), n_mice=2)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return train_tiny(data, tmp_path_factory.mktemp("train"), TRAIN_ARGS)


def test_train_writes_the_run_folder(run, data):
    info = json.loads((run / "run.json").read_text())
    assert info["preset"] == "fast3d" and info["ensemble"] == "folds"
    assert [m["name"] for m in info["mice"]] == ["insilico-s0-m0", "insilico-s0-m1"]
    assert [m["complete"] for m in info["models"]] == [True, True]
    assert [s["val_fold"] for s in info["splits"]] == [1, 2]
    for k in range(2):
        stem = run / "models" / f"model-{k}"
        assert (stem.parent / f"model-{k}.safetensors").is_file()
        assert not (stem.parent / f"model-{k}.state.pt").exists()  # removed once the model is finished
        config = json.loads((stem.parent / f"model-{k}.json").read_text())
        assert config["complete"] and config["epoch"] == 2 and config["seed"] == k
        assert config["mouse_names"] == ["insilico-s0-m0", "insilico-s0-m1"] and config["neuron_counts"] == [60, 60]
        assert config["split"]["test_fold"] == 0 and config["preset"] == "fast3d"
        with open(stem.parent / f"model-{k}.log.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == [1, 2]
        assert all(np.isfinite(float(r["train_loss"])) and -1 <= float(r["val_corr"]) <= 1 for r in rows)


def test_rerun_skips_finished_models_and_other_runs_are_refused(run, data):
    before = (run / "models" / "model-0.safetensors").stat().st_mtime_ns
    result = cli("train", data, "--out", run, "--no-progress", *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr
    assert "already trained" in result.stderr + result.stdout
    assert (run / "models" / "model-0.safetensors").stat().st_mtime_ns == before
    other = cli("train", data, "--out", run, "--no-progress", *TRAIN_ARGS[:-1], "2")  # another batch size
    assert other.returncode == 2 and "different run" in other.stderr and "--overwrite" in other.stderr


def test_load_encoders_returns_working_encoders(run, data):
    from v1recon.data import open_recordings
    from v1recon.runs import load_encoders, load_run

    encoders = load_encoders(run, "insilico-s0-m1")
    assert len(encoders) == 2 and all(e.n_neurons == 60 for e in encoders)
    rec = open_recordings(data)[1]
    trial = rec.trial(rec.trial_ids("oracle")[0])
    video, behaviour = torch.from_numpy(trial.video)[None], torch.from_numpy(trial.behaviour)[None]
    out = encoders[0](video, behaviour)
    assert out.shape == (1, 60, trial.length) and torch.isfinite(out).all() and (out >= 0).all()
    assert load_run(run).mouse_index("insilico-s0-m1") == 1
    with pytest.raises(V1ReconError, match="no mouse named"):
        load_encoders(run, "mouse-x")


def test_training_never_sees_the_held_out_fold(data, tmp_path):
    from v1recon.data import fold_of_trials, open_recordings
    from v1recon.models import build_model
    from v1recon.training.clips import load_training_trials
    from v1recon.training.config import train_config
    from v1recon.training.splits import plan_splits
    from v1recon.training.trainer import Trainer

    recordings = open_recordings(data)
    mice = [load_training_trials(r, 7) for r in recordings]
    for split in plan_splits(3, "folds") + plan_splits(2, "seeds"):
        trainer = Trainer(build_model("fast3d", [60, 60]), mice, split, train_config("tiny"), tmp_path / "m", "cpu")
        for rec, mouse, train, val in zip(recordings, mice, trainer.train_indices, trainer.val_indices, strict=True):
            folds = fold_of_trials(rec)  # independent: reads the hashed frames from disk
            used = {mouse.trial_ids[i] for i in train}
            assert used and all(folds[t] in split.train_folds for t in used)
            assert not any(folds[t] in (0, split.val_fold) for t in used)
            assert all(folds[mouse.trial_ids[i]] == split.val_fold for i in val)
            assert set(mouse.trial_ids) == set(rec.trial_ids("train", with_responses=True))


def _trainer(mice, stem, epochs=2):
    from v1recon.device import seed_everything
    from v1recon.models import build_model
    from v1recon.training.config import train_config
    from v1recon.training.splits import plan_splits
    from v1recon.training.trainer import Trainer

    split = plan_splits(1, "seeds", seed=3)[0]
    seed_everything(split.seed)
    model = build_model("fast3d", [m.n_neurons for m in mice])
    config = train_config("tiny", epochs=epochs, samples_per_epoch=8, batch_size=4)
    return Trainer(model, mice, split, config, stem, "cpu", {"mouse_names": [m.name for m in mice]}, progress=False)


def test_resume_continues_from_the_last_complete_epoch(data, tmp_path):
    from v1recon.data import open_recordings
    from v1recon.models import load_model
    from v1recon.training.clips import load_training_trials

    mice = [load_training_trials(r, 7) for r in open_recordings(data)]
    straight = _trainer(mice, tmp_path / "a")
    straight.fit()

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    interrupted = _trainer(mice, tmp_path / "b")
    with pytest.raises(Stop):
        interrupted.fit(on_epoch=stop)
    assert (tmp_path / "b.state.pt").is_file()
    assert load_model(tmp_path / "b")[1]["complete"] is False
    resumed = _trainer(mice, tmp_path / "b")
    assert resumed.epoch == 1
    resumed.fit()
    assert resumed.epoch == 2 and [r["epoch"] for r in resumed.history] == [1, 2]
    a, _ = load_model(tmp_path / "a")
    b, config = load_model(tmp_path / "b")
    assert config["complete"] is True
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(wa.float(), wb.float(), atol=1e-6), name


def test_evaluate_scores_models_ensemble_and_truth(run, data):
    result = cli("evaluate", run, "--tiers", "oracle", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "ensemble" in result.stdout and "truth" in result.stdout
    ev = json.loads((run / "evaluation" / "encoders.json").read_text())
    mouse = ev["mice"]["insilico-s0-m0"]
    assert set(mouse["encoders"]) == {"model-0", "model-1", "ensemble", "truth"}
    assert mouse["n_trials"] == 6 and mouse["n_stimuli"] == 2 and mouse["tiers"] == ["oracle"]
    truth = mouse["encoders"]["truth"]["single_trial_correlation"]
    assert 0.1 < truth < 1
    assert mouse["ratio_to_truth"]["ensemble"] == pytest.approx(
        mouse["encoders"]["ensemble"]["single_trial_correlation"] / truth
    )
    groups = mouse["ratio_by_group"]
    assert sum(g["n_neurons"] for k, g in groups.items() if k.startswith("sf")) == 60
    assert "by cell type" in result.stdout and "by spatial frequency" in result.stdout
    again = cli("evaluate", run, "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_evaluate_refuses_mismatched_data(run, data, tmp_path):
    from v1recon.data import Trial, open_recordings, write_recording

    rec = open_recordings(data)[0]
    trials = []
    for i in range(3):  # a few trials suffice: the neuron count is checked before any trial is read
        t = rec.trial(i)
        trials.append(Trial(i, t.tier, t.video, t.responses[:30], t.behaviour))
    write_recording(tmp_path / "fewer" / rec.name, trials, rec.unit_ids[:30], rec.coordinates[:30])
    result = cli("evaluate", run, "--data", tmp_path / "fewer", "--overwrite", "--no-progress")
    assert result.returncode == 2
    assert "30 neurons" in result.stderr and "60" in result.stderr and result.stderr.count("\n") == 1
    empty = cli("evaluate", run, "--tiers", "live_bonus", "--overwrite", "--no-progress")
    assert empty.returncode == 2 and "no live_bonus trials" in empty.stderr


def test_evaluate_refuses_a_checkpoint_of_another_architecture(run, tmp_path):
    import shutil

    from v1recon.models import build_model, save_model
    from v1recon.runs import load_encoders

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    save_model(tmp_path / "other", build_model("small", [60, 60]), {})
    shutil.copy(tmp_path / "other.safetensors", copy / "models" / "model-1.safetensors")
    with pytest.raises(V1ReconError, match="model-1.safetensors.*does not match the architecture"):
        load_encoders(copy, "insilico-s0-m0")


def test_subunit_model_starts_from_the_data_and_trains(data, tmp_path):
    from v1recon.data import open_recordings
    from v1recon.models import build_model, load_model
    from v1recon.training.clips import load_training_trials
    from v1recon.training.config import train_config
    from v1recon.training.splits import plan_splits
    from v1recon.training.trainer import Trainer

    mice = [load_training_trials(r, 7) for r in open_recordings(data)]
    torch.manual_seed(0)
    small = dict(window=9, orientations=2, periods_px=(4.0, 8.0), sigmas_px=(2.0, 3.0), temporal_frames=6)
    model = build_model("subunit", [m.n_neurons for m in mice], train_predicted_frames=6, **small)
    before = model.readouts[0].coefficients.detach().clone()
    config = train_config("subunit", epochs=1, samples_per_epoch=8, batch_size=4, val_trials=2)
    split = plan_splits(1, "seeds", seed=3)[0]
    trainer = Trainer(model, mice, split, config, tmp_path / "s", "cpu", {"preset": "subunit"}, progress=False)
    centres = model.readouts[0].centre
    assert len({tuple(c) for c in centres.tolist()}) > 1  # windows placed per neuron, not all at the default
    assert not torch.allclose(model.readouts[0].coefficients, before)  # filters started from the data
    trainer.fit()
    loaded, saved = load_model(tmp_path / "s")
    assert saved["preset"] == "subunit" and torch.equal(loaded.readouts[0].centre, model.readouts[0].centre)


def test_models_of_a_run_share_one_rf_start_per_mouse_from_their_common_folds(data, tmp_path, monkeypatch):
    import v1recon.models.rf_init as rf_init
    from v1recon.data import open_recordings
    from v1recon.models import build_model
    from v1recon.training.clips import load_training_trials
    from v1recon.training.config import train_config
    from v1recon.training.splits import plan_splits
    from v1recon.training.trainer import SharedStart, Trainer

    mice = [load_training_trials(r, 7) for r in open_recordings(data)]
    calls = []
    search = rf_init.rf_positions
    monkeypatch.setattr(rf_init, "rf_positions", lambda v, r, **kw: calls.append(len(v)) or search(v, r, **kw))
    gazes = []
    still = (np.zeros(2), np.zeros(2))
    monkeypatch.setattr(rf_init, "estimate_gaze", lambda v, p, r, **kw: gazes.append(len(v)) or still)
    splits = plan_splits(2, "folds", seed=0)
    shared = SharedStart((3, 4, 5, 6))  # the folds both models train on
    config = train_config("subunit", epochs=1, samples_per_epoch=4, batch_size=2, val_trials=1)
    small = dict(window=9, orientations=2, periods_px=(4.0,), sigmas_px=(2.0,), temporal_frames=6)
    models = []
    for split in splits:
        torch.manual_seed(split.seed)
        model = build_model("subunit", [m.n_neurons for m in mice], train_predicted_frames=6, **small)
        Trainer(model, mice, split, config, tmp_path / f"m{split.model_index}", "cpu", progress=False,
                shared_start=shared)  # fmt: skip
        models.append(model)
    clip = models[0].train_clip_frames
    assert calls == [len(m.indices(shared.folds, min_frames=clip)) for m in mice]  # once per mouse, common folds
    assert gazes == calls  # the gaze too
    for a, b in zip(models[0].readouts, models[1].readouts, strict=True):
        assert torch.equal(a.centre, b.centre) and torch.equal(a.coefficients, b.coefficients)
