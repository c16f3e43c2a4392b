"""`v1recon simulate`: write in-silico mice (Sensorium-layout recordings with their ground truth beside them)."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app
from v1recon.commands.options import ADDRESS_OPT, EXECUTOR_OPT
from v1recon.errors import V1ReconError


@app.command("simulate")
def simulate_command(
    out: Path = typer.Argument(..., help="Output folder; one sub-folder per mouse plus the ground truth beside it."),
    preset: str = typer.Option(
        "default",
        help="Size per mouse: 'tiny' (60 neurons, 34 trials of 90 frames; seconds), 'default' (1000 neurons, "
        "380 trials of 300 frames; ~1.6 GB, about a minute on 2 CPU cores) or 'paper' (8000 neurons, 530 trials "
        "of 300 frames; ~11 GB). Default: default.",
    ),
    mice: int = typer.Option(2, help="Number of mice, each with its own RF layout and training movies. Default: 2."),
    seed: int = typer.Option(0, help="Random seed (integer); the same seed gives the same mice. Default: 0."),
    overwrite: bool = typer.Option(False, help="Replace an existing non-empty output folder. Default: off."),
    figure: bool = typer.Option(True, help="Write a PNG figure per mouse beside its folder. Default: on."),
    device: str = typer.Option(
        "cpu", help="Where the ground-truth model runs: 'cpu', 'cuda' or 'auto' (GPU if present). Default: cpu."
    ),
    family: str = typer.Option(
        "energy",
        help="Ground-truth model: 'energy' (Gabor simple, complex and direction-selective cells with contrast "
        "normalisation) or 'cascade' (adds surround and cross-orientation suppression, end-stopped, multi-subunit "
        "and ON/OFF centre-surround cells, contrast adaptation over 0.5-1.5 s, running that suppresses some cells "
        "and an unobserved shared brain state). Default: energy.",
    ),
    workers: int = typer.Option(
        0,
        help="With --executor local: processes simulating mice in parallel; 0 = automatic (one per CPU core for the "
        "default and paper presets on the CPU). The files are byte-identical for any executor, worker count and "
        "OMP_NUM_THREADS. Default: 0.",
    ),
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Simulate mice watching natural-like movies; write Sensorium-layout recordings and the true model.

    One task per mouse: the mice are written into a hidden sibling of OUT (.OUT.partial) and OUT appears when all
    are done; an interrupted simulation resumes with the same command, keeping the mice that are finished.
    """
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise V1ReconError(f"{out}: output already exists; pass --overwrite to replace it.")
    import os

    from v1recon.sim.simulate import PRESETS, simulate

    p = PRESETS.get(preset)
    if p is not None:
        cores = os.cpu_count() or 1
        minutes = p.estimated_seconds(mice, workers or min(mice, cores)) / 60
        typer.echo(
            f"preset {preset}, {family} family: {mice} mice x {p.n_neurons} neurons x {p.n_trials} trials of "
            f"{p.n_frames} frames; "
            f"needs about {mice * p.disk_bytes() / 1e9:.2f} GB on disk and {minutes:.1f} min on {cores} idle CPU cores"
        )
    result = simulate(
        out,
        preset,
        mice,
        seed,
        overwrite=overwrite,
        figure=figure,
        log=typer.echo,
        device=device,
        workers=workers,
        family=family,
        executor=executor,
        address=address,
    )
    typer.echo(f"wrote {out} ({result['disk_bytes'] / 1e9:.2f} GB) in {result['seconds']} s")
