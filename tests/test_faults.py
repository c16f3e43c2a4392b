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
