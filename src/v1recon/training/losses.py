"""The training loss: Poisson negative log-likelihood of the recorded responses under the predicted rates."""

from __future__ import annotations

import torch

POISSON_EPS = 1e-8


def poisson_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = POISSON_EPS) -> torch.Tensor:
    """Poisson loss `prediction - target * log(prediction + eps)`, summed over neurons and frames, mean over samples.

    prediction, target: (B, N, K) non-negative rates and recorded responses (raw units).
    Returns a scalar. Summing per sample (rather than averaging) is the published choice; averaging over the
    batch keeps the scale independent of the batch size, so the learning rate scales linearly with it.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape.")
    prediction = prediction.float()
    per_element = prediction - target * torch.log(prediction + eps)
    return per_element.flatten(1).sum(1).mean()
