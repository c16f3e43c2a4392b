"""What a model may take from one mouse's training data before its first epoch (`MultiMouseModel.start_from_data`).

Each quantity is computed when a model first asks for it. The receptive-field starts (gaze correction, RF centres,
subunit filters) are the expensive ones: they come from the trials of `SharedStart.folds` and are computed once per
mouse and architecture for all models of a run; the cheap statistics come from the model's own training trials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from v1recon.training.clips import MouseTrials, Subset


@dataclass
class SharedStart:
    """RF starting points that every model of a run shares: computed once per mouse from the trials of `folds`
    and kept in `found`. `v1recon train` uses every fold but the held-out test fold, so a model's start may have
    seen its validation trials (its validation correlation is then slightly optimistic), never the test movies."""

    folds: tuple[int, ...]
    found: dict = field(default_factory=dict)  # (what, mouse index, architecture) -> positions or filters


class DataStart:
    """One mouse's training data, offered to a model's `start_from_data(mouse, data)`.

    `train` are the model's own training trials (positions into `trials`' lists), `min_frames` the clip length it
    trains on; `shared` (optional) shares the RF starts between the models of a run.
    """

    def __init__(
        self,
        trials: MouseTrials,
        mouse: int,
        train: list[int],
        architecture: str,
        min_frames: int,
        shared: SharedStart | None = None,
    ) -> None:
        self.trials, self.mouse, self.train = trials, mouse, list(train)
        self.architecture = architecture
        self._found = shared.found if shared is not None else {}
        self._corrected: tuple | None = None  # (gaze, frames moved back by it)
        start = trials.indices(shared.folds, min_frames=min_frames) if shared is not None else []
        self.start = start or self.train  # trials of the RF starts
        self.videos = [trials.videos[i] for i in self.start]
        self.responses = Subset(trials.responses, self.start)  # read when needed: large mice stay on disk
        self._pupils = [trials.behaviour[i][2:4] for i in self.start]

    # -- the model's own training trials -------------------------------------------------------------------------
    def behaviour_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (4,) of dilation, running speed, pupil x and pupil y."""
        beh = np.concatenate([self.trials.behaviour[i] for i in self.train], axis=1)
        return beh.mean(1), beh.std(1) + 1e-6

    def response_mean(self) -> np.ndarray:
        """Mean response (N,) over every frame of the training trials."""
        total = sum(self.trials.responses[i].sum(1, dtype=np.float64) for i in self.train)
        frames = sum(self.trials.videos[i].shape[0] for i in self.train)
        return (total / frames).astype(np.float32)

    # -- receptive-field starts (shared by the models of a run) -------------------------------------------------
    def once(self, what: str, compute: Callable[[], Any]) -> Any:
        """compute(), or what a model of the same architecture already computed for this mouse."""
        key = (what, self.mouse, self.architecture)
        if key not in self._found:
            self._found[key] = compute()
        return self._found[key]

    def gaze(self, trials: int) -> tuple[np.ndarray, np.ndarray]:
        """The linear gaze correction (gain, reference) per axis, from up to `trials` trials (rf_init.estimate_gaze)."""
        from v1recon.models.rf_init import estimate_gaze

        return self.once("gaze", lambda: estimate_gaze(self.videos, self._pupils, self.responses, max_trials=trials))

    def frames(self, gaze: tuple | None = None) -> list[np.ndarray]:
        """The start trials' movies, moved back by `gaze` (gain, reference) when given (made once, when needed)."""
        from v1recon.models.rf_init import gaze_corrected

        if gaze is None:
            return self.videos
        if self._corrected is None or self._corrected[0] is not gaze:
            moved = [gaze_corrected(v, p, *gaze) for v, p in zip(self.videos, self._pupils, strict=True)]
            self._corrected = (gaze, moved)
        return self._corrected[1]

    def rf_positions(self, gaze: tuple | None = None, **options) -> np.ndarray:
        """Receptive-field centres (N, 2), x and y in [-1, 1], on frames corrected by `gaze` (rf_init.rf_positions)."""
        from v1recon.models.rf_init import rf_positions

        return self.once("positions", lambda: rf_positions(self.frames(gaze), self.responses, **options)[0])


def save_shared_start(path: Path, shared: SharedStart) -> None:
    """Write `shared.found` as tensors (safetensors) with a JSON manifest of what each entry is."""
    import torch
    from safetensors.torch import save_file

    from v1recon.io import atomic_path, write_json

    tensors, manifest = {}, []
    for i, ((what, mouse, architecture), value) in enumerate(shared.found.items()):
        parts = value if isinstance(value, tuple) else (value,)
        kind = "tuple" if isinstance(value, tuple) else ("tensor" if isinstance(value, torch.Tensor) else "array")
        manifest.append({"what": what, "mouse": mouse, "architecture": architecture, "kind": kind, "n": len(parts)})
        for j, part in enumerate(parts):
            tensors[f"{i}.{j}"] = torch.as_tensor(np.asarray(part) if kind != "tensor" else part).contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    write_json(path.with_suffix(".json"), {"entries": manifest})


def load_shared_start(path: Path) -> dict:
    """The `found` dict written by `save_shared_start` (no file: nothing found yet)."""
    from safetensors.torch import load_file

    from v1recon.io import read_json

    if not Path(path).is_file():
        return {}
    tensors = load_file(str(path))
    found = {}
    for i, entry in enumerate(read_json(Path(path).with_suffix(".json"))["entries"]):
        parts = [tensors[f"{i}.{j}"] for j in range(entry["n"])]
        if entry["kind"] == "tensor":
            value = parts[0]
        else:
            arrays = [p.numpy() for p in parts]
            value = tuple(arrays) if entry["kind"] == "tuple" else arrays[0]
        found[(entry["what"], entry["mouse"], entry["architecture"])] = value
    return found
