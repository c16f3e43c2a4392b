"""`v1recon mask RUN --data DATA`: learn each mouse's transparency (alpha) mask through the run's encoders."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon import CPU_MASK_ITERATIONS, EVAL_THRESHOLD, PUBLISHED_ITERATIONS, UPDATE_THRESHOLD
from v1recon.cli import app
from v1recon.commands.options import ADDRESS_OPT, DEVICE_OPT, EXECUTOR_OPT


@app.command("mask")
def mask(
    run: Path = typer.Argument(..., help="Run folder written by `v1recon train`; masks go to RUN/masks/<mouse>.npz."),
    data: Path = typer.Option(..., "--data", help="A mouse folder (Sensorium layout) or a folder of mouse folders."),
    iterations: int = typer.Option(
        CPU_MASK_ITERATIONS,
        "--iterations",
        help=f"Mask iterations (one 32-frame pair of training trials each) (default: {CPU_MASK_ITERATIONS}, "
        f"affordable on a CPU; the published procedure runs {PUBLISHED_ITERATIONS}).",
    ),
    update_threshold: float = typer.Option(
        UPDATE_THRESHOLD,
        "--update-threshold",
        help=f"Pixels with alpha >= this are updated during reconstruction (default: {UPDATE_THRESHOLD:g}, published).",
    ),
    eval_threshold: float = typer.Option(
        EVAL_THRESHOLD,
        "--eval-threshold",
        help=f"Pixels with alpha >= this are evaluated (default: {EVAL_THRESHOLD:g}, published).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (initial map, trial pairs)."),
    device: str = DEVICE_OPT,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace masks trained with another configuration."),
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Train one alpha mask per mouse as published (blend of two training clips, area-penalised MSE, normalised,
    clipped, time-averaged, blurred gradient steps); saves RUN/masks/<mouse>.npz with a JSON sidecar and a PNG of
    the mask drawn over a frame. One task per mouse: the same command skips the masks that are done, and
    --executor ray trains the mice's masks in parallel on a Ray cluster."""
    from v1recon.jobs.masks import run_masks

    for path, summary in run_masks(
        run,
        data,
        iterations=iterations,
        update_threshold=update_threshold,
        eval_threshold=eval_threshold,
        seed=seed,
        device=device,
        overwrite=overwrite,
        executor=executor,
        address=address,
    ):
        typer.echo(f"wrote {path}: {summary['update_pixels']} pixels updated, {summary['eval_pixels']} evaluated")
