"""The run folder: an ensemble trained on a set of mice, and everything later steps add to it.

RUN/run.json                          data path and identity, mice, preset, training config, folds, seeds,
                                      per-model status and timings
RUN/models/model-<k>.safetensors      EMA weights of model k (v1recon.models.save_model)
RUN/models/model-<k>.json             its config: preset, neuron counts, mouse names, split, seed, data identity
RUN/models/model-<k>.log.csv          loss, learning rate and validation correlation per epoch
RUN/models/model-<k>.state.pt         optimiser/EMA/sampler state while model k is unfinished (for resume)
RUN/masks/<mouse>.npz (+ .json)       alpha masks (v1recon mask)
RUN/evaluation/encoders.json          encoder metrics (v1recon evaluate)
RUN/reconstructions/                  reconstructions (v1recon reconstruct)
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from v1recon.errors import V1ReconError
from v1recon.io import file_digest, provenance, read_json, write_json
from v1recon.training.splits import N_FOLDS, TEST_FOLD, Split, plan_splits

RUN_FILE = "run.json"
DEMO_FILE = "demo.json"  # stage log of `v1recon demo`, which keeps its data and this log inside the run folder
RUN_FORMAT = "v1recon-run/1"
MODELS_DIR = "models"
RUN_SUBDIRS = ("models", "masks", "evaluation", "reconstructions")


def model_stem(run_dir: str | Path, index: int) -> Path:
    """RUN/models/model-<index> (add .safetensors, .json, .log.csv)."""
    return Path(run_dir) / MODELS_DIR / f"model-{index}"


@dataclass
class RunInfo:
    """The content of RUN/run.json."""

    path: Path
    data: str
    mice: list[dict]  # name, path, n_neurons, identity
    preset: str
    ensemble: str
    seed: int
    n_folds: int
    test_fold: int
    splits: list[Split]
    train_config: dict
    models: list[dict] = field(default_factory=list)  # index, complete, epochs, val_corr, seconds
    timings: dict = field(default_factory=dict)

    @property
    def mouse_names(self) -> list[str]:
        return [m["name"] for m in self.mice]

    @property
    def neuron_counts(self) -> list[int]:
        return [int(m["n_neurons"]) for m in self.mice]

    @property
    def n_models(self) -> int:
        return len(self.splits)

    def mouse_index(self, name: str) -> int:
        if name not in self.mouse_names:
            raise V1ReconError(
                f"{self.path / RUN_FILE}: no mouse named {name!r} in this run (it has {', '.join(self.mouse_names)})."
            )
        return self.mouse_names.index(name)

    def complete_models(self) -> list[int]:
        return [m["index"] for m in self.models if m.get("complete")]

    def to_dict(self) -> dict:
        return {
            "format": RUN_FORMAT,
            "data": self.data,
            "mice": self.mice,
            "preset": self.preset,
            "ensemble": self.ensemble,
            "seed": self.seed,
            "n_folds": self.n_folds,
            "test_fold": self.test_fold,
            "splits": [s.to_dict() for s in self.splits],
            "train_config": self.train_config,
            "models": self.models,
            "timings": self.timings,
        }

    def save(self) -> None:
        write_json(self.path / RUN_FILE, {**self.to_dict(), "provenance": provenance()})


def load_run(run_dir: str | Path) -> RunInfo:
    """Read RUN/run.json; a clear error when the folder is not a training run."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise V1ReconError(f"{path}: not found; is {run_dir} a folder written by `v1recon train`?")
    d = read_json(path)
    if d.get("format") != RUN_FORMAT:
        raise V1ReconError(f"{path}: unknown run format {d.get('format')!r} (expected {RUN_FORMAT}).")
    try:
        return RunInfo(
            path=run_dir,
            data=d["data"],
            mice=d["mice"],
            preset=d["preset"],
            ensemble=d["ensemble"],
            seed=int(d["seed"]),
            n_folds=int(d["n_folds"]),
            test_fold=int(d["test_fold"]),
            splits=[Split.from_dict(s) for s in d["splits"]],
            train_config=d["train_config"],
            models=d.get("models", []),
            timings=d.get("timings", {}),
        )
    except KeyError as err:
        raise V1ReconError(f"{path}: malformed run description (no {err.args[0]!r} field).") from err
    except (TypeError, ValueError) as err:
        raise V1ReconError(f"{path}: malformed run description ({err}).") from err


def load_encoders(run_dir: str | Path, mouse_name: str, device="cpu", include_incomplete: bool = False) -> list:
    """One BoundEncoder (Encoder contract: video (B,T,36,64), behaviour (B,4,T) -> (B,N,T)) per trained model.

    Models still in training are left out unless `include_incomplete` (they then carry their last epoch's EMA
    weights). The encoders are in eval mode on `device`; `encoder.name` is `model-<k>`.
    """
    import torch

    from v1recon.models import BoundEncoder, load_model

    run = load_run(run_dir)
    mouse = run.mouse_index(mouse_name)
    encoders = []
    for k in range(run.n_models):
        stem = model_stem(run.path, k)
        if not Path(f"{stem}.safetensors").is_file():
            continue
        model, config = load_model(stem)
        extra = config.get("extra", config)
        if not (extra.get("complete") or include_incomplete):
            continue
        names = extra.get("mouse_names", run.mouse_names)
        if list(names) != run.mouse_names:
            raise V1ReconError(f"{stem}.json: its mice {names} differ from the run's {run.mouse_names}.")
        model = model.to(torch.device(device)).eval()
        encoders.append(BoundEncoder(model, mouse, name=f"model-{k}"))
    if not encoders:
        raise V1ReconError(f"{run.path / MODELS_DIR}: no trained model yet; run `v1recon train` to finish the run.")
    return encoders


def recording_identity(recording) -> dict:
    """Name, path, neuron count and a content digest of a mouse folder (its tiers and neuron ids)."""
    root = Path(recording.path)
    digests = [
        file_digest(p) for p in (root / "meta/trials/tiers.npy", root / "meta/neurons/unit_ids.npy") if p.is_file()
    ]
    return {
        "name": recording.name,
        "path": str(root.resolve()),
        "n_neurons": int(recording.n_neurons),
        "n_trials": len(recording.trials),
        "identity": "-".join(digests),
    }


def _clear_run(out: Path) -> None:
    """Remove what a previous run wrote (run.json and the run's sub-folders), nothing else."""
    (out / RUN_FILE).unlink(missing_ok=True)
    for sub in RUN_SUBDIRS:
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)


_SAME_RUN_KEYS = ("mice", "preset", "ensemble", "seed", "n_folds", "test_fold", "splits", "train_config")


def _check_out(out: Path, fresh: RunInfo, overwrite: bool) -> RunInfo | None:
    """The existing run in `out` when it holds the same run (resume), else None for a new one; writes nothing.

    Raises when `out` is taken: a file, a different run (unless `overwrite`), or a folder of other files.
    """
    if out.exists() and not out.is_dir():
        raise V1ReconError(f"{out}: output path exists and is not a folder.")
    if (out / RUN_FILE).is_file() and not overwrite:
        old = load_run(out)
        old_d, new_d = old.to_dict(), fresh.to_dict()
        for d in (old_d, new_d):  # the same data may have moved
            d["mice"] = [{k: m[k] for k in ("name", "n_neurons", "identity")} for m in d["mice"]]
        differs = [k for k in _SAME_RUN_KEYS if old_d[k] != new_d[k]]
        if differs:
            raise V1ReconError(
                f"{out / RUN_FILE}: holds a different run ({', '.join(differs)} differ); "
                "pass --overwrite to replace it or choose another --out."
            )
        old.data = fresh.data
        return old
    # The data may live inside the run folder (the demo keeps RUN/data): that alone does not make it occupied.
    data = Path(fresh.data).resolve()
    ours = {RUN_FILE, DEMO_FILE, *(RUN_SUBDIRS if overwrite else ())}  # what --overwrite clears
    if out.is_dir() and any(p.resolve() not in (data, *data.parents) and p.name not in ours for p in out.iterdir()):
        raise V1ReconError(f"{out}: folder already holds files but no {RUN_FILE}; choose an empty or new folder.")
    return None


def _start_out(out: Path, fresh: RunInfo, overwrite: bool) -> RunInfo:
    """Write the new run's folder (after every input has been checked): clear an old run if `overwrite`."""
    if overwrite and out.is_dir():
        _clear_run(out)
    (out / MODELS_DIR).mkdir(parents=True, exist_ok=True)
    fresh.save()
    return fresh


def train_run(
    data: str | Path,
    out: str | Path,
    preset: str = "small",
    n_models: int = 3,
    ensemble: str = "folds",
    seed: int = 0,
    device: str = "auto",
    time_budget_min: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    n_folds: int = N_FOLDS,
    test_fold: int = TEST_FOLD,
    log=print,
    **config_overrides,
) -> RunInfo:
    """Train an ensemble of `n_models` multi-mouse models on every mouse found under `data`; write RUN `out`.

    Re-running with the same arguments resumes: finished models are skipped, an unfinished one continues from
    its last complete epoch. `time_budget_min` (minutes, this invocation, all models together) shortens every
    model's epochs so the whole run fits. `config_overrides` go to `train_config` (epochs, batch_size, lr, ...).
    """
    from v1recon.data import open_recordings
    from v1recon.device import pick_device, seed_everything
    from v1recon.models import build_model
    from v1recon.training.clips import load_training_trials
    from v1recon.training.config import train_config
    from v1recon.training.trainer import SharedStart, Trainer, training_indices

    t0 = time.perf_counter()
    out = Path(out)
    config = train_config(preset, **config_overrides)
    splits = plan_splits(n_models, ensemble, seed, n_folds, test_fold)
    recordings = open_recordings(data)
    fresh = RunInfo(
        path=out,
        data=str(Path(data).resolve()),
        mice=[recording_identity(r) for r in recordings],
        preset=preset,
        ensemble=ensemble,
        seed=seed,
        n_folds=n_folds,
        test_fold=test_fold,
        splits=splits,
        train_config=config.to_dict(),
    )
    # everything that can be wrong with the request or the data fails before anything is written
    clip = int(build_model(preset, fresh.neuron_counts, **config.model_overrides).train_clip_frames)
    torch_device = pick_device(device)
    resumed = _check_out(out, fresh, overwrite)
    mice = []
    for r in tqdm_iter(recordings, "loading trials", progress):
        mice.append(load_training_trials(r, n_folds))
    for split in splits:
        training_indices(mice, split, clip)
    run = resumed or _start_out(out, fresh, overwrite)
    run.timings["load_seconds"] = round(time.perf_counter() - t0, 2)
    n_trials = sum(len(m.trial_ids) for m in mice)
    log(f"loaded {n_trials} training trials of {len(mice)} mice in {run.timings['load_seconds']} s")

    status = {m["index"]: m for m in run.models}
    # RF starts computed once per mouse from every fold outside the held-out one: precise centres need the trials
    # (in silico 162 trials leave 50 of 180 fine-grained neurons > 3 px off, 92 trials 74)
    shared = SharedStart(tuple(f for f in range(n_folds) if f != test_fold))
    for split in splits:
        k = split.model_index
        if status.get(k, {}).get("complete"):
            log(f"model {k}: already trained, skipped")
            continue
        seed_everything(split.seed)
        model = build_model(preset, run.neuron_counts, **config.model_overrides)
        extra = {
            "preset": preset,
            "neuron_counts": run.neuron_counts,
            "mouse_names": run.mouse_names,
            "data": run.data,
            "data_identity": {m["name"]: m["identity"] for m in run.mice},
            "seed": split.seed,
        }
        trainer = Trainer(model, mice, split, config, model_stem(out, k), torch_device, extra, progress, shared)
        budget = None
        if time_budget_min is not None:  # measured after the data-driven start, which the budget includes
            left = time_budget_min * 60 - (time.perf_counter() - t0)
            pending = sum(1 for s in splits if s.model_index >= k)
            budget = max(0.0, left) / pending
        row = trainer.fit(budget, on_epoch=lambda r, k=k: log(_epoch_line(k, r)))
        status[k] = {
            "index": k,
            "complete": trainer.epoch >= trainer.planned_epochs,
            "epochs": trainer.epoch,
            "planned_epochs": trainer.planned_epochs,
            "val_corr": row.get("val_corr"),
            "train_seconds": round(trainer.elapsed_s, 1),
        }
        log(f"model {k}: {trainer.epoch}/{trainer.planned_epochs} epochs in {trainer.elapsed_s:.0f} s")
        run.models = [status[i] for i in sorted(status)]
        run.timings["total_seconds"] = round(time.perf_counter() - t0, 1)
        run.save()
    run.timings["total_seconds"] = round(time.perf_counter() - t0, 1)
    run.save()
    return run


def _epoch_line(k: int, row: dict) -> str:
    return (
        f"model {k} epoch {row.get('epoch')}: loss {row.get('train_loss', float('nan')):.4f}, "
        f"validation corr {row.get('val_corr', float('nan')):.3f}"
    )


def tqdm_iter(items, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not progress, leave=False)
