"""A mouse's training-tier trials, and random clips drawn from them.

Loading every training trial once (videos as float16, exact for whole grey levels) and slicing clips from the
arrays is cheap and needs no loader processes: the in-silico mouse's 200 trials x 300 frames take ~280 MB. The
responses of a large mouse (more than `IN_MEMORY_BYTES`, e.g. 8000 neurons x 350 trials = 3.4 GB) stay on disk and
are read trial by trial when a clip, a validation or a statistic needs them, so no stage holds a whole mouse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from v1recon.errors import V1ReconError

IN_MEMORY_BYTES = 2 << 30  # responses of a mouse above this size are read from disk when needed


class DiskResponses(Sequence):
    """The recorded responses (N, T) of a recording's trials, read from its files on each access (not kept)."""

    def __init__(self, recording, trial_ids: Sequence[int]) -> None:
        self.recording, self.trial_ids = recording, list(trial_ids)

    def __len__(self) -> int:
        return len(self.trial_ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self.recording.trial(self.trial_ids[i]).responses

    def append(self, trial_id: int) -> None:
        self.trial_ids.append(int(trial_id))


class Subset(Sequence):
    """Items `index` of a sequence, looked up when asked for (a lazy view: on-disk responses stay on disk)."""

    def __init__(self, items: Sequence, index: Sequence[int]) -> None:
        self.items, self.index = items, list(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self.items[self.index[i]]


@dataclass
class MouseTrials:
    """All training-tier trials (with responses) of one mouse, and the fold of each trial's movie."""

    name: str
    n_neurons: int
    trial_ids: list[int] = field(default_factory=list)
    folds: list[int] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)  # (T, 36, 64) float16 grey levels
    behaviour: list[np.ndarray] = field(default_factory=list)  # (4, T) float32
    responses: Sequence[np.ndarray] = field(default_factory=list)  # (N, T) float32, in memory or DiskResponses

    def indices(self, folds, min_frames: int = 0) -> list[int]:
        """Positions (into the lists) of the trials whose fold is in `folds` and that have >= min_frames frames."""
        folds = set(folds)
        return [i for i, f in enumerate(self.folds) if f in folds and self.videos[i].shape[0] >= min_frames]


def load_training_trials(recording, n_folds: int, tiers=("train",)) -> MouseTrials:
    """Read every trial of `tiers` that has responses into memory, with its movie fold."""
    from v1recon.data import movie_fold

    ids = recording.trial_ids(tier=tiers, with_responses=True)
    if not ids:
        raise V1ReconError(f"{recording.path}: no {'/'.join(tiers)} trials with responses to train on.")
    mouse = MouseTrials(recording.name, int(recording.n_neurons))
    chosen = set(ids)
    frames = sum(info.length for info in recording.trials if info.trial_id in chosen)
    on_disk = 4 * recording.n_neurons * frames > IN_MEMORY_BYTES
    if on_disk:
        mouse.responses = DiskResponses(recording, [])
    for trial_id in ids:
        trial = recording.trial(trial_id)
        mouse.trial_ids.append(int(trial_id))
        mouse.folds.append(int(movie_fold(trial.video, n_folds)))
        mouse.videos.append(np.asarray(trial.video, dtype=np.float16))
        mouse.behaviour.append(np.asarray(trial.behaviour, dtype=np.float32))
        mouse.responses.append(trial_id if on_disk else np.asarray(trial.responses, dtype=np.float32))
    return mouse


def sample_clips(
    mouse: MouseTrials, indices: list[int], batch_size: int, clip_frames: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of random clips: random trial among `indices`, random start (the whole clip inside the trial).

    Returns video (B, L, 36, 64) float32, behaviour (B, 4, L), responses (B, N, L), L = clip_frames.
    """
    picks = rng.integers(len(indices), size=batch_size)
    videos, behaviour, responses = [], [], []
    for p in picks:
        i = indices[int(p)]
        start = int(rng.integers(mouse.videos[i].shape[0] - clip_frames + 1))
        stop = start + clip_frames
        videos.append(mouse.videos[i][start:stop])
        behaviour.append(mouse.behaviour[i][:, start:stop])
        responses.append(mouse.responses[i][:, start:stop])
    return (
        torch.from_numpy(np.stack(videos).astype(np.float32)),
        torch.from_numpy(np.stack(behaviour)),
        torch.from_numpy(np.stack(responses)),
    )
