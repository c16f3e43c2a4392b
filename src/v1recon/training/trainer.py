"""Train one multi-mouse model: Poisson loss, AdamW, warm-up + cosine, EMA weights, CutMix, per-epoch validation,
checkpoints after every epoch and resume from the last complete epoch."""

from __future__ import annotations

import csv
import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from v1recon.device import autocast
from v1recon.errors import V1ReconError
from v1recon.io import atomic_path
from v1recon.training.clips import MouseTrials, sample_clips
from v1recon.training.config import TrainConfig
from v1recon.training.cutmix import cutmix
from v1recon.training.ema import EMA, ema_decay_for
from v1recon.training.losses import poisson_loss
from v1recon.training.schedules import WarmupCosine
from v1recon.training.splits import Split
from v1recon.training.start import DataStart, SharedStart

VAL_SKIP_FRAMES = 50  # as the Sensorium single-trial correlation
PROBE_STEPS = 4  # timed steps before a time budget first cuts the plan
MIN_EPOCH_STEPS = 10  # a budget-cut plan drops epochs rather than make them shorter than this


def state_path(stem: Path) -> Path:
    return Path(f"{stem}.state.pt")


def log_path(stem: Path) -> Path:
    return Path(f"{stem}.log.csv")


@torch.no_grad()
def predict_trials(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    videos: Sequence[np.ndarray],
    behaviour: Sequence[np.ndarray],
    device: torch.device,
    batch_trials: int = 4,
) -> list[np.ndarray]:
    """Whole-trial predictions, batching trials of equal length.

    predict(video (B,T,36,64), behaviour (B,4,T)) -> (B,N,T); videos[i] (T_i,36,64), behaviour[i] (4,T_i).
    Returns one (N, T_i) float32 array per trial, in input order.
    """
    out: list[np.ndarray | None] = [None] * len(videos)
    by_length: dict[int, list[int]] = {}
    for i, v in enumerate(videos):
        by_length.setdefault(int(v.shape[0]), []).append(i)
    for idx in by_length.values():
        for start in range(0, len(idx), batch_trials):
            chunk = idx[start : start + batch_trials]
            video = torch.from_numpy(np.stack([videos[i] for i in chunk]).astype(np.float32)).to(device)
            beh = torch.from_numpy(np.stack([behaviour[i] for i in chunk]).astype(np.float32)).to(device)
            with autocast(device):
                pred = predict(video, beh)
            for i, p in zip(chunk, pred.float().cpu().numpy(), strict=True):
                out[i] = p
    return out  # type: ignore[return-value]


def validate(
    model: torch.nn.Module, mice: Sequence[MouseTrials], val_indices: Sequence[list[int]], device: torch.device
) -> dict[str, float]:
    """Single-trial correlation (first 50 frames of each trial dropped) per mouse on its validation trials."""
    from v1recon.metrics.encoder import single_trial_correlation

    model.eval()
    scores = {}
    for m, (mouse, idx) in enumerate(zip(mice, val_indices, strict=True)):
        if not idx:
            scores[mouse.name] = float("nan")
            continue
        preds = predict_trials(
            lambda v, b, m=m: model(v, b, m), [mouse.videos[i] for i in idx], [mouse.behaviour[i] for i in idx], device
        )
        skip = min(VAL_SKIP_FRAMES, min(p.shape[1] for p in preds) - 2)
        scores[mouse.name] = float(single_trial_correlation(preds, [mouse.responses[i] for i in idx], skip=skip).mean)
    return scores


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on weight matrices and kernels only (not on biases and normalisation scales)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.base_lr)


def _write_log(path: Path, history: list[dict]) -> None:
    if not history:
        return
    fields = list(history[0].keys())
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)


def training_indices(mice: Sequence[MouseTrials], split: Split, clip_frames: int) -> list[list[int]]:
    """Per mouse, the trials a model of `split` trains on (long enough for one clip); raises when one has none."""
    out = [m.indices(split.train_folds, min_frames=clip_frames) for m in mice]
    for m, idx in zip(mice, out, strict=True):
        if not idx:
            raise V1ReconError(
                f"{m.name}: no training trials of {clip_frames}+ frames in folds {list(split.train_folds)}."
            )
    return out


def shared_clip_gain(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1) gain of each clip shared by all its neurons: the Poisson maximum-likelihood scale of the predictions
    (sum of responses over sum of predictions), divided by its batch mean so that the model keeps the overall scale.

    An unobserved brain state that scales a whole population for seconds (the cascade in-silico mouse has one) is
    then not noise the encoder must average over; at prediction time the gain is 1 (the mean state).
    """
    gain = target.sum((1, 2)) / pred.sum((1, 2)).clamp_min(1e-6)
    gain = (gain / gain.mean().clamp_min(1e-6)).clamp(0.25, 4.0)
    return gain[:, None, None]


def cut_plan(
    epoch: int, epochs: int, steps_per_epoch: int, steps_done: int, left_s: float, step_s: float, val_s: float
) -> tuple[int, int]:
    """(epochs, steps per epoch) of a training plan cut to fit `left_s` seconds; the plan itself when it fits.

    `epoch` epochs are complete and `steps_done` steps of the next one are taken; step_s and val_s are the measured
    seconds per optimiser step and per validation. Steps per epoch shrink first, then the number of epochs, so that
    every epoch keeps at least MIN_EPOCH_STEPS steps (or what its shorter plan had) and the steps already taken.
    """
    e, s = epoch, steps_done
    needed = (epochs - e) * (steps_per_epoch * step_s + val_s) - s * step_s
    if needed <= left_s:
        return epochs, steps_per_epoch
    min_steps = min(steps_per_epoch, MIN_EPOCH_STEPS)
    new_epochs, per_epoch = e + 1, s + max(0, int((left_s - val_s) / step_s))
    for n in range(epochs - e, 0, -1):  # most epochs that keep >= min_steps each
        affordable = int((left_s - n * val_s) / step_s) + s
        if affordable // n >= max(min_steps, s):
            new_epochs, per_epoch = e + n, affordable // n
            break
    return new_epochs, max(min(per_epoch, steps_per_epoch), s, 1)


class Trainer:
    """Trains `model` on `mice` following `split` and `config`; files go to `<stem>.*`.

    After every epoch: the EMA weights are validated, saved with `save_model(stem, ...)` (complete=False until the
    last epoch), the full training state goes to `<stem>.state.pt` and the log to `<stem>.log.csv`. A new Trainer
    on the same stem resumes from the last complete epoch.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        mice: Sequence[MouseTrials],
        split: Split,
        config: TrainConfig,
        stem: Path,
        device: torch.device,
        extra: dict | None = None,
        progress: bool = True,
        shared_start: SharedStart | None = None,
        parallel=None,
    ):
        self.model = model.to(torch.device(device))
        self.mice = list(mice)
        self.split, self.config, self.stem, self.device = split, config, Path(stem), torch.device(device)
        self.extra = dict(extra or {})
        self.progress, self.shared_start = progress, shared_start
        self.parallel = parallel  # v1recon.training.distributed.DataParallel: this process's share of each batch
        self.writes = parallel is None or parallel.rank == 0  # one process writes the files
        clip = int(model.train_clip_frames)
        self.train_indices = training_indices(self.mice, split, clip)
        val = [m.indices([split.val_fold], min_frames=clip) for m in self.mice]
        self.val_indices = [v[: config.val_trials] if config.val_trials is not None else v for v in val]

        steps = config.steps_per_epoch
        self.schedule = WarmupCosine(config.epochs * steps, round(config.warmup_epochs * steps), config.lr_floor)
        self.optimizer = _optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.ema = EMA(
            self.model, min(config.ema_decay, ema_decay_for(config.epochs * steps, horizon=config.ema_horizon))
        )
        self.rng = np.random.default_rng(split.seed)
        self.epoch = 0  # epochs completed
        self.planned_epochs = config.epochs
        self.steps_per_epoch = config.steps_per_epoch
        self.steps_before_epoch = 0  # optimiser steps taken in completed epochs
        self._mouse_queue: list[int] = []
        self.elapsed_s = 0.0
        self.history: list[dict] = []
        if state_path(self.stem).is_file():
            self._load_state()  # the saved weights already carry what the data initialisation set
        else:
            self._init_from_data()

    def _init_from_data(self) -> None:
        """Let the model start each mouse's readout from the data (`MultiMouseModel.start_from_data`): behaviour
        statistics, mean responses, gaze correction, RF positions and filters, as the model uses them.

        Saves the early epochs a readout would otherwise spend finding each neuron's baseline and place. The RF
        starts come from `shared_start` when one is given (computed once per mouse for all models of a run).
        """
        clip = int(self.model.train_clip_frames)
        pairs = list(zip(self.mice, self.train_indices, strict=True))
        # a bar per mouse: the subunit model's full-resolution RF search and filter start take about a minute each
        bar = tqdm(pairs, desc="starting points from the data", unit="mouse", leave=False, disable=not self.progress)
        for m, (mouse, idx) in enumerate(bar):
            data = DataStart(mouse, m, idx, self.model.architecture, clip, self.shared_start)
            self.model.start_from_data(m, data)
        self.ema = EMA(self.model, self.ema.decay)  # the average starts from the initialised weights

    # -- state -------------------------------------------------------------------------------------------------
    def _load_state(self) -> None:
        """Resume from `<stem>.state.pt`: tensors and plain containers only (weights_only, so no code runs)."""
        path = state_path(self.stem)
        try:
            # map to the CPU: the RNG state must stay there
            state = torch.load(path, map_location="cpu", weights_only=True)
            self._restore(state)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, TypeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise V1ReconError(
                f"{path}: cannot resume from this training state ({first[:200]}); delete it to train this model "
                "again from its start."
            ) from err

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.schedule.total_steps = state["total_steps"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.planned_epochs = state["epoch"], state["planned_epochs"]
        self.steps_per_epoch, self.steps_before_epoch = state["steps_per_epoch"], state["steps_before_epoch"]
        self.schedule.warmup_steps, self.ema.decay = state["warmup_steps"], state["ema"]["decay"]
        self._mouse_queue = state["mouse_queue"]
        self.elapsed_s, self.history = state["elapsed_s"], state["history"]

    def _save_state(self) -> None:
        """Everything a resume needs, as tensors and plain containers (loads with weights_only=True)."""
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "total_steps": self.schedule.total_steps,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "planned_epochs": self.planned_epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "steps_before_epoch": self.steps_before_epoch,
            "warmup_steps": self.schedule.warmup_steps,
            "mouse_queue": self._mouse_queue,
            "elapsed_s": self.elapsed_s,
            "history": self.history,
        }
        with atomic_path(state_path(self.stem)) as tmp:
            torch.save(state, tmp)

    def _save_checkpoint(self, complete: bool) -> None:
        from v1recon.models import save_model

        last = self.history[-1] if self.history else {}
        extra = {
            **self.extra,
            "split": self.split.to_dict(),
            "train_config": self.config.to_dict(),
            "epoch": self.epoch,
            "planned_epochs": self.planned_epochs,
            "val_corr": last.get("val_corr"),
            "train_seconds": round(self.elapsed_s, 1),
            "complete": complete,
        }
        save_model(self.stem, self.ema.module, extra)

    # -- training ----------------------------------------------------------------------------------------------
    def _step(self, mouse_index: int) -> float:
        config, mouse = self.config, self.mice[mouse_index]
        video, behaviour, responses = sample_clips(
            mouse, self.train_indices[mouse_index], config.batch_size, self.model.train_clip_frames, self.rng
        )
        if config.cutmix_prob > 0:
            video, behaviour, responses = cutmix(
                video, behaviour, responses, self.rng, alpha=config.cutmix_alpha, prob=config.cutmix_prob
            )
        if self.parallel is not None:  # every process draws the same global batch and keeps its own share
            video, behaviour, responses = self.parallel.shard(video, behaviour, responses)
        video, behaviour, responses = (t.to(self.device) for t in (video, behaviour, responses))
        self.model.train()
        forward = self.model.train_forward if self.parallel is None else self.parallel.module
        with autocast(self.device):
            pred, frame_index = forward(video, behaviour, mouse_index)
        target = responses[:, :, frame_index.to(self.device)]
        if config.shared_gain:
            pred = pred * shared_clip_gain(pred.detach(), target)
        loss = poisson_loss(pred, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        return float(loss.detach()) / (target.shape[1] * target.shape[2])

    # -- time budget -------------------------------------------------------------------------------------------
    def _replan(self, left_s: float, step_s: float, val_s: float, steps_in_epoch: int) -> None:
        """Shrink the remaining epochs to fit `left_s` seconds (see `cut_plan`); the cosine horizon and the EMA time
        constant follow the new plan, so a cut run still ends at a low learning rate."""
        plan = (self.planned_epochs, self.steps_per_epoch)
        new = cut_plan(self.epoch, *plan, steps_in_epoch, left_s, step_s, val_s)
        if new == plan:
            return
        self.planned_epochs, self.steps_per_epoch = new
        total = self.steps_before_epoch + (new[0] - self.epoch) * new[1]
        self.schedule.total_steps = total
        self.schedule.warmup_steps = min(self.schedule.warmup_steps, max(1, round(0.2 * total)))
        self.ema.decay = min(self.config.ema_decay, ema_decay_for(total, horizon=self.config.ema_horizon))

    def _agreed(self, *timings: float) -> tuple[float, ...]:
        """Timings every process plans with (the first process's), so that all keep the same schedule."""
        return timings if self.parallel is None else self.parallel.agree(timings)

    def _next_mouse(self) -> int:
        """Mice in random order, each once per block of n_mice steps (uniform over mice, balanced)."""
        if not self._mouse_queue:
            self._mouse_queue = [int(m) for m in self.rng.permutation(len(self.mice))]
        return self._mouse_queue.pop()

    def fit(self, budget_s: float | None = None, on_epoch: Callable[[dict], None] | None = None) -> dict:
        """Train the remaining epochs; with `budget_s`, fit this call's training into that many seconds.

        The plan is cut after a few timed steps and again after every epoch (see `_replan`). Returns the last
        log row. Safe to call again after an interruption: it resumes from the last complete epoch.
        """
        session = time.perf_counter()
        step_times: list[float] = []
        val_s = 0.0
        while self.epoch < self.planned_epochs:
            start = time.perf_counter()
            losses: list[float] = []
            desc = f"model {self.split.model_index} epoch {self.epoch + 1}/{self.planned_epochs}"
            bar = tqdm(total=self.steps_per_epoch, desc=desc, leave=False, disable=not self.progress, unit="batch")
            while len(losses) < self.steps_per_epoch:
                t = time.perf_counter()
                losses.append(self._step(self._next_mouse()))
                step_times.append(time.perf_counter() - t)
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if budget_s is not None and (len(step_times) == PROBE_STEPS or len(losses) % 10 == 0):
                    step_s = float(np.mean(step_times[1:] or step_times))  # the first step pays one-off costs
                    left = budget_s - (time.perf_counter() - session)
                    self._replan(*self._agreed(left, step_s, val_s), len(losses))
                    bar.total = self.steps_per_epoch
            bar.close()
            lr = self.optimizer.param_groups[0]["lr"]
            t = time.perf_counter()
            scores = validate(self.ema.module, self.mice, self.val_indices, self.device)
            val_s = time.perf_counter() - t
            self.epoch += 1
            self.steps_before_epoch += len(losses)
            epoch_s = time.perf_counter() - start
            self.elapsed_s += epoch_s
            if budget_s is not None and self.epoch < self.planned_epochs:
                step_s = float(np.mean(step_times[1:] or step_times))
                self._replan(*self._agreed(budget_s - (time.perf_counter() - session), step_s, val_s), 0)
            valid = [v for v in scores.values() if np.isfinite(v)]
            row = {
                "epoch": self.epoch,
                "steps": self.steps_before_epoch,
                "lr": lr,
                "train_loss": float(np.mean(losses)),
                "val_corr": float(np.mean(valid)) if valid else float("nan"),
                **{f"val_corr_{name}": v for name, v in scores.items()},
                "epoch_seconds": round(epoch_s, 2),
                "elapsed_seconds": round(self.elapsed_s, 2),
            }
            self.history.append(row)
            done = self.epoch >= self.planned_epochs
            if self.writes:
                self._save_checkpoint(complete=done)
                _write_log(log_path(self.stem), self.history)
                if done:
                    state_path(self.stem).unlink(missing_ok=True)
                else:
                    self._save_state()
            if on_epoch is not None:
                on_epoch(row)
        return self.history[-1] if self.history else {}
