"""Generic response modulations a readout can add on top of its linear drive: what V1 does beyond a receptive field.

None of them assumes a cell type; each is a per-neuron learned gain control that starts (almost) switched off:
- `SurroundNorm`: divisive normalisation by the core's features pooled over a wider Gaussian at the neuron's
  position (the extra-classical surround; learned divisive normalisation: Burg et al. 2021, PLoS Comput Biol
  17:e1009028);
- `Adaptation`: divisive gain control by the neuron's own output over the last seconds (learned strength and time
  constant), so that a response can depend on more history than the core's temporal kernels hold;
- `SaturatingGain`: a log gain from a few shared tanh units of the behaviour, weighted per neuron with either sign
  (running saturates, and suppresses some neurons).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Adaptation(nn.Module):
    """r -> r / (1 + a LP_tau(r) / m) per neuron: LP a causal exponential low-pass of `frames` lags with learned time
    constant tau (started at `tau_frames`), a >= 0 learned (started near 0), m the neuron's mean response (set from
    the data, so that a is scale-free). Needs `frames - 1` frames of history before the first predicted one."""

    def __init__(self, n_neurons: int, frames: int, tau_frames: float = 30.0) -> None:
        super().__init__()
        self.frames = int(frames)
        self.raw_strength = nn.Parameter(torch.full((n_neurons,), -3.0))  # softplus: 0.05
        self.log_tau = nn.Parameter(torch.full((n_neurons,), math.log(tau_frames)))
        self.register_buffer("scale", torch.ones(n_neurons))

    def kernel(self) -> torch.Tensor:
        lags = torch.arange(self.frames, dtype=torch.float32, device=self.log_tau.device)
        k = torch.exp(-lags[None] / self.log_tau.exp().clamp(1.0, 10 * self.frames)[:, None])
        return k / k.sum(1, keepdim=True)

    def forward(self, rate: torch.Tensor) -> torch.Tensor:
        """rate (B, N, T) -> adapted rate (B, N, T)."""
        from v1recon.sim.model import causal_conv  # (the simulator imports the models package)

        slow = causal_conv(rate, self.kernel())
        return rate / (1 + F.softplus(self.raw_strength)[:, None] * slow / self.scale[:, None])


class SurroundNorm(nn.Module):
    """Per-neuron surround pool: learned feature weights over the core's features under a Gaussian mask `ratio`
    times wider than the neuron's own (learned ratio, started at 3), dividing the rate by 1 + softplus(pool + c)
    (c started at -4: no suppression)."""

    def __init__(self, n_neurons: int, features: int, ratio: float = 3.0) -> None:
        super().__init__()
        self.log_ratio = nn.Parameter(torch.full((n_neurons,), math.log(ratio)))
        self.weight = nn.Parameter(torch.zeros(n_neurons, features))
        self.bias = nn.Parameter(torch.full((n_neurons,), -4.0))

    def divisor(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled (B, N, T) = the weighted surround features -> the divisor (B, N, T) >= 1."""
        return 1 + F.softplus(pooled + self.bias[:, None])


class SaturatingGain(nn.Module):
    """Log gain (B, N, T) from `hidden` tanh units of the normalised behaviour (shared by a mouse's neurons) with
    per-neuron weights of either sign (started at 0: gain 1)."""

    def __init__(self, n_neurons: int, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, hidden)
        self.weight = nn.Parameter(torch.zeros(n_neurons, hidden))

    def forward(self, behaviour_z: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.hidden(behaviour_z.transpose(1, 2))).transpose(1, 2)  # (B, hidden, T)
        return torch.einsum("bkt,nk->bnt", h, self.weight)
