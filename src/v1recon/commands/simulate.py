"""`v1recon simulate`: write in-silico mice (Sensorium-layout recordings with their ground truth beside them)."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app


@app.command("simulate")
def simulate_command(
    out: Path = typer.Argument(..., help="Output folder; one sub-folder per mouse plus the ground truth beside it."),
    preset: str = typer.Option(
        "default",
        help="Size: 'tiny' (60 neurons, 34 trials of 90 frames; seconds), 'default' (1000 neurons, 380 trials of "
        "300 frames per mouse; about a minute per mouse on 2 CPU cores, ~1.6 GB per mouse) or 'paper' (8000 "
        "neurons, 530 trials per mouse, ~12 GB per mouse). Default: default.",
    ),
    mice: int = typer.Option(2, help="Number of mice (each with its own RF layout and training movies). Default: 2."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same mice. Default: 0."),
    overwrite: bool = typer.Option(False, help="Replace an existing non-empty output folder. Default: off."),
    figure: bool = typer.Option(True, help="Write a PNG figure per mouse beside its folder. Default: on."),
) -> None:
    """Simulate mice watching natural-like movies and write their recordings in the Sensorium 2023 layout."""
    from v1recon.sim.simulate import PRESETS, simulate

    p = PRESETS.get(preset)
    if p is not None:
        typer.echo(
            f"preset {preset}: {mice} mice x {p.n_neurons} neurons x {p.n_trials} trials of {p.n_frames} frames; "
            f"about {mice * p.disk_bytes() / 1e9:.2f} GB on disk"
        )
    result = simulate(out, preset, mice, seed, overwrite=overwrite, figure=figure, log=typer.echo)
    typer.echo(f"wrote {out} ({result['disk_bytes'] / 1e9:.2f} GB) in {result['seconds']} s")
