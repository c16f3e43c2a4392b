"""A full disk while results are written: one sentence naming the file, the folder as it was before."""

from __future__ import annotations

import errno
import os
import shutil
from unittest import mock

import pytest
from conftest import link_copy, run_main, said, small_disk, tree_digest, work_copy

import v1recon.io

NO_SPACE = "cannot write, no space left on the device (free some space and run the command again)."


def _reconstruct(c, out, *extra):
    options = ["--trials", f"{c.test},", "--models", "0", "--iterations", "1", "--no-movies", "--device", "cpu"]
    return run_main("reconstruct", c.run, "--data", c.data, "--out", out, *options, *extra)


@pytest.fixture(scope="module")
def earlier(tiny_run, tmp_path_factory):
    """A finished reconstruction of the tiny run (one trial, one model), made once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("V1RECON_CACHE_DIR", "off")
        c = work_copy(tiny_run, tmp_path_factory.mktemp("earlier"))
        code, _, err = _reconstruct(c, c.work / "out")
    assert code == 0, err
    return c.work / "out"


@pytest.fixture
def work(tiny_run, earlier, tmp_path, monkeypatch):
    monkeypatch.setenv("V1RECON_CACHE_DIR", "off")
    c = work_copy(tiny_run, tmp_path)
    link_copy(earlier, tmp_path / "out")
    return c


def _full_disk_after(nbytes: int):
    """np.savez_compressed that writes `nbytes` of the file, then finds the disk full (as a real write does)."""

    def savez(file, **arrays):
        file.write(b"\0" * nbytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return savez


def test_disk_full_while_writing_a_result_leaves_the_earlier_results(work, tmp_path):
    before = tree_digest(tmp_path)
    with mock.patch.object(v1recon.io.np, "savez_compressed", _full_disk_after(1000)):
        code, _, err = _reconstruct(work, tmp_path / "out", "--overwrite")
    npz = tmp_path / "out" / work.mouse / f"trial-{work.test}.npz"
    assert code == 2 and said(err) == [f"error: {npz}: {NO_SPACE}"], err
    assert tree_digest(tmp_path) == before  # the earlier results, the inputs, and no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "run"]


def test_disk_full_at_the_final_rename_puts_the_earlier_results_back(work, tmp_path):
    before = tree_digest(tmp_path)
    out = tmp_path / "out"
    real = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(out) and ".replaced" not in os.fspath(src):  # the new results, not the old
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    with mock.patch.object(v1recon.io.os, "replace", replace):
        code, _, err = _reconstruct(work, out, "--overwrite")
    assert code == 2 and said(err) == [f"error: {out}: {NO_SPACE}"], err
    assert tree_digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "run"]


def test_a_really_full_small_disk(work, tmp_path):
    """A tmpfs that holds the earlier results and 64 kB more: the next reconstruction runs out of space."""
    size = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    with small_disk(tmp_path / "disk", size + 64 * 1024) as disk:
        shutil.copytree(tmp_path / "out", disk / "out")
        before = tree_digest(disk)
        code, _, err = _reconstruct(work, disk / "out", "--overwrite")
        lines = said(err)
        assert code == 2 and len(lines) == 1 and lines[0].endswith(NO_SPACE), err
        assert lines[0].startswith(f"error: {disk / 'out'}")  # a file of the output, by its final name
        assert tree_digest(disk) == before
        assert sorted(p.name for p in disk.iterdir()) == ["out"]
