"""Faults: a command killed (SIGKILL) at a random point resumes when run again and ends with the files of an
uninterrupted run; two writers of one output folder never both write."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import simulate_tiny, train_tiny
from safetensors.numpy import load_file

TRAIN_ARGS = ["--preset", "fast3d", "--models", "2", "--epochs", "3", "--samples-per-epoch", "16", "--batch-size", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return simulate_tiny(tmp_path_factory.mktemp("sim"), n_mice=2)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return train_tiny(data, tmp_path_factory.mktemp("train"), TRAIN_ARGS)


def v1recon(*args) -> list[str]:
    return [sys.executable, "-m", "v1recon", *map(str, args)]


def kill_when(args: list[str], ready, seed: int, seconds: float = 240) -> None:
    """Start `args`, wait until `ready()` (some of its work is done), wait a random moment more, SIGKILL it."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + seconds
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"finished before it could be killed: {proc.stderr.read().decode()[-500:]}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the command's first results")
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0, 0.5))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def complete(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def npz_arrays(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(folder.rglob("*.npz")):
        if ".parts" in path.parts:
            continue
        with np.load(path) as f:
            out.update({f"{path.relative_to(folder)}:{k}": f[k] for k in f.files})
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a and a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_killed_training_resumes_to_the_uninterrupted_weights(data, run, tmp_path):
    out = tmp_path / "run"
    args = v1recon("train", data, "--out", out, "--no-progress", *TRAIN_ARGS)
    kill_when(args, lambda: (out / "models" / "model-0.state.pt").is_file(), seed=1)  # after an epoch of model 0
    complete(args)
    for k in range(2):
        name = f"models/model-{k}.safetensors"
        assert_same(load_file(run / name), load_file(out / name))


def test_killed_reconstruction_resumes_to_the_uninterrupted_files(data, run, tmp_path):
    common = ["--data", data, "--trials", "3", "--batch-size", "1", "--iterations", "6", "--no-movies", "--no-mask"]
    complete(v1recon("reconstruct", run, "--out", tmp_path / "whole", *common))
    out = tmp_path / "killed"
    args = v1recon("reconstruct", run, "--out", out, *common)
    kill_when(args, lambda: len(list((out / ".tasks").glob("*.json"))) >= 2 if (out / ".tasks").is_dir() else False, 2)
    assert not (out / "summary.json").exists()
    complete(args)
    assert not list(out.rglob(".*.tmp"))  # what the killed writer left half-written is gone
    assert_same(npz_arrays(tmp_path / "whole"), npz_arrays(out))
    assert (out / "summary.json").is_file()


def test_killed_mask_job_resumes_to_the_uninterrupted_masks(data, run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    args = ["--data", data, "--iterations", "40", "--device", "cpu"]
    complete(v1recon("mask", run, *args))
    masks = copy / "masks"
    kill_when(v1recon("mask", copy, *args), lambda: len(list(masks.glob("*.npz"))) >= 1, seed=3)
    complete(v1recon("mask", copy, *args))
    assert_same(npz_arrays(run / "masks"), npz_arrays(masks))


def test_two_writers_of_one_folder_never_both_write(data, run, tmp_path):
    out = tmp_path / "out"
    args = v1recon("reconstruct", run, "--data", data, "--out", out, "--trials", "2", "--iterations", "30",
                   "--no-movies", "--no-mask")  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / ".v1recon.lock").is_file():
        assert first.poll() is None and time.time() < deadline, "the first writer never took the lock"
        time.sleep(0.05)
    second = subprocess.run(args, capture_output=True, text=True)
    assert second.returncode == 2 and "is being written by process" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    _, err = first.communicate(timeout=240)
    assert first.returncode == 0, err
    assert (out / "summary.json").is_file() and not (out / ".v1recon.lock").exists()


def _hashes(folder: Path) -> dict[str, str]:
    import hashlib

    files = [p for p in folder.rglob("*") if p.is_file()]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("target", ["data", "run", "run-models", "data-inside"])
def test_an_output_that_is_or_holds_an_input_is_refused_even_with_overwrite(data, run, target):
    out = {"data": data, "run": run, "run-models": run / "models", "data-inside": data / "insilico-s0-m0"}[target]
    before = {"data": _hashes(data), "run": _hashes(run)}
    done = subprocess.run(v1recon("reconstruct", run, "--data", data, "--out", out, "--overwrite", "--trials", "1",
                                  "--iterations", "1", "--no-mask"), capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert "input" in done.stderr and "Traceback" not in done.stderr
    assert {"data": _hashes(data), "run": _hashes(run)} == before


def test_other_commands_never_delete_or_overwrite_inputs(data, tmp_path):
    before = _hashes(data)
    train = subprocess.run(v1recon("train", data, "--out", data / "run", *TRAIN_ARGS), capture_output=True, text=True)
    assert train.returncode == 2 and "inside the data folder" in train.stderr
    demo = subprocess.run(v1recon("demo", data, "--overwrite"), capture_output=True, text=True)
    assert demo.returncode == 2 and "not a demo folder" in demo.stderr
    target = data / "insilico-s0-m0" / "meta" / "trials" / "tiers.npy"
    report = subprocess.run(v1recon("report", tmp_path, "--out", target), capture_output=True, text=True)
    assert report.returncode == 2
    assert _hashes(data) == before and not (data / "run").exists()


def test_killed_simulation_leaves_no_folder_and_the_rerun_resumes_to_the_same_files(tmp_path):
    """simulate writes its mice (one task each) into a hidden sibling and renames it at the end: a kill leaves no
    output folder (so nothing half-written is ever read), the rerun keeps the mice that were finished and writes
    the files of an uninterrupted run, byte for byte, and no partial folder is left."""
    args = ["simulate", "--preset", "tiny", "--mice", "4", "--workers", "1", "--seed", "0", "--no-figure"]
    complete(v1recon(*args[:1], tmp_path / "whole", *args[1:]))
    out, partial = tmp_path / "killed", tmp_path / ".killed.partial"
    stamps = partial / ".tasks"
    kill_when(v1recon(*args[:1], out, *args[1:]), lambda: len(list(stamps.glob("*.json"))) >= 1, seed=5)
    assert not out.exists() and partial.is_dir()
    kept = {f: f.stat().st_mtime_ns for s in stamps.glob("*.json") for f in (partial / s.stem).rglob("*.npy")}
    assert kept
    complete(v1recon(*args[:1], out, *args[1:]))
    assert not partial.exists() and not (out / ".tasks").exists()
    assert not list(out.rglob(".*.tmp"))  # a killed writer's temporaries are gone
    for f, mtime in kept.items():  # finished mice were not simulated again
        assert (out / f.relative_to(partial)).stat().st_mtime_ns == mtime
    files = sorted(p.relative_to(out) for p in out.rglob("*.npy"))
    assert files and files == sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.npy"))
    assert all((out / f).read_bytes() == (tmp_path / "whole" / f).read_bytes() for f in files)
