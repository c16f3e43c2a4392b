"""`v1recon train`: train an ensemble of encoders on every mouse of a data folder."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app


@app.command("train")
def train(
    data: Path = typer.Argument(..., help="A mouse folder (Sensorium layout) or a folder holding several."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run folder to write (re-running with the same options resumes)."
    ),
    preset: str = typer.Option(
        "small", help="Model preset: paper, small, fast3d or subunit (training recipe follows it)."
    ),
    models: int = typer.Option(3, "--models", min=1, help="Number of models in the ensemble."),
    ensemble: str = typer.Option(
        "folds", help="folds: model k validates on fold k+1 and trains on the others; seeds: same split, new seeds."
    ),
    epochs: int = typer.Option(None, min=1, help="Epochs per model (default: from the preset)."),
    samples_per_epoch: int = typer.Option(None, min=1, help="Training clips per epoch (default: from the preset)."),
    batch_size: int = typer.Option(None, min=1, help="Clips per optimiser step (default: from the preset)."),
    lr: float = typer.Option(None, help="Peak learning rate (default: 2.4e-3 x batch size / 32, or the preset's)."),
    seed: int = typer.Option(0, help="Seed of model 0; model k uses seed + k."),
    test_fold: int = typer.Option(0, help="Fold (0..6) held out from every model, for reconstruction."),
    device: str = typer.Option("auto", help="auto (GPU if present), cpu, cuda or cuda:N."),
    time_budget: float = typer.Option(
        None, min=0.1, help="Minutes for the whole run; epochs are cut so that it fits (default: no limit)."
    ),
    overwrite: bool = typer.Option(False, help="Replace a different run already in --out."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train an ensemble of encoding models (Poisson loss, AdamW, EMA weights) on all mice found under DATA.

    Writes OUT/run.json and OUT/models/model-<k>.{safetensors,json,log.csv}. Fold 0 (by movie) is never trained on.
    """
    from tqdm.auto import tqdm

    from v1recon.training.run import train_run

    run = train_run(
        data,
        out,
        preset=preset,
        n_models=models,
        ensemble=ensemble,
        seed=seed,
        device=device,
        time_budget_min=time_budget,
        overwrite=overwrite,
        progress=progress,
        test_fold=test_fold,
        log=tqdm.write,
        epochs=epochs,
        samples_per_epoch=samples_per_epoch,
        batch_size=batch_size,
        lr=lr,
    )
    done = run.complete_models()
    typer.echo(
        f"{len(done)}/{run.n_models} models trained on {', '.join(run.mouse_names)} in "
        f"{run.timings.get('total_seconds', 0):.0f} s -> {out}"
    )
