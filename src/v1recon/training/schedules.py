"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.01) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based).

    Rises linearly from 1/(warmup_steps+1)... to 1 over `warmup_steps` steps, then follows a half cosine from 1 down
    to `floor` at `total_steps`; stays at `floor` afterwards.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Stateful schedule whose horizon may be shortened during training (to fit a time budget).

    Use as `torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)`; set `total_steps` to change the horizon.
    """

    def __init__(self, total_steps: int, warmup_steps: int, floor: float = 0.01):
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.floor = float(floor)

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps, self.floor)
