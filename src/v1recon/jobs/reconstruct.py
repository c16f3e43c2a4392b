"""The `reconstruct` job: recordings + a training run in, a result folder out, as tasks (see v1recon.jobs.tasks).

Everything is checked before any computation (tier, trials, neuron counts, behaviour, NaN, length, the output
folder). Tasks, for every mouse and every batch of trials:
    <mouse>/batch-<b>/model-<k>   one model reconstructs the batch alone (--ensemble average; `.../models` with
                                  --ensemble gradient: all models together), into OUT/<mouse>/.parts/; with
                                  --restarts R also `.../model-<k>-restart-<r>` for r = 1..R-1 (jittered starts)
    <mouse>/batch-<b>/trials      the ensemble average of those parts, its confidence movies (--confidence, see
                                  v1recon.recon.confidence); the trial files below
and, at the end, summary.json/.csv. The same command resumes an interrupted job; with `--executor ray` the tasks run
on a Ray cluster (same files, arrays equal within float tolerance).

Output (OUT):
    OUT/<mouse>/trial-<id>.npz   reconstruction, truth, per-model reconstructions, masks, loss and correlation
                                 per iteration (models x iterations); `confidence` (T, 36, 64), the predicted std
                                 of the reconstruction's error in grey levels (several methods:
                                 `confidence_<method>` each)
    OUT/<mouse>/trial-<id>.json  sidecar: config, seed, versions, data and model identities, metrics; the
                                 confidence methods, their scale factor and calibration against the truth
    OUT/<mouse>/trial-<id>.mp4 / .gif   truth | reconstruction | confidence | error, evaluation mask outlined
    OUT/<mouse>/trial-<id>.png   frame strip, confidence and error strip, per-frame correlation, loss curve, mask
    OUT/summary.json, OUT/summary.csv   one row per trial, the means, the condition reconstructed, and the
                                 calibration of each confidence method pooled over the job's pixel-frames
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
from v1recon.recon.confidence import LAPLACE_PROBES
from v1recon.recon.reconstructor import ReconConfig, Reconstruction, length_batches, pad_rows, reconstruct_trials

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
    confidence: tuple[str, ...] = ()  # confidence methods (v1recon.recon.confidence.METHODS)
    probes: int = LAPLACE_PROBES  # Rademacher probes of the Laplace estimate per trial
    scale: tuple[tuple[str, float], ...] = ()  # (method, factor) multiplying a confidence movie, fitted elsewhere
    scale_source: str = ""  # where the factors were fitted (a summary.json of another job)

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


def _part_name(model: int | None, restart: int) -> str:
    return (f"model-{model}" if model is not None else "models") + (f"-restart-{restart}" if restart else "")


def _part_path(job: JobSettings, mouse: str, batch: int, model: int | None, restart: int = 0) -> Path:
    return Path(job.out) / mouse / PARTS_DIR / f"batch-{batch}-{_part_name(model, restart)}.npz"


@lru_cache(maxsize=8)
def _prior_std(key: tuple, mouse: str) -> tuple[float, str]:
    """The confidence prior of a mouse (v1recon.recon.confidence.stimulus_std) from up to 20 training movies."""
    from v1recon.recon.confidence import DEFAULT_PRIOR_STD, stimulus_std

    rec = _open(key, mouse).recording
    ids = rec.trial_ids(tier="train")[:20]
    if not ids:
        return DEFAULT_PRIOR_STD, f"default {DEFAULT_PRIOR_STD} grey levels (no training movies)"
    return stimulus_std([rec.trial(t).video for t in ids]), f"RMS deviation from grey of {len(ids)} training movies"


# -- the tasks -------------------------------------------------------------------------------------------------------
def reconstruct_part(
    job: JobSettings, mouse: str, trial_ids: tuple[int, ...], batch: int, model: int | None, restart: int = 0
) -> dict:
    """Task: reconstruct one batch of trials through model `model` alone (None: all models, gradient ensembling),
    from the start of restart `restart`; writes the per-trial movies, losses and correlations to
    OUT/<mouse>/.parts/."""
    from tqdm.auto import tqdm

    from v1recon.device import seed_everything
    from v1recon.io import save_npz

    setup, trials = _open(job.key, mouse), _trials(job, mouse, trial_ids)
    encoders = setup.encoders if model is None else [setup.encoders[model]]
    seed_everything(job.config.seed)
    iterations = job.config.iterations or (PUBLISHED_ITERATIONS if job.config.method == "paper" else FAST_MAX_STEPS)
    name = (setup.encoder_names[model] if model is not None else "models") + (f" restart {restart}" if restart else "")
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
        restarts=[restart],
    )
    bar.close()
    save_npz(
        _part_path(job, mouse, batch, model, restart),
        video=np.stack([r.per_model[0] for r in results]).astype(np.float32),
        loss=np.stack([r.loss[0] for r in results]),
        correlation=np.stack([r.correlation[0] for r in results]),
        window_passes=np.array([r.window_passes for r in results]),
        seconds=np.array([r.seconds for r in results]),
        iterations=np.int64(results[0].iterations[0]),
    )
    return {"iterations": int(results[0].iterations[0]), "window_passes": float(sum(r.window_passes for r in results))}


def finish_trials(job: JobSettings, mouse: str, trial_ids: tuple[int, ...], batch: int, models: tuple) -> list[dict]:
    """Task: combine the parts of one batch (models: model indices, or (None,) for gradient ensembling; every
    restart of each) into the ensemble reconstruction of each trial, estimate its confidence, write the trial files,
    remove the parts; returns the summary rows."""
    from v1recon.recon.ensemble import ensemble_movie, ensemble_sigma

    setup, trials = _open(job.key, mouse), _trials(job, mouse, trial_ids)
    parts = [(m, r) for r in range(job.config.restarts) for m in models]  # restart-major, as Reconstruction says
    loaded = []
    for model, restart in parts:
        with np.load(_part_path(job, mouse, batch, model, restart)) as f:
            loaded.append({k: f[k] for k in f.files})
    folder = Path(job.out) / mouse
    results = []
    for j in range(len(trial_ids)):
        per_model = np.stack([p["video"][j] for p in loaded])
        results.append(
            Reconstruction(
                video=ensemble_movie(per_model, len(setup.encoders), job.config.smooth_sigma),
                per_model=per_model,
                loss=pad_rows([p["loss"][j] for p in loaded]),  # members may stop at different steps
                correlation=pad_rows([p["correlation"][j] for p in loaded]),
                iterations=[int(p["iterations"]) for p in loaded],
                window_passes=float(sum(p["window_passes"][j] for p in loaded)),
                seconds=float(sum(p["seconds"][j] for p in loaded)),
                smooth_sigma=ensemble_sigma(len(per_model), len(setup.encoders), job.config.smooth_sigma),
            )
        )
    confidence = _confidence(job, setup, trials, results, batch)
    rows = [write_trial(setup, trials, j, res, folder, job, confidence[j]) for j, res in enumerate(results)]
    for model, restart in parts:  # consumed: the trial files hold every model's movie
        _part_path(job, mouse, batch, model, restart).unlink(missing_ok=True)
    return rows


def _confidence(job: JobSettings, setup: MouseSetup, trials: TrialSet, results, batch: int) -> list[dict]:
    """Per trial, method -> confidence movie, times the job's scale factor of that method."""
    import time

    from tqdm.auto import tqdm

    from v1recon.recon.confidence import confidence_movies

    if not job.confidence:
        return [{} for _ in results]
    prior, _ = _prior_std(job.key, setup.mouse)
    probes = job.probes * len(results) if "laplace" in job.confidence else 0
    desc = f"{setup.mouse} batch {batch} laplace"
    bar = tqdm(total=probes, desc=desc, leave=False, disable=not job.progress or not probes)
    start = time.perf_counter()
    movies = confidence_movies(
        job.confidence, results, setup.encoders, trials.responses, trials.behaviours, setup.update_mask, prior,
        job.probes, job.config.seed, lambda: bar.update(1),
    )  # fmt: skip
    bar.close()
    seconds = (time.perf_counter() - start) / len(results)
    scale = dict(job.scale)
    for res in results:  # the estimate's cost belongs to the trial's cost
        res.seconds += seconds
    return [{m: std * scale.get(m, 1.0) for m, std in trial.items()} for trial in movies]


# -- the job ---------------------------------------------------------------------------------------------------------
def reconstruct_job(job: JobSettings, plans: list[tuple[MouseSetup, list[int], list[int]]]) -> tuple[Job, list[str]]:
    """The tasks of a reconstruct job, and the names of its trial-writing tasks (their results are summary rows).

    plans: per mouse (its setup, the trial ids, their lengths in frames)."""
    gpus = 1.0 if job.device.startswith("cuda") else 0.0
    tasks, finals = [], []
    base = {"run": job.run_dir, "data": job.data, "tier": job.tier, "config": job.config.to_dict(),
            "models": job.models, "oracle": job.oracle, "from_predicted": job.from_predicted}  # fmt: skip
    for setup, trial_ids, lengths in plans:
        mouse = setup.mouse
        models = list(range(len(setup.encoders))) if job.config.ensemble == "average" else [None]
        for b, idx in enumerate(length_batches(lengths, job.config.batch_size)):
            ids = tuple(trial_ids[i] for i in idx)
            config = {**base, "mouse": mouse, "trials": ids}
            names = []
            for r in range(job.config.restarts):
                for k in models:
                    name = f"{mouse}/batch-{b}/{_part_name(k, r)}"
                    kwargs = dict(job=job, mouse=mouse, trial_ids=ids, batch=b, model=k, restart=r)
                    out = (_part_path(job, mouse, b, k, r),)
                    part_config = {**config, "model": k, **({"restart": r} if r else {})}
                    tasks.append(Task(name, reconstruct_part, kwargs, out, part_config, gpus=gpus))
                    names.append(name)

            outputs = tuple(Path(job.out) / mouse / f"trial-{t}.{ext}" for t in ids for ext in _extensions(job))
            final = f"{mouse}/batch-{b}/trials"
            kwargs = dict(job=job, mouse=mouse, trial_ids=ids, batch=b, models=tuple(models))
            final_config = {**config, "confidence": _confidence_config(job)}
            tasks.append(Task(final, finish_trials, kwargs, outputs, final_config, tuple(names), gpus=gpus))
            finals.append(final)
    return Job("reconstruct", Path(job.out) / STAMPS_DIR, tasks), finals


def _confidence_config(job: JobSettings) -> dict:
    return {"methods": list(job.confidence), "probes": job.probes, "scale": dict(job.scale)}


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
    confidence: str | None = None,
    probes: int = LAPLACE_PROBES,
    confidence_scale: str | Path | None = None,
) -> dict:
    """Reconstruct a tier's trials of every mouse of the run found in `data`; returns the summary dict.

    `one_repeat` keeps only the first repeat of each distinct movie before `trials` selects among them.
    `confidence`: the --confidence option (v1recon.recon.confidence.parse_methods); `confidence_scale`: the
    summary.json of another job with confidence whose fitted scale factors multiply this job's confidence movies
    (refused when that job reconstructed any of this job's trials)."""
    from v1recon import CPU_MASK_ITERATIONS
    from v1recon.device import pick_device
    from v1recon.jobs.masks import config_of_masks, run_masks
    from v1recon.jobs.mouse import run_mice
    from v1recon.jobs.outputs import Input, claim_output, prepare_output
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
    if config.restarts < 1:
        raise V1ReconError(f"--restarts {config.restarts}: must be at least 1.")
    if probes < 1:
        raise V1ReconError(f"--probes {probes}: the Laplace estimate needs at least 1 probe.")
    plans = []
    for rec in recordings:  # every check before any computation, one trial in memory at a time
        ids = select_trials(rec, tier, trials, one_repeat)
        setup = _open(job.key, rec.name)
        lengths = [_check_trial(setup, t, from_predicted) for t in ids]
        plans.append((setup, ids, lengths))
    job = _with_confidence(job, plans, confidence, probes, confidence_scale)
    identity = {"job": {k: v for k, v in job.__dict__.items() if k not in ("progress", "config", "scale_source")},
                "config": config.to_dict(), "data": [recording_identity(r)["identity"] for r in recordings],
                "trials": [p[1] for p in plans], "models": run.models}  # fmt: skip
    if use_mask:
        identity["masks"] = config_of_masks(run, recordings)
    prepare_output(out, "reconstruct", config_hash(identity), inputs, overwrite)
    if use_mask and any(s.mask is None for s, _, _ in plans):  # masks the run lacks are trained now, into the run
        run_masks(run_dir, data, mask_iterations or CPU_MASK_ITERATIONS, seed=config.seed, device=dev,
                  progress=progress, executor=executor, address=address, only_missing=True)  # fmt: skip
        identity["masks"] = config_of_masks(run, recordings)
        _open.cache_clear()  # the setups now carry the masks
        plans = [(_open(job.key, s.mouse), ids, lengths) for s, ids, lengths in plans]
    tasks, finals = reconstruct_job(job, plans)
    with claim_output(out, "reconstruct", identity, config_hash(identity), inputs, overwrite):
        results = run_job(tasks, executor, address, progress)
        rows = [row for name in finals for row in results[name]]
        summary = _summary(rows, job, len(plans[0][0].encoders))
        if job.confidence:
            summary["confidence"] = confidence_summary(job, plans)
        _write_summary(out, summary)
    print(format_table(rows))
    return summary


def _check_trial(setup: MouseSetup, trial_id: int, from_predicted: bool) -> int:
    """Check one trial's inputs (raises a V1ReconError naming it); its length in frames."""
    from v1recon.recon.reconstructor import check_inputs

    trial = load_trials(setup.recording, [trial_id], need_responses=not from_predicted)
    responses = trial.responses
    if from_predicted:  # predicted in the tasks; the shape the check expects
        responses = [np.zeros((setup.encoders[0].n_neurons, trial.videos[0].shape[0]), np.float32)]
    check_inputs(setup.encoders, responses, trial.behaviours, trial.names, setup.update_mask)
    return int(trial.videos[0].shape[0])


# -- confidence ------------------------------------------------------------------------------------------------------
PER_TRIAL_MEANS = ("spearman", "frame_spearman_correlation", "slope", "rms_ratio")
CONFIDENCE_UNITS = "grey levels: the predicted standard deviation of the reconstruction's error per pixel and frame"


def _with_confidence(job: JobSettings, plans, spec: str | None, probes: int, scale_path) -> JobSettings:
    """The job with its confidence methods and, from `scale_path`, their scale factors (all checked)."""
    from dataclasses import replace

    from v1recon.io import read_json
    from v1recon.recon.confidence import parse_methods

    per_restart = min(len(s.encoders) for s, _, _ in plans) if job.config.ensemble == "average" else 1
    methods = parse_methods(spec, per_restart * job.config.restarts)
    scale: dict[str, float] = {}
    source = ""
    if scale_path is not None:
        path = Path(scale_path)
        if not methods:
            raise V1ReconError(f"--confidence-scale {path}: this job writes no confidence (--confidence none).")
        fitted = read_json(path).get("confidence")
        summary = read_json(path)
        if not isinstance(fitted, dict) or not isinstance(fitted.get("methods"), dict):
            raise V1ReconError(f"{path}: holds no confidence calibration; run that job with --confidence first.")
        for m in methods:
            factor = (fitted["methods"].get(m) or {}).get("fitted_scale")
            if not isinstance(factor, (int, float)) or not factor > 0:
                raise V1ReconError(f"{path}: has no fitted scale for confidence method {m!r}.")
            scale[m] = float(factor)
        theirs = {(str(r.get("mouse")), int(r.get("trial"))) for r in summary.get("trials", [])}
        ours = {(s.mouse, int(t)) for s, ids, _ in plans for t in ids}
        shared = sorted(theirs & ours)
        if shared:
            raise V1ReconError(
                f"{path}: its scale was fitted on {len(shared)} of the trials this job reconstructs (e.g. "
                f"{shared[0][0]} trial {shared[0][1]}); fit it on other trials, e.g. --tier train."
            )
        source = f"{path.resolve()} (tier {(summary.get('config') or {}).get('tier', '?')}, {len(theirs)} trials)"
    return replace(job, confidence=tuple(methods), probes=probes, scale=tuple(scale.items()), scale_source=source)


def _confidence_sidecar(job: JobSettings, setup: MouseSetup, res: Reconstruction, calibration: dict) -> dict:
    from v1recon.recon.confidence import DIAGONAL_SIGMA, UNEXPLAINED_SIGMA, array_names

    prior, prior_note = _prior_std(job.key, setup.mouse)
    scale = dict(job.scale)
    settings = {
        "ensemble": {"members": int(len(res.per_model)), "smooth_sigma": res.smooth_sigma},
        "laplace": {"probes": job.probes, "diagonal_sigma": DIAGONAL_SIGMA, "prior_std": prior},
        "unexplained": {"sigma": UNEXPLAINED_SIGMA, "prior_std": prior},
    }
    return {
        "methods": list(job.confidence),
        "arrays": array_names(job.confidence),
        "units": CONFIDENCE_UNITS,
        "prior_std": prior,
        "prior": prior_note,
        "outside_update_mask": "the prior std (the reconstruction is fixed grey there)",
        "scale": {
            m: {"factor": scale.get(m, 1.0), "fitted_on": job.scale_source if m in scale else "none (unscaled)"}
            for m in job.confidence
        },
        "settings": {m: settings[m] for m in job.confidence},
        "calibration": calibration,
    }


def _trial_calibration(confidence: dict, recon, truth, evaluation) -> dict:
    """Per method: the calibration metrics of one trial and the confidence-weighted video metrics."""
    from v1recon.metrics.calibration import calibration_metrics, weighted_video_metrics

    out = {}
    for m, std in confidence.items():
        out[m] = {**calibration_metrics(std, recon, truth, evaluation)}
        out[m].update(weighted_video_metrics(std, recon, truth, evaluation))
    return out


def confidence_summary(job: JobSettings, plans) -> dict:
    """Calibration of each confidence method pooled over the pixel-frames of every trial of the job (read back from
    the trial files), and the scale factor fitted on these trials (for other jobs: --confidence-scale)."""
    from v1recon.metrics.calibration import calibration_metrics, fit_scale, pooled_calibration, pooled_points
    from v1recon.recon.confidence import array_names

    names = {m: n for n, m in array_names(job.confidence).items()}
    stored: dict[str, list] = {m: [] for m in job.confidence}
    for setup, ids, _ in plans:
        for t in ids:
            with np.load(Path(job.out) / setup.mouse / f"trial-{t}.npz") as f:
                recon, truth, evaluation = f["reconstruction"], f["truth"], f["eval_mask"]
                for m in job.confidence:
                    stored[m].append((f[names[m]], recon, truth, evaluation))
    scale = dict(job.scale)
    methods = {}
    for m, items in stored.items():
        applied = scale.get(m, 1.0)
        std, error = pooled_points(items)
        per_trial = [calibration_metrics(*item) for item in items]
        entry = {
            "array": names[m],
            "scale_applied": applied,
            "scale_fitted_on": job.scale_source if m in scale else "none (unscaled)",
            "fitted_scale": applied * fit_scale(std, error),  # for the unscaled estimate, fitted on these trials
            "calibration": pooled_calibration(items),
            # pooling mixes trials whose overall error and std differ; the mean of the per-trial values does not
            **{f"{k}_per_trial_mean": float(np.mean([c[k] for c in per_trial])) for k in PER_TRIAL_MEANS},
        }
        if m in scale:
            entry["calibration_unscaled"] = pooled_calibration(items, scale=1.0 / applied)
        methods[m] = entry
    best = max(methods, key=lambda m: methods[m]["calibration"]["spearman"])
    return {
        "units": CONFIDENCE_UNITS,
        "methods": methods,
        "best_by_spearman": best,
        "prior_std": {s.mouse: _prior_std(job.key, s.mouse)[0] for s, _, _ in plans},
        "note": "pooled over the pixel-frames inside the evaluation mask, frames 30 on, of every trial of the job; "
        "fitted_scale sets mean(std^2) = mean(error^2) on these trials: apply it to other trials only",
    }


# -- files of one trial ----------------------------------------------------------------------------------------------
def write_trial(
    setup: MouseSetup, trials: TrialSet, k: int, res: Reconstruction, folder: Path, job, confidence: dict | None = None
) -> dict:
    """Files of trial k of a mouse (npz, sidecar, movies, summary figure); its row of the job's summary table.

    confidence: method -> confidence movie (T, 36, 64) grey levels (none: {})."""
    from v1recon.io import save_npz, write_sidecar
    from v1recon.metrics.video import response_consistency, video_correlation, video_metrics
    from v1recon.recon.confidence import array_names
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
    confidence = confidence or {}
    calibration = _trial_calibration(confidence, recon, truth, evaluation)
    for m, c in calibration.items():
        metrics[f"confidence_spearman_{m}"] = c["spearman"]
        metrics[f"video_correlation_weighted_{m}"] = c["video_correlation_weighted"]
        metrics[f"rmse_weighted_{m}"] = c["rmse_weighted"]
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
        **{name: confidence[m].astype(np.float32) for name, m in array_names(list(confidence)).items()},
    )
    extra = {"confidence": _confidence_sidecar(job, setup, res, calibration)} if confidence else {}
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
        **extra,
    )
    if job.movies:
        write_media(stem, truth, recon, evaluation, res, setup.alpha, trial_id, confidence)
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
        **{f"confidence_spearman_{m}": c["spearman"] for m, c in calibration.items()},
        **{f"video_correlation_weighted_{m}": c["video_correlation_weighted"] for m, c in calibration.items()},
    }


def confidence_label(method: str, several: bool) -> str:
    """Panel title of a confidence movie."""
    return f"std ({method})" if several else "confidence (std)"


def write_media(
    stem: Path, truth, recon, evaluation, res: Reconstruction, alpha, trial_id, confidence: dict | None = None,
    also=None, label="reconstruction",
) -> None:  # fmt: skip
    """The side-by-side MP4 and GIF (truth | reconstruction | confidence | error) and the PNG summary of one trial
    (with confidence: a row of the confidence movies beside |error|, on one colour scale in grey levels).

    `also`: more movies to show beside the reconstruction ({title: (T, 36, 64)}); `label`: the reconstruction's
    title (e.g. "streamed", whose loss curve then runs over pushes)."""
    from v1recon.io import atomic_path
    from v1recon.metrics.video import frame_correlations
    from v1recon.report.figures import pyplot
    from v1recon.report.media import confidence_panel, error_panel, frame_strip, write_side_by_side_movie

    plt = pyplot()
    confidence = confidence or {}
    several = len(confidence) > 1
    stds = {confidence_label(m, several): std for m, std in confidence.items()}
    error = error_panel(recon, truth)
    shown = {"truth": truth, label: recon, **(also or {})}
    panels = {**shown, **{k: confidence_panel(v) for k, v in stds.items()}, "error": error}
    write_side_by_side_movie(stem.with_suffix(".mp4"), panels, mask=evaluation)
    write_side_by_side_movie(stem.with_suffix(".gif"), panels, mask=evaluation)
    n = truth.shape[0]
    start = min(EVAL_START_FRAME, n - 1)
    frames = np.linspace(start, n - 1, 6).astype(int)
    rows = 3 if stds else 2
    fig = plt.figure(figsize=(11, 6.5 + (1.1 + 0.45 * len(stds) if stds else 0)))
    heights = [1.1, 0.55 * (len(stds) + 1), 1] if stds else [1.1, 1]
    grid = fig.add_gridspec(rows, 3, height_ratios=heights)
    frame_strip(fig.add_subplot(grid[0, :]), shown, frames, mask=evaluation)
    if stds:
        top = float(max(np.percentile(v[start:], 99) for v in [*stds.values(), error])) or 1.0
        ax = fig.add_subplot(grid[1, :])
        frame_strip(ax, {**stds, "|error|": error}, frames, mask=evaluation, vmax=top, cmap="magma")
        ax.set_title(f"confidence (predicted std) and |error|, grey levels, black 0 to white {top:.0f}", fontsize=9)
    ax = fig.add_subplot(grid[-1, 0])
    for title, movie in shown.items():
        if title != "truth":
            ax.plot(np.arange(start, n), frame_correlations(movie, truth, evaluation, start), label=title)
    ax.set(xlabel="frame", ylabel="frame correlation", title="per-frame correlation")
    if also:
        ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[-1, 1])
    for m, curve in enumerate(res.loss):
        ax.plot(curve, label=f"model {m}")
    ax.set(xlabel="push" if label == "streamed" else "iteration", ylabel="Poisson loss", title="loss")
    if len(res.loss) > 1:
        ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[-1, 2])
    ax.imshow(alpha if alpha is not None else np.ones(FRAME_SHAPE), cmap="magma")
    ax.contour(evaluation.astype(float), levels=[0.5], colors="cyan", linewidths=1)
    ax.set(title="alpha mask (evaluation outlined)", xticks=[], yticks=[])
    fig.suptitle(f"trial {trial_id}")
    fig.tight_layout()
    with atomic_path(stem.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


# -- the job's summary -----------------------------------------------------------------------------------------------
def _columns(rows: list[dict]) -> tuple[str, ...]:
    """SUMMARY_COLUMNS and the confidence columns the rows carry."""
    extra = sorted({k for r in rows for k in r if k not in SUMMARY_COLUMNS})
    return (*SUMMARY_COLUMNS, *extra)


def _summary(rows, job: JobSettings, n_encoders: int) -> dict:
    means = {c: float(np.mean([r[c] for r in rows])) for c in _columns(rows)[2:]}
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
    writer = csv.DictWriter(buf, fieldnames=_columns(summary["trials"]))
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
