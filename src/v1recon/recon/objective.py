"""What every reconstruction method shares: the loss, how a clip is predicted, and how cost is counted.

Cost unit ("window pass"): one forward + backward pass of one DwiseNeuro window, i.e. 16 predicted frames.
A windowed encoder (one with a `windowing`, see v1recon.models.base.WindowGeometry) is charged one pass per window
it evaluates; any other encoder is charged frames_forwarded / 16 (frame-equivalents). With this unit one iteration
of the published loop costs 70 passes for a 300-frame movie whichever kind of encoder runs it (35 sub-batches x 2
windows = 35 x 32 / 16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from v1recon.models.base import WindowGeometry, networks

PASS_FRAMES = 16  # frames predicted by one DwiseNeuro window: the cost unit
CLIP_FRAMES = 32  # a sub-batch of the published loop; also the shortest trial we reconstruct
EPS = 1e-8  # inside the log of the Poisson loss, as published


def poisson_nll(pred: torch.Tensor, resp: torch.Tensor, dims: Sequence[int] = (-2, -1)) -> torch.Tensor:
    """Poisson negative log-likelihood as published: mean of pred - resp * log(pred + 1e-8) over `dims`.

    pred, resp: (..., N, T) non-negative; returns the leading dimensions (one loss per trial / clip).
    """
    return (pred - resp * torch.log(pred + EPS)).mean(dim=tuple(dims))


def windowing(encoder) -> WindowGeometry | None:
    """The window geometry of a windowed encoder (one that offers `predict_windows`), None for any other."""
    return getattr(encoder, "windowing", None)


def predict_windows(encoder, video: torch.Tensor, behaviour: torch.Tensor, ends: Sequence[int]) -> torch.Tensor:
    """Predictions of the windows ending at frames `ends`, scattered onto the frames they belong to.

    video (B, T, 36, 64), behaviour (B, 4, T) -> (B, N, T): every frame covered by at least one window holds the
    mean of the predictions made for it; uncovered frames hold 0 (`window_coverage` says which frames count).
    """
    pred = encoder.predict_windows(video, behaviour, list(ends))  # (B, W, N, frames)
    B, W, N, K = pred.shape
    T = video.shape[1]
    flat_idx = encoder.windowing.frame_index(torch.as_tensor(list(ends), device=pred.device)).reshape(-1)
    out = pred.new_zeros(B, N, T)
    count = pred.new_zeros(T)
    out.index_add_(2, flat_idx, pred.permute(0, 2, 1, 3).reshape(B, N, W * K))
    count.index_add_(0, flat_idx, torch.ones_like(flat_idx, dtype=pred.dtype))
    return out / count.clamp(min=1)


def window_coverage(geometry: WindowGeometry, ends: Sequence[int], n_frames: int) -> torch.Tensor:
    """(T,) bool: frames predicted by at least one of the windows ending at `ends`."""
    covered = torch.zeros(n_frames, dtype=torch.bool)
    covered[geometry.frame_index(torch.as_tensor(list(ends))).reshape(-1)] = True
    return covered


def predict_clips(encoder, clips: torch.Tensor, behaviour: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Predict 32-frame clips as the published loop does; return (prediction (M, N, 32), window passes).

    A windowed encoder is asked for the windows ending at the clip's last `step` frames (DwiseNeuro: 30 and 31;
    together they cover all 32 frames, one window each, so the "average where they overlap" is trivial); any other
    encoder predicts the whole clip and all of its frames count (the first frames then lack temporal context, as
    they do for the window ending at frame 30).
    """
    n_clips, n_frames = clips.shape[:2]
    geometry = windowing(encoder)
    if geometry is not None:
        ends = [n_frames - geometry.step + j for j in range(geometry.step)]
        return predict_windows(encoder, clips, behaviour, ends), float(len(ends) * n_clips)
    return encoder(clips, behaviour), n_clips * n_frames / PASS_FRAMES


def predict_trial(encoder, video: torch.Tensor, behaviour: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Whole-trial prediction (B, N, T) through the encoder contract, and its cost in window passes."""
    pred = encoder(video, behaviour)
    geometry = windowing(encoder)
    if geometry is not None:
        # the model's own full-trial prediction evaluates every window ending at frame reach..T-1
        return pred, float(video.shape[0] * max(video.shape[1] - geometry.reach, 1))
    return pred, video.shape[0] * video.shape[1] / PASS_FRAMES


@contextlib.contextmanager
def frozen(encoders: Sequence) -> Iterator[None]:
    """Evaluation mode and no weight gradients for the encoders' modules; restores both afterwards."""
    saved = []
    for enc in encoders:
        for mod in networks(enc):
            saved.append((mod, mod.training, [(p, p.requires_grad) for p in mod.parameters()]))
            mod.eval()
            mod.requires_grad_(False)
    try:
        yield
    finally:
        for mod, training, params in saved:
            mod.train(training)
            for p, flag in params:
                p.requires_grad_(flag)


def encoder_device(encoder, default: torch.device) -> torch.device:
    """The device an encoder's weights live on (the default for weightless encoders)."""
    for mod in networks(encoder):
        for p in mod.parameters():
            return p.device
        for b in mod.buffers():
            return b.device
    return default


SADDLE_JITTER = 1.0  # grey levels (std) added to a start whose gradient vanishes


def escape_saddle(video: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, seed: int) -> bool:
    """Jitter, in place, the movies (B, T, H, W) whose gradient is exactly zero; True if any was jittered.

    Uniform grey gives no gradient at all through encoders that respond only to contrast (rectified or energy
    units, contrast normalisation); a 1-grey-level seeded jitter inside the update mask breaks the symmetry.
    """
    dead = grad.flatten(1).abs().amax(dim=1) == 0
    if not bool(dead.any()):
        return False
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(video.shape, generator=gen).to(video.device) * SADDLE_JITTER * mask
    video[dead] = (video[dead] + noise[dead]).clamp(0, 255)
    return True
