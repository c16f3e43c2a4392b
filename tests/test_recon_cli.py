"""The mask and reconstruct commands end to end on the tiny in-silico mouse (few iterations: shapes and files)."""

import json

import numpy as np
import pytest
from conftest import cli, simulate_tiny, train_tiny

from v1recon.errors import V1ReconError
from v1recon.jobs.masks import run_masks
from v1recon.jobs.mouse import parse_trials
from v1recon.jobs.reconstruct import run_reconstruction
from v1recon.recon.reconstructor import ReconConfig

TRAIN_ARGS = ["--preset", "fast3d", "--models", "2", "--epochs", "1", "--samples-per-epoch", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return simulate_tiny(tmp_path_factory.mktemp("sim"), n_mice=1)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return train_tiny(data, tmp_path_factory.mktemp("train"), TRAIN_ARGS)


def test_mask_job_writes_and_refuses_to_replace(run, data):
    ((path, summary),) = run_masks(run, data, iterations=3, device="cpu", progress=False)
    assert path == run / "masks" / "insilico-s0-m0.npz"
    assert path.is_file() and path.with_suffix(".json").is_file() and path.with_suffix(".png").is_file()
    with np.load(path) as f:
        assert f["alpha"].shape == (36, 64) and f["update_mask"].dtype == bool
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["config"]["iterations"] == 3 and side["mask"]["update_threshold"] == 0.5
    stamp = path.stat().st_mtime_ns
    ((_, again),) = run_masks(run, data, iterations=3, progress=False)  # the same job again: done, kept
    assert again == summary and path.stat().st_mtime_ns == stamp
    with pytest.raises(V1ReconError, match="already exists"):
        run_masks(run, data, iterations=4, progress=False)
    with pytest.raises(V1ReconError, match="thresholds"):
        run_masks(run, data, update_threshold=1.5, eval_threshold=1.0, overwrite=True)


def test_reconstruct_command_writes_every_output(run, data, tmp_path):
    out = tmp_path / "rec"
    result = cli(
        "reconstruct", run, "--data", data, "--out", out, "--trials", "1", "--iterations", "3", "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    assert "video r" in result.stdout  # the summary table
    folder = out / "insilico-s0-m0"
    (stem,) = [p.stem for p in folder.glob("*.npz")]
    for suffix in (".json", ".mp4", ".gif", ".png"):
        assert (folder / f"{stem}{suffix}").is_file(), suffix
    with np.load(folder / f"{stem}.npz") as f:
        assert f["confidence"].shape == (90, 36, 64)  # 2 models: their spread by default, also in the movies
        assert f["reconstruction"].shape == f["truth"].shape == (90, 36, 64)
        assert f["per_model"].shape == (2, 90, 36, 64) and f["loss"].shape == (2, 3)
        assert 0 <= f["reconstruction"].min() and f["reconstruction"].max() <= 255
    side = json.loads((folder / f"{stem}.json").read_text())
    assert {"video_correlation", "ssim_global", "response_consistency"} <= set(side["metrics"])
    assert side["cost"]["window_passes"] > 0 and side["data"]["tier"] == "final_test"
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["trials"]) == 1 and "video_correlation" in summary["mean"]
    assert (out / "summary.csv").read_text().startswith("mouse,trial,video_correlation")
    resumed = run_reconstruction(run, data, out, config=ReconConfig(iterations=3), trials="1", device="cpu",
                                 progress=False)  # fmt: skip
    assert resumed["trials"] == summary["trials"]  # the same job again: every task done, the summary rewritten
    again = cli("reconstruct", run, "--data", data, "--out", out, "--trials", "1", "--iterations", "2")
    assert again.returncode == 2 and again.stderr.startswith("error:") and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_oracle_and_predicted_upper_bounds(run, data, tmp_path):
    config = ReconConfig(method="paper", iterations=2)
    oracle = run_reconstruction(
        run, data, tmp_path / "o", config=config, trials="1", oracle=True, movies=False, device="cpu", progress=False
    )
    # 90 frames: 9 sub-batches x 2 windows per iteration; grey is a saddle of the true model, so iteration 0 is
    # evaluated again from the jittered start: 3 evaluations
    assert oracle["trials"][0]["window_passes"] == pytest.approx(3 * 9 * 2)
    assert oracle["trials"][0]["video_correlation"] != 0
    pred = run_reconstruction(
        run,
        data,
        tmp_path / "p",
        config=ReconConfig(iterations=2),
        trials="1",
        from_predicted=True,
        movies=False,
        device="cpu",
        progress=False,
    )
    assert np.isfinite(pred["mean"]["video_correlation"])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(tier="bogus"), "unknown tier"),
        (dict(trials="999,"), "not among"),
        (dict(trials="abc"), "give a count"),
        (dict(models="7"), "do not exist"),
    ],
)
def test_bad_requests_fail_before_writing(run, data, tmp_path, kwargs, message):
    with pytest.raises(V1ReconError, match=message):
        run_reconstruction(
            run,
            data,
            tmp_path / "x",
            config=ReconConfig(iterations=1),
            movies=False,
            progress=False,
            device="cpu",
            **kwargs,
        )
    assert not (tmp_path / "x").exists()


def test_trial_selection():
    assert parse_trials("2", [5, 6, 7], "x") == [5, 6]
    assert parse_trials("7,5", [5, 6, 7], "x") == [7, 5]
    assert parse_trials("6,", [5, 6, 7], "x") == [6]
    assert parse_trials(None, [5, 6], "x") == [5, 6]


def test_first_repeats_keeps_one_trial_per_movie(data):
    from v1recon.data import open_recordings
    from v1recon.jobs.mouse import first_repeats

    (rec,) = open_recordings(data)
    ids = rec.trial_ids(tier="final_test")
    firsts = first_repeats(rec, ids)
    videos = [rec.trial(t).video for t in firsts]
    # tiny preset: 2 test movies x 3 repeats; one trial each, the lowest id of its movie, all movies distinct
    assert len(firsts) == 2 and len(ids) == 6
    assert not np.array_equal(videos[0], videos[1])
    for t in ids:
        same = [f for f, v in zip(firsts, videos, strict=True) if np.array_equal(rec.trial(t).video, v)]
        assert len(same) == 1 and same[0] <= t


def test_confidence_movies_their_calibration_and_a_scale_fitted_elsewhere(run, data, tmp_path):
    common = dict(
        config=ReconConfig(iterations=2, restarts=2), device="cpu", progress=False, confidence="all", probes=2
    )
    once = {**common, "config": ReconConfig(iterations=2)}  # 2 models: 2 members, enough for the spread
    train = run_reconstruction(run, data, tmp_path / "train", tier="train", trials="1", movies=False, **once)
    fitted = train["confidence"]["methods"]
    assert set(fitted) == {"ensemble", "laplace", "unexplained"} and all(m["fitted_scale"] > 0 for m in fitted.values())
    assert {"spearman", "slope", "reliability", "frame_spearman_correlation"} <= set(fitted["laplace"]["calibration"])
    scale = tmp_path / "train" / "summary.json"  # movies: the default ensemble confidence of the test above
    test = run_reconstruction(run, data, tmp_path / "test", trials="1", confidence_scale=scale, movies=False, **common)
    folder = tmp_path / "test" / "insilico-s0-m0"
    (npz,) = folder.glob("*.npz")
    side = json.loads(npz.with_suffix(".json").read_text())["confidence"]
    assert side["arrays"] == {f"confidence_{m}": m for m in ("ensemble", "laplace", "unexplained")}
    assert side["scale"]["laplace"]["factor"] == pytest.approx(fitted["laplace"]["fitted_scale"])
    assert "tier train" in side["scale"]["laplace"]["fitted_on"] and side["settings"]["ensemble"]["members"] == 4
    with np.load(npz) as f:
        assert f["per_model"].shape == (4, 90, 36, 64)  # 2 models x 2 restarts
        for name in side["arrays"]:
            assert f[name].shape == (90, 36, 64) and f[name].dtype == np.float32 and f[name].min() >= 0
        outside = ~f["update_mask"]
        if outside.any():  # the prior, scaled, where the reconstruction is fixed grey
            factor = side["scale"]["unexplained"]["factor"]
            assert np.allclose(f["confidence_unexplained"][:, outside], side["prior_std"] * factor, rtol=1e-5)
    summary = test["confidence"]
    assert summary["methods"]["ensemble"]["scale_applied"] == pytest.approx(fitted["ensemble"]["fitted_scale"])
    assert (
        "calibration_unscaled" in summary["methods"]["ensemble"]
        and summary["best_by_spearman"] in side["arrays"].values()
    )
    assert "confidence_spearman_laplace" in (tmp_path / "test" / "summary.csv").read_text().splitlines()[0]
    with pytest.raises(V1ReconError, match="fitted on 1 of the trials"):  # never judged on the trials it was fitted on
        run_reconstruction(run, data, tmp_path / "again", tier="train", trials="1", movies=False,
                           confidence_scale=tmp_path / "train" / "summary.json", **common)  # fmt: skip
    with pytest.raises(V1ReconError, match="--restarts 2 or more"):  # one true model, one restart: no spread
        run_reconstruction(run, data, tmp_path / "o", trials="1", oracle=True, movies=False, device="cpu",
                           progress=False, config=ReconConfig(iterations=1), confidence="ensemble")  # fmt: skip
    assert not (tmp_path / "again").exists() and not (tmp_path / "o").exists()


def test_stream_command_writes_its_outputs_and_the_report_shows_them(run, data):
    from v1recon.data import open_recordings
    from v1recon.jobs.stream import run_stream
    from v1recon.recon.streaming import StreamSettings
    from v1recon.report import build
    from v1recon.report.sections import streams_section

    (rec,) = open_recordings(data)
    trial = rec.trial_ids(tier="final_test")[0]
    # an offline reconstruction of the trial where the stream command looks for one
    run_reconstruction(run, data, run / "reconstructions" / "final_test", config=ReconConfig(iterations=3),
                       trials="1", movies=False, device="cpu", progress=False)  # fmt: skip
    args = ["stream", run, "--trial", trial, "--window", "8", "--steps", "2", "--as-fast-as-possible"]
    result = cli(*args, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "delay 8 frames (267 ms" in result.stdout and "streamed vs offline" in result.stdout
    folder = run / "streams" / f"{rec.name}-trial-{trial}" / rec.name
    for suffix in (".npz", ".json", ".mp4", ".gif", ".png"):
        assert (folder / f"trial-{trial}{suffix}").is_file(), suffix
    with np.load(folder / f"trial-{trial}.npz") as f:
        assert f["reconstruction"].shape == f["truth"].shape == f["offline"].shape == (90, 36, 64)
        assert f["push_ms"].shape == (12,) and f["loss"].shape == (1, 12)  # 90 frames in chunks of 8
        out_s = f["frame_out_s"]
        assert out_s.shape == (90,) and np.all(np.diff(out_s) >= 0)
    side = json.loads((folder / f"trial-{trial}.json").read_text())
    assert side["delay"]["frames"] == 8 and side["config"]["chunk"] == 8
    assert side["delay"]["response_delay_frames"] <= side["delay"]["context_frames"]
    assert side["offline"]["source"].endswith(f"final_test/{rec.name}/trial-{trial}.npz")
    assert side["cost"]["realtime_factor"] > 0 and side["cost"]["window_passes"] > 0
    assert {"video_correlation", "response_consistency"} <= set(side["metrics"])
    kept = (folder / f"trial-{trial}.npz").stat().st_mtime_ns
    again = run_stream(run, trial, settings=StreamSettings(window=8, steps=2), realtime=False, device="cpu")
    assert again["metrics"] == side["metrics"] and (folder / f"trial-{trial}.npz").stat().st_mtime_ns == kept
    with pytest.raises(V1ReconError, match="no trial 99999"):
        run_stream(run, 99999)
    section = streams_section(build.Context(*build.collect.open_run(run), compute=False))
    assert f"{rec.name} \u00b7 trial {trial} \u00b7 streamed" in section and "<video" in section
