"""Exponential moving average of model weights; the averaged weights are the ones saved and evaluated."""

from __future__ import annotations

import copy

import torch


def ema_decay_for(total_steps: int, max_decay: float = 0.999, horizon: float = 0.1) -> float:
    """EMA decay for a run of `total_steps` optimiser steps.

    The published 0.999 averages over ~1000 steps; a short run would then still be dominated by early weights.
    The averaging time constant 1/(1-decay) is capped at `horizon` x total_steps (at least 10 steps).
    """
    time_constant = max(10.0, horizon * total_steps)
    return min(max_decay, 1.0 - 1.0 / time_constant)


class EMA:
    """A frozen copy of `model` whose floating-point parameters and buffers track an exponential average.

    Early on the effective decay is min(decay, (1+n)/(10+n)) after n updates so the average is not stuck at the
    random initialisation. Integer buffers (e.g. BatchNorm's counters) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = self.current_decay()
        averaged = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = averaged[name]
            if target.is_floating_point():
                target.lerp_(value.detach().to(target.dtype), 1.0 - decay)
            else:
                target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
