"""CutMix between samples of the same mouse: paste a box of another clip into every frame, blend targets by area."""

from __future__ import annotations

import numpy as np
import torch


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) covering about (1 - lam) of a height x width frame, centred uniformly at random.

    The box is clipped at the frame border, so the pasted area can be smaller than 1 - lam.
    """
    cut = np.sqrt(1.0 - lam)
    box_h, box_w = int(round(height * cut)), int(round(width * cut))
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = np.clip([cy - box_h // 2, cy - box_h // 2 + box_h], 0, height)
    x0, x1 = np.clip([cx - box_w // 2, cx - box_w // 2 + box_w], 0, width)
    return int(y0), int(y1), int(x0), int(x1)


def cutmix(
    video: torch.Tensor,
    behaviour: torch.Tensor,
    target: torch.Tensor,
    rng: np.random.Generator,
    alpha: float = 1.0,
    prob: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CutMix a batch of clips of ONE mouse, sample by sample.

    video (B, T, H, W), behaviour (B, 4, T), target (B, N, K). Each sample, with probability `prob`, takes a box
    (over height x width, all frames) from a random other sample of the batch; lam ~ Beta(alpha, alpha) sets the
    box size. Its targets become (1 - a) * own + a * partner's, a = pasted area / frame area; behaviour, a plane
    per frame in the published model, is blended by the same fraction. Returns new tensors (inputs untouched).
    """
    batch, _, height, width = video.shape
    if batch < 2 or prob <= 0:
        return video, behaviour, target
    video, behaviour, target = video.clone(), behaviour.clone(), target.clone()
    source_video, source_behaviour, source_target = video.clone(), behaviour.clone(), target.clone()
    for i in range(batch):
        if rng.random() >= prob:
            continue
        partner = int(rng.integers(batch - 1))
        partner += partner >= i  # any sample but itself
        y0, y1, x0, x1 = cutmix_box(height, width, float(rng.beta(alpha, alpha)), rng)
        area = (y1 - y0) * (x1 - x0) / (height * width)
        if area == 0:
            continue
        video[i, :, y0:y1, x0:x1] = source_video[partner, :, y0:y1, x0:x1]
        target[i] = (1 - area) * source_target[i] + area * source_target[partner]
        behaviour[i] = (1 - area) * source_behaviour[i] + area * source_behaviour[partner]
    return video, behaviour, target
