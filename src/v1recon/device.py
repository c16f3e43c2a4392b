"""Where computations run: the GPU when present (bf16 autocast), the CPU otherwise."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from v1recon.errors import V1ReconError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device, which must exist on this machine.

    Every command's `--device` goes through here, so a bad value is one sentence naming the option.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise V1ReconError(f"--device {name!r}: not a device (choose {DEVICE_CHOICES}).") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise V1ReconError(f"--device {name!r}: only the CPU and CUDA GPUs are supported (choose {DEVICE_CHOICES}).")
    if not torch.cuda.is_available():
        raise V1ReconError(
            f"--device {name!r}: no CUDA GPU is available to this torch build ({torch.__version__}); use --device cpu."
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise V1ReconError(f"--device {name!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}.")
    return device


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op on the CPU (bf16 matmuls there are slower, not faster)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch threads per operation, then restore the previous count.

    Results of a CPU reduction depend on how many threads share it (the last bits of a float32 sum move), so
    computations whose output must not depend on the machine's thread count run with a fixed one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 (third-party code may use the legacy global RNG)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
