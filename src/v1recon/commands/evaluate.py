"""`v1recon evaluate`: encoder metrics of a trained run on the test tiers."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app


@app.command("evaluate")
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `v1recon train`."),
    data: Path = typer.Option(None, help="Data folder (default: the one the run was trained on)."),
    tiers: str = typer.Option(
        "oracle,live_test,final_test", help="Comma-separated tiers to score (trials with responses)."
    ),
    truth: bool = typer.Option(True, help="Also score the ground-truth model of in-silico mice (the ceiling)."),
    device: str = typer.Option("auto", help="auto (GPU if present), cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, help="Replace an existing RUN/evaluation/encoders.json."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Single-trial correlation, correlation to average and FEVE of every model and the ensemble, per mouse.

    Writes RUN/evaluation/encoders.json. For in-silico mice the ground-truth model is scored on the same trials,
    and the ensemble's ratio to it is broken down by cell type and spatial-frequency band (cycles/degree).
    """
    from v1recon.training.evaluate import EVALUATION_FILE, evaluate_run, format_table

    result = evaluate_run(
        run,
        data,
        device=device,
        tiers=tuple(t.strip() for t in tiers.split(",") if t.strip()),
        with_truth=truth,
        progress=progress,
        overwrite=overwrite,
    )
    typer.echo(format_table(result))
    typer.echo(f"-> {run / EVALUATION_FILE}")
