"""A full disk while results are written: one sentence naming the file, the folder as it was before."""

from __future__ import annotations

import errno
import os
from unittest import mock

import pytest
from conftest import run_main, said, small_disk, tree_digest, work_copy

import v1recon.io

NO_SPACE = "cannot write, no space left on the device (free some space and run the command again)."


def _reconstruct(c, out, *extra):
    options = ["--trials", f"{c.test},", "--models", "0", "--iterations", "1", "--no-movies", "--device", "cpu"]
    return run_main("reconstruct", c.run, "--data", c.data, "--out", out, *options, *extra)


@pytest.fixture
def work(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("V1RECON_CACHE_DIR", "off")
    return work_copy(tiny_run, tmp_path)


def _full_disk_on_call(n: int):
    """np.savez_compressed that works n-1 times, then writes 1000 bytes and finds the disk full (as a real write)."""
    real, calls = v1recon.io.np.savez_compressed, []

    def savez(file, **arrays):
        calls.append(1)
        if len(calls) < n:
            return real(file, **arrays)
        file.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return savez


def _temporary_files(root):
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".replaced"))]


def test_disk_full_in_a_task_keeps_the_finished_tasks_and_the_rerun_resumes(work, tmp_path):
    inputs = tree_digest(tmp_path / "data"), tree_digest(tmp_path / "run")
    out = tmp_path / "out"
    with mock.patch.object(v1recon.io.np, "savez_compressed", _full_disk_on_call(2)):
        code, _, err = _reconstruct(work, out, "--models", "0,1")
    second = out / work.mouse / ".parts" / "batch-0-model-1.npz"
    assert code == 2 and said(err) == [f"error: {second}: {NO_SPACE}"], err
    assert not second.exists() and not _temporary_files(tmp_path)
    finished = tree_digest(out)
    assert any(k.endswith("batch-0-model-0.npz") for k in finished)
    code, _, err = _reconstruct(work, out, "--models", "0,1")
    assert code == 0, err
    after = tree_digest(out)
    stamps = {k: v for k, v in finished.items() if "/.tasks/" in f"/{k}"}
    assert stamps and all(after[k] == v for k, v in stamps.items())  # the finished task was not run again
    assert (tree_digest(tmp_path / "data"), tree_digest(tmp_path / "run")) == inputs


def test_disk_full_at_the_final_rename_leaves_no_partial_result(work, tmp_path):
    out = tmp_path / "out"
    npz = out / work.mouse / f"trial-{work.test}.npz"
    real = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(npz):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst)

    with mock.patch.object(v1recon.io.os, "replace", replace):
        code, _, err = _reconstruct(work, out)
    assert code == 2 and said(err) == [f"error: {npz}: {NO_SPACE}"], err
    assert not npz.exists() and not _temporary_files(tmp_path)
    code, _, err = _reconstruct(work, out)
    assert code == 0 and npz.is_file(), err


def test_a_really_full_small_disk(work, tmp_path):
    """A 64 kB tmpfs: the reconstruction runs out of space; one sentence naming a file of the output, no partial
    file left, the inputs untouched."""
    inputs = tree_digest(tmp_path / "data"), tree_digest(tmp_path / "run")
    with small_disk(tmp_path / "disk", 64 * 1024) as disk:
        code, _, err = _reconstruct(work, disk / "out")
        lines = said(err)
        assert code == 2 and len(lines) == 1 and lines[0].endswith(NO_SPACE), err
        assert lines[0].startswith(f"error: {disk / 'out'}")  # a file of the output, by its final name
        assert not _temporary_files(disk)
    assert (tree_digest(tmp_path / "data"), tree_digest(tmp_path / "run")) == inputs
