"""`v1recon train`: an ensemble trained on every mouse of a data folder, written into a run folder (layout and
reading: v1recon.runs)."""

from __future__ import annotations

import shutil
import time
from functools import lru_cache
from pathlib import Path

from v1recon.errors import V1ReconError
from v1recon.runs import DEMO_FILE, MODELS_DIR, RUN_FILE, RUN_SUBDIRS, RunInfo, load_run, model_stem, recording_identity
from v1recon.training.splits import N_FOLDS, TEST_FOLD, plan_splits


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
    data = Path(fresh.data).resolve()
    if out.resolve().is_relative_to(data):  # a run may hold its data (the demo keeps RUN/data), not the reverse
        raise V1ReconError(f"{out}: is or lies inside the data folder {fresh.data}; choose a run folder outside it.")
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
    executor: str = "local",
    address: str | None = None,
    devices: int = 1,
    **config_overrides,
) -> RunInfo:
    """Train an ensemble of `n_models` multi-mouse models on every mouse found under `data`; write RUN `out`.

    A job of tasks (v1recon.jobs.tasks): `start` finds the data-driven starting points once per mouse (RF centres,
    gaze correction, subunit filters), then one task per model trains it. Re-running with the same arguments resumes:
    finished models are skipped, an unfinished one continues from its last complete epoch. `time_budget_min`
    (minutes, this invocation, all models together, the start included) shortens every model's epochs so the whole
    run fits. `devices` > 1 trains each model with data parallelism over that many processes (DDP). With `executor`
    "ray" the models train in parallel on a Ray cluster. `config_overrides` go to `train_config` (epochs, ...).
    """
    from v1recon.data import open_recordings
    from v1recon.device import pick_device
    from v1recon.io import remove_temporaries
    from v1recon.jobs.outputs import locked
    from v1recon.jobs.tasks import STAMPS_DIR, Job, Task, run_job
    from v1recon.models import build_model
    from v1recon.training.config import train_config

    t0 = time.perf_counter()
    deadline = time.time() + time_budget_min * 60 if time_budget_min is not None else None
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
    dev = str(pick_device(device))
    resumed = _check_out(out, fresh, overwrite)
    _check_training_trials(recordings, splits, clip, n_folds, progress)
    run = resumed or _start_out(out, fresh, overwrite)

    identity = {k: v for k, v in run.to_dict().items() if k in _SAME_RUN_KEYS}
    identity["mice"] = [{k: m[k] for k in ("name", "n_neurons", "identity")} for m in run.mice]
    gpus = 1.0 if dev.startswith("cuda") else 0.0
    common = dict(run_dir=str(out.resolve()), device=dev, progress=progress and executor == "local")
    start = Task("start", compute_start, common, (start_path(out),), identity, gpus=gpus)
    tasks = [start]
    for split in splits:
        k = split.model_index
        after = sum(1 for s in splits if s.model_index > k)  # models queued after this one share the budget left
        kwargs = dict(common, index=k, deadline=deadline, models_after=after, devices=devices)
        outputs = tuple(Path(f"{model_stem(out, k)}{ext}") for ext in (".safetensors", ".json", ".log.csv"))
        tasks.append(Task(f"model-{k}", train_model, kwargs, outputs, {**identity, "model": k}, ("start",),
                          cpus=float(devices), gpus=gpus * devices))  # fmt: skip
    status = {m["index"]: m for m in run.models}

    def done(name: str, result) -> None:  # run.json follows every finished model (also under Ray)
        if name.startswith("model-"):
            status[result["index"]] = result
            log(f"model {result['index']}: {result['epochs']}/{result['planned_epochs']} epochs in "
                f"{result['train_seconds']:.0f} s")  # fmt: skip
            run.models = [status[i] for i in sorted(status)]
            run.timings["total_seconds"] = round(time.perf_counter() - t0, 1)
            run.save()

    job = Job("train", out / MODELS_DIR / STAMPS_DIR, tasks)
    with locked(out):  # one writer of a run folder at a time
        remove_temporaries(out / MODELS_DIR)  # half-written files of a killed run
        _adopt_finished_models(job, status)
        for name in job.finished():
            if name.startswith("model-"):
                log(f"{name.replace('-', ' ')}: already trained, skipped")
        results = run_job(job, executor, address, progress=progress, log=log, on_done=done)
    for name, result in results.items():
        if name.startswith("model-") and status.get(result["index"]) != result:
            status[result["index"]] = result  # finished before an interruption: from its stamp
    run.models = [status[i] for i in sorted(status)]
    run.timings["total_seconds"] = round(time.perf_counter() - t0, 1)
    run.save()
    return run


def _check_training_trials(recordings, splits, clip_frames: int, n_folds: int, progress: bool) -> None:
    """Read every training trial once, one at a time (its checks raise naming the file), and make sure every model
    of the run has training trials of every mouse: a bad recording fails before the run folder is written."""
    from tqdm.auto import tqdm

    from v1recon.data import movie_fold

    for r in recordings:
        usable = [i.trial_id for i in r.trials if i.tier == "train" and i.has_responses and i.length >= clip_frames]
        if not usable:
            raise V1ReconError(f"{r.path}: no train trials with responses of {clip_frames}+ frames to train on.")
        with tqdm(usable, desc=f"checking {r.name}", unit="trial", leave=False, disable=not progress) as bar:
            folds = {movie_fold(r.trial(t).video, n_folds) for t in bar}
        for split in splits:
            if not folds & set(split.train_folds):
                raise V1ReconError(
                    f"{r.path}: no training trials of {clip_frames}+ frames in folds {list(split.train_folds)} "
                    f"(model {split.model_index}); train fewer models or on more trials."
                )


def _adopt_finished_models(job, status: dict) -> None:
    """Stamp the models that run.json calls complete but that have no stamp (runs written before stamps existed),
    so that they are not trained again."""
    from v1recon.io import write_json

    for task in job.tasks:
        k = task.kwargs.get("index")
        row = status.get(k)
        if row and row.get("complete") and job.stamp(task) is None and all(p.exists() for p in task.outputs):
            write_json(job.stamp_path(task), {"task": task.name, "hash": task.hash, "result": row, "seconds": 0})


START_FILE = "start"  # RUN/models/start.safetensors + .json: the data-driven starting points of the run's models


def start_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MODELS_DIR / f"{START_FILE}.safetensors"


@lru_cache(maxsize=1)
def _training_trials(data: str, names: tuple[str, ...], n_folds: int) -> list:
    """Every mouse's training trials (held once per process: the start and the models of a run share them)."""
    from v1recon.data import open_recordings
    from v1recon.training.clips import load_training_trials

    recordings = {r.name: r for r in open_recordings(data)}
    return [load_training_trials(recordings[n], n_folds) for n in tqdm_iter(names, "loading trials", True)]


def _mice(run: RunInfo) -> list:
    return _training_trials(run.data, tuple(run.mouse_names), run.n_folds)


def _start_folds(run: RunInfo) -> tuple[int, ...]:
    # RF starts computed once per mouse from every fold outside the held-out one: precise centres need the trials
    # (in silico 162 trials leave 50 of 180 fine-grained neurons > 3 px off, 92 trials 74)
    return tuple(f for f in range(run.n_folds) if f != run.test_fold)


def compute_start(run_dir: str, device: str, progress: bool = True) -> dict:
    """Task: the starting points every model of the run shares (v1recon.training.start.SharedStart), computed
    through a model of the run's preset and saved to RUN/models/start.safetensors."""
    import torch

    from v1recon.device import seed_everything
    from v1recon.models import build_model
    from v1recon.training.config import TrainConfig
    from v1recon.training.start import SharedStart, save_shared_start
    from v1recon.training.trainer import Trainer

    run = load_run(run_dir)
    config = TrainConfig(**run.train_config)
    shared = SharedStart(_start_folds(run))
    seed_everything(run.splits[0].seed)
    model = build_model(run.preset, run.neuron_counts, **config.model_overrides)
    stem = Path(run_dir) / MODELS_DIR / START_FILE  # no files: the trainer only starts the model from the data
    Trainer(model, _mice(run), run.splits[0], config, stem, torch.device(device), {}, progress, shared)
    save_shared_start(start_path(run_dir), shared)
    return {"starts": len(shared.found)}


def train_model(
    run_dir: str, index: int, device: str, deadline: float | None, models_after: int, devices: int = 1,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Task: train (or resume) model `index` of the run; returns its status row for run.json.

    With a deadline the model gets an equal share of the time left with the models queued after it."""
    import torch

    from v1recon.device import seed_everything
    from v1recon.models import build_model
    from v1recon.training.config import TrainConfig
    from v1recon.training.start import SharedStart, load_shared_start
    from v1recon.training.trainer import Trainer

    run = load_run(run_dir)
    config = TrainConfig(**run.train_config)
    split = run.splits[index]
    shared = SharedStart(_start_folds(run), load_shared_start(start_path(run_dir)))
    extra = {
        "preset": run.preset,
        "neuron_counts": run.neuron_counts,
        "mouse_names": run.mouse_names,
        "data": run.data,
        "data_identity": {m["name"]: m["identity"] for m in run.mice},
        "seed": split.seed,
    }
    budget = None if deadline is None else max(0.0, deadline - time.time()) / (models_after + 1)
    if devices > 1:
        from v1recon.training.distributed import train_distributed

        trainer = train_distributed(run, split, config, extra, device, devices, shared, budget, progress)
    else:
        seed_everything(split.seed)
        model = build_model(run.preset, run.neuron_counts, **config.model_overrides)
        stem = model_stem(run_dir, index)
        trainer = Trainer(model, _mice(run), split, config, stem, torch.device(device), extra, progress, shared)
        trainer.fit(budget, on_epoch=lambda r: tqdm_write(_epoch_line(index, r), progress))
    row = trainer.history[-1] if trainer.history else {}
    return {
        "index": index,
        "complete": trainer.epoch >= trainer.planned_epochs,
        "epochs": trainer.epoch,
        "planned_epochs": trainer.planned_epochs,
        "val_corr": row.get("val_corr"),
        "train_seconds": round(trainer.elapsed_s, 1),
    }


def tqdm_write(line: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    if progress:
        tqdm.write(line)


def _epoch_line(k: int, row: dict) -> str:
    return (
        f"model {k} epoch {row.get('epoch')}: loss {row.get('train_loss', float('nan')):.4f}, "
        f"validation corr {row.get('val_corr', float('nan')):.3f}"
    )


def tqdm_iter(items, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not progress, leave=False)
