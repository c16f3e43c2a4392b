"""The rf-mapping and baselines commands: clear errors before any computation."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", ["rf-mapping", "baselines"])
def test_missing_run_is_a_one_line_error(tmp_path, command):
    missing = tmp_path / "no-run"
    proc = subprocess.run(
        [sys.executable, "-m", "v1recon", "analyse", command, str(missing)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "run.json" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (missing / "analyses").exists()


def test_help_states_the_cpu_budget():
    proc = subprocess.run(
        [sys.executable, "-m", "v1recon", "analyse", "rf-mapping", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "CPU budget" in proc.stdout and "--stride" in proc.stdout
