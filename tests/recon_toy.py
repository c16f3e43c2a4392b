"""A tiny, known, differentiable encoder and smooth test movies for the reconstruction tests."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter


class ToyEncoder(torch.nn.Module):
    """Linear-nonlinear model: Gaussian spatial RFs (ON/OFF), a causal exponential temporal kernel, softplus.

    Follows the encoder contract: video (B, T, 36, 64) grey levels, behaviour (B, 4, T) -> responses (B, N, T).
    """

    def __init__(self, n_neurons: int = 60, seed: int = 0, taps: int = 6, rf_sigma: float = 4.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.n_neurons = n_neurons
        yy, xx = torch.meshgrid(torch.arange(36.0), torch.arange(64.0), indexing="ij")
        cy = 6 + 24 * torch.rand(n_neurons, generator=g)
        cx = 10 + 44 * torch.rand(n_neurons, generator=g)
        sign = torch.where(torch.rand(n_neurons, generator=g) < 0.5, -1.0, 1.0)
        rf = torch.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / (2 * rf_sigma**2))
        rf = sign[:, None, None] * rf / rf.sum(dim=(1, 2), keepdim=True)
        self.register_buffer("rf", rf)  # (N, 36, 64)
        kernel = torch.exp(-torch.arange(taps, dtype=torch.float32) / 2.0)
        self.register_buffer("kernel", (kernel / kernel.sum()).flip(0))  # oldest tap first
        self.gain = torch.nn.Parameter(torch.full((n_neurons,), 0.08))
        self.bias = torch.nn.Parameter(torch.zeros(n_neurons))

    def forward(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        drive = torch.einsum("bthw,nhw->bnt", video - 127.5, self.rf)  # (B, N, T)
        taps = self.kernel.numel()
        padded = torch.nn.functional.pad(drive, (taps - 1, 0), mode="replicate")
        filtered = torch.nn.functional.conv1d(
            padded.reshape(-1, 1, padded.shape[-1]), self.kernel.view(1, 1, -1)
        ).reshape(drive.shape)
        state = 1 + 0.1 * behaviour[:, 1:2, :]  # running speed modulates the gain
        return torch.nn.functional.softplus(self.gain[None, :, None] * filtered * state + self.bias[None, :, None])


def smooth_movie(n_frames: int = 64, seed: int = 0) -> np.ndarray:
    """(T, 36, 64) float32 grey levels: Gaussian noise smoothed over space (4 px) and time (3 frames)."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(size=(n_frames, 36, 64)), sigma=(3, 4, 4))
    x = (x - x.mean()) / x.std()
    return np.clip(127.5 + 50 * x, 0, 255).astype(np.float32)


def toy_trial(encoder: ToyEncoder, n_frames: int = 64, seed: int = 0, noisy: bool = True):
    """(video (T,36,64), responses (N,T), behaviour (4,T)) with Poisson noise on the encoder's prediction."""
    video = smooth_movie(n_frames, seed)
    behaviour = np.zeros((4, n_frames), np.float32)
    behaviour[0] = 1.0
    with torch.no_grad():
        rate = encoder(torch.from_numpy(video)[None], torch.from_numpy(behaviour)[None])[0].numpy()
    rng = np.random.default_rng(seed + 1000)
    responses = rng.poisson(rate * 4).astype(np.float32) / 4 if noisy else rate.astype(np.float32)
    return video, responses, behaviour
