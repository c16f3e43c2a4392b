"""`v1recon train`: train an ensemble of encoders on every mouse of a data folder."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app
from v1recon.commands.options import ADDRESS_OPT, DEVICE_OPT, EXECUTOR_OPT

CPU_BUDGET_MIN = 10.0  # minutes: the default run on a CPU


@app.command("train")
def train(
    data: Path = typer.Argument(..., help="A mouse folder (Sensorium layout) or a folder holding several."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run folder to write (re-running with the same options resumes)."
    ),
    preset: str = typer.Option(
        None,
        help="Model preset: paper, small, fast3d or subunit (training recipe follows it). Default: small on a GPU, "
        f"fast3d on the CPU (there also with a {CPU_BUDGET_MIN:g}-minute --time-budget unless one is given).",
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
    device: str = DEVICE_OPT,
    devices: int = typer.Option(
        1,
        "--devices",
        min=1,
        help="Processes that train each model together (torch DDP: NCCL over that many GPUs, gloo on the CPU); "
        "the global batch and learning rate stay the single-process recipe's; the batch size must divide by it "
        "(default: 1).",
    ),
    time_budget: float = typer.Option(
        None,
        min=0.1,
        help="Minutes for the whole run; epochs are cut so that it fits (default: no limit, except the CPU default "
        "above).",
    ),
    overwrite: bool = typer.Option(False, help="Replace a different run already in --out."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Train an ensemble of encoding models (Poisson loss, AdamW, EMA weights) on all mice found under DATA.

    Writes OUT/run.json and OUT/models/model-<k>.{safetensors,json,log.csv}. Fold 0 (by movie) is never trained on.
    Tasks: the shared data-driven start, then one per model (--executor ray trains the models in parallel).
    """
    from tqdm.auto import tqdm

    from v1recon.device import pick_device
    from v1recon.training.run import train_run

    if preset is None:  # a first run on a laptop should end in minutes, not hours
        on_cpu = pick_device(device).type == "cpu"
        preset = "fast3d" if on_cpu else "small"
        if on_cpu and time_budget is None:
            time_budget = CPU_BUDGET_MIN
            typer.echo(
                f"training on the CPU: preset fast3d within {CPU_BUDGET_MIN:g} minutes for the whole run (choose "
                "others with --preset and --time-budget)",
                err=True,
            )

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
        executor=executor,
        address=address,
        devices=devices,
    )
    done = run.complete_models()
    typer.echo(
        f"{len(done)}/{run.n_models} models trained on {', '.join(run.mouse_names)} in "
        f"{run.timings.get('total_seconds', 0):.0f} s -> {out}"
    )
