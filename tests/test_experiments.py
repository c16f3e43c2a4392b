"""The paper's analyses: neuron subsets, statistics, result folders, and the `v1recon analyse` commands on a tiny
in-silico mouse with untrained (random-weight) models, so that no training is needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import cli

from v1recon.errors import V1ReconError
from v1recon.experiments import common, stats
from v1recon.experiments.population import subset_inputs
from v1recon.jobs.mouse import load_trials, open_setup


def analyse(*args):
    """Run `v1recon analyse ...` in this process (saves the interpreter start of a subprocess per call)."""
    from typer.testing import CliRunner

    from v1recon.cli import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, ["analyse", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny simulated mouse and a run folder holding two random-weight fast3d models and an alpha mask."""
    from v1recon.data import open_recordings
    from v1recon.models import build_model, save_model
    from v1recon.recon.masks import AlphaMask, mask_path, save_mask
    from v1recon.runs import RunInfo, model_stem, recording_identity
    from v1recon.sim.simulate import simulate
    from v1recon.training.splits import plan_splits

    root = tmp_path_factory.mktemp("experiments")
    data = root / "data"
    simulate(data, "tiny", n_mice=1, seed=0, progress=False, figure=False, log=lambda *a: None)
    (rec,) = open_recordings(data)
    run_dir = root / "run"
    info = RunInfo(
        path=run_dir,
        data=str(data),
        mice=[recording_identity(rec)],
        preset="fast3d",
        ensemble="folds",
        seed=0,
        n_folds=7,
        test_fold=0,
        splits=plan_splits(2),
        train_config={},
        models=[{"index": k, "complete": True} for k in range(2)],
    )
    (run_dir / "models").mkdir(parents=True)
    info.save()
    for k in range(2):
        torch.manual_seed(k)
        model = build_model("fast3d", [rec.n_neurons])
        save_model(model_stem(run_dir, k), model, {"complete": True, "mouse_names": [rec.name]})
    yy, xx = np.mgrid[:36, :64]
    alpha = 1.5 * np.exp(-((xx - 32) ** 2 + (yy - 18) ** 2) / 300.0)
    save_mask(mask_path(run_dir, rec.name), AlphaMask(alpha.astype(np.float32)))
    return run_dir


def test_nested_subsets_are_nested_and_sized():
    subsets = common.nested_subsets(40, [1.0, 0.5, 0.25, 0.125], np.random.default_rng(3))
    assert [s.size for s in subsets] == [40, 20, 10, 5]
    for big, small in zip(subsets, subsets[1:], strict=False):
        assert set(small) <= set(big)
    again = common.nested_subsets(40, [1.0, 0.5, 0.25, 0.125], np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(subsets, again, strict=True))
    with pytest.raises(V1ReconError):
        common.nested_subsets(40, [1.5], np.random.default_rng(0))


def test_dropped_neurons_leave_the_loss():
    """The input gradient does not depend on the responses of dropped neurons; with the published variant it does."""
    from tests.recon_toy import ToyEncoder, toy_trial
    from v1recon.recon.objective import poisson_nll

    encoder = ToyEncoder(n_neurons=30, seed=1)
    video, responses, behaviour = toy_trial(encoder, n_frames=40, seed=2)
    keep = np.sort(np.random.default_rng(0).permutation(30)[:10])
    other = responses.copy()
    dropped = np.setdiff1d(np.arange(30), keep)
    other[dropped] = 50.0  # wildly different targets for the dropped neurons

    def grad(enc_list, resp):
        v = torch.from_numpy(video)[None].clone().requires_grad_(True)
        pred = enc_list[0](v, torch.from_numpy(behaviour)[None])
        poisson_nll(pred, torch.from_numpy(resp)[None]).sum().backward()
        return v.grad.clone()

    a = grad(*subset_inputs([encoder], responses, keep, zero_dropped=False))
    b = grad(*subset_inputs([encoder], other, keep, zero_dropped=False))
    assert torch.equal(a, b)
    subset = subset_inputs([encoder], responses, keep, zero_dropped=False)[0][0]
    assert subset.n_neurons == 10
    full = encoder(torch.from_numpy(video)[None], torch.from_numpy(behaviour)[None])
    assert torch.allclose(subset(torch.from_numpy(video)[None], torch.from_numpy(behaviour)[None]), full[:, keep])
    # published variant: every neuron stays, the dropped ones with target 0 (so the gradient differs from subset)
    encs, zeroed = subset_inputs([encoder], responses, keep, zero_dropped=True)
    assert zeroed.shape == responses.shape and np.all(zeroed[dropped] == 0)
    assert np.array_equal(zeroed[keep], responses[keep])
    assert not torch.allclose(grad(encs, zeroed), a)


def test_null_test_known_cases():
    rng = np.random.default_rng(0)
    null = rng.normal(0, 0.1, (6, 50))
    strong = stats.null_test(np.full(6, 0.9), null, draws=999)
    assert strong["p"] == pytest.approx(1 / 1000)
    assert all(p == pytest.approx(1 / 51) for p in strong["p_per_reconstruction"])
    # observed drawn from the null itself: p is uniform, so rarely tiny
    ps = [
        stats.null_test(rng.normal(0, 0.1, 6), rng.normal(0, 0.1, (6, 50)), draws=199, seed=s)["p"] for s in range(40)
    ]
    assert 0.2 < np.mean(ps) < 0.8
    assert np.mean(np.array(ps) < 0.05) < 0.2


def test_holm_and_repeated_measures():
    adjusted = stats.holm([0.01, 0.04, 0.03, np.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(adjusted[3])
    values = np.array([[0.6, 0.5, 0.4], [0.7, 0.55, 0.3], [0.65, 0.6, 0.5], [0.5, 0.45, 0.2], [0.8, 0.6, 0.55]])
    res = stats.repeated_measures(values, ["all", "half", "quarter"])
    assert res["friedman"]["p"] < 0.01
    assert res["wilcoxon"][0]["p"] == pytest.approx(1 / 32)  # exact one-sided p: every trial agrees, n = 5
    assert res["wilcoxon"][0]["a_better_in"] == 5


def test_correlation_matrix_matches_video_correlation():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 40, 36, 64)), rng.normal(size=(2, 40, 36, 64))
    b[1] = a[0] * 2 + 1
    mask = np.zeros((36, 64), bool)
    mask[5:20, 10:50] = True
    m = common.correlation_matrix(a, b, mask)
    assert m.shape == (3, 2)
    assert m[0, 1] == pytest.approx(1.0)
    assert m[2, 0] == pytest.approx(common.video_r(a[2], b[0], mask), abs=1e-6)


def test_noise_grid_has_inverted_copies():
    from v1recon.experiments.resolution_noise import noise_movies

    movies, table = noise_movies([0, 2], [1], repeats=2, seed=0, invert=True, n_frames=40)
    assert movies.shape == (8, 40, 36, 64) and table.shape == (8, 4)
    assert np.allclose(movies[1], 255 - movies[0])
    assert not np.allclose(movies[2], movies[0])  # repeats differ


def test_cli_error_for_missing_run(tmp_path):
    result = cli("analyse", "population", tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "run.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_population_command_writes_result_folder(run):
    result = analyse("population", run, "--trials", "2", "--iterations", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    out = run / "analyses" / "population"
    assert sorted(p.name for p in out.iterdir()) == ["figure.png", "result.json", "result.npz"]
    side = json.loads((out / "result.json").read_text())
    assert side["result"] == "result.npz" and "provenance" in side
    assert side["config"]["fractions"] == [1, 0.5, 0.25, 0.125]
    with np.load(out / "result.npz") as f:
        assert f["r"].shape == (2, 4) and np.isfinite(f["r"]).all()
        assert list(f["kept"][0]) == [60, 30, 15, 8]
    again = cli("analyse", "population", run, "--trials", "2", "--iterations", "3", "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert not list(out.parent.glob(".*.tmp"))  # nothing half-written left behind


@pytest.mark.parametrize(
    "args",
    [
        ["resolution-noise", "--spatial", "0,4", "--temporal", "2", "--null-movies", "3"],
        ["gratings", "--sf", "0.0625", "--tf", "0.94", "--directions", "0,90"],
        ["ensemble-size", "--trials", "2"],
        ["masks", "--trials", "2"],
        ["upper-bounds", "--trials", "2"],
    ],
)
def test_every_analysis_runs(run, args):
    result = analyse(*args[:1], run, *args[1:], "--iterations", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    side = json.loads((run / "analyses" / args[0] / "result.json").read_text())
    assert side["summary"]["table"]["rows"] and side["summary"]["expected"]
    assert side["identity"]["true_model"] is True
    assert (run / "analyses" / args[0] / "figure.png").stat().st_size > 1000


def test_chance_level_is_named_and_short_trials_refused(run):
    assert "chance level" in common.chance_note(0.01) and common.chance_note(0.3) == ""
    setup = open_setup(run, log=lambda msg: None)
    with pytest.raises(V1ReconError, match="--frames"):
        load_trials(setup.recording, [0], frames=20)
    cut = load_trials(setup.recording, [0], frames=40)
    assert cut.videos[0].shape[0] == 40 and cut.responses[0].shape[1] == 40 and cut.behaviours[0].shape[1] == 40


def test_an_analysis_job_equals_the_in_process_run_and_resumes_its_missing_units(run, monkeypatch):
    """upper-bounds as a job of one task per condition: the same result as `run` in one process; a job stopped
    after its first unit keeps that part, and the rerun computes only the units still missing."""
    from v1recon.experiments import registry, upper_bounds

    cfg, settings = registry.UpperBounds(trials=2, frames=60), registry.Settings(iterations=3, progress=False)
    setup = open_setup(run, log=lambda msg: None)
    recon = common.recon_config("fast", 3, 0, 8)
    expected, _ = upper_bounds.run(setup, cfg, recon, settings)

    real, calls = upper_bounds.reconstruct_unit, []

    def stop_after_one(setup, cfg, recon, settings, spec):
        if calls:
            raise KeyboardInterrupt  # as if the job were stopped while its second unit ran
        calls.append(spec["condition"])
        return real(setup, cfg, recon, settings, spec)

    monkeypatch.setattr(upper_bounds, "reconstruct_unit", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        registry.run_analysis(run, "upper-bounds", cfg, settings, overwrite=True, log=lambda msg: None)
    parts = registry.parts_dir(run, "upper-bounds")
    assert [p.name for p in parts.glob("*.npz")] == [f"{calls[0]}.npz"]

    def counted(setup, cfg, recon, settings, spec):
        calls.append(spec["condition"])
        return real(setup, cfg, recon, settings, spec)

    monkeypatch.setattr(upper_bounds, "reconstruct_unit", counted)
    result = registry.run_analysis(run, "upper-bounds", cfg, settings, overwrite=True, log=lambda msg: None)
    assert sorted(calls) == sorted(upper_bounds.units(setup, cfg, settings))  # each unit ran once in all
    assert not parts.exists()
    with np.load(result.folder / "result.npz") as f:
        np.testing.assert_allclose(f["r"], expected["r"], atol=1e-6)
        assert list(f["conditions"]) == list(expected["conditions"])
