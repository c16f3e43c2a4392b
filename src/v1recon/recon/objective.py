"""What every reconstruction method shares: the loss, how a clip is predicted, and how cost is counted.

Cost unit ("window pass"): one forward + backward pass of one DwiseNeuro window, i.e. 16 predicted frames.
A windowed encoder (one with `predict_windows`) is charged one pass per window it evaluates; any other encoder
is charged frames_forwarded / 16 (frame-equivalents). With this unit one iteration of the published loop costs
70 passes for a 300-frame movie whichever kind of encoder runs it (35 sub-batches x 2 windows = 35 x 32 / 16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

WINDOW_FRAMES = 16  # frames predicted by one model window: the cost unit
WINDOW_STEP = 2  # a DwiseNeuro window takes every 2nd frame
WINDOW_SPAN = (WINDOW_FRAMES - 1) * WINDOW_STEP + 1  # 31 frames from first to last input frame
CLIP_FRAMES = 32  # a sub-batch of the published loop; also the shortest trial we reconstruct
EPS = 1e-8  # inside the log of the Poisson loss, as published


def poisson_nll(pred: torch.Tensor, resp: torch.Tensor, dims: Sequence[int] = (-2, -1)) -> torch.Tensor:
    """Poisson negative log-likelihood as published: mean of pred - resp * log(pred + 1e-8) over `dims`.

    pred, resp: (..., N, T) non-negative; returns the leading dimensions (one loss per trial / clip).
    """
    return (pred - resp * torch.log(pred + EPS)).mean(dim=tuple(dims))


def is_windowed(encoder) -> bool:
    """True for encoders that can be asked for explicit model windows (DwiseNeuro-style).

    An encoder may offer `predict_windows` yet say `windowed = False` (a whole-trial model behind a generic adapter).
    """
    flag = getattr(encoder, "windowed", None)
    if flag is not None:
        return bool(flag)
    return callable(getattr(encoder, "predict_windows", None))


def predict_windows(encoder, video: torch.Tensor, behaviour: torch.Tensor, ends: Sequence[int]) -> torch.Tensor:
    """Predictions of the windows ending at frames `ends`, scattered onto the frames they belong to.

    video (B, T, 36, 64), behaviour (B, 4, T) -> (B, N, T): every frame covered by at least one window holds the
    mean of the predictions made for it; uncovered frames hold 0 (`window_coverage` says which frames count).
    """
    pred = encoder.predict_windows(video, behaviour, list(ends))  # (B, W, N, 16)
    B, W, N, K = pred.shape
    T = video.shape[1]
    idx = torch.tensor([[e - WINDOW_STEP * (K - 1 - k) for k in range(K)] for e in ends], device=pred.device)
    out = pred.new_zeros(B, N, T)
    count = pred.new_zeros(T)
    flat_idx = idx.reshape(-1)
    out.index_add_(2, flat_idx, pred.permute(0, 2, 1, 3).reshape(B, N, W * K))
    count.index_add_(0, flat_idx, torch.ones_like(flat_idx, dtype=pred.dtype))
    return out / count.clamp(min=1)


def window_coverage(ends: Sequence[int], n_frames: int) -> torch.Tensor:
    """(T,) bool: frames predicted by at least one of the windows ending at `ends`."""
    covered = torch.zeros(n_frames, dtype=torch.bool)
    for e in ends:
        covered[e - WINDOW_SPAN + 1 : e + 1 : WINDOW_STEP] = True
    return covered


def predict_clips(encoder, clips: torch.Tensor, behaviour: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Predict 32-frame clips as the published loop does; return (prediction (M, N, 32), window passes).

    A windowed encoder is asked for the 2 windows ending at the clip's frames 30 and 31 (together they cover all
    32 frames, one window each, so the "average where they overlap" is trivial); any other encoder predicts the
    whole clip and all of its frames count (the first frames then lack temporal context, as they do for the
    window ending at frame 30).
    """
    n_clips, n_frames = clips.shape[:2]
    if is_windowed(encoder):
        ends = [n_frames - 2, n_frames - 1]
        return predict_windows(encoder, clips, behaviour, ends), float(len(ends) * n_clips)
    return encoder(clips, behaviour), n_clips * n_frames / WINDOW_FRAMES


def predict_trial(encoder, video: torch.Tensor, behaviour: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Whole-trial prediction (B, N, T) through the encoder contract, and its cost in window passes."""
    pred = encoder(video, behaviour)
    if is_windowed(encoder):
        # the model's own full-trial prediction evaluates every window ending at frame 30..T-1
        return pred, float(video.shape[0] * max(video.shape[1] - WINDOW_SPAN + 1, 1))
    return pred, video.shape[0] * video.shape[1] / WINDOW_FRAMES


def _modules(encoder) -> list[torch.nn.Module]:
    """The torch modules behind an encoder (itself, or a bound model, or the members of an ensemble)."""
    if isinstance(encoder, torch.nn.Module):
        return [encoder]
    found = []
    for name in ("model", "module", "encoder"):
        sub = getattr(encoder, name, None)
        if isinstance(sub, torch.nn.Module):
            found.append(sub)
    for name in ("encoders", "members", "models"):
        subs = getattr(encoder, name, None)
        if isinstance(subs, (list, tuple)):
            for sub in subs:
                found.extend(_modules(sub))
    return found


@contextlib.contextmanager
def frozen(encoders: Sequence) -> Iterator[None]:
    """Evaluation mode and no weight gradients for the encoders' modules; restores both afterwards."""
    saved = []
    for enc in encoders:
        for mod in _modules(enc):
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
    for mod in _modules(encoder):
        for p in mod.parameters():
            return p.device
        for b in mod.buffers():
            return b.device
    return default
