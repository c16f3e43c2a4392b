"""`v1recon demo RUN`: the whole pipeline on the in-silico mouse, from nothing to a report."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from v1recon.cli import app


@app.command("demo")
def demo(
    run: Path = typer.Argument(Path("runs/demo"), help="Folder for everything the demo writes [default: runs/demo]."),
    sim_preset: str = typer.Option(
        "default", "--sim-preset", help="In-silico mouse preset: tiny, default or paper [default: default]."
    ),
    mice: int = typer.Option(2, "--mice", help="Number of simulated mice [default: 2]."),
    model_preset: str = typer.Option(
        "fast3d", "--model-preset", help="Encoder preset: fast3d, small or paper [default: fast3d]."
    ),
    models: int = typer.Option(3, "--models", help="Models in the ensemble [default: 3]."),
    train_minutes: float = typer.Option(
        4.0, "--train-minutes", help="Wall-clock budget for training the whole ensemble, in minutes [default: 4]."
    ),
    mask_iterations: int = typer.Option(
        60, "--mask-iterations", help="Alpha-mask iterations per mouse (published: 1000) [default: 60]."
    ),
    recon_iterations: int = typer.Option(
        30,
        "--recon-iterations",
        help="Step limit of the fast reconstruction per movie (it may stop earlier on a plateau) [default: 30].",
    ),
    trials: int = typer.Option(
        2, "--trials", help="Held-out final_test movies reconstructed per mouse (one repeat each) [default: 2]."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the whole run (simulation, training, reconstruction) [default: 0]."
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (GPU when present) [default: auto]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete RUN first and start from nothing."),
) -> None:
    """Simulate the in-silico mouse, train the encoder ensemble, learn the masks, reconstruct the held-out test
    movies (ensemble, oracle through the true model, upper bound from predicted responses), evaluate everything
    against the ground truth and write RUN/report.html. Resumable: a second run reuses the stages that are done.
    About 15 minutes on a 2-core CPU with the defaults."""
    from v1recon.demo import Demo, DemoConfig

    if overwrite and run.is_dir():
        shutil.rmtree(run)
    config = DemoConfig(
        sim_preset=sim_preset,
        mice=mice,
        model_preset=model_preset,
        models=models,
        train_minutes=train_minutes,
        mask_iterations=mask_iterations,
        recon_iterations=recon_iterations,
        trials_per_mouse=trials,
        seed=seed,
        device=device,
    )
    state = Demo(run, config, log=typer.echo).run()
    typer.echo("stage timings (s): " + ", ".join(f"{k} {v.get('seconds', 0):.0f}" for k, v in state["stages"].items()))
    typer.echo(f"open {run / 'report.html'} in a browser")
