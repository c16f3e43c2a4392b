"""`v1recon import nwb` on small files built with pynwb: arrays, frame alignment, tiers, absent behaviour, bad input."""

from __future__ import annotations

import hashlib
import json
import logging
import sys

import numpy as np
import pytest

pytest.importorskip("pynwb")

from conftest import cli  # noqa: E402
from nwb_build import movie_session  # noqa: E402

from v1recon.data import Recording  # noqa: E402
from v1recon.data.nwb import import_nwb  # noqa: E402
from v1recon.errors import V1ReconError  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("V1RECON_CACHE_DIR", str(tmp_path_factory.mktemp("trial-table-cache")))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return movie_session(tmp_path_factory.mktemp("nwb") / "session.nwb")


def _import(path, out, **options):
    return import_nwb(path, out, progress=False, **options)


def _blocks(frames):
    """72 x 128 -> 36 x 64 by 2 x 2 means (the exact area average of a 2x downscale)."""
    return frames.reshape(frames.shape[0], 36, 2, 64, 2).astype(np.float64).mean((2, 4))


def test_import_aligns_frames_responses_and_behaviour(session, tmp_path):
    path, truth = session
    folder, provenance = _import(path, tmp_path / "data")
    rec = Recording(folder)
    assert folder == tmp_path / "data" / "session" and rec.n_neurons == 6 and len(rec.trials) == 8
    np.testing.assert_array_equal(rec.unit_ids, np.arange(6))
    # 3 x 3 pixel masks centred on the ROI centres, 2 um pixels
    np.testing.assert_allclose(rec.coordinates[:, :2], truth["centres"] * 2.0, atol=1e-4)
    for i, start in enumerate(truth["starts"]):
        trial = rec.trial(i)
        assert trial.length == 60
        clock = start + np.arange(60) / 30.0
        shown = [max(j for j, t in enumerate(truth["stimulus_times"]) if t <= c + 1e-6) for c in clock]
        assert np.all(np.abs(truth["stimulus_times"][shown] - clock) < 1 / 30.0)  # within one frame
        np.testing.assert_allclose(trial.video, _blocks(truth["frames"][shown]), atol=1e-3)
        expected = np.stack([np.interp(clock, truth["imaging_times"], r) for r in truth["responses"].T])
        np.testing.assert_allclose(trial.responses, expected, atol=1e-5)
        times = truth["behaviour_times"]
        np.testing.assert_allclose(trial.behaviour[1], np.interp(clock, times, truth["running"]), atol=1e-4)
        np.testing.assert_allclose(trial.behaviour[0], np.interp(clock, times, truth["pupil_area"]), atol=1e-3)
        np.testing.assert_allclose(trial.behaviour[3], np.interp(clock, times, truth["pupil_xy"][:, 1]), atol=1e-5)
    # movie 0 is shown 3 times (test), movie 1 twice: 5 of 8 trials would exceed the test share of one half
    repeats = truth["repeats"]
    assert [t.tier for t in rec.trials] == ["final_test" if m == 0 else "train" for m in repeats]
    choices = provenance["choices"]
    assert choices["responses"]["kind"] == "deconvolved"
    assert choices["responses"]["not_used"] == ["processing/ophys/DfOverF/DfOverF"]
    assert choices["stimulus"]["series"] == "stimulus/presentation/natural_movie"
    on_disk = json.loads(folder.with_suffix(".json").read_text())
    (source,) = on_disk["source"]["files"]
    assert source["file"] == "session.nwb" and source["size_bytes"] == path.stat().st_size
    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [t["start_s"] for t in on_disk["trials"]] == pytest.approx(list(truth["starts"]))


def test_dff_is_used_without_deconvolved_events_and_made_non_negative(tmp_path):
    path, truth = movie_session(tmp_path / "dff.nwb", responses="DfOverF", seed=1)
    folder, provenance = _import(path, tmp_path / "data", max_test_fraction=0.0)
    rec = Recording(folder)
    assert {t.tier for t in rec.trials} == {"train"}
    clock = truth["starts"][2] + np.arange(60) / 30.0
    expected = np.stack([np.interp(clock, truth["imaging_times"], r) for r in truth["responses"].T])
    np.testing.assert_allclose(rec.trial(2).responses, expected, atol=1e-5)  # all positive: unchanged
    assert provenance["choices"]["responses"]["kind"] == "dff"


def test_fixed_pieces_without_a_trials_table(tmp_path):
    path, truth = movie_session(tmp_path / "pieces.nwb", trials=False)
    folder, provenance = _import(path, tmp_path / "data", trial_seconds=2.0)
    starts = [t["start_s"] for t in provenance["trials"]]
    # one block of frames from 1.0 s to 19.67 s: nine 2-s pieces, the last 0.67 s (20 frames) too short
    assert starts == pytest.approx(1.0 + 2.0 * np.arange(9))
    assert [t.length for t in Recording(folder).trials] == [60] * 9


def test_a_trial_may_begin_within_one_response_sample_before_the_first(tmp_path):
    img_times = np.arange(1.02, 21.0, 1 / 15.0)  # imaging starts 20 ms after the first trial
    ones = np.ones((img_times.size, 6))
    path, _ = movie_session(tmp_path / "late.nwb", response_times=img_times, response_data=ones)
    folder, provenance = _import(path, tmp_path / "data")
    assert len(provenance["trials"]) == 8 and provenance["trials"][0]["start_s"] == pytest.approx(1.0)
    np.testing.assert_allclose(Recording(folder).trial(0).responses, 1.0)  # the first sample held


def test_absent_behaviour_is_written_absent_and_filled_when_read(tmp_path, caplog):
    path, _ = movie_session(tmp_path / "still.nwb", running=False, pupil=False)
    folder, provenance = _import(path, tmp_path / "data")
    assert provenance["choices"]["behaviour"]["absent_in_trials"] == dict.fromkeys(
        ["pupil dilation", "running speed", "pupil x", "pupil y"], 8
    )
    assert np.isnan(np.load(folder / "data" / "behavior" / "0.npy")).all()
    assert np.isnan(np.load(folder / "meta" / "statistics" / "behavior" / "all" / "mean.npy")).all()
    rec = Recording(folder)
    with caplog.at_level(logging.WARNING, logger="v1recon"):
        first, second = rec.trial(0), rec.trial(1)
    assert (first.behaviour == 0).all() and (second.behaviour == 0).all()
    channels = ["pupil dilation", "running speed", "pupil x", "pupil y"]
    assert rec.filled_behaviour == dict.fromkeys(channels, "0 (no statistics)")
    (message,) = [r.getMessage() for r in caplog.records]  # said once per recording, not per trial
    assert str(folder) in message and "behaviour not recorded" in message


def _corrupt(path, dataset, value):
    import h5py

    with h5py.File(path, "r+") as f:
        del f[dataset]
        f[dataset] = value


def _bad_files(tmp_path):
    """name -> (path of a bad file, words the error must contain)."""
    cases = {}
    path, _ = movie_session(tmp_path / "no-responses.nwb", responses=None)
    cases["no responses"] = (path, "no response series (RoiResponseSeries) found")
    times = 1.0 + np.arange(560) / 30.0
    times[[100, 101]] = times[[101, 100]]
    path, _ = movie_session(tmp_path / "unordered.nwb", stimulus_times=times)
    cases["not increasing"] = (path, "'stimulus/presentation/natural_movie' has timestamps that are not increasing")
    path, truth = movie_session(tmp_path / "apart.nwb")
    _corrupt(path, "processing/ophys/Deconvolved/Deconvolved/timestamps", truth["imaging_times"] + 1000.0)
    cases["no overlap"] = (path, "do not overlap in time")
    nan = truth["responses"].copy()
    nan[np.searchsorted(truth["imaging_times"], truth["starts"][3] + 0.5), 4] = np.nan
    path, _ = movie_session(tmp_path / "nan.nwb", response_data=nan)
    cases["nan"] = (path, "holds NaN or infinite values at")
    path, truth = movie_session(tmp_path / "shape.nwb")
    _corrupt(path, "processing/ophys/Deconvolved/Deconvolved/data", np.ones((truth["imaging_times"].size, 7)))
    cases["wrong shape"] = (path, "has 7 columns but 6 ROIs")
    path, truth = movie_session(tmp_path / "rows.nwb")
    _corrupt(path, "stimulus/presentation/natural_movie/data", truth["frames"][:500])
    cases["frames and timestamps"] = (path, "has data of shape (500, 72, 128), expected (frames, height, width)")
    (tmp_path / "text.nwb").write_text("not an NWB file\n")
    cases["not nwb"] = (tmp_path / "text.nwb", "not a readable NWB file")
    return cases


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "case", ["no responses", "not increasing", "no overlap", "nan", "wrong shape", "frames and timestamps", "not nwb"]
)
def test_bad_input_is_one_sentence_naming_the_file_and_nothing_is_written(bad_files, tmp_path, case):
    path, words = bad_files[case]
    out = tmp_path / "data"
    with pytest.raises(V1ReconError) as err:
        _import(path, out)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and words in message, message
    assert message.count(". ") == 0 and "\n" not in message
    assert not out.exists()


def test_cli_bad_input_exits_2_with_one_line(bad_files, tmp_path):
    path, words = bad_files["nan"]
    result = cli("import", "nwb", path, tmp_path / "data", "--no-progress")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "data").exists()


def test_without_pynwb_the_error_says_how_to_install_it(session, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)  # what `import pynwb` meets where it is not installed
    with pytest.raises(V1ReconError, match=r"optional dependency pynwb: install it with pip install -e '\.\[nwb\]'"):
        _import(session[0], tmp_path / "data")
