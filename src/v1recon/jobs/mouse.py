"""One mouse of a trained run, ready to reconstruct: its encoders, masks, recording, true model and trials.

The one per-mouse loader of the reconstruct and mask jobs, the streaming command and the analyses. Every check runs
here, before any computation: unknown mouse or tier, trial ids, neuron counts, missing behaviour or responses,
trials shorter than one window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v1recon import FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.recon.masks import AlphaMask, load_mask, mask_path
from v1recon.recon.objective import CLIP_FRAMES


def pixel_masks(mask: AlphaMask | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(update mask, evaluation mask, note) of a mouse, by one rule everywhere: no mask -> every pixel updated and
    evaluated; an empty update mask (too few mask iterations) -> every pixel; an empty evaluation mask -> evaluated
    inside the update mask. The note says which fallback applied ("" for none)."""
    full = np.ones(FRAME_SHAPE, bool)
    if mask is None:
        return full, full, "no mask: all pixels updated and evaluated"
    if not mask.update_mask.any():
        return full, full, "mask empty (too few mask iterations?): all pixels updated and evaluated"
    if mask.eval_mask.any():
        return mask.update_mask, mask.eval_mask, ""
    return mask.update_mask, mask.update_mask, "evaluation mask empty: evaluated inside the update mask"


@dataclass
class MouseSetup:
    """One mouse of a run: encoders (the run's models, or the true model for the oracle), masks, in silico the true
    model, and every mouse of the run found in the data (for statistics over mice)."""

    run: Any  # v1recon.runs.RunInfo
    recording: Any  # v1recon.data.Recording
    encoders: list
    encoder_names: list[str]
    mask: AlphaMask | None
    mask_source: str
    truth: torch.nn.Module | None  # the in-silico mouse's true model (encoder contract), None for real data
    device: torch.device
    recordings: list

    def __post_init__(self) -> None:
        self.update_mask, self.eval_mask, self.mask_note = pixel_masks(self.mask)

    @property
    def mouse(self) -> str:
        return self.recording.name

    @property
    def alpha(self) -> np.ndarray | None:
        """The learned alpha map (36, 64), None without a mask file."""
        return None if self.mask is None else self.mask.alpha

    def identity(self) -> dict:
        """Data and model identities for the sidecar."""
        from v1recon.runs import recording_identity

        return {
            "run": str(Path(self.run.path).resolve()),
            "data": recording_identity(self.recording),
            "models": self.encoder_names,
            "n_models": len(self.encoders),
            "mask": self.mask_source,
            "mask_note": self.mask_note,
            "update_pixels": int(self.update_mask.sum()),
            "eval_pixels": int(self.eval_mask.sum()),
            "true_model": self.truth is not None,
        }


def run_mice(run, data: str | Path, all_mice: bool) -> list:
    """The recordings under `data` of the run's mice (all of them when `all_mice`, else at least one)."""
    from v1recon.data import open_recordings
    from v1recon.runs import match_recordings

    if all_mice:
        return match_recordings(run, data)
    chosen = [r for r in open_recordings(data) if r.name in run.mouse_names]
    if not chosen:
        raise V1ReconError(f"{data}: holds no mouse of the run (the run has {', '.join(run.mouse_names)}).")
    return chosen


def open_mouse(
    run,
    recording,
    recordings: list,
    device: str | torch.device = "auto",
    models: Sequence[int] | None = None,
    oracle: bool = False,
    mask: str = "use",
    log: Callable[[str], None] | None = None,
) -> MouseSetup:
    """Load one mouse of `run`. `models`: indices of the run's models (None: all trained); `oracle`: the true model
    instead; `mask`: "use" RUN/masks/<mouse>.npz when it exists (else every pixel), "need" it, or "none"."""
    from v1recon.device import pick_device
    from v1recon.runs import load_encoders
    from v1recon.sim import load_truth

    torch_device = pick_device(device) if isinstance(device, str) else device
    truth = load_truth(recording.path)
    if truth is not None:
        truth = truth.to(torch_device).eval()
    if oracle:
        if truth is None:
            raise V1ReconError(
                f"{recording.path}: no ground-truth model beside this recording; --oracle needs an in-silico mouse."
            )
        encoders, names = [truth], ["ground truth"]
    else:
        trained = load_encoders(run.path, recording.name, device=torch_device)
        chosen = list(models) if models is not None else list(range(len(trained)))
        if max(chosen) >= len(trained):
            raise V1ReconError(
                f"{run.path}: model {max(chosen)} requested, the run has {len(trained)} trained models."
            )
        encoders, names = [trained[k] for k in chosen], [trained[k].name for k in chosen]
    if encoders[0].n_neurons != recording.n_neurons:
        raise V1ReconError(
            f"{recording.path}: has {recording.n_neurons} neurons but the encoders predict {encoders[0].n_neurons}."
        )
    path = mask_path(run.path, recording.name)
    alpha, source = None, "none (all pixels)"
    if mask != "none" and path.is_file():
        alpha, source = load_mask(path), str(path)
    elif mask == "need":
        raise V1ReconError(f"{path}: no alpha mask for mouse {recording.name}; run `v1recon mask {run.path}` first.")
    elif mask == "use" and log is not None:
        log(f"no alpha mask at {path}: every pixel is updated and scored (run `v1recon mask` for the published setup)")
    return MouseSetup(run, recording, encoders, names, alpha, source, truth, torch_device, recordings)


def open_setup(
    run_dir: str | Path,
    data: str | Path | None = None,
    mouse: str | None = None,
    device: str = "auto",
    need_mask: bool = False,
    log: Callable[[str], None] = print,
) -> MouseSetup:
    """A mouse of a run by name (default: the first), every mouse of the run required under `data` (default: the
    folder the run was trained on); what the analyses open."""
    from v1recon.runs import load_run

    run = load_run(run_dir)
    recordings = run_mice(run, data if data is not None else run.data, all_mice=True)
    name = mouse or run.mouse_names[0]
    run.mouse_index(name)  # a clear error for an unknown mouse
    recording = next(r for r in recordings if r.name == name)
    setup = open_mouse(run, recording, recordings, device, mask="need" if need_mask else "use", log=log)
    if setup.mask_note and setup.mask is not None:
        log(f"{setup.mask_source}: {setup.mask_note}")
    return setup


# -- trials ------------------------------------------------------------------------------------------------------
@dataclass
class TrialSet:
    """Movies with behaviour and responses, as the reconstructor takes them (lists, one entry per trial)."""

    ids: list[int]
    videos: list[np.ndarray]  # (T, 36, 64) grey levels
    behaviours: list[np.ndarray]  # (4, T)
    responses: list[np.ndarray | None]  # (N, T); None for trials without recorded responses
    names: list[str]  # "<recording> trial <id>", for messages

    def __len__(self) -> int:
        return len(self.ids)


def parse_trials(spec: str | None, available: list[int], where: str) -> list[int]:
    """--trials: None = all, "N" = the first N, "a,b,c" (or "a,") = those trial ids."""
    if spec is None or spec.strip() == "":
        return list(available)
    spec = spec.strip()
    try:
        if "," not in spec:
            count = int(spec)
            if count < 1:
                raise ValueError
            return list(available[:count])
        ids = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise V1ReconError(
            f"--trials {spec!r}: give a count (e.g. 3) or comma-separated trial ids (e.g. 4,7,9)."
        ) from None
    missing = [i for i in ids if i not in available]
    if missing:
        raise V1ReconError(f"{where}: trials {missing} are not among the {len(available)} trials of this tier.")
    return ids


def first_repeats(rec, trial_ids: list[int]) -> list[int]:
    """The first (lowest-id) trial of each distinct movie among `trial_ids`; repeats show the identical movie."""
    from v1recon.data import movie_hash

    seen, out = set(), []
    for trial_id in sorted(trial_ids):
        key = movie_hash(rec.trial(trial_id).video)
        if key not in seen:
            seen.add(key)
            out.append(trial_id)
    return out


def select_trials(rec, tier: str, spec: str | None, one_repeat: bool = False) -> list[int]:
    """Trial ids of `tier` chosen by --trials `spec`; `one_repeat` keeps the first repeat of each movie first."""
    from v1recon.data import TIERS

    if tier not in TIERS:
        raise V1ReconError(f"--tier {tier!r}: unknown tier; known: {', '.join(TIERS)}.")
    available = rec.trial_ids(tier=tier)
    if not available:
        raise V1ReconError(f"{rec.path}: has no trials of tier {tier}.")
    if one_repeat:
        available = first_repeats(rec, available)
    return parse_trials(spec, available, str(rec.path))


def load_trials(rec, trial_ids: Sequence[int], frames: int | None = None, need_responses: bool = True) -> TrialSet:
    """The trials' movies, behaviour and recorded responses, cut to their first `frames` frames (None or 0: whole
    trials; frames 30.. stay scored). Refuses trials shorter than one window, without behaviour, or (with
    `need_responses`) without recorded responses."""
    from v1recon import EVAL_START_FRAME

    if frames is not None and 0 < frames <= EVAL_START_FRAME:
        raise V1ReconError(f"--frames must exceed the {EVAL_START_FRAME} unscored context frames, got {frames}.")
    cut = slice(None, frames or None)
    out = TrialSet([], [], [], [], [])
    for t in trial_ids:
        trial = rec.trial(t)
        where = f"{rec.path} trial {t}"
        if trial.video[cut].shape[0] < CLIP_FRAMES:
            raise V1ReconError(
                f"{where}: {trial.video[cut].shape[0]} frames is shorter than one {CLIP_FRAMES}-frame window."
            )
        if trial.behaviour is None:
            raise V1ReconError(f"{where}: behaviour is missing.")
        if trial.responses is None and need_responses:
            raise V1ReconError(f"{where}: has no recorded responses (use --from-predicted or another tier).")
        out.ids.append(int(t))
        out.videos.append(np.asarray(trial.video[cut], np.float32))
        out.behaviours.append(np.asarray(trial.behaviour[:, cut], np.float32))
        out.responses.append(None if trial.responses is None else np.asarray(trial.responses[:, cut], np.float32))
        out.names.append(where)
    return out


def predicted_responses(encoders: Sequence, videos, behaviours, device) -> list[np.ndarray]:
    """Noise-free responses (N, T) per movie: the encoders' mean prediction, >= 0, float32."""
    from v1recon.models import EnsembleEncoder
    from v1recon.training.trainer import predict_trials

    model = encoders[0] if len(encoders) == 1 else EnsembleEncoder(list(encoders))
    with torch.no_grad():
        preds = predict_trials(model, list(videos), list(behaviours), torch.device(device))
    return [np.maximum(p, 0).astype(np.float32) for p in preds]
