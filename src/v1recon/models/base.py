"""The encoder contract that every model of one mouse satisfies.

An encoder maps whole trials to predicted responses and is differentiable in the video:

    responses = encoder(video, behaviour)
    video      (B, T, 36, 64)  float32 grey levels 0..255
    behaviour  (B, 4, T)       pupil dilation, running speed, pupil x, pupil y (raw units)
    responses  (B, N, T)       non-negative predicted activity, same units as the recorded traces

The ground-truth model of the in-silico mouse, one trained network bound to a mouse, and an ensemble all
satisfy it, so reconstruction, the oracle, baselines and experiments share one code path. How a model cuts a
trial into windows is its own business; a windowed encoder says so with `windowing` (a `WindowGeometry`) and offers
`predict_windows(video, behaviour, ends) -> (B, len(ends), N, frames)` for the paper-faithful schedule.

Adapters that are not torch modules themselves (a model bound to a mouse, an ensemble, a neuron subset) list the
modules whose weights they use in `networks()`, so that reconstruction can freeze them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from v1recon import FRAME_SHAPE
from v1recon.errors import V1ReconError


@dataclass(frozen=True)
class WindowGeometry:
    """How a windowed encoder cuts a trial: windows of `frames` predicted frames, taking every `step`-th frame.

    A window ending at frame t sees frames t - reach, t - reach + step, ..., t (reach = (frames - 1) * step), so
    `step` windows ending at consecutive frames cover a clip of `reach + step` frames, each frame once.
    """

    frames: int
    step: int

    @property
    def reach(self) -> int:
        return (self.frames - 1) * self.step

    def frame_index(self, ends: torch.Tensor) -> torch.Tensor:
        """End frames (W,) -> the frames of each window (W, frames)."""
        return ends[:, None] - self.reach + self.step * torch.arange(self.frames, device=ends.device)


def networks(encoder) -> list[torch.nn.Module]:
    """The torch modules whose weights an encoder uses: itself when it is one, else what its `networks()` lists."""
    if isinstance(encoder, torch.nn.Module):
        return [encoder]
    listed = getattr(encoder, "networks", None)
    return list(listed()) if callable(listed) else []


@runtime_checkable
class Encoder(Protocol):
    n_neurons: int  # N, the number of neurons it predicts

    def __call__(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor: ...


def check_encoder_inputs(video: torch.Tensor, behaviour: torch.Tensor, min_frames: int = 1) -> None:
    """Raise a clear error when inputs do not follow the encoder contract."""
    if video.ndim != 4 or tuple(video.shape[2:]) != FRAME_SHAPE:
        raise V1ReconError(f"video must be (B, T, 36, 64), got {tuple(video.shape)}.")
    if behaviour.ndim != 3 or behaviour.shape[1] != 4:
        raise V1ReconError(f"behaviour must be (B, 4, T), got {tuple(behaviour.shape)}.")
    if behaviour.shape[0] != video.shape[0] or behaviour.shape[2] != video.shape[1]:
        raise V1ReconError(
            f"video {tuple(video.shape)} and behaviour {tuple(behaviour.shape)} differ in batch or frame count."
        )
    if video.shape[1] < min_frames:
        raise V1ReconError(f"trial has {video.shape[1]} frames, fewer than the {min_frames} the encoder needs.")


@contextlib.contextmanager
def module_state(module: torch.nn.Module, training: bool, requires_grad: Sequence[bool] | bool) -> Iterator[None]:
    """Put `module` in train/eval mode with the given parameter `requires_grad` flags; restore both afterwards."""
    params = list(module.parameters())
    flags = [requires_grad] * len(params) if isinstance(requires_grad, bool) else list(requires_grad)
    saved_training, saved_flags = module.training, [p.requires_grad for p in params]
    module.train(training)
    for p, flag in zip(params, flags, strict=True):
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, flag in zip(params, saved_flags, strict=True):
            p.requires_grad_(flag)
        module.train(saved_training)


def with_defaults(defaults: dict, kwargs: dict, architecture: str) -> dict:
    """An architecture's keyword arguments: `defaults` updated by `kwargs`; unknown names raise a TypeError."""
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"unknown {architecture} arguments: {sorted(unknown)}")
    return {**defaults, **kwargs}


class MultiMouseModel(torch.nn.Module):
    """A network with a shared core and one readout per mouse; what the trainer trains.

    Subclasses set `neuron_counts` (neurons per mouse, readout order), `context_frames` (frames of history needed
    before the first fully predicted frame), `train_clip_frames` (clip length `train_forward` expects),
    `architecture` + `kwargs` (enough to rebuild the model: `build_architecture(architecture, **kwargs)`) and, for
    windowed models, `windowing` (then they also offer `predict_windows(video, behaviour, mouse, ends)`).

    Before the first epoch the trainer calls `start_from_data(mouse, data)` once per mouse; a model takes from `data`
    (a `v1recon.training.start.DataStart`) what it can use: behaviour statistics, mean responses, the gaze
    correction, receptive-field centres. The default uses nothing.
    """

    architecture: str = ""
    neuron_counts: list[int]
    context_frames: int
    train_clip_frames: int
    windowing: WindowGeometry | None = None

    def __init__(self) -> None:
        super().__init__()
        self.kwargs: dict = {}

    @property
    def config(self) -> dict:
        """Plain-data description from which the same architecture can be rebuilt."""
        return {"architecture": self.architecture, "kwargs": dict(self.kwargs)}

    def check_mouse(self, mouse: int) -> int:
        if not 0 <= int(mouse) < len(self.neuron_counts):
            raise V1ReconError(f"mouse index {mouse} is out of range for a model of {len(self.neuron_counts)} mice.")
        return int(mouse)

    def forward(self, video: torch.Tensor, behaviour: torch.Tensor, mouse: int) -> torch.Tensor:
        """Whole clips (B, T, 36, 64) and (B, 4, T) -> responses (B, N_mouse, T)."""
        raise NotImplementedError

    def train_forward(
        self, video: torch.Tensor, behaviour: torch.Tensor, mouse: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training clip of `train_clip_frames` frames -> (pred (B, N, K), frame_index (K,) long)."""
        raise NotImplementedError

    def start_from_data(self, mouse: int, data: Any) -> None:
        """Start the readout of `mouse` from its training data (see the class docstring); the default does nothing."""
