"""The `mask` job: one task per mouse trains its transparency (alpha) mask through the run's encoders.

Output: RUN/masks/<mouse>.npz (+ .json sidecar, .png), task stamps in RUN/masks/.tasks. The same command again
skips the masks that are done; a mask of another configuration is replaced only with `overwrite`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from v1recon import CPU_MASK_ITERATIONS, EVAL_START_FRAME, EVAL_THRESHOLD, PUBLISHED_ITERATIONS, UPDATE_THRESHOLD
from v1recon.errors import V1ReconError
from v1recon.jobs.tasks import STAMPS_DIR, Job, Task, config_hash, run_job
from v1recon.recon.masks import mask_path


@lru_cache(maxsize=4)
def _recording(path: str):
    from v1recon.data import Recording

    return Recording(path)


def train_mouse_mask(
    run_dir: str, recording: str, iterations: int, seed: int, device: str, update: float, evaluation: float,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Train, save (RUN/masks/<mouse>.npz + .json + .png) and summarise the alpha mask of one mouse (a task)."""
    from tqdm.auto import tqdm

    from v1recon.device import pick_device
    from v1recon.recon.masks import draw_mask, recording_clip_sampler, save_mask, train_alpha_mask
    from v1recon.runs import load_encoders, recording_identity

    rec = _recording(recording)
    encoders = load_encoders(run_dir, rec.name, device=pick_device(device))
    train_ids = rec.trial_ids(tier="train", with_responses=True)
    sampler = recording_clip_sampler(rec, train_ids)
    with tqdm(total=iterations, desc=f"mask {rec.name}", unit="it", disable=not progress, leave=False) as bar:
        mask = train_alpha_mask(
            encoders, sampler, iterations=iterations, seed=seed, update_threshold=update, eval_threshold=evaluation,
            progress=bar.update,
        )  # fmt: skip
    path = mask_path(run_dir, rec.name)
    save_mask(
        path,
        mask,
        config={"iterations": iterations, "seed": seed, "published_iterations": PUBLISHED_ITERATIONS},
        data=recording_identity(rec),
        models={"run": str(run_dir), "count": len(encoders)},
    )
    first = rec.trial(train_ids[0]).video
    draw_mask(path.with_suffix(".png"), mask, first[min(EVAL_START_FRAME, first.shape[0] - 1)], title=rec.name)
    return mask.summary()


def mask_job(run, recordings, iterations, seed, device, update, evaluation, progress=True) -> Job:
    """One task per mouse; its configuration covers what the mask depends on (the run's models and the data)."""
    from v1recon.runs import recording_identity

    tasks = []
    for rec in recordings:
        path = mask_path(run.path, rec.name)
        config = {
            "iterations": iterations, "seed": seed, "update_threshold": update, "eval_threshold": evaluation,
            "models": run.models, "data": recording_identity(rec)["identity"],
        }  # fmt: skip
        kwargs = dict(run_dir=str(run.path), recording=str(rec.path), iterations=iterations, seed=seed,
                      device=device, update=update, evaluation=evaluation, progress=progress)  # fmt: skip
        outputs = (path, path.with_suffix(".json"), path.with_suffix(".png"))
        tasks.append(Task(rec.name, train_mouse_mask, kwargs, outputs, config, gpus=1.0 if "cuda" in device else 0.0))
    return Job("masks", Path(run.path) / "masks" / STAMPS_DIR, tasks)


def run_masks(
    run_dir,
    data,
    iterations: int = CPU_MASK_ITERATIONS,
    update_threshold: float = UPDATE_THRESHOLD,
    eval_threshold: float = EVAL_THRESHOLD,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    executor: str = "local",
    address: str | None = None,
    only_missing: bool = False,
) -> list[tuple[Path, dict]]:
    """Train the mask of every mouse of the run found in `data`; returns (path, summary) per mouse.

    `only_missing` trains just the mice without a mask file (what the reconstruct job needs)."""
    from v1recon.device import pick_device
    from v1recon.io import remove_temporaries
    from v1recon.jobs.mouse import run_mice
    from v1recon.jobs.outputs import locked
    from v1recon.runs import load_run

    if iterations < 1:
        raise V1ReconError(f"--iterations {iterations}: must be at least 1.")
    if not 0 < update_threshold <= eval_threshold:
        raise V1ReconError(f"thresholds update {update_threshold} and eval {eval_threshold}: need 0 < update <= eval.")
    run = load_run(run_dir)
    recordings = run_mice(run, Path(data), all_mice=False)
    if only_missing:
        recordings = [r for r in recordings if not mask_path(run.path, r.name).is_file()]
    dev = str(pick_device(device))
    job = mask_job(run, recordings, iterations, seed, dev, update_threshold, eval_threshold, progress)
    for task in job.tasks:
        if not overwrite and _of_another_configuration(job, task):
            raise V1ReconError(
                f"{task.outputs[0]}: mask already exists with another configuration; pass --overwrite to train it "
                "again."
            )
    with locked(Path(run.path) / "masks"):
        remove_temporaries(Path(run.path) / "masks")  # half-written files of a killed job
        results = run_job(job, executor, address, progress=progress and len(job.tasks) > 1)
    return [(t.outputs[0], results[t.name]) for t in job.tasks]


def _of_another_configuration(job: Job, task: Task) -> bool:
    """Whether the task's mask file was written with another configuration: its stamp has another hash, or
    (no stamp: written before stamps existed) its sidecar states other settings. A mask whose task was interrupted
    before its stamp is of this configuration and is trained again."""
    import json

    from v1recon.io import sidecar_path

    if not task.outputs[0].is_file():
        return False
    try:
        return json.loads(job.stamp_path(task).read_text()).get("hash") != task.hash
    except (OSError, ValueError, AttributeError):
        pass
    try:
        config = json.loads(sidecar_path(task.outputs[0]).read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return False
    return any(config.get(k) != task.kwargs[k] for k in ("iterations", "seed"))


def config_of_masks(run, recordings) -> str:
    """A hash of the masks a reconstruction uses (their files' identities), for the reconstruct job's config."""
    from v1recon.io import file_digest

    paths = [mask_path(run.path, r.name) for r in recordings]
    return config_hash([file_digest(p) if p.is_file() else None for p in paths])
