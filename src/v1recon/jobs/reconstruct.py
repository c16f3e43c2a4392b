"""The `reconstruct` job: recordings + a training run in, a result folder out, as tasks (see v1recon.jobs.tasks).

Everything is checked before any computation (tier, trials, neuron counts, behaviour, NaN, length, the output
folder). Tasks, for every mouse and every batch of trials:
    <mouse>/batch-<b>/model-<k>   one model reconstructs the batch alone (--ensemble average; `.../models` with
                                  --ensemble gradient: all models together), into OUT/<mouse>/.parts/
    <mouse>/batch-<b>/trials      the ensemble average of those parts; the trial files below
and, at the end, summary.json/.csv. The same command resumes an interrupted job; with `--executor ray` the tasks run
on a Ray cluster (same files, arrays equal within float tolerance).

Output (OUT):
    OUT/<mouse>/trial-<id>.npz   reconstruction, truth, per-model reconstructions, masks, loss and correlation
                                 per iteration (models x iterations)
    OUT/<mouse>/trial-<id>.json  sidecar: config, seed, versions, data and model identities, metrics
    OUT/<mouse>/trial-<id>.mp4 / .gif   truth | reconstruction | error, evaluation mask outlined
    OUT/<mouse>/trial-<id>.png   frame strip, per-frame correlation, loss curve, mask
    OUT/summary.json, OUT/summary.csv   one row per trial, the means, and the condition reconstructed
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from v1recon import EVAL_START_FRAME, FAST_MAX_STEPS, FRAME_SHAPE, PUBLISHED_ITERATIONS
from v1recon.errors import V1ReconError
from v1recon.jobs.mouse import MouseSetup, TrialSet, load_trials, open_mouse, predicted_responses, select_trials
from v1recon.jobs.tasks import STAMPS_DIR, Job, Task, config_hash, run_job
from v1recon.recon.reconstructor import ReconConfig, Reconstruction, length_batches, reconstruct_trials

PARTS_DIR = ".parts"
SUMMARY_COLUMNS = (
    "mouse",
    "trial",
    "video_correlation",
    "best_single_model",
    "frame_correlation",
    "ssim_global",
    "rmse",
    "response_consistency",
    "iterations",
    "window_passes",
    "seconds",
)


def parse_models(spec: str | None, n_models: int, where: str) -> list[int] | None:
    """--models: None = all, "0,2" = those model indices of the run."""
    if spec is None or spec.strip() == "":
        return None
    try:
        idx = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise V1ReconError(f"--models {spec!r}: give comma-separated model indices (e.g. 0,2).") from None
    bad = [i for i in idx if not 0 <= i < n_models]
    if bad or not idx:
        raise V1ReconError(f"{where}: model indices {bad or idx} do not exist (the run has {n_models} models).")
    return idx


def condition(
    oracle: bool, from_predicted: bool, ensemble: str = "average", smooth_sigma: float = 0.5, n_encoders: int = 1,
    masked: bool = True,
) -> dict:  # fmt: skip
    """What a reconstruction set is, as the report reads it: its label (ensemble, oracle, upper bound, gradient
    ensembling, no smoothing, no mask), which encoders, from which responses."""
    if oracle:
        label = "true model, predicted responses" if from_predicted else "oracle"
    elif from_predicted:
        label = "upper bound"
    elif ensemble == "gradient":
        label = "gradient ensembling"
    elif smooth_sigma == 0 and n_encoders > 1:
        label = "no smoothing"
    else:
        label = "ensemble" if masked else "no mask"
    return {
        "label": label,
        "encoders": "true model" if oracle else "ensemble",
        "responses": "predicted" if from_predicted else "recorded",
    }


def job_condition(job: JobSettings, n_encoders: int) -> dict:
    return condition(job.oracle, job.from_predicted, job.config.ensemble, job.config.smooth_sigma, n_encoders,
                     job.use_mask)  # fmt: skip


@dataclass(frozen=True)
class JobSettings:
    """What every task of one reconstruct job shares (plain data: Ray ships it to the workers)."""

    run_dir: str
    data: str
    out: str
    tier: str
    config: ReconConfig
    models: tuple[int, ...] | None
    device: str
    oracle: bool
    from_predicted: bool
    use_mask: bool
    movies: bool
    progress: bool = True

    def described(self) -> dict:
        """The configuration written into the sidecars and summary.json."""
        flags = {"tier": self.tier, "oracle": self.oracle, "from_predicted": self.from_predicted}
        return {**self.config.to_dict(), **flags}

    @property
    def key(self) -> tuple:
        """What identifies the loaded mouse inputs of a task (for the per-process cache)."""
        return (self.run_dir, self.data, self.device, self.models, self.oracle, self.use_mask)


# -- inputs, loaded once per process (a Ray worker runs many tasks) -------------------------------------------------
@lru_cache(maxsize=8)
def _open(key: tuple, mouse: str) -> MouseSetup:
    from v1recon.jobs.mouse import run_mice
    from v1recon.runs import load_run

    run_dir, data, device, models, oracle, use_mask = key
    run = load_run(run_dir)
    recordings = run_mice(run, data, all_mice=False)
    rec = next(r for r in recordings if r.name == mouse)
    return open_mouse(run, rec, recordings, device, models, oracle, "use" if use_mask else "none")


@lru_cache(maxsize=16)
def _load(key: tuple, from_predicted: bool, mouse: str, trial_ids: tuple[int, ...]) -> TrialSet:
    setup = _open(key, mouse)
    trials = load_trials(setup.recording, trial_ids, need_responses=not from_predicted)
    if from_predicted:
        trials.responses = predicted_responses(setup.encoders, trials.videos, trials.behaviours, setup.device)
    return trials


def _trials(job: JobSettings, mouse: str, trial_ids: tuple[int, ...]) -> TrialSet:
    """The trials of a task; with --from-predicted their responses are the encoders' predictions."""
    return _load(job.key, job.from_predicted, mouse, tuple(trial_ids))


def _part_path(job: JobSettings, mouse: str, batch: int, model: int | None) -> Path:
    name = f"batch-{batch}-model-{model}.npz" if model is not None else f"batch-{batch}-models.npz"
    return Path(job.out) / mouse / PARTS_DIR / name


# -- the tasks -------------------------------------------------------------------------------------------------------
def reconstruct_part(job: JobSettings, mouse: str, trial_ids: tuple[int, ...], batch: int, model: int | None) -> dict:
    """Task: reconstruct one batch of trials through model `model` alone (None: all models, gradient ensembling);
    writes the per-trial movies, losses and correlations to OUT/<mouse>/.parts/."""
    from tqdm.auto import tqdm

    from v1recon.device import seed_everything
    from v1recon.io import save_npz

    setup, trials = _open(job.key, mouse), _trials(job, mouse, trial_ids)
    encoders = setup.encoders if model is None else [setup.encoders[model]]
    seed_everything(job.config.seed)
    iterations = job.config.iterations or (PUBLISHED_ITERATIONS if job.config.method == "paper" else FAST_MAX_STEPS)
    name = setup.encoder_names[model] if model is not None else "models"
    bar = tqdm(total=iterations, desc=f"{mouse} batch {batch} {name}", leave=False, disable=not job.progress)
    results = reconstruct_trials(
        encoders,
        trials.responses,
        trials.behaviours,
        setup.update_mask,
        job.config,
        truths=trials.videos,
        eval_mask=setup.eval_mask,
        sources=trials.names,
        on_iteration=lambda: bar.update(1),
    )
    bar.close()
    save_npz(
        _part_path(job, mouse, batch, model),
        video=np.stack([r.per_model[0] for r in results]).astype(np.float32),
        loss=np.stack([r.loss[0] for r in results]),
        correlation=np.stack([r.correlation[0] for r in results]),
        window_passes=np.array([r.window_passes for r in results]),
        seconds=np.array([r.seconds for r in results]),
        iterations=np.int64(results[0].iterations[0]),
    )
    return {"iterations": int(results[0].iterations[0]), "window_passes": float(sum(r.window_passes for r in results))}


def finish_trials(job: JobSettings, mouse: str, trial_ids: tuple[int, ...], batch: int, models: tuple) -> list[dict]:
    """Task: combine the parts of one batch (models: model indices, or (None,) for gradient ensembling) into the
    ensemble reconstruction of each trial, write the trial files, remove the parts; returns the summary rows."""
    from v1recon.recon.ensemble import ensemble_movie

    setup, trials = _open(job.key, mouse), _trials(job, mouse, trial_ids)
    loaded = []
    for model in models:
        with np.load(_part_path(job, mouse, batch, model)) as f:
            loaded.append({k: f[k] for k in f.files})
    folder = Path(job.out) / mouse
    rows = []
    for j in range(len(trial_ids)):
        per_model = np.stack([p["video"][j] for p in loaded])
        res = Reconstruction(
            video=ensemble_movie(per_model, len(setup.encoders), job.config.smooth_sigma),
            per_model=per_model,
            loss=np.stack([p["loss"][j] for p in loaded]),
            correlation=np.stack([p["correlation"][j] for p in loaded]),
            iterations=[int(p["iterations"]) for p in loaded],
            window_passes=float(sum(p["window_passes"][j] for p in loaded)),
            seconds=float(sum(p["seconds"][j] for p in loaded)),
        )
        rows.append(write_trial(setup, trials, j, res, folder, job))
    for model in models:  # consumed: the trial files hold every model's movie
        _part_path(job, mouse, batch, model).unlink(missing_ok=True)
    return rows


# -- the job ---------------------------------------------------------------------------------------------------------
def reconstruct_job(job: JobSettings, plans: list[tuple[MouseSetup, TrialSet]]) -> tuple[Job, list[str]]:
    """The tasks of a reconstruct job, and the names of its trial-writing tasks (their results are summary rows)."""
    gpus = 1.0 if job.device.startswith("cuda") else 0.0
    tasks, finals = [], []
    base = {"run": job.run_dir, "data": job.data, "tier": job.tier, "config": job.config.to_dict(),
            "models": job.models, "oracle": job.oracle, "from_predicted": job.from_predicted}  # fmt: skip
    for setup, trials in plans:
        mouse = setup.mouse
        models = list(range(len(setup.encoders))) if job.config.ensemble == "average" else [None]
        for b, idx in enumerate(length_batches([v.shape[0] for v in trials.videos], job.config.batch_size)):
            ids = tuple(trials.ids[i] for i in idx)
            config = {**base, "mouse": mouse, "trials": ids}
            names = []
            for k in models:
                name = f"{mouse}/batch-{b}/" + (f"model-{k}" if k is not None else "models")
                kwargs = dict(job=job, mouse=mouse, trial_ids=ids, batch=b, model=k)
                out = (_part_path(job, mouse, b, k),)
                tasks.append(Task(name, reconstruct_part, kwargs, out, {**config, "model": k}, gpus=gpus))
                names.append(name)
            outputs = tuple(Path(job.out) / mouse / f"trial-{t}.{ext}" for t in ids for ext in _extensions(job))
            final = f"{mouse}/batch-{b}/trials"
            kwargs = dict(job=job, mouse=mouse, trial_ids=ids, batch=b, models=tuple(models))
            tasks.append(Task(final, finish_trials, kwargs, outputs, config, tuple(names), gpus=gpus))
            finals.append(final)
    return Job("reconstruct", Path(job.out) / STAMPS_DIR, tasks), finals


def _extensions(job: JobSettings) -> tuple[str, ...]:
    return ("npz", "json", "mp4", "gif", "png") if job.movies else ("npz", "json")


def run_reconstruction(
    run_dir,
    data,
    out,
    tier: str = "final_test",
    config: ReconConfig | None = None,
    trials: str | None = None,
    models: str | None = None,
    device: str = "auto",
    oracle: bool = False,
    from_predicted: bool = False,
    use_mask: bool = True,
    mask_iterations: int | None = None,
    overwrite: bool = False,
    movies: bool = True,
    progress: bool = True,
    one_repeat: bool = False,
    executor: str = "local",
    address: str | None = None,
) -> dict:
    """Reconstruct a tier's trials of every mouse of the run found in `data`; returns the summary dict.

    `one_repeat` keeps only the first repeat of each distinct movie before `trials` selects among them."""
    from v1recon import CPU_MASK_ITERATIONS
    from v1recon.device import pick_device
    from v1recon.jobs.masks import config_of_masks, run_masks
    from v1recon.jobs.mouse import run_mice
    from v1recon.jobs.outputs import Input, claim_output, prepare_output
    from v1recon.recon.reconstructor import check_inputs
    from v1recon.runs import load_run, recording_identity

    config = config or ReconConfig()
    out, run_dir, data = Path(out), Path(run_dir), Path(data)
    run = load_run(run_dir)
    dev = str(pick_device(device))
    model_idx = parse_models(models, run.n_models, str(run_dir))
    recordings = run_mice(run, data, all_mice=False)
    inputs = [Input(data), Input(run_dir, ("reconstructions", "analyses", "streams"))]
    job = JobSettings(str(run_dir.resolve()), str(data.resolve()), str(out.resolve()), tier, config,
                      tuple(model_idx) if model_idx is not None else None, dev, oracle, from_predicted, use_mask,
                      movies, progress)  # fmt: skip
    plans = []
    for rec in recordings:  # every check before any computation
        ids = tuple(select_trials(rec, tier, trials, one_repeat))
        setup, chosen = _open(job.key, rec.name), _trials(job, rec.name, ids)
        check_inputs(setup.encoders, chosen.responses, chosen.behaviours, chosen.names)
        plans.append((setup, chosen))
    identity = {"job": {k: v for k, v in job.__dict__.items() if k not in ("progress", "config")},
                "config": config.to_dict(), "data": [recording_identity(r)["identity"] for r in recordings],
                "trials": [p[1].ids for p in plans], "models": run.models}  # fmt: skip
    prepare_output(out, "reconstruct", config_hash(identity), inputs, overwrite)
    if use_mask:  # masks the run lacks are trained now, into the run folder
        run_masks(run_dir, data, mask_iterations or CPU_MASK_ITERATIONS, seed=config.seed, device=dev,
                  progress=progress, executor=executor, address=address, only_missing=True)  # fmt: skip
        identity["masks"] = config_of_masks(run, recordings)
        _open.cache_clear()  # the setups now carry the masks
        _load.cache_clear()
        plans = [(_open(job.key, s.mouse), t) for s, t in plans]
    tasks, finals = reconstruct_job(job, plans)
    with claim_output(out, "reconstruct", identity, config_hash(identity), inputs, overwrite):
        results = run_job(tasks, executor, address, progress)
        rows = [row for name in finals for row in results[name]]
        summary = _summary(rows, job, len(plans[0][0].encoders))
        _write_summary(out, summary)
    print(format_table(rows))
    return summary


# -- files of one trial ----------------------------------------------------------------------------------------------
def write_trial(setup: MouseSetup, trials: TrialSet, k: int, res: Reconstruction, folder: Path, job) -> dict:
    """Files of trial k of a mouse (npz, sidecar, movies, summary figure); its row of the job's summary table."""
    from v1recon.io import save_npz, write_sidecar
    from v1recon.metrics.video import response_consistency, video_correlation, video_metrics
    from v1recon.runs import recording_identity

    update, evaluation, note = setup.update_mask, setup.eval_mask, setup.mask_note
    config, tier = job.config, job.tier
    trial_id = trials.ids[k]
    truth, recon = trials.videos[k], res.video
    metrics = video_metrics(recon, truth, evaluation)
    per_model = [video_correlation(m, truth, evaluation) for m in res.per_model]
    pred_recon, pred_truth = predicted_responses(setup.encoders, [recon, truth], [trials.behaviours[k]] * 2,
                                                 setup.device)  # fmt: skip
    resp = trials.responses[k]
    metrics["response_consistency"] = float(response_consistency(pred_recon, np.maximum(resp, 0)))
    metrics["response_consistency_truth"] = float(response_consistency(pred_truth, np.maximum(resp, 0)))
    metrics["per_model_video_correlation"] = per_model
    metrics["best_single_model"] = float(max(per_model))
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"trial-{trial_id}"
    save_npz(
        stem.with_suffix(".npz"),
        reconstruction=recon.astype(np.float32),
        truth=truth.astype(np.float32),
        per_model=res.per_model.astype(np.float32),
        update_mask=update,
        eval_mask=evaluation,
        alpha=setup.alpha if setup.alpha is not None else np.ones(FRAME_SHAPE, np.float32),
        loss=res.loss,
        correlation=res.correlation,
    )
    write_sidecar(
        stem.with_suffix(".npz"),
        config=job.described(),
        condition=job_condition(job, len(setup.encoders)),
        seed=config.seed,
        data={**recording_identity(setup.recording), "trial": trial_id, "tier": tier, "frames": int(truth.shape[0])},
        models={"run": str(job.run_dir), "encoders": setup.encoder_names},
        mask={
            "source": setup.mask_source,
            "note": note,
            "update_pixels": int(update.sum()),
            "eval_pixels": int(evaluation.sum()),
        },
        cost={"window_passes": res.window_passes, "seconds": res.seconds, "iterations": res.iterations},
        metrics=metrics,
    )
    if job.movies:
        write_media(stem, truth, recon, evaluation, res, setup.alpha, trial_id)
    return {
        "mouse": setup.mouse,
        "trial": trial_id,
        "video_correlation": metrics["video_correlation"],
        "best_single_model": metrics["best_single_model"],
        "frame_correlation": metrics["frame_correlation"],
        "ssim_global": metrics["ssim_global"],
        "rmse": metrics["rmse"],
        "response_consistency": metrics["response_consistency"],
        "iterations": max(res.iterations),
        "window_passes": res.window_passes,
        "seconds": res.seconds,
    }


def write_media(
    stem: Path, truth, recon, evaluation, res: Reconstruction, alpha, trial_id, also=None, label="reconstruction"
) -> None:
    """The side-by-side MP4 and GIF (truth | reconstruction | error) and the PNG summary of one trial.

    `also`: more movies to show beside the reconstruction ({title: (T, 36, 64)}); `label`: the reconstruction's
    title (e.g. "streamed", whose loss curve then runs over pushes)."""
    from v1recon.experiments.common import pyplot
    from v1recon.io import atomic_path
    from v1recon.metrics.video import frame_correlations
    from v1recon.report.media import error_panel, frame_strip, write_side_by_side_movie

    plt = pyplot()
    shown = {"truth": truth, label: recon, **(also or {})}
    panels = {**shown, "error": error_panel(recon, truth)}
    write_side_by_side_movie(stem.with_suffix(".mp4"), panels, mask=evaluation)
    write_side_by_side_movie(stem.with_suffix(".gif"), panels, mask=evaluation)
    n = truth.shape[0]
    start = min(EVAL_START_FRAME, n - 1)
    frames = np.linspace(start, n - 1, 6).astype(int)
    fig = plt.figure(figsize=(11, 6.5))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.1, 1])
    frame_strip(fig.add_subplot(grid[0, :]), shown, frames, mask=evaluation)
    ax = fig.add_subplot(grid[1, 0])
    for title, movie in shown.items():
        if title != "truth":
            ax.plot(np.arange(start, n), frame_correlations(movie, truth, evaluation, start), label=title)
    ax.set(xlabel="frame", ylabel="frame correlation", title="per-frame correlation")
    if also:
        ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 1])
    for m, curve in enumerate(res.loss):
        ax.plot(curve, label=f"model {m}")
    ax.set(xlabel="push" if label == "streamed" else "iteration", ylabel="Poisson loss", title="loss")
    if len(res.loss) > 1:
        ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 2])
    ax.imshow(alpha if alpha is not None else np.ones(FRAME_SHAPE), cmap="magma")
    ax.contour(evaluation.astype(float), levels=[0.5], colors="cyan", linewidths=1)
    ax.set(title="alpha mask (evaluation outlined)", xticks=[], yticks=[])
    fig.suptitle(f"trial {trial_id}")
    fig.tight_layout()
    with atomic_path(stem.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


# -- the job's summary -----------------------------------------------------------------------------------------------
def _summary(rows, job: JobSettings, n_encoders: int) -> dict:
    means = {c: float(np.mean([r[c] for r in rows])) for c in SUMMARY_COLUMNS[2:]}
    return {
        "config": job.described(),
        "condition": job_condition(job, n_encoders),
        "trials": rows,
        "mean": means,
        "seconds_total": float(sum(r["seconds"] for r in rows)),
    }


def _write_summary(folder: Path, summary: dict) -> None:
    from v1recon.io import atomic_path, write_json

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(summary["trials"])
    with atomic_path(folder / "summary.csv") as tmp:
        tmp.write_text(buf.getvalue())
    write_json(folder / "summary.json", summary)  # last: its presence marks a complete job


def format_table(rows: list[dict]) -> str:
    """A plain-text table of the per-trial rows and their mean."""
    head = ["mouse", "trial", "video r", "best 1-model r", "frame r", "SSIM", "resp. cons.", "iter", "passes", "s"]
    keys = SUMMARY_COLUMNS
    lines = [head]
    for r in rows + (
        [{"mouse": "mean", "trial": "", **{k: np.mean([x[k] for x in rows]) for k in keys[2:]}}] if rows else []
    ):
        lines.append(
            [str(r["mouse"]), str(r["trial"])]
            + [
                f"{r[k]:.3f}"
                for k in (
                    "video_correlation",
                    "best_single_model",
                    "frame_correlation",
                    "ssim_global",
                    "response_consistency",
                )
            ]
            + [f"{r['iterations']:.0f}", f"{r['window_passes']:.0f}", f"{r['seconds']:.1f}"]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines)
