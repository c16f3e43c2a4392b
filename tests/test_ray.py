"""The Ray executor on a real local cluster (2 worker processes): the same files as the serial run, a task whose
worker is killed is retried, and a job whose driver is killed resumes with only the unfinished tasks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import simulate_tiny, train_tiny

ray = pytest.importorskip("ray")

TRAIN_ARGS = ["--preset", "fast3d", "--models", "2", "--epochs", "1", "--samples-per-epoch", "8", "--batch-size", "4"]
RECON = ["--trials", "4", "--batch-size", "2", "--no-mask", "--no-movies", "--device", "cpu"]
TOLERANCE = 1e-3  # grey levels: serial and Ray workers may run torch with other thread counts (reduction order)


@pytest.fixture(scope="module", autouse=True)
def no_stray_cluster():
    """Clusters of killed drivers may outlive them: stop every Ray process of this user afterwards."""
    yield
    subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return simulate_tiny(tmp_path_factory.mktemp("sim"), n_mice=1)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return train_tiny(data, tmp_path_factory.mktemp("train"), TRAIN_ARGS)


def _command(run, data, out, iterations: int, executor: str) -> list[str]:
    return [sys.executable, "-m", "v1recon", "reconstruct", str(run), "--data", str(data), "--out", str(out),
            "--iterations", str(iterations), "--executor", executor, *RECON]  # fmt: skip


def _start(args) -> subprocess.Popen:
    # its own session, so that killing it kills the Ray cluster it started too (a lost node)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _arrays(out: Path) -> dict[str, np.ndarray]:
    found = {}
    for path in sorted(out.rglob("trial-*.npz")):
        with np.load(path) as f:
            for key in ("reconstruction", "per_model", "loss"):
                found[f"{path.relative_to(out)}:{key}"] = f[key]
    return found


def _ray_workers() -> list[int]:
    """Pids of Ray worker processes running one of our reconstruction tasks (process title ray::<task name>)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::") and "batch-" in title:
                pids.append(int(entry.name))
    return pids


def _wait(predicate, seconds: float, what: str, driver: subprocess.Popen):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if driver.poll() is not None:  # the driver ended before: say why instead of waiting out the deadline
            raise AssertionError(
                f"the driver exited ({driver.returncode}) before {what}: {driver.stderr.read()[-3000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=TOLERANCE, rtol=1e-4, err_msg=key)


def test_ray_matches_serial_and_survives_a_killed_worker(run, data, tmp_path):
    serial = subprocess.run(_command(run, data, tmp_path / "serial", 12, "local"), capture_output=True, text=True)
    assert serial.returncode == 0, serial.stderr
    driver = _start(_command(run, data, tmp_path / "ray", 12, "ray"))
    victim = _wait(_ray_workers, 120, "a Ray worker running a task", driver)[0]
    os.kill(victim, signal.SIGKILL)  # mid-task: Ray runs the task again on another worker
    stdout, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 0, stderr
    _same(_arrays(tmp_path / "serial"), _arrays(tmp_path / "ray"))
    rows = [json.loads((tmp_path / d / "summary.json").read_text())["mean"] for d in ("serial", "ray")]
    assert rows[0]["video_correlation"] == pytest.approx(rows[1]["video_correlation"], abs=1e-4)


def test_a_killed_driver_resumes_with_only_the_unfinished_tasks(run, data, tmp_path):
    out = tmp_path / "out"
    stamps = out / ".tasks"
    driver = _start(_command(run, data, out, 12, "ray"))
    _wait(lambda: stamps.is_dir() and len(list(stamps.glob("*.json"))) >= 2, 180, "two finished tasks", driver)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {p.name: p.stat().st_mtime_ns for p in stamps.glob("*.json")}
    assert not (out / "summary.json").exists()
    again = subprocess.run(_command(run, data, out, 12, "ray"), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    after = {p.name: p.stat().st_mtime_ns for p in stamps.glob("*.json")}
    assert all(after[name] == t for name, t in before.items())  # finished tasks were not run again
    assert len(after) > len(before) and (out / "summary.json").is_file()
    serial = subprocess.run(_command(run, data, tmp_path / "serial", 12, "local"), capture_output=True, text=True)
    assert serial.returncode == 0, serial.stderr
    _same(_arrays(tmp_path / "serial"), _arrays(out))


def test_simulate_and_an_analysis_on_ray_give_the_serial_files(run, data, tmp_path):
    """simulate (one task per mouse) writes byte-identical mice on Ray; an analysis (one task per condition) gives
    the serial result within the stated tolerance."""
    sim = [sys.executable, "-m", "v1recon", "simulate", "--preset", "tiny", "--mice", "2", "--no-figure"]
    for executor in ("local", "ray"):
        done = subprocess.run([*sim, tmp_path / executor, "--executor", executor], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.npy"))
    assert files and all((tmp_path / "local" / f).read_bytes() == (tmp_path / "ray" / f).read_bytes() for f in files)
    results = {}
    for executor in ("local", "ray"):
        args = ["analyse", "upper-bounds", run, "--trials", "2", "--frames", "60", "--iterations", "4",
                "--no-progress", "--overwrite", "--executor", executor]  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "v1recon", *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        with np.load(run / "analyses" / "upper-bounds" / "result.npz") as f:
            results[executor] = f["r"]
    np.testing.assert_allclose(results["ray"], results["local"], atol=1e-3)
    assert not (run / "analyses" / ".upper-bounds.parts").exists()
