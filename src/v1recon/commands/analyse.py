"""`v1recon analyse NAME RUN`: the paper's analyses, each writing RUN/analyses/<name>/ (result.npz, result.json,
figure.png). Other modules add analyses to `analyse_app`."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon import FAST_MAX_STEPS, PUBLISHED_ITERATIONS
from v1recon.cli import app

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
    60,
    "--iterations",
    min=1,
    help=f"Optimiser steps per reconstruction (default: 60, sized for a CPU; the fast method's own limit is "
    f"{FAST_MAX_STEPS} and it stops earlier on a plateau; the paper method publishes {PUBLISHED_ITERATIONS}).",
)
FRAMES_OPT = typer.Option(
    90,
    "--frames",
    min=0,
    help="Cut each held-out trial to its first N frames (frames 30.. are scored) (default: 90, sized for a CPU; "
    "0 = whole trials, as published).",
)
DEVICE_OPT = typer.Option("auto", "--device", help="auto (GPU if present), cpu, cuda or cuda:N.")
SEED_OPT = typer.Option(0, "--seed", help="Seed of stimuli, neuron subsets and the optimiser.")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace RUN/analyses/<name>/ if it exists.")
PROGRESS_OPT = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
ORACLE_OPT = typer.Option(
    True, "--oracle/--no-oracle", help="In silico: also reconstruct through the true model (doubles the time)."
)


def _trials_opt(default: int = 4) -> typer.Option:
    return typer.Option(
        default, "--trials", min=1, help=f"Held-out trials (distinct test movies) to reconstruct (default: {default})."
    )


def _execute(name: str, module, run: Path, common_opts: dict, config: dict, body) -> None:
    """Open the run, run `body(setup, recon_config)` -> (arrays, summary), write the folder, print the findings."""
    from v1recon.experiments import common
    from v1recon.jobs.mouse import open_setup

    common.check_output(run, name, common_opts["overwrite"])
    setup = open_setup(
        run, common_opts["data"], common_opts["mouse"], common_opts["device"], need_mask=name == "masks", log=_log
    )
    recon = common.recon_config(common_opts["method"], common_opts["iterations"], common_opts["seed"], 8)
    timer = common.Timer()
    arrays, summary = body(setup, recon)
    seconds = timer()
    config = {**config, **{k: v for k, v in common_opts.items() if k != "overwrite"}, "recon": recon.to_dict()}
    out = common.write_analysis(
        run,
        name,
        arrays,
        summary,
        config,
        lambda path: module.draw(path, arrays, summary),
        setup,
        seconds,
        common_opts["overwrite"],
    )
    for row in summary.get("expected", []):
        verdict = {True: "yes", False: "NO", None: "not tested"}[row["holds"]]
        typer.echo(f"{row['effect']}: {verdict} ({row['why']})")
    typer.echo(f"wrote {out} in {seconds:.0f} s")


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


def _opts(data, mouse, method, iterations, device, seed, overwrite, progress) -> dict:
    return {
        "data": data,
        "mouse": mouse,
        "method": method,
        "iterations": iterations,
        "device": device,
        "seed": seed,
        "overwrite": overwrite,
        "progress": progress,
    }


@analyse_app.command("resolution-noise")
def resolution_noise(
    run: Path = RUN_ARG,
    spatial: str = typer.Option(
        "0,1,2,8",
        "--spatial",
        help="Spatial length constants, pixels (default: 0,1,2,8; published: 0,1,2,4,8,16,32).",
    ),
    temporal: str = typer.Option(
        "1,4", "--temporal", help="Temporal length constants, frames (default: 1,4; published: 0,1,2,4,8,16,32)."
    ),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Noise movies per grid cell (default: 1; published: 5)."),
    invert: bool = typer.Option(
        True, "--invert/--no-invert", help="Add the phase-inverted copy (255 - v) of every movie (published: yes)."
    ),
    null_movies: int = typer.Option(
        20, "--null-movies", min=1, help="Fresh noise movies per cell for the significance test."
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
) -> None:
    """Resolution from Gaussian-noise movies (60 frames, constant behaviour) reconstructed from the ensemble's
    predicted activity; heat map of the video correlation over spatial x temporal length constants, and a test of
    each cell against unrelated stimuli of the same statistics.

    CPU budget (measured with 2 fast3d models, 1000 neurons): the default grid (3 x 2 cells, 1 repeat + inverted
    copy = 12 movies, with the true model) takes about 8 CPU-minutes (6 movies took 234 CPU-s), i.e. about 4-5
    minutes on an idle 2-core CPU. The published grid (--full: 49 cells x 10 movies = 490 movies, --iterations 200)
    is sized for a GPU.
    """
    from v1recon.experiments import common
    from v1recon.experiments import resolution_noise as mod

    if full:
        spatial = temporal = ",".join(str(c) for c in mod.FULL_CONSTANTS)
        repeats, invert = 5, True
    s_vals, t_vals = common.parse_floats(spatial, "--spatial"), common.parse_floats(temporal, "--temporal")
    config = {"spatial": s_vals, "temporal": t_vals, "repeats": repeats, "invert": invert, "null_movies": null_movies}
    opts = _opts(data, mouse, method, iterations, device, seed, overwrite, progress)
    _execute(
        mod.NAME,
        mod,
        run,
        opts,
        config,
        lambda setup, rc: mod.run(setup, s_vals, t_vals, repeats, invert, null_movies, rc, seed, oracle, progress),
    )


@analyse_app.command("gratings")
def gratings(
    run: Path = RUN_ARG,
    sf: str = typer.Option(
        "0.25,0.0625",
        "--sf",
        help="Spatial frequencies, cycles/px (published: 0.5,0.25,0.125,0.0625).",
    ),
    tf: str = typer.Option(
        "3.75,0.94,0",
        "--tf",
        help="Temporal frequencies, Hz (published: 15,7.5,3.75,1.875,0.94,0.47,0).",
    ),
    directions: str = typer.Option(
        "0,90", "--directions", help="Directions of motion, degrees (default: 0,90; published: 0,90,180,270)."
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
) -> None:
    """Resolution from drifting gratings (60 frames, constant behaviour) reconstructed from the ensemble's predicted
    activity; map of the video correlation over spatial x temporal frequency (mean over directions).

    CPU budget (2 fast3d models, 1000 neurons): the default (2 SF x 2 TF x 2 directions = 8 movies, with the true
    model) takes about 5 CPU-minutes (2-3 minutes on an idle 2-core CPU); the published grid (--full, 112 movies)
    is sized for a GPU.
    """
    from v1recon.experiments import common
    from v1recon.experiments import gratings as mod

    if full:
        sf, tf = ",".join(map(str, mod.FULL_SF)), ",".join(map(str, mod.FULL_TF))
        directions = ",".join(map(str, mod.DIRECTIONS))
    sf_v, tf_v = common.parse_floats(sf, "--sf"), common.parse_floats(tf, "--tf")
    dirs = common.parse_floats(directions, "--directions")
    config = {"sf": sf_v, "tf": tf_v, "directions": dirs}
    opts = _opts(data, mouse, method, iterations, device, seed, overwrite, progress)
    _execute(mod.NAME, mod, run, opts, config, lambda setup, rc: mod.run(setup, sf_v, tf_v, dirs, rc, oracle, progress))


@analyse_app.command("population")
def population(
    run: Path = RUN_ARG,
    fractions: str = typer.Option(
        "1,0.5,0.25,0.125", "--fractions", help="Fractions of neurons kept (default: 1,0.5,0.25,0.125, as published)."
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
) -> None:
    """Population ablation: reconstruct held-out trials (recorded activity) from nested random neuron subsets, the
    same subset for every model; curve with a Friedman test and paired Wilcoxon tests across trials.

    CPU budget (2 fast3d models, 1000 neurons): the default (4 trials cut to 90 frames x 4 fractions = 16
    reconstructions of ~36 CPU-s) takes about 10 CPU-minutes (5 minutes on an idle 2-core CPU); whole 300-frame
    trials (--frames 0) cost about 3.5x, the published setting (10 movies, 7 models, 1000 steps) needs a GPU.
    """
    from v1recon.experiments import common
    from v1recon.experiments import population as mod

    fr = common.parse_floats(fractions, "--fractions")
    config = {"fractions": fr, "zero_dropped": zero_dropped, "trials": trials, "frames": frames}
    opts = _opts(data, mouse, method, iterations, device, seed, overwrite, progress)

    def body(setup, rc):
        ids = common.held_out_trials(setup, trials)
        return mod.run(setup, ids, fr, rc, zero_dropped, seed, progress, frames)

    _execute(mod.NAME, mod, run, opts, config, body)


@analyse_app.command("ensemble-size")
def ensemble_size(
    run: Path = RUN_ARG,
    trials: int = _trials_opt(),
    frames: int = FRAMES_OPT,
    max_subsets: int = typer.Option(10, "--max-subsets", min=1, help="Model subsets averaged per ensemble size."),
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
) -> None:
    """Ensemble size: every model reconstructs held-out trials (recorded activity) alone; ensembles of 1..K models
    average those reconstructions (with and without the published blur); curve with statistics across trials.

    CPU budget: the default (4 trials cut to 90 frames, each model once) took 146 CPU-s with 2 fast3d models of
    1000 neurons (about 1.5 minutes on an idle 2-core CPU); it grows linearly with the number of models.
    """
    from v1recon.experiments import common
    from v1recon.experiments import ensemble_size as mod

    config = {"trials": trials, "frames": frames, "max_subsets": max_subsets}
    opts = _opts(data, mouse, method, iterations, device, seed, overwrite, progress)

    def body(setup, rc):
        return mod.run(setup, common.held_out_trials(setup, trials), rc, max_subsets, seed, progress, frames)

    _execute(mod.NAME, mod, run, opts, config, body)


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
) -> None:
    """Update masks: reconstruct held-out trials with no mask, the standard mask (alpha >= 0.5) and the strict mask
    (alpha >= 1), all scored on the same evaluation mask. Needs RUN/masks/<mouse>.npz (`v1recon mask`).

    CPU budget (2 fast3d models, 1000 neurons): the default (4 trials cut to 90 frames x 3 masks) takes about 7
    CPU-minutes (3-4 minutes on an idle 2-core CPU).
    """
    from v1recon.experiments import common
    from v1recon.experiments import update_masks as mod

    config = {"trials": trials, "frames": frames}
    opts = _opts(data, mouse, method, iterations, device, seed, overwrite, progress)

    def body(setup, rc):
        return mod.run(setup, common.held_out_trials(setup, trials), rc, progress, frames)

    _execute(mod.NAME, mod, run, opts, config, body)


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
) -> None:
    """Upper bounds: reconstruct held-out trials from recorded activity and from the ensemble's own predicted
    activity; in silico also through the true model (oracle: recorded responses; ceiling: its own noise-free ones).

    CPU budget: the default (4 trials cut to 90 frames x 4 conditions, in silico) took 386 CPU-s with 2 fast3d
    models of 1000 neurons (about 3-4 minutes on an idle 2-core CPU).
    """
    from v1recon.experiments import common
    from v1recon.experiments import upper_bounds as mod

    config = {"trials": trials, "frames": frames}
    opts = _opts(data, mouse, method, iterations, device, seed, overwrite, progress)

    def body(setup, rc):
        return mod.run(setup, common.held_out_trials(setup, trials), rc, progress, frames)

    _execute(mod.NAME, mod, run, opts, config, body)
