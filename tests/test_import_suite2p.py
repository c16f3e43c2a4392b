"""`v1recon import suite2p` on a suite2p-shaped plane folder: cells, positions, neuropil, clock, tiers, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import cli

from v1recon.data import Recording
from v1recon.data.suite2p import import_suite2p
from v1recon.errors import V1ReconError

N_ROIS, FS = 7, 10.0


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("V1RECON_CACHE_DIR", str(tmp_path_factory.mktemp("trial-table-cache")))


def plane_folder(root, seed=0):
    """suite2p/plane0 with 7 ROIs (ROIs 2 and 5 rejected) imaged at 10 Hz for 40 s, and a 30 Hz movie that shows
    one 4-s clip three times among others, from 3 s on; returns (plane, movie path, times path, truth)."""
    rng = np.random.default_rng(seed)
    plane = root / "session1" / "suite2p" / "plane0"
    plane.mkdir(parents=True)
    t = np.arange(400) / FS
    f = 500 + 100 * np.sin(0.5 * t[None, :] + rng.uniform(0, 6, (N_ROIS, 1)))
    fneu = 100 + 10 * np.cos(0.3 * t[None, :])
    spks = np.abs(np.sin(0.9 * t[None, :] + rng.uniform(0, 6, (N_ROIS, 1))))
    for name, arr in (("F", f), ("Fneu", fneu * np.ones((N_ROIS, 1))), ("spks", spks)):
        np.save(plane / f"{name}.npy", arr.astype(np.float32))
    iscell = np.stack([np.array([1, 1, 0, 1, 1, 0, 1.0]), rng.uniform(0, 1, N_ROIS)], 1)
    np.save(plane / "iscell.npy", iscell)
    med = rng.integers(0, 512, (N_ROIS, 2))
    np.save(plane / "stat.npy", np.array([{"med": list(m), "npix": 50} for m in med], dtype=object), allow_pickle=True)
    np.save(plane / "ops.npy", np.array({"fs": FS, "neucoeff": 0.7, "Ly": 512, "Lx": 512}, dtype=object))
    clips = rng.integers(0, 256, (4, 120, 54, 96), dtype=np.uint8)  # 16:9, downscaled by 1.5 to 36 x 64
    order = [0, 1, 0, 2, 0, 3]
    movie = np.concatenate([clips[k] for k in order])
    times = 3.0 + np.arange(movie.shape[0]) / 30.0
    np.save(root / "movie.npy", movie)
    np.save(root / "times.npy", times)
    return plane, root / "movie.npy", root / "times.npy", {"f": f, "fneu": fneu, "spks": spks, "t": t, "med": med}


def test_suite2p_folder_imports_cells_positions_and_repeats(tmp_path):
    plane, movie, times, truth = plane_folder(tmp_path)
    folder, provenance = import_suite2p(
        plane, tmp_path / "data", stimulus=movie, frame_times=times, trial_seconds=4.0, progress=False
    )
    assert folder.name == "session1-plane0"
    rec = Recording(folder)
    cells = np.array([0, 1, 3, 4, 6])
    np.testing.assert_array_equal(rec.unit_ids, cells)
    np.testing.assert_array_equal(rec.coordinates[:, 0], truth["med"][cells, 1])  # med is (y, x)
    assert len(rec.trials) == 6 and [t.tier for t in rec.trials] == ["final_test", "train"] * 3
    clock = 3.0 + 8.0 + np.arange(120) / 30.0  # trial 2 (the second showing of clip 0)
    expected = np.stack([np.interp(clock, truth["t"], row) for row in truth["spks"][cells]])
    np.testing.assert_allclose(rec.trial(2).responses, expected, atol=1e-5)
    np.testing.assert_array_equal(rec.trial(0).video, rec.trial(4).video)
    assert (rec.trial(0).behaviour == 0).all()  # suite2p holds no behaviour: absent, filled with 0
    on_disk = json.loads(folder.with_suffix(".json").read_text())
    assert [f["file"] for f in on_disk["source"]["files"]] == ["spks.npy", "movie.npy", "times.npy"]
    assert provenance["choices"]["responses"]["cells"] == "5 of 7 ROIs marked as cells in iscell.npy"


def test_fluorescence_is_neuropil_corrected_and_made_dff(tmp_path):
    plane, movie, times, truth = plane_folder(tmp_path)
    folder, provenance = import_suite2p(
        plane, tmp_path / "data", stimulus=movie, frame_times=times, responses="F", all_rois=True,
        trial_seconds=4.0, progress=False,
    )  # fmt: skip
    corrected = truth["f"] - 0.7 * truth["fneu"]
    f0 = np.percentile(corrected, 10, axis=1, keepdims=True)
    dff = (corrected - f0) / f0  # F0: each ROI's 10th percentile over the whole trace
    clock = 3.0 + 4.0 + np.arange(120) / 30.0
    expected = np.maximum(np.stack([np.interp(clock, truth["t"], row) for row in dff]), 0)
    np.testing.assert_allclose(Recording(folder).trial(1).responses, expected, atol=1e-5)
    assert provenance["choices"]["responses"]["neuropil"] == "F - 0.7 x Fneu"


def test_suite2p_bad_input(tmp_path):
    plane, movie, times, _ = plane_folder(tmp_path)
    short = tmp_path / "short.npy"
    np.save(short, np.load(times)[:-5])
    with pytest.raises(V1ReconError, match=r"short\.npy: 715 frame times for the 720 frames of movie\.npy"):
        import_suite2p(plane, tmp_path / "data", stimulus=movie, frame_times=short, progress=False)
    late = tmp_path / "late.npy"
    np.save(late, np.load(times) + 100.0)
    with pytest.raises(V1ReconError, match="do not overlap in time"):
        import_suite2p(plane, tmp_path / "data", stimulus=movie, frame_times=late, progress=False)
    (plane / "ops.npy").unlink()
    result = cli("import", "suite2p", plane, tmp_path / "data", "--stimulus", movie, "--frame-times", times)
    assert result.returncode == 2 and "no frame rate in ops.npy; give --fs" in result.stderr
    assert not (tmp_path / "data").exists()


def test_object_files_never_run_code(tmp_path):
    """ops.npy and stat.npy are pickles: plain dicts of numbers and arrays load, a file naming a function does
    not, and the function never runs."""
    from v1recon.data.suite2p import load_suite2p_objects

    plain = tmp_path / "ops.npy"
    np.save(plain, np.array({"fs": 30.0, "xrange": np.arange(3)}, dtype=object))
    assert load_suite2p_objects(plain).item()["fs"] == 30.0
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    crafted = tmp_path / "stat.npy"
    np.save(crafted, np.array([Payload()], dtype=object))
    with pytest.raises(V1ReconError, match="stat.npy: not a suite2p object file .* names posix.system"):
        load_suite2p_objects(crafted)
    assert not marker.exists()
