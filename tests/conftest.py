"""Helpers shared by the end-to-end tests: the CLI in a subprocess and the tiny in-silico mouse."""

import subprocess
import sys
from pathlib import Path


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
