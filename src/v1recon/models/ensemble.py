"""Adapters to the Encoder contract: one mouse of a multi-mouse model, the mean of several encoders, and an
encoder restricted to some of its neurons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from v1recon.device import autocast
from v1recon.errors import V1ReconError
from v1recon.models.base import (
    Encoder,
    MultiMouseModel,
    WindowGeometry,
    check_encoder_inputs,
    module_state,
    networks,
)


def inference_mode(model: torch.nn.Module):
    """Eval mode and frozen weights for the duration (gradients still flow to the inputs); restored after."""
    return module_state(model, training=False, requires_grad=False)


class BoundEncoder:
    """A multi-mouse model bound to one mouse: encoder(video (B,T,36,64), behaviour (B,4,T)) -> (B, N, T).

    Runs in eval mode with the weights frozen (the model is left as it was found), on the model's device with
    bf16 autocast on CUDA (`bf16=False`: float32 throughout); returns float32 on the device of the input video.
    Differentiable in the video.
    """

    def __init__(self, model: MultiMouseModel, mouse: int, name: str | None = None, bf16: bool = True) -> None:
        self.model = model
        self.bf16 = bf16
        self.mouse = model.check_mouse(mouse)
        self.n_neurons = int(model.neuron_counts[self.mouse])
        self.context_frames = int(model.context_frames)
        self.name = name or f"{model.architecture}[{self.mouse}]"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return f"BoundEncoder({self.name}, n_neurons={self.n_neurons})"

    def _inputs(self, video: torch.Tensor, behaviour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_encoder_inputs(video, behaviour)
        return video.to(self.device, torch.float32), behaviour.to(self.device, torch.float32)

    def __call__(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        v, b = self._inputs(video, behaviour)
        with inference_mode(self.model), autocast(self.device, self.bf16):
            out = self.model(v, b, self.mouse)
        return out.float().to(video.device)

    @property
    def windowing(self) -> WindowGeometry | None:
        """The model's window geometry when it predicts fixed windows (DwiseNeuro), else None."""
        return self.model.windowing

    def networks(self) -> list[torch.nn.Module]:
        return [self.model]

    def predict_windows(self, video: torch.Tensor, behaviour: torch.Tensor, ends) -> torch.Tensor:
        """Windowed models only: the windows ending at frames `ends` -> (B, len(ends), N, frames)."""
        if self.windowing is None:
            raise V1ReconError(f"{self.name}: a {self.model.architecture} model does not predict windows.")
        v, b = self._inputs(video, behaviour)
        with inference_mode(self.model), autocast(self.device, self.bf16):
            out = self.model.predict_windows(v, b, self.mouse, ends)
        return out.float().to(video.device)


class EnsembleEncoder:
    """The mean prediction of several encoders of the same neurons (Encoder contract)."""

    def __init__(self, encoders: Sequence[Encoder]) -> None:
        if not encoders:
            raise V1ReconError("an ensemble needs at least one encoder.")
        counts = {int(e.n_neurons) for e in encoders}
        if len(counts) != 1:
            raise V1ReconError(f"ensemble members predict different neuron counts {sorted(counts)}.")
        self.encoders = list(encoders)
        self.n_neurons = counts.pop()
        self.context_frames = max(int(getattr(e, "context_frames", 0)) for e in encoders)

    def __len__(self) -> int:
        return len(self.encoders)

    def __repr__(self) -> str:
        return f"EnsembleEncoder({len(self.encoders)} encoders, n_neurons={self.n_neurons})"

    def __call__(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        total = None
        for encoder in self.encoders:
            pred = encoder(video, behaviour)
            total = pred if total is None else total + pred
        return total / len(self.encoders)

    @property
    def windowing(self) -> WindowGeometry | None:
        """The members' window geometry when they all cut trials the same way, else None (whole-trial calls)."""
        found = {getattr(e, "windowing", None) for e in self.encoders}
        return found.pop() if len(found) == 1 else None

    def networks(self) -> list[torch.nn.Module]:
        return [m for e in self.encoders for m in networks(e)]

    def predict_windows(self, video: torch.Tensor, behaviour: torch.Tensor, ends) -> torch.Tensor:
        if self.windowing is None:
            raise V1ReconError("not every ensemble member predicts windows of the same geometry.")
        return sum(e.predict_windows(video, behaviour, ends) for e in self.encoders) / len(self.encoders)


class NeuronSubset:
    """An encoder restricted to some of its neurons (Encoder contract): the others leave every loss entirely.

    encoder(video (B, T, 36, 64), behaviour (B, 4, T)) -> (B, len(index), T). Windowed encoders keep their
    windows (`predict_windows` returns (B, W, len(index), frames)).
    """

    def __init__(self, encoder, index: np.ndarray) -> None:
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1 or index.size == 0 or index.min() < 0 or index.max() >= encoder.n_neurons:
            raise V1ReconError(f"a neuron subset must pick 1..{encoder.n_neurons} valid neuron indices.")
        self.encoder = encoder
        self.index = torch.from_numpy(index)
        self.n_neurons = int(index.size)
        self.name = f"{getattr(encoder, 'name', 'encoder')}[{self.n_neurons} neurons]"

    @property
    def windowing(self) -> WindowGeometry | None:
        return getattr(self.encoder, "windowing", None)

    def networks(self) -> list[torch.nn.Module]:
        return networks(self.encoder)

    def __call__(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        out = self.encoder(video, behaviour)
        return out[:, self.index.to(out.device)]

    def predict_windows(self, video: torch.Tensor, behaviour: torch.Tensor, ends) -> torch.Tensor:
        out = self.encoder.predict_windows(video, behaviour, ends)
        return out[:, :, self.index.to(out.device)]
