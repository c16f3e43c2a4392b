"""benchmarks/gpu_check.py at tiny sizes on the CPU, so the GPU script cannot rot between GPU sessions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_writes_every_figure(gpu_check, tmp_path):
    assert gpu_check.main(["--smoke", "--device", "cpu", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    variants = [row["variant"] for row in result["throughput"]]
    assert variants == ["fp32", "bf16", "bf16+channels-last-3d"]
    for row in result["throughput"]:
        assert "error" not in row, row
        assert row["windows_per_s"] > 0 and row["peak_gib"] > 0
    paper, fast = result["paper"], result["fast"]
    assert paper["steps"] == 2 and fast["steps"] == 3  # the fast method runs exactly its capped steps
    # extrapolations: the published 1000 iterations of a 300-frame movie from 2 iterations of 48 frames
    assert paper["movie_model_s"] == pytest.approx(paper["seconds_per_step"] * 1000 * 300 / 48)
    assert fast["ensemble_s"] == pytest.approx(7 * fast["movie_model_s"])
    batching = result["ensemble_batching"]
    assert batching["models"] == 7 and batching["max_gradient_difference"] < 1e-5  # stacking changes no gradient
    table = (tmp_path / "gpu_check.md").read_text()
    assert "paper (published loop" in table and "bf16+channels-last-3d" in table


def test_the_throughput_gradient_is_the_input_gradient(gpu_check):
    """The timed step differentiates the stacked windows, as a reconstruction does (not the weights)."""
    import torch

    from v1recon.models import build_model

    model = build_model("paper", [5], **gpu_check.SMOKE_KWARGS).eval()
    row = gpu_check.window_throughput(model, 2, "fp32", torch.device("cpu"), repeats=1)
    assert row["windows"] == 2 and row["seconds"] > 0
    assert all(p.grad is None for p in model.parameters())
