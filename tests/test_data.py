"""Reader and writer of the Sensorium layout: round trip, valid-length rule, absent responses, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from v1recon.data import TIERS, Recording, Trial, open_recordings, response_precision, write_recording
from v1recon.errors import V1ReconError

N = 12


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("V1RECON_CACHE_DIR", str(tmp_path_factory.mktemp("trial-table-cache")))


def make_trial(rng, trial_id, length, tier="train", responses=True):
    return Trial(
        trial_id,
        tier,
        rng.uniform(0, 255, (length, 36, 64)).astype(np.float32),
        rng.gamma(1.0, 1.0, (N, length)).astype(np.float32) if responses else None,
        rng.normal(size=(4, length)).astype(np.float32),
    )


def write_by_hand(root: Path, lengths, t_pad=50, tiers=None, n=N, seed=0, zero_tiers=("final_test",)):
    """A mouse folder written with plain numpy from the format description alone (not with write_recording).

    Behaviour is not NaN-padded (as in the public release), tiers are stored as an object array, response
    statistics are per frame (N, T_pad), and the responses of `zero_tiers` are all zeros including the padding.
    """
    rng = np.random.default_rng(seed)
    tiers = tiers or ["train"] * len(lengths)
    for sub in ("videos", "responses", "behavior", "pupil_center"):
        (root / "data" / sub).mkdir(parents=True)
    for i, (length, tier) in enumerate(zip(lengths, tiers, strict=True)):
        video = np.full((36, 64, t_pad), np.nan)
        video[:, :, :length] = rng.uniform(0, 255, (36, 64, length))
        responses = np.full((n, t_pad), np.nan)
        responses[:, :length] = rng.gamma(1.0, 1.0, (n, length))
        if tier in zero_tiers:
            responses[:] = 0.0
        np.save(root / "data" / "videos" / f"{i}.npy", video)
        np.save(root / "data" / "responses" / f"{i}.npy", responses)
        np.save(root / "data" / "behavior" / f"{i}.npy", rng.normal(size=(2, t_pad)))
        np.save(root / "data" / "pupil_center" / f"{i}.npy", rng.normal(size=(2, t_pad)))
    (root / "meta" / "trials").mkdir(parents=True)
    np.save(root / "meta" / "trials" / "tiers.npy", np.array(tiers, dtype=object), allow_pickle=True)
    (root / "meta" / "neurons").mkdir(parents=True)
    np.save(root / "meta" / "neurons" / "unit_ids.npy", np.arange(1, n + 1))
    np.save(root / "meta" / "neurons" / "cell_motor_coordinates.npy", rng.uniform(0, 500, (n, 3)))
    for kind, shape in (("videos", ()), ("responses", (n, t_pad)), ("behavior", (2,)), ("pupil_center", (2,))):
        folder = root / "meta" / "statistics" / kind / "all"
        folder.mkdir(parents=True)
        for name in ("mean", "std", "min", "max", "median"):
            np.save(folder / f"{name}.npy", rng.uniform(0.5, 2.0, shape))
    return root


@pytest.fixture
def trials():
    rng = np.random.default_rng(1)
    return [
        make_trial(rng, 0, 40, "train"),
        make_trial(rng, 2, 45, "final_test", responses=False),  # ids may come in any order
        make_trial(rng, 1, 33, "oracle"),
    ]


def test_round_trip_gives_identical_arrays(tmp_path, trials):
    coords = np.random.default_rng(2).uniform(0, 400, (N, 3)).astype(np.float32)
    out = write_recording(tmp_path / "mouse", trials, np.arange(100, 100 + N), coords)
    (rec,) = open_recordings(out)
    assert rec.name == "mouse" and rec.n_neurons == N and rec.pad_length == 45
    np.testing.assert_array_equal(rec.unit_ids, np.arange(100, 100 + N))
    np.testing.assert_array_equal(rec.coordinates, coords)
    assert [(t.trial_id, t.tier, t.length, t.has_responses) for t in rec.trials] == [
        (0, "train", 40, True),
        (1, "oracle", 33, True),
        (2, "final_test", 45, False),
    ]
    for original in trials:
        loaded = rec.trial(original.trial_id)
        assert loaded.tier == original.tier and loaded.length == original.video.shape[0]
        assert loaded.video.dtype == np.float32 and loaded.video.shape == original.video.shape
        np.testing.assert_array_equal(loaded.video, original.video)
        np.testing.assert_array_equal(loaded.behaviour, original.behaviour)
        if original.responses is None:
            assert loaded.responses is None
        else:
            np.testing.assert_array_equal(loaded.responses, original.responses)
    # on disk: time last, NaN-padded to the longest trial, absent responses stored as zeros
    video_1 = np.load(out / "data" / "videos" / "1.npy")
    assert video_1.shape == (36, 64, 45) and np.isnan(video_1[:, :, 33:]).all()
    np.testing.assert_array_equal(video_1[:, :, 5], trials[2].video[5])
    assert (np.load(out / "data" / "responses" / "2.npy")[:, :45] == 0).all()
    np.testing.assert_array_equal(np.load(out / "data" / "pupil_center" / "0.npy")[:, :40], trials[0].behaviour[2:])


def test_written_statistics_match_numpy(tmp_path, trials):
    out = write_recording(tmp_path / "mouse", trials, np.arange(N), np.zeros((N, 3)), pad_to=60)
    rec = Recording(out)
    assert rec.pad_length == 60
    with_resp = [t for t in trials if t.responses is not None]
    responses = np.concatenate([t.responses for t in with_resp], axis=1).astype(np.float64)
    stats = rec.statistics("responses")
    assert stats["std"].shape == (N,)
    np.testing.assert_allclose(stats["mean"], responses.mean(1), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], responses.std(1), rtol=1e-5)
    np.testing.assert_allclose(stats["median"], np.median(responses, 1), rtol=1e-5)
    np.testing.assert_allclose(stats["max"], responses.max(1), rtol=1e-6)
    pixels = np.concatenate([t.video.ravel() for t in trials]).astype(np.float64)
    video_stats = rec.statistics("videos")
    assert video_stats["mean"].shape == ()
    np.testing.assert_allclose(video_stats["mean"], pixels.mean(), rtol=1e-5)
    np.testing.assert_allclose(video_stats["std"], pixels.std(), rtol=1e-5)
    pupil = np.concatenate([t.behaviour[2:] for t in trials], axis=1).astype(np.float64)
    np.testing.assert_allclose(rec.statistics("pupil_center")["min"], pupil.min(1), rtol=1e-6)


def test_absent_behaviour_channel_is_filled_from_the_statistics(tmp_path, caplog):
    import logging

    rng = np.random.default_rng(3)
    trials = [make_trial(rng, i, 40) for i in range(3)]
    trials[1].behaviour[1] = np.nan  # running speed not recorded in trial 1
    rec = Recording(write_recording(tmp_path / "mouse", trials, np.arange(N), np.zeros((N, 3))))
    speed = np.concatenate([trials[0].behaviour[1], trials[2].behaviour[1]]).astype(np.float64)
    np.testing.assert_allclose(rec.statistics("behavior")["mean"][1], speed.mean(), rtol=1e-5)
    np.testing.assert_allclose(rec.statistics("behavior")["std"][1], speed.std(), rtol=1e-5)
    with caplog.at_level(logging.WARNING, logger="v1recon"):
        loaded = rec.trial(1)
    np.testing.assert_allclose(loaded.behaviour[1], speed.mean(), rtol=1e-5)
    np.testing.assert_array_equal(loaded.behaviour[[0, 2, 3]], trials[1].behaviour[[0, 2, 3]])
    assert list(rec.filled_behaviour) == ["running speed"]
    assert rec.filled_behaviour["running speed"].startswith("the mean of the statistics")
    assert "trial 1" in caplog.text and "running speed" in caplog.text
    np.testing.assert_array_equal(rec.trial(0).behaviour, trials[0].behaviour)


def test_hand_written_sensorium_folder_loads(tmp_path):
    tiers = ["train", "oracle", "final_test", "live_bonus"]
    root = write_by_hand(tmp_path / "dynamic1-1-1-Video-abc", [40, 50, 35, 44], t_pad=50, tiers=tiers)
    (rec,) = open_recordings(root)
    assert rec.n_neurons == N and rec.pad_length == 50
    # behaviour is not NaN-padded, yet the valid length comes from the video
    assert [(t.tier, t.length, t.has_responses) for t in rec.trials] == [
        ("train", 40, True),
        ("oracle", 50, True),
        ("final_test", 35, False),
        ("live_bonus", 44, True),
    ]
    trial = rec.trial(0)
    raw_video = np.load(root / "data" / "videos" / "0.npy")
    np.testing.assert_array_equal(trial.video, np.moveaxis(raw_video[:, :, :40], 2, 0).astype(np.float32))
    assert trial.responses.shape == (N, 40) and trial.behaviour.shape == (4, 40)
    behavior = np.load(root / "data" / "behavior" / "0.npy").astype(np.float32)
    np.testing.assert_array_equal(trial.behaviour[1], behavior[1, :40])
    pupil = np.load(root / "data" / "pupil_center" / "0.npy").astype(np.float32)
    np.testing.assert_array_equal(trial.behaviour[3], pupil[1, :40])
    assert rec.trial(2).responses is None
    assert rec.trial_ids(with_responses=True) == [0, 1, 3]
    assert rec.trial_ids(tier=["oracle", "final_test"]) == [1, 2]
    assert rec.trial_ids(tier="train", with_responses=False) == []
    std = rec.statistics("responses")["std"]
    assert std.shape == (N, 50) and response_precision(std, length=40).shape == (N, 40)


def test_valid_length_is_min_of_video_and_responses_never_behaviour(tmp_path):
    root = write_by_hand(tmp_path / "m", [48, 48], t_pad=50)
    responses = np.load(root / "data" / "responses" / "1.npy")
    responses[:, 41:] = np.nan
    np.save(root / "data" / "responses" / "1.npy", responses)
    behavior = np.load(root / "data" / "behavior" / "0.npy")
    behavior[:, 35:] = np.nan  # behaviour padding (shorter or absent) must not change the valid length
    np.save(root / "data" / "behavior" / "0.npy", behavior)
    with pytest.raises(V1ReconError, match=r"behavior[/\\]0\.npy: NaN"):
        Recording(root).trial(0)
    rec = Recording(root)
    assert [t.length for t in rec.trials] == [48, 41]
    assert rec.trial(1).video.shape == (41, 36, 64)


def test_all_zero_responses_are_absent_even_when_neuron_0_is_silent(tmp_path):
    root = write_by_hand(tmp_path / "m", [40, 40, 40], tiers=["train", "live_test", "train"])
    responses = np.load(root / "data" / "responses" / "0.npy")
    responses[:-1, :40] = 0.0  # only the last neuron fires: present
    np.save(root / "data" / "responses" / "0.npy", responses)
    rec = Recording(root)
    assert [t.has_responses for t in rec.trials] == [True, True, True]
    root2 = write_by_hand(tmp_path / "m2", [40, 40], tiers=["train", "live_test"], zero_tiers=("live_test",))
    assert [t.has_responses for t in Recording(root2).trials] == [True, False]


def test_parent_folder_with_two_mice(tmp_path):
    write_by_hand(tmp_path / "mouse_b", [40, 40], n=7, seed=1)
    write_by_hand(tmp_path / "mouse_a", [45], n=5, seed=2)
    (tmp_path / "mouse_a.truth.safetensors").write_bytes(b"not a recording")
    (tmp_path / "notes").mkdir()
    recs = open_recordings(tmp_path)
    assert [(r.name, r.n_neurons, len(r.trials)) for r in recs] == [("mouse_a", 5, 1), ("mouse_b", 7, 2)]


# ---- bad input: one sentence naming the file --------------------------------------------------------------------


def _corrupt(root: Path, rel: str, value) -> Path:
    path = root / rel
    if isinstance(value, bytes):
        path.write_bytes(value)
    elif value is None:
        path.unlink()
    else:
        np.save(path, value, allow_pickle=True)
    return path


@pytest.mark.parametrize(
    ("rel", "make_value", "message"),
    [
        ("data/behavior/1.npy", lambda r: None, "file not found"),
        ("meta/neurons/unit_ids.npy", lambda r: None, "file not found"),
        ("data/responses/0.npy", lambda r: b"garbage, not numpy", "not a readable .npy"),
        ("data/videos/1.npy", lambda r: r.uniform(size=(36, 64)), r"expected a \(36, 64, T\) video"),
        ("data/videos/1.npy", lambda r: r.uniform(size=(32, 64, 50)), r"expected a \(36, 64, T\) video"),
        ("data/responses/1.npy", lambda r: r.uniform(size=(N - 1, 50)), "to match unit_ids"),
        ("meta/neurons/cell_motor_coordinates.npy", lambda r: r.uniform(size=(N + 1, 3)), "to match unit_ids"),
        ("data/pupil_center/0.npy", lambda r: r.uniform(size=(3, 50)), r"expected a \(2, T\) array"),
        ("meta/trials/tiers.npy", lambda r: np.array(["train", "holdout"]), "unknown tier 'holdout'"),
    ],
)
def test_structural_errors_on_open(tmp_path, rel, make_value, message):
    root = write_by_hand(tmp_path / "m", [40, 45])
    path = _corrupt(root, rel, make_value(np.random.default_rng(0)))
    with pytest.raises(V1ReconError, match=message) as err:
        open_recordings(root)
    assert str(err.value).startswith(str(path) + ":")


def test_missing_folder_and_empty_parent(tmp_path):
    with pytest.raises(V1ReconError, match="folder not found") as err:
        open_recordings(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)
    with pytest.raises(V1ReconError, match="no recording found"):
        open_recordings(tmp_path)


def test_short_trial_rejected_on_open(tmp_path):
    root = write_by_hand(tmp_path / "m", [40, 30])
    with pytest.raises(V1ReconError, match="30 valid frames, fewer than the minimum of 31") as err:
        Recording(root)
    assert str(err.value).startswith(str(root / "data" / "videos" / "1.npy"))
    root = write_by_hand(tmp_path / "m2", [40, 45])
    path = root / "data" / "responses" / "1.npy"
    responses = np.load(path)
    responses[0, 12] = np.nan  # an early NaN in neuron 0 is not mistaken for a short trial
    np.save(path, responses)
    with pytest.raises(V1ReconError, match="NaN inside the valid frames") as err:
        Recording(root)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize(
    ("kind", "index"),
    [
        ("videos", (5, 7, 12)),  # NaN in one pixel inside the trial
        ("videos", (0, 0, 35)),  # NaN in the pixel that sets the length: padding followed by valid frames
        ("responses", (3, 20)),
        ("behavior", (0, 39)),
        ("pupil_center", (1, 0)),
    ],
)
def test_nan_inside_valid_frames_rejected_on_load(tmp_path, kind, index):
    root = write_by_hand(tmp_path / "m", [45, 40])
    path = root / "data" / kind / "1.npy"
    arr = np.load(path)
    arr[index] = np.nan
    np.save(path, arr)
    rec = Recording(root)  # structure is fine: opening stays cheap
    rec.trial(0)
    with pytest.raises(V1ReconError, match="NaN") as err:
        rec.trial(1)
    assert str(err.value).startswith(str(path) + ":")


# ---- writer refusals leave nothing behind ------------------------------------------------------------------------


def _bad_writes(rng):
    def with_(trial, **changes):
        return Trial(**{**trial.__dict__, **changes})

    good = make_trial(rng, 0, 40)
    nan_resp = good.responses.copy()
    nan_resp[2, 7] = np.nan
    gap = good.behaviour.copy()
    gap[1, 5] = np.nan  # a channel is absent only when NaN throughout
    return {
        "short": ([make_trial(rng, 0, 20)], "fewer than the minimum of 31"),
        "frame size": ([with_(good, video=np.zeros((40, 32, 64)))], r"must be \(T, 36, 64\)"),
        "tier": ([with_(good, tier="holdout")], "unknown tier"),
        "neurons": ([with_(good, responses=np.zeros((N + 1, 40)))], "responses must be shaped"),
        "behaviour": ([with_(good, behaviour=np.zeros((2, 40)))], "behaviour must be shaped"),
        "nan": ([with_(good, responses=nan_resp)], "NaN"),
        "behaviour nan": ([with_(good, behaviour=gap)], "behaviour holds NaN"),
        "gap": ([good, make_trial(rng, 2, 40)], "without gaps"),
        "duplicate": ([good, good], "given twice"),
        "too long": ([make_trial(rng, 0, 70)], "more than pad_to=60"),
    }


@pytest.mark.parametrize("case", list(_bad_writes(np.random.default_rng(0))))
def test_write_errors_leave_nothing_behind(tmp_path, case):
    trial_list, message = _bad_writes(np.random.default_rng(0))[case]
    out = tmp_path / "out" / "mouse"
    with pytest.raises(V1ReconError, match=message) as err:
        write_recording(out, iter(trial_list), np.arange(N), np.zeros((N, 3)), pad_to=60)
    assert str(out) in str(err.value)
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_write_refuses_existing_folder_unless_overwrite(tmp_path, trials):
    out = write_recording(tmp_path / "mouse", trials, np.arange(N), np.zeros((N, 3)))
    with pytest.raises(V1ReconError, match="already exists") as err:
        write_recording(out, trials[:1], np.arange(N), np.zeros((N, 3)))
    assert str(out) in str(err.value)
    assert len(Recording(out).trials) == 3
    write_recording(out, trials[:1], np.arange(N), np.zeros((N, 3)), overwrite=True)
    assert len(Recording(out).trials) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mouse"]


def test_unknown_tier_query_and_trial_id(tmp_path, trials):
    rec = Recording(write_recording(tmp_path / "mouse", trials, np.arange(N), np.zeros((N, 3))))
    assert set(TIERS) >= {t.tier for t in rec.trials}
    with pytest.raises(V1ReconError, match="unknown tier"):
        rec.trial_ids(tier="test")
    with pytest.raises(V1ReconError, match="no trial 7"):
        rec.trial(7)


# ---- trial-table cache -------------------------------------------------------------------------------------------


def test_trial_table_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    from v1recon.data import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "MIN_SCAN_SECONDS", 0.0)
    root = write_by_hand(tmp_path / "m", [40, 45], tiers=["train", "final_test"])
    first = [t.__dict__ for t in Recording(root).trials]
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    cache._memory.clear()  # as in a new process: the table comes from disk
    monkeypatch.setattr(Recording, "_scan_trial", None)  # a re-scan would fail
    assert [t.__dict__ for t in Recording(root).trials] == first
    monkeypatch.undo()
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    video = np.load(root / "data" / "videos" / "1.npy")
    video[:, :, 38:] = np.nan
    np.save(root / "data" / "videos" / "1.npy", video[:, :, :48])  # changed size and length: cache is stale
    assert [t.length for t in Recording(root).trials] == [40, 38]
