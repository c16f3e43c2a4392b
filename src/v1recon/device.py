"""Where computations run: the GPU when present (bf16 autocast), the CPU otherwise."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op on the CPU (bf16 matmuls there are slower, not faster)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 (third-party code may use the legacy global RNG)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
