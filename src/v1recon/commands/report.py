"""`v1recon report RUN`: one self-contained HTML page about a run."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app


@app.command("report")
def report(
    run: Path = typer.Argument(..., help="Run folder written by `v1recon train` (holds run.json)."),
    out: Path = typer.Option(None, "--out", help="HTML file to write (default: RUN/report.html)."),
    compute: bool = typer.Option(
        True,
        "--compute/--no-compute",
        help="Allow short computations beyond reading files: true receptive fields of an in-silico mouse and "
        "example predictions of the ensemble on one held-out trial per mouse (seconds on a CPU for small presets).",
    ),
    families: Path = typer.Option(
        None,
        "--families",
        help="families.json written by benchmarks/families.py: adds a section with each encoder preset's ratio to "
        "the true model's single-trial correlation on both in-silico families (overall and per cell type) and the "
        "reconstruction's ratio to the oracle (default: no such section).",
    ),
) -> None:
    """Write one HTML page (images and movies inlined, opens offline) with the data, encoders, reconstructions,
    the published numbers beside this run's, and the run's configuration and timings."""
    from v1recon.report import write_report

    path = write_report(run, out, compute=compute, log=lambda msg: typer.echo(msg, err=True), families=families)
    size_mb = path.stat().st_size / 1e6
    typer.echo(f"wrote {path} ({size_mb:.1f} MB)")
