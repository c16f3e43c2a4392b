"""Tiny model configurations and inputs shared by the model tests."""

from __future__ import annotations

import pytest
import torch

from v1recon.models import build_model
from v1recon.models.dwiseneuro import DwiseNeuro

TINY_DWISE = dict(
    core_features=(4, 4, 4, 4, 8, 8, 8, 8, 8), expansion_ratio=2, se_reduce_ratio=4, cortex_features=(16, 16, 32)
)
TINY_FAST = dict(channels=(4, 6), temporal_kernels=(5, 3), train_predicted_frames=6)
TINY_SUBUNIT = dict(
    window=7,
    orientations=2,
    periods_px=(4.0,),
    sigmas_px=(2.0,),
    temporal_frames=4,
    calcium_frames=3,
    train_predicted_frames=6,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions run faster on one thread, and much faster when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_dwise(counts=(9, 7), seed=0) -> DwiseNeuro:
    torch.manual_seed(seed)
    model = build_model("small", list(counts), **TINY_DWISE)
    randomise_batchnorm(model)
    return model.eval()


def randomise_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial running statistics, so that eval-mode BatchNorm is not the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def inputs(batch=2, frames=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, frames, 36, 64, generator=g) * 255
    behaviour = torch.randn(batch, 4, frames, generator=g) * 3 + 5
    return video, behaviour
