"""Filters shared by the in-silico mouse and the encoders (a neutral home: neither package imports the other)."""

from __future__ import annotations

import torch


def causal_conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal convolution over the last axis, y[t] = sum_k kernel[k] x[t - k] (zero before the trial start).

    x (..., T) and kernel (..., L) broadcast against each other (per-channel or shared kernels). Done with FFTs,
    which on the CPU is several times faster than a grouped conv1d with thousands of channels.
    """
    t = x.shape[-1]
    n = t + kernel.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(kernel, n), n)[..., :t]
