"""`v1recon reconstruct RUN --data DATA`: movies from recorded responses, through the run's encoders."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon import FAST_MAX_STEPS, PUBLISHED_ITERATIONS
from v1recon.cli import app
from v1recon.commands.options import ADDRESS_OPT, DEVICE_OPT, EXECUTOR_OPT


@app.command("reconstruct")
def reconstruct(
    run: Path = typer.Argument(..., help="Run folder written by `v1recon train` (holds run.json and models/)."),
    data: Path = typer.Option(..., "--data", help="A mouse folder (Sensorium layout) or a folder of mouse folders."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (the same command resumes there; other results are kept unless --overwrite)."
    ),
    tier: str = typer.Option("final_test", "--tier", help="Trials of this tier are reconstructed."),
    method: str = typer.Option(
        "fast",
        "--method",
        help="fast (batched, normalised-gradient momentum, early stop) or paper (the published procedure) .",
    ),
    trials: str = typer.Option(
        None,
        "--trials",
        help="A count (e.g. 3: the first 3 trials) or comma-separated trial ids (e.g. 4,7 or 4,) "
        " (default: all trials of the tier).",
    ),
    one_repeat: bool = typer.Option(
        False,
        "--one-repeat",
        help="Keep only the first repeat of each distinct movie before --trials selects (default: every repeat).",
    ),
    models: str = typer.Option(None, "--models", help="Comma-separated indices of trained models (default: all)."),
    iterations: int = typer.Option(
        None,
        "--iterations",
        help=f"paper: iterations (default: {PUBLISHED_ITERATIONS}, as published); fast: the step limit "
        f"(default: {FAST_MAX_STEPS}; it usually stops earlier on a loss plateau).",
    ),
    device: str = DEVICE_OPT,
    batch_size: int = typer.Option(4, "--batch-size", help="Trials optimised together in one batch."),
    seed: int = typer.Option(0, "--seed", help="Random seed (mask training, random window offsets)."),
    oracle: bool = typer.Option(
        False, "--oracle", help="Reconstruct through the in-silico mouse's true model instead of the run's encoders."
    ),
    from_predicted: bool = typer.Option(
        False,
        "--from-predicted",
        help="Reconstruct from the encoders' own predicted responses to the true movie "
        "(the published upper bound) instead of the recorded responses.",
    ),
    ensemble: str = typer.Option(
        "average",
        "--ensemble",
        help="average: each model alone, then mean + 3-D Gaussian blur sigma 0.5 "
        "(published default); gradient: gradients averaged over models every step.",
    ),
    mask: bool = typer.Option(
        True,
        "--mask/--no-mask",
        help="Use the mouse's alpha mask RUN/masks/<mouse>.npz (trained now if missing); "
        "--no-mask updates and evaluates every pixel (default: --mask).",
    ),
    movies: bool = typer.Option(True, "--movies/--no-movies", help="Write the MP4/GIF/PNG per trial (default: yes)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace results of another configuration that v1recon wrote into OUT."
    ),
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Reconstruct the movies of a tier from single-trial responses by optimising the encoders' input; writes per
    trial an .npz, a JSON sidecar, a side-by-side MP4/GIF and a PNG summary, and summary.json/.csv for the job.

    The job is a list of tasks (one per batch of trials and model, then one per batch for the ensemble average):
    the same command resumes an interrupted job, and --executor ray runs the tasks on a Ray cluster. OUT may not be,
    contain or lie inside the data or the run folder (except RUN/reconstructions/NAME)."""
    from v1recon.errors import V1ReconError
    from v1recon.jobs.reconstruct import run_reconstruction
    from v1recon.recon.reconstructor import ReconConfig

    if method not in ("fast", "paper"):
        raise V1ReconError(f"--method {method!r}: choose fast or paper.")
    if ensemble not in ("average", "gradient"):
        raise V1ReconError(f"--ensemble {ensemble!r}: choose average or gradient.")
    if batch_size < 1:
        raise V1ReconError(f"--batch-size {batch_size}: must be at least 1.")
    if iterations is not None and iterations < 1:
        raise V1ReconError(f"--iterations {iterations}: must be at least 1.")
    config = ReconConfig(method=method, iterations=iterations, ensemble=ensemble, batch_size=batch_size, seed=seed)
    summary = run_reconstruction(
        run,
        data,
        out,
        tier=tier,
        config=config,
        trials=trials,
        models=models,
        device=device,
        oracle=oracle,
        from_predicted=from_predicted,
        use_mask=mask,
        overwrite=overwrite,
        movies=movies,
        one_repeat=one_repeat,
        executor=executor,
        address=address,
    )
    typer.echo(
        f"wrote {len(summary['trials'])} reconstructions to {out} "
        f"(mean video correlation {summary['mean']['video_correlation']:.3f})"
    )
