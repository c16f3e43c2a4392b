"""The `reconstruct` and `mask` jobs: recordings + a training run in, result folders out.

Everything is checked before any computation (tier, trials, neuron counts, behaviour, NaN, length) and results
go to a temporary folder renamed into place at the end, so a failed job leaves nothing half-written.

Output of `run_reconstruction` (OUT):
    OUT/<mouse>/trial-<id>.npz   reconstruction, truth, per-model reconstructions, masks, loss and correlation
                                 per iteration (models x iterations)
    OUT/<mouse>/trial-<id>.json  sidecar: config, seed, versions, data and model identities, metrics
    OUT/<mouse>/trial-<id>.mp4 / .gif   truth | reconstruction | error, evaluation mask outlined
    OUT/<mouse>/trial-<id>.png   frame strip, per-frame correlation, loss curve, mask
    OUT/summary.json, OUT/summary.csv   one row per trial and the means
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v1recon.errors import V1ReconError
from v1recon.recon.masks import AlphaMask, draw_mask, load_mask, mask_path, recording_clip_sampler, save_mask
from v1recon.recon.objective import CLIP_FRAMES
from v1recon.recon.reconstructor import ReconConfig, Reconstruction, reconstruct_trials

CPU_MASK_ITERATIONS = 150  # default on the CPU; the published procedure runs 1000 (use --iterations 1000)
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


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse a folder that holds results unless `overwrite` (creates nothing)."""
    if out.exists() and not out.is_dir():
        raise V1ReconError(f"{out}: output path exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise V1ReconError(f"{out}: output folder already holds results; pass --overwrite to replace them.")


@dataclass
class MousePlan:
    """Everything needed to reconstruct one mouse's trials, checked before any computation."""

    recording: object
    encoders: list
    encoder_names: list[str]
    trial_ids: list[int]
    videos: list[np.ndarray]
    responses: list[np.ndarray]
    behaviours: list[np.ndarray]
    mask: AlphaMask | None
    mask_source: str
    extra: dict = field(default_factory=dict)


def _mouse_recordings(run, data: Path) -> list:
    from v1recon.data import open_recordings

    recordings = open_recordings(data)
    chosen = [r for r in recordings if r.name in run.mouse_names]
    if not chosen:
        names = ", ".join(r.name for r in recordings)
        raise V1ReconError(
            f"{data}: holds no mouse of the run (it has {names}; the run has {', '.join(run.mouse_names)})."
        )
    return chosen


def _encoders(run_dir: Path, rec, models: list[int] | None, device: str, oracle: bool):
    from v1recon.runs import load_encoders

    if oracle:
        from v1recon.sim import load_truth

        truth = load_truth(rec.path)
        if truth is None:
            raise V1ReconError(
                f"{rec.path}: no ground-truth model beside this recording; --oracle needs an in-silico mouse."
            )
        import torch

        return [truth.to(torch.device(device)).eval()], ["ground truth"]
    encoders = load_encoders(run_dir, rec.name, device=device)
    chosen = models if models is not None else list(range(len(encoders)))
    if max(chosen) >= len(encoders):
        raise V1ReconError(f"{run_dir}: model {max(chosen)} requested, the run has {len(encoders)} trained models.")
    return [encoders[k] for k in chosen], [f"model-{k}" for k in chosen]


def _predicted(encoders, videos, behaviours, device) -> list[np.ndarray]:
    """The encoders' mean predicted responses (N, T) from the true movies."""
    import torch

    out = []
    with torch.no_grad():
        for v, b in zip(videos, behaviours, strict=True):
            preds = [
                enc(torch.as_tensor(v[None], device=device), torch.as_tensor(b[None], device=device))
                for enc in encoders
            ]
            out.append(torch.stack(preds).mean(0)[0].float().cpu().numpy())
    return out


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


def plan_mouse(
    run_dir, rec, tier, trials, models, device, oracle, from_predicted, use_mask, one_repeat: bool = False
) -> MousePlan:
    """Load and check one mouse's inputs (raises V1ReconError before any reconstruction starts)."""
    from v1recon.data import TIERS

    if tier not in TIERS:
        raise V1ReconError(f"--tier {tier!r}: unknown tier; known: {', '.join(TIERS)}.")
    available = rec.trial_ids(tier=tier)
    if not available:
        raise V1ReconError(f"{rec.path}: has no trials of tier {tier}.")
    if one_repeat:
        available = first_repeats(rec, available)
    ids = parse_trials(trials, available, str(rec.path))
    encoders, names = _encoders(Path(run_dir), rec, models, device, oracle)
    n = encoders[0].n_neurons
    if n != rec.n_neurons:
        raise V1ReconError(f"{rec.path}: has {rec.n_neurons} neurons but the encoders predict {n}.")
    videos, responses, behaviours = [], [], []
    for t in ids:
        trial = rec.trial(t)
        where = f"{rec.path} trial {t}"
        if trial.video.shape[0] < CLIP_FRAMES:
            raise V1ReconError(
                f"{where}: {trial.video.shape[0]} frames is shorter than one {CLIP_FRAMES}-frame window."
            )
        if trial.behaviour is None:
            raise V1ReconError(f"{where}: behaviour is missing.")
        if trial.responses is None and not from_predicted:
            raise V1ReconError(f"{where}: has no recorded responses (use --from-predicted or another tier).")
        videos.append(np.asarray(trial.video, np.float32))
        behaviours.append(np.asarray(trial.behaviour, np.float32))
        responses.append(None if trial.responses is None else np.asarray(trial.responses, np.float32))
    mask, source = None, "none (all pixels)"
    if use_mask:
        path = mask_path(run_dir, rec.name)
        if path.is_file():
            mask, source = load_mask(path), str(path)
        else:
            source = "trained now"
    return MousePlan(rec, encoders, names, ids, videos, responses, behaviours, mask, source)


def _eval_mask(mask: AlphaMask | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(update mask, evaluation mask, note): empty masks fall back to the update mask, then to all pixels."""
    full = np.ones((36, 64), bool)
    if mask is None:
        return full, full, "no mask: all pixels updated and evaluated"
    if not mask.update_mask.any():
        return full, full, "mask empty (too few mask iterations?): all pixels updated and evaluated"
    if mask.eval_mask.any():
        return mask.update_mask, mask.eval_mask, ""
    return mask.update_mask, mask.update_mask, "evaluation mask empty: evaluated inside the update mask"


@dataclass(frozen=True)
class JobSettings:
    """What every trial of one `run_reconstruction` job shares."""

    run_dir: Path
    tier: str
    config: ReconConfig
    oracle: bool
    from_predicted: bool
    movies: bool


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
) -> dict:
    """Reconstruct a tier's trials of every mouse of the run found in `data`; returns the summary dict.

    `one_repeat` keeps only the first repeat of each distinct movie before `trials` selects among them."""
    from tqdm.auto import tqdm

    from v1recon.device import pick_device, seed_everything
    from v1recon.io import atomic_path
    from v1recon.runs import load_run

    config = config or ReconConfig()
    out, run_dir, data = Path(out), Path(run_dir), Path(data)
    check_output_folder(out, overwrite)
    run = load_run(run_dir)
    dev = str(pick_device(device))
    model_idx = parse_models(models, run.n_models, str(run_dir))
    plans = [
        plan_mouse(run_dir, rec, tier, trials, model_idx, dev, oracle, from_predicted, use_mask, one_repeat)
        for rec in _mouse_recordings(run, data)
    ]
    for plan in plans:
        if from_predicted:
            plan.responses = _predicted(plan.encoders, plan.videos, plan.behaviours, dev)
    for plan in plans:  # fail early on bad recorded inputs too
        from v1recon.recon.reconstructor import check_inputs

        check_inputs(
            plan.encoders, plan.responses, plan.behaviours, [f"{plan.recording.path} trial {t}" for t in plan.trial_ids]
        )
    job = JobSettings(run_dir, tier, config, oracle, from_predicted, movies)
    for plan in plans:
        if use_mask and plan.mask is None:
            plan.mask = make_mask(
                run_dir, plan.recording, mask_iterations, seed=config.seed, device=dev, progress=progress
            )
            plan.mask_source = str(mask_path(run_dir, plan.recording.name))
    seed_everything(config.seed)
    rows = []
    total = sum(len(p.trial_ids) for p in plans)
    started = time.perf_counter()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        with tqdm(total=total, desc="reconstruct", unit="trial", disable=not progress) as job_bar:
            for plan in plans:
                rows += _reconstruct_mouse(plan, tmp, job, progress, job_bar)
        summary = _summary(rows, config, tier, oracle, from_predicted, time.perf_counter() - started)
        _write_summary(tmp, summary)
    print(format_table(rows))
    return summary


def _reconstruct_mouse(plan: MousePlan, tmp: Path, job: JobSettings, progress: bool, job_bar) -> list[dict]:
    from tqdm.auto import tqdm

    config = job.config
    update, evaluation, note = _eval_mask(plan.mask)
    folder = tmp / plan.recording.name
    folder.mkdir()
    iterations = config.iterations or (1000 if config.method == "paper" else config.fast.max_steps)
    groups = len(plan.encoders) if config.ensemble == "average" else 1
    batch_bar = tqdm(total=iterations * groups, desc=f"{plan.recording.name} batch", leave=False, disable=not progress)

    def on_batch(n_done):
        job_bar.update(n_done)
        batch_bar.reset()

    results = reconstruct_trials(
        plan.encoders,
        plan.responses,
        plan.behaviours,
        update,
        config,
        truths=plan.videos,
        eval_mask=evaluation,
        sources=[f"{plan.recording.path} trial {t}" for t in plan.trial_ids],
        progress=on_batch,
        on_iteration=lambda: batch_bar.update(1),
    )
    batch_bar.close()
    masks = (update, evaluation, note)
    return [_write_trial(plan, k, res, folder, masks, job) for k, res in enumerate(results)]


def _write_trial(plan: MousePlan, k: int, res: Reconstruction, folder: Path, masks: tuple, job: JobSettings) -> dict:
    """Files of trial k of a mouse (npz, sidecar, movies, summary figure); its row of the job's summary table.

    masks: (update mask, evaluation mask, note on how they were chosen)."""
    from v1recon.io import save_npz, write_sidecar
    from v1recon.metrics.video import response_consistency, video_correlation, video_metrics
    from v1recon.runs import recording_identity

    update, evaluation, note = masks
    config, tier = job.config, job.tier
    trial_id = plan.trial_ids[k]
    truth, recon = plan.videos[k], res.video
    metrics = video_metrics(recon, truth, evaluation)
    per_model = [video_correlation(m, truth, evaluation) for m in res.per_model]
    pred_recon, pred_truth = _predicted(plan.encoders, [recon, truth], [plan.behaviours[k]] * 2, _device(plan.encoders))
    resp = plan.responses[k]
    metrics["response_consistency"] = float(response_consistency(pred_recon, np.maximum(resp, 0)))
    metrics["response_consistency_truth"] = float(response_consistency(pred_truth, np.maximum(resp, 0)))
    metrics["per_model_video_correlation"] = per_model
    metrics["best_single_model"] = float(max(per_model))
    stem = folder / f"trial-{trial_id}"
    save_npz(
        stem.with_suffix(".npz"),
        reconstruction=recon.astype(np.float32),
        truth=truth.astype(np.float32),
        per_model=res.per_model.astype(np.float32),
        update_mask=update,
        eval_mask=evaluation,
        alpha=plan.mask.alpha if plan.mask is not None else np.ones((36, 64), np.float32),
        loss=res.loss,
        correlation=res.correlation,
    )
    write_sidecar(
        stem.with_suffix(".npz"),
        config={**config.to_dict(), "tier": tier, "oracle": job.oracle, "from_predicted": job.from_predicted},
        seed=config.seed,
        data={**recording_identity(plan.recording), "trial": trial_id, "tier": tier, "frames": int(truth.shape[0])},
        models={"run": str(job.run_dir), "encoders": plan.encoder_names},
        mask={
            "source": plan.mask_source,
            "note": note,
            "update_pixels": int(update.sum()),
            "eval_pixels": int(evaluation.sum()),
        },
        cost={"window_passes": res.window_passes, "seconds": res.seconds, "iterations": res.iterations},
        metrics=metrics,
    )
    if job.movies:
        _write_media(stem, truth, recon, evaluation, res, plan.mask, trial_id)
    return {
        "mouse": plan.recording.name,
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


def _device(encoders):
    import torch

    from v1recon.recon.objective import encoder_device

    return encoder_device(encoders[0], torch.device("cpu"))


def _write_media(stem: Path, truth, recon, evaluation, res: Reconstruction, mask, trial_id) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v1recon.io import atomic_path
    from v1recon.metrics.video import frame_correlations
    from v1recon.report.media import error_panel, frame_strip, write_side_by_side_movie

    panels = {"truth": truth, "reconstruction": recon, "error": error_panel(recon, truth)}
    write_side_by_side_movie(stem.with_suffix(".mp4"), panels, mask=evaluation)
    write_side_by_side_movie(stem.with_suffix(".gif"), panels, mask=evaluation)
    n = truth.shape[0]
    frames = np.linspace(min(30, n - 1), n - 1, 6).astype(int)
    fig = plt.figure(figsize=(11, 6.5))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.1, 1])
    frame_strip(fig.add_subplot(grid[0, :]), {"truth": truth, "reconstruction": recon}, frames, mask=evaluation)
    ax = fig.add_subplot(grid[1, 0])
    start = min(30, n - 1)
    ax.plot(np.arange(start, n), frame_correlations(recon, truth, evaluation, start))
    ax.set(xlabel="frame", ylabel="frame correlation", title="per-frame correlation")
    ax = fig.add_subplot(grid[1, 1])
    for m, curve in enumerate(res.loss):
        ax.plot(curve, label=f"model {m}")
    ax.set(xlabel="iteration", ylabel="Poisson loss", title="loss")
    if len(res.loss) > 1:
        ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 2])
    ax.imshow(mask.alpha if mask is not None else np.ones((36, 64)), cmap="magma")
    ax.contour(evaluation.astype(float), levels=[0.5], colors="cyan", linewidths=1)
    ax.set(title="alpha mask (evaluation outlined)", xticks=[], yticks=[])
    fig.suptitle(f"trial {trial_id}")
    fig.tight_layout()
    with atomic_path(stem.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _summary(rows, config: ReconConfig, tier, oracle, from_predicted, seconds) -> dict:
    means = {c: float(np.mean([r[c] for r in rows])) for c in SUMMARY_COLUMNS[2:]}
    return {
        "config": {**config.to_dict(), "tier": tier, "oracle": oracle, "from_predicted": from_predicted},
        "trials": rows,
        "mean": means,
        "seconds_total": seconds,
    }


def _write_summary(folder: Path, summary: dict) -> None:
    from v1recon.io import write_json

    write_json(folder / "summary.json", summary)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(summary["trials"])
    (folder / "summary.csv").write_text(buf.getvalue())


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


def make_mask(
    run_dir,
    rec,
    iterations: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    update_threshold: float = 0.5,
    eval_threshold: float = 1.0,
    progress: bool = True,
) -> AlphaMask:
    """Train, save (RUN/masks/<mouse>.npz + .json + .png) and return the alpha mask of one mouse."""
    from tqdm.auto import tqdm

    from v1recon.recon.masks import train_alpha_mask
    from v1recon.runs import load_encoders, recording_identity

    iterations = iterations or CPU_MASK_ITERATIONS
    encoders = load_encoders(run_dir, rec.name, device=device)
    train_ids = rec.trial_ids(tier="train", with_responses=True)
    sampler = recording_clip_sampler(rec, train_ids)
    with tqdm(total=iterations, desc=f"mask {rec.name}", unit="it", disable=not progress) as bar:
        mask = train_alpha_mask(
            encoders,
            sampler,
            iterations=iterations,
            seed=seed,
            update_threshold=update_threshold,
            eval_threshold=eval_threshold,
            progress=bar.update,
        )
    path = mask_path(run_dir, rec.name)
    save_mask(
        path,
        mask,
        config={"iterations": iterations, "seed": seed, "published_iterations": 1000},
        data=recording_identity(rec),
        models={"run": str(run_dir), "count": len(encoders)},
    )
    frame = rec.trial(train_ids[0]).video[min(30, rec.trial(train_ids[0]).video.shape[0] - 1)]
    draw_mask(path.with_suffix(".png"), mask, frame, title=rec.name)
    return mask


def run_masks(
    run_dir,
    data,
    iterations: int = CPU_MASK_ITERATIONS,
    update_threshold: float = 0.5,
    eval_threshold: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> list[tuple[Path, dict]]:
    """Train and save the mask of every mouse of the run found in `data`; returns (path, summary) per mouse."""
    from v1recon.device import pick_device
    from v1recon.runs import load_run

    if iterations < 1:
        raise V1ReconError(f"--iterations {iterations}: must be at least 1.")
    if not 0 < update_threshold <= eval_threshold:
        raise V1ReconError(f"thresholds update {update_threshold} and eval {eval_threshold}: need 0 < update <= eval.")
    run = load_run(run_dir)
    recordings = _mouse_recordings(run, Path(data))
    existing = [mask_path(run_dir, r.name) for r in recordings if mask_path(run_dir, r.name).is_file()]
    if existing and not overwrite:
        raise V1ReconError(f"{existing[0]}: mask already exists; pass --overwrite to train it again.")
    dev = str(pick_device(device))
    out = []
    for rec in recordings:
        m = make_mask(run_dir, rec, iterations, seed, dev, update_threshold, eval_threshold, progress)
        out.append((mask_path(run_dir, rec.name), m.summary()))
    return out
