"""Helpers shared by the end-to-end tests: the CLI in a subprocess and the tiny in-silico mouse."""

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args) -> subprocess.CompletedProcess:
    """`v1recon ARGS...` in a fresh interpreter, as a user runs it (exit code, stdout, stderr)."""
    return subprocess.run([sys.executable, "-m", "v1recon", *map(str, args)], capture_output=True, text=True)


def simulate_tiny(root: Path, n_mice: int) -> Path:
    """Simulate `n_mice` tiny in-silico mice (seed 0) into ROOT/data; returns that folder."""
    from v1recon.sim.simulate import simulate

    out = root / "data"
    simulate(out, "tiny", n_mice=n_mice, seed=0, progress=False, figure=False, log=lambda *a: None)
    return out


def train_tiny(data: Path, root: Path, train_args: list[str]) -> Path:
    """`v1recon train DATA --out ROOT/run` with `train_args`; returns the run folder."""
    out = root / "run"
    result = cli("train", data, "--out", out, "--no-progress", *train_args)
    assert result.returncode == 0, result.stderr
    return out


def run_main(*args) -> tuple[int, str, str]:
    """`v1recon ARGS...` in this process through `v1recon.cli.main` (what a user's shell runs, without the
    seconds of a fresh interpreter): (exit status, stdout, stderr). Any exception other than SystemExit, i.e. a
    traceback the user would see, propagates."""
    import contextlib
    import io
    from unittest import mock

    from v1recon.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with mock.patch.object(sys, "argv", ["v1recon", *map(str, args)]):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, out.getvalue(), err.getvalue()


PROGRESS_BAR = re.compile(r"\d+%\|.*\| \d+/\d+ \[")


def said(stderr: str) -> list[str]:
    """The lines of stderr other than progress bars (tqdm redraws them with carriage returns and escapes)."""
    lines = (re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line) for line in re.split(r"[\r\n]", stderr))
    return [line for line in lines if line.strip() and not PROGRESS_BAR.search(line)]


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: content hash} of every file under `root` (empty when it does not exist)."""
    import hashlib

    root = Path(root)
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def link_copy(src: Path, dst: Path) -> Path:
    """A copy of the tree `src` at `dst` made of hard links (instant); replace a file, never edit it in place."""
    import os
    import shutil

    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _mount_tmpfs(path: Path, options: str) -> bool:
    """Mount a tmpfs at `path` (root with mount rights only); whether it worked."""
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@contextlib.contextmanager
def read_only_folder(path: Path):
    """`path` becomes a folder nobody can write into, for real: a read-only tmpfs where mounts are allowed (root
    in a container), else a folder without write permission (an ordinary user); the test is skipped when neither
    works (root without mount rights ignores permissions)."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    if not _mount_tmpfs(path, "ro,size=64k"):
        pytest.skip("cannot make a read-only folder here (root without mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size_bytes: int):
    """A real file system of `size_bytes` at `path` (a tmpfs); the test is skipped where mounting is not allowed."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    if not _mount_tmpfs(path, f"size={size_bytes}"):
        pytest.skip("cannot mount a small file system here (needs root with mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny in-silico mouse, a run of 2 fast3d models trained on it (1 short epoch, no gaze shifter, whose
    estimate takes most of a minute) and its mask, built once per session. Read it, never change it: tests
    that corrupt or write work on `work_copy(tiny_run, folder)`."""
    from types import SimpleNamespace

    from v1recon.data import open_recordings
    from v1recon.training.run import train_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("V1RECON_CACHE_DIR", "off")
        root = tmp_path_factory.mktemp("tiny-run")
        data = simulate_tiny(root, n_mice=1)
        config = dict(epochs=1, samples_per_epoch=8, batch_size=4, model_overrides={"pupil_shift": False})
        train_run(data, root / "run", "fast3d", n_models=2, device="cpu", progress=False, log=lambda _: None, **config)
        code, _, err = run_main("mask", root / "run", "--data", data, "--iterations", "2", "--device", "cpu")
        assert code == 0, err
    (rec,) = open_recordings(data)
    return SimpleNamespace(
        data=data,
        run=root / "run",
        mouse=rec.name,
        test=rec.trial_ids("final_test")[0],
        test_ids=rec.trial_ids("final_test"),
        train=rec.trial_ids("train")[0],
        n_trials=len(rec.trials),
        n=rec.n_neurons,
    )


def work_copy(tiny_run, folder: Path):
    """`tiny_run` with its data and run hard-linked into `folder` (instant; replace files, never edit them)."""
    from types import SimpleNamespace

    c = SimpleNamespace(**vars(tiny_run), work=folder)
    c.data = link_copy(tiny_run.data, folder / "data")
    c.run = link_copy(tiny_run.run, folder / "run")
    c.mouse_dir = c.data / tiny_run.mouse
    return c
