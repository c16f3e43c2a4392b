"""`v1recon analyse NAME RUN`: the paper's analyses, each writing RUN/analyses/<name>/ (result.npz, result.json,
figure.png). Other modules add analyses to `analyse_app`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from v1recon import FAST_MAX_STEPS, PUBLISHED_ITERATIONS
from v1recon.cli import app
from v1recon.commands.options import ADDRESS_OPT, EXECUTOR_OPT
from v1recon.experiments import registry as R

analyse_app = typer.Typer(
    help="The paper's analyses on a trained run: resolution (noise, gratings), population, ensemble size, update "
    "masks, upper bounds. Each writes RUN/analyses/<name>/result.npz, result.json and figure.png.",
    no_args_is_help=True,
)
app.add_typer(analyse_app, name="analyse")

RUN_ARG = typer.Argument(..., help="Run folder written by `v1recon train` (holds run.json).")
DATA_OPT = typer.Option(None, "--data", help="Data folder (default: the one the run was trained on).")
MOUSE_OPT = typer.Option(None, "--mouse", help="Mouse to analyse (default: the run's first mouse).")
METHOD_OPT = typer.Option("fast", "--method", help="Reconstruction method: fast (default) or paper (published loop).")
ITER_OPT = typer.Option(
    R.CPU_ITERATIONS,
    "--iterations",
    min=1,
    help=f"Optimiser steps per reconstruction (default: {R.CPU_ITERATIONS}, sized for a CPU; the fast method's own "
    f"limit is {FAST_MAX_STEPS} and it stops earlier on a plateau; the paper method publishes {PUBLISHED_ITERATIONS}).",
)
FRAMES_OPT = typer.Option(
    R.CPU_FRAMES,
    "--frames",
    min=0,
    help=f"Cut each held-out trial to its first N frames (frames 30.. are scored) (default: {R.CPU_FRAMES}, sized for "
    "a CPU; 0 = whole trials, as published).",
)
DEVICE_OPT = typer.Option("auto", "--device", help="auto (GPU if present), cpu, cuda or cuda:N.")
SEED_OPT = typer.Option(0, "--seed", help="Seed of stimuli, neuron subsets and the optimiser.")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace RUN/analyses/<name>/ if it exists.")
PROGRESS_OPT = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
ORACLE_OPT = typer.Option(
    True, "--oracle/--no-oracle", help="In silico: also reconstruct through the true model (doubles the time)."
)


def _trials_opt(default: int = R.CPU_TRIALS) -> typer.Option:
    return typer.Option(
        default,
        "--trials",
        min=1,
        help=f"Held-out trials (distinct test movies) to reconstruct (default: {default}; published: "
        f"{R.PUBLISHED_TRIALS}).",
    )


def csv(values) -> str:
    """(0.0, 1.0, 0.25) -> '0,1,0.25': a tuple default as the option text."""
    return ",".join(f"{v:g}" for v in values)


def settings(data=None, mouse=None, method="fast", iterations=R.CPU_ITERATIONS, device="auto", seed=0, progress=True):
    """The options every analysis shares, as registry.Settings."""
    return R.Settings(data, mouse, method, iterations, device, seed, progress)


def run_and_print(
    name: str, run: Path, config, common: R.Settings, overwrite: bool, executor: str = "local", address=None
) -> None:
    """Run one analysis of the registry on RUN and print what it found and where it wrote."""
    result = R.run_analysis(run, name, config, common, overwrite, log=_log, executor=executor, address=address)
    for line in result.lines:
        typer.echo(line)
    typer.echo(f"wrote {result.folder} in {result.seconds:.0f} s")


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


def _floats(text: str, what: str) -> tuple[float, ...]:
    from v1recon.experiments.common import parse_floats

    return tuple(parse_floats(text, what))


@analyse_app.command("resolution-noise")
def resolution_noise(
    run: Path = RUN_ARG,
    spatial: str = typer.Option(
        csv(R.ResolutionNoise.spatial),
        "--spatial",
        help=f"Spatial length constants, pixels (published: {csv(R.NOISE_CONSTANTS)}).",
    ),
    temporal: str = typer.Option(
        csv(R.ResolutionNoise.temporal),
        "--temporal",
        help=f"Temporal length constants, frames (published: {csv(R.NOISE_CONSTANTS)}).",
    ),
    repeats: int = typer.Option(
        R.ResolutionNoise.repeats,
        "--repeats",
        min=1,
        help=f"Noise movies per grid cell (published: {R.ResolutionNoise.published().repeats}).",
    ),
    invert: bool = typer.Option(
        R.ResolutionNoise.invert,
        "--invert/--no-invert",
        help="Add the phase-inverted copy (255 - v) of every movie (published: yes).",
    ),
    null_movies: int = typer.Option(
        R.ResolutionNoise.null_movies,
        "--null-movies",
        min=1,
        help="Fresh noise movies per cell for the significance test.",
    ),
    full: bool = typer.Option(False, "--full", help="The published grid: 7 x 7 constants, 5 repeats (GPU-sized)."),
    oracle: bool = ORACLE_OPT,
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Resolution from Gaussian-noise movies (60 frames, constant behaviour) reconstructed from the ensemble's
    predicted activity; heat map of the video correlation over spatial x temporal length constants, and a test of
    each cell against unrelated stimuli of the same statistics.

    CPU budget (measured with 2 fast3d models, 1000 neurons): the default grid (3 x 2 cells, 1 repeat + inverted
    copy = 12 movies, with the true model) takes about 8 CPU-minutes (6 movies took 234 CPU-s), i.e. about 4-5
    minutes on an idle 2-core CPU. The published grid (--full: 49 cells x 10 movies = 490 movies, --iterations 200)
    is sized for a GPU.
    """
    if full:
        config = replace(R.ResolutionNoise.published(), null_movies=null_movies, oracle=oracle)
    else:
        grid = {"spatial": _floats(spatial, "--spatial"), "temporal": _floats(temporal, "--temporal")}
        config = R.ResolutionNoise(**grid, repeats=repeats, invert=invert, null_movies=null_movies, oracle=oracle)
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("resolution-noise", run, config, common, overwrite, executor, address)


@analyse_app.command("gratings")
def gratings(
    run: Path = RUN_ARG,
    sf: str = typer.Option(
        csv(R.Gratings.sf), "--sf", help=f"Spatial frequencies, cycles/px (published: {csv(R.GRATING_SF)})."
    ),
    tf: str = typer.Option(
        csv(R.Gratings.tf), "--tf", help=f"Temporal frequencies, Hz (published: {csv(R.GRATING_TF)})."
    ),
    directions: str = typer.Option(
        csv(R.Gratings.directions),
        "--directions",
        help=f"Directions of motion, degrees (published: {csv(R.GRATING_DIRECTIONS)}).",
    ),
    full: bool = typer.Option(
        False, "--full", help="The published grid: 4 SF x 7 TF x 4 directions = 112 movies (GPU-sized)."
    ),
    oracle: bool = ORACLE_OPT,
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Resolution from drifting gratings (60 frames, constant behaviour) reconstructed from the ensemble's predicted
    activity; map of the video correlation over spatial x temporal frequency (mean over directions).

    CPU budget (2 fast3d models, 1000 neurons): the default (2 SF x 2 TF x 2 directions = 8 movies, with the true
    model) takes about 5 CPU-minutes (2-3 minutes on an idle 2-core CPU); the published grid (--full, 112 movies)
    is sized for a GPU.
    """
    if full:
        config = replace(R.Gratings.published(), oracle=oracle)
    else:
        grid = {"sf": _floats(sf, "--sf"), "tf": _floats(tf, "--tf"), "directions": _floats(directions, "--directions")}
        config = R.Gratings(**grid, oracle=oracle)
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("gratings", run, config, common, overwrite, executor, address)


@analyse_app.command("population")
def population(
    run: Path = RUN_ARG,
    fractions: str = typer.Option(
        csv(R.Population.fractions), "--fractions", help="Fractions of neurons kept (default as published)."
    ),
    zero_dropped: bool = typer.Option(
        False,
        "--zero-dropped",
        help="Published variant: keep dropped neurons in the loss with target 0 (default: they leave the loss).",
    ),
    trials: int = _trials_opt(),
    frames: int = FRAMES_OPT,
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Population ablation: reconstruct held-out trials (recorded activity) from nested random neuron subsets, the
    same subset for every model; curve with a Friedman test and paired Wilcoxon tests across trials.

    CPU budget (2 fast3d models, 1000 neurons): the default (4 trials cut to 90 frames x 4 fractions = 16
    reconstructions of ~36 CPU-s) takes about 10 CPU-minutes (5 minutes on an idle 2-core CPU); whole 300-frame
    trials (--frames 0) cost about 3.5x, the published setting (10 movies, 7 models, 1000 steps) needs a GPU.
    """
    config = R.Population(trials, frames, _floats(fractions, "--fractions"), zero_dropped)
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("population", run, config, common, overwrite, executor, address)


@analyse_app.command("ensemble-size")
def ensemble_size(
    run: Path = RUN_ARG,
    trials: int = _trials_opt(),
    frames: int = FRAMES_OPT,
    max_subsets: int = typer.Option(
        R.EnsembleSize.max_subsets, "--max-subsets", min=1, help="Model subsets averaged per ensemble size."
    ),
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Ensemble size: every model reconstructs held-out trials (recorded activity) alone; ensembles of 1..K models
    average those reconstructions (with and without the published blur); curve with statistics across trials.

    CPU budget: the default (4 trials cut to 90 frames, each model once) took 146 CPU-s with 2 fast3d models of
    1000 neurons (about 1.5 minutes on an idle 2-core CPU); it grows linearly with the number of models.
    """
    config = R.EnsembleSize(trials, frames, max_subsets)
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("ensemble-size", run, config, common, overwrite, executor, address)


@analyse_app.command("masks")
def masks(
    run: Path = RUN_ARG,
    trials: int = _trials_opt(),
    frames: int = FRAMES_OPT,
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Update masks: reconstruct held-out trials with no mask, the standard mask (alpha >= 0.5) and the strict mask
    (alpha >= 1), all scored on the same evaluation mask. Needs RUN/masks/<mouse>.npz (`v1recon mask`).

    CPU budget (2 fast3d models, 1000 neurons): the default (4 trials cut to 90 frames x 3 masks) takes about 7
    CPU-minutes (3-4 minutes on an idle 2-core CPU).
    """
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("masks", run, R.UpdateMasks(trials, frames), common, overwrite, executor, address)


@analyse_app.command("upper-bounds")
def upper_bounds(
    run: Path = RUN_ARG,
    trials: int = _trials_opt(),
    frames: int = FRAMES_OPT,
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
    executor: str = EXECUTOR_OPT,
    address: str = ADDRESS_OPT,
) -> None:
    """Upper bounds: reconstruct held-out trials from recorded activity and from the ensemble's own predicted
    activity; in silico also through the true model (oracle: recorded responses; ceiling: its own noise-free ones).

    CPU budget: the default (4 trials cut to 90 frames x 4 conditions, in silico) took 386 CPU-s with 2 fast3d
    models of 1000 neurons (about 3-4 minutes on an idle 2-core CPU).
    """
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("upper-bounds", run, R.UpperBounds(trials, frames), common, overwrite, executor, address)
