"""`v1recon demo RUN`: the whole pipeline on the in-silico mouse, from nothing to a report."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from v1recon.cli import app
from v1recon.demo import DemoConfig
from v1recon.errors import V1ReconError
from v1recon.runs import DEMO_FILE

D = DemoConfig()  # the defaults live in one place


@app.command("demo")
def demo(
    run: Path = typer.Argument(Path("runs/demo"), help="Folder for everything the demo writes."),
    sim_preset: str = typer.Option(
        D.sim_preset, "--sim-preset", help="In-silico mouse preset: tiny, default or paper."
    ),
    sim_family: str = typer.Option(
        D.sim_family, "--sim-family", help=f"In-silico mouse model family: energy or cascade. Default: {D.sim_family}."
    ),
    mice: int = typer.Option(D.mice, "--mice", help="Number of simulated mice."),
    model_preset: str = typer.Option(
        D.model_preset, "--model-preset", help="Encoder preset: fast3d, subunit, small or paper."
    ),
    models: int = typer.Option(D.models, "--models", help="Models in the ensemble."),
    train_minutes: float = typer.Option(
        D.train_minutes,
        "--train-minutes",
        help="Wall-clock budget for training the whole ensemble, in minutes.",
    ),
    mask_iterations: int = typer.Option(
        D.mask_iterations,
        "--mask-iterations",
        help="Alpha-mask iterations per mouse (published: 1000).",
    ),
    recon_iterations: int = typer.Option(
        D.recon_iterations,
        "--recon-iterations",
        help="Step limit of the fast reconstruction per movie (it may stop earlier on a plateau) .",
    ),
    trials: int = typer.Option(
        D.trials_per_mouse,
        "--trials",
        help="Held-out final_test movies reconstructed per mouse (one repeat each).",
    ),
    seed: int = typer.Option(D.seed, "--seed", help="Seed of the whole run (simulation, training, reconstruction)."),
    device: str = typer.Option(D.device, "--device", help="cpu, cuda or auto (GPU when present)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete RUN first and start from nothing."),
) -> None:
    """Simulate the in-silico mouse, train the encoder ensemble, learn the masks, reconstruct the held-out test
    movies (ensemble, oracle through the true model, upper bound from predicted responses), evaluate everything
    against the ground truth and write RUN/report.html. Resumable: a second run reuses the stages that are done.
    About 35 minutes on a 2-core CPU with the defaults (30 of them training)."""
    from v1recon.demo import Demo
    from v1recon.device import pick_device

    pick_device(device)  # a bad --device fails before anything is deleted or written
    if overwrite and run.is_dir() and any(run.iterdir()):
        if not (run / DEMO_FILE).is_file():  # never delete a folder the demo did not make
            raise V1ReconError(f"{run}: is not a demo folder (no {DEMO_FILE}); --overwrite deletes only demo folders.")
        shutil.rmtree(run)
    config = DemoConfig(
        sim_preset=sim_preset,
        sim_family=sim_family,
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
