"""`v1recon export nwb` on a reconstruction folder laid out as `v1recon reconstruct` writes it (built by hand here,
with a confidence map that the reconstructor does not write yet): series, clock, masks, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pynwb")

from v1recon.errors import V1ReconError  # noqa: E402
from v1recon.io import save_npz, write_json, write_sidecar  # noqa: E402


def recon_folder(root, frames=96):
    rng = np.random.default_rng(0)
    folder = root / "recon"
    for trial in (3, 11):
        stem = folder / "mouse-a" / f"trial-{trial}.npz"
        save_npz(
            stem, reconstruction=rng.uniform(0, 255, (frames, 36, 64)).astype(np.float32),
            truth=rng.uniform(0, 255, (frames, 36, 64)).astype(np.float32),
            confidence=rng.uniform(0, 1, (frames, 36, 64)).astype(np.float32),
            update_mask=np.ones((36, 64), bool), eval_mask=np.eye(36, 64, dtype=bool),
            alpha=rng.uniform(0, 1, (36, 64)).astype(np.float32),
        )  # fmt: skip
        write_sidecar(
            stem, config={"method": "fast"}, seed=0, models={"run": "run", "encoders": ["model-0"]},
            data={"name": "mouse-a", "path": str(root / "nowhere" / "mouse-a"), "trial": trial, "tier": "final_test"},
            metrics={"video_correlation": 0.1 * trial},
        )  # fmt: skip
    write_json(folder / "summary.json", {"trials": [], "mean": {}})
    return folder


def test_export_writes_every_series_and_refuses_to_replace(tmp_path):
    from pynwb import NWBHDF5IO

    from v1recon.data.nwb_export import export_nwb

    folder = recon_folder(tmp_path)
    out = tmp_path / "recon.nwb"
    result = export_nwb(folder, out)
    assert result == {"trials": 2, "series": ["mouse-a_trial3_reconstruction", "mouse-a_trial11_reconstruction"],
                      "session": None}  # fmt: skip
    with NWBHDF5IO(str(out), "r") as io:
        nwbfile = io.read()
        module = nwbfile.processing["reconstruction"]
        with np.load(folder / "mouse-a" / "trial-11.npz") as f:
            for suffix, key in (("reconstruction",) * 2, ("stimulus", "truth"), ("confidence",) * 2):
                series = module[f"mouse-a_trial11_{suffix}"]
                np.testing.assert_array_equal(series.data[:], f[key])
                assert series.starting_time == 0.0 and series.rate == 30.0  # not imported: no session clock
            masks = module["masks"]
            np.testing.assert_array_equal(masks["mouse-a_evaluation_mask"].data[:], f["eval_mask"].astype(np.uint8))
        comments = json.loads(module["mouse-a_trial3_reconstruction"].comments)
        assert comments["metrics"]["video_correlation"] == pytest.approx(0.3)
        table = nwbfile.intervals["reconstructed_trials"]
        assert list(table["trial_id"][:]) == [3, 11] and table["stop_time"][1] == pytest.approx(96 / 30)
    with pytest.raises(V1ReconError, match="already exists; pass --overwrite"):
        export_nwb(folder, out)
    export_nwb(folder, out, overwrite=True)
    with pytest.raises(V1ReconError, match=r"no summary\.json; expected a folder written by `v1recon reconstruct`"):
        export_nwb(tmp_path, tmp_path / "other.nwb")
    with pytest.raises(V1ReconError, match=r"must end in \.nwb"):
        export_nwb(folder, tmp_path / "recon.h5")
    assert not (tmp_path / "other.nwb").exists()
