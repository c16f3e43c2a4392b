"""`v1recon analyse rf-mapping RUN` and `v1recon analyse baselines RUN`: in-silico receptive-field mapping through
the ensemble, and the other families of reconstruction methods compared with input optimisation."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.commands.analyse import (
    DATA_OPT,
    DEVICE_OPT,
    ITER_OPT,
    METHOD_OPT,
    MOUSE_OPT,
    OVERWRITE_OPT,
    PROGRESS_OPT,
    RUN_ARG,
    SEED_OPT,
    analyse_app,
    run_and_print,
    settings,
)
from v1recon.experiments import registry as R


@analyse_app.command("rf-mapping")
def rf_mapping(
    run: Path = RUN_ARG,
    stride: int = typer.Option(
        R.RFMapping.stride,
        "--stride",
        min=1,
        help="Probe every STRIDE-th row and column, pixels (default: 2, i.e. 1152 probes; 1 = all 4608 probes "
        "of the published 36 x 64 x ON/OFF map).",
    ),
    batch_size: int = typer.Option(R.RFMapping.batch_size, "--batch-size", min=1, help="Probe clips per forward pass."),
    true_model: bool = typer.Option(
        R.RFMapping.true_model,
        "--true-model/--no-true-model",
        help="In silico: also map the true model with the same probes (the method's own accuracy) (default: on).",
    ),
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    device: str = DEVICE_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
) -> None:
    """In-silico receptive-field mapping with sparse noise (the published stimulus): single ON (255) or OFF (0)
    pixels on grey, 15 frames before / during / after, fed to the ensemble with constant behaviour; RF = (stim -
    pre) / pre thresholded at 0.1, smoothed (sigma 2 px), max-normalised. Writes per-neuron RFs, the population RF
    and its agreement with the alpha mask, and in silico the agreement with the true RFs.

    CPU budget (2 cores, 1000 neurons): with --stride 2 (1152 probes of 45 frames) about 2.5 minutes through the
    true model and a few minutes through three fast3d models; --stride 1 takes 4x as long. A GPU maps the full
    published grid in well under a minute.
    """
    config = R.RFMapping(stride=stride, batch_size=batch_size, true_model=true_model)
    run_and_print("rf-mapping", run, config, settings(data, mouse, device=device, progress=progress), overwrite)


@analyse_app.command("baselines")
def baselines(
    run: Path = RUN_ARG,
    trials: int = typer.Option(
        None,
        "--trials",
        min=1,
        help="Held-out trials to evaluate (default: the trials under RUN/reconstructions for this mouse, or 6 "
        "distinct test movies when there are none).",
    ),
    lags: int = typer.Option(
        R.Baselines.lags, "--lags", min=0, help="Decoder: frames of future activity per decoded frame, 0..LAGS."
    ),
    components: int = typer.Option(
        R.Baselines.components, "--components", min=1, help="Decoder: principal components of the responses kept."
    ),
    max_train_trials: int = typer.Option(
        None, "--max-train-trials", min=2, help="Fit on at most this many training trials (default: all)."
    ),
    reconstruct: bool = typer.Option(
        R.Baselines.reconstruct,
        "--reconstruct/--no-reconstruct",
        help="When RUN/reconstructions holds none of these trials, reconstruct them here by input optimisation "
        "(ensemble, and the true model in silico) (default: on).",
    ),
    data: Path = DATA_OPT,
    mouse: str = MOUSE_OPT,
    method: str = METHOD_OPT,
    iterations: int = ITER_OPT,
    device: str = DEVICE_OPT,
    seed: int = SEED_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
) -> None:
    """Baselines on the same held-out trials and metrics as input optimisation: a ridge decoder from time-lagged
    population activity (responses at t..t+LAGS -> frame t; PCA first; regularisation chosen on validation movies)
    and an invertible linear model (activity-weighted sum of the RF-mapping RFs, fitted lag, gain and offset;
    needs `v1recon analyse rf-mapping` first). One table and one figure; the result says per metric where input
    optimisation wins.

    CPU budget (2 cores, 1000 neurons, 200 training trials of 300 frames): fitting both baselines takes a few
    minutes; reconstructing 6 trials here (only when none exist) adds about 5 minutes with three fast3d models.
    """
    config = R.Baselines(trials, lags, components, max_train_trials, reconstruct)
    common = settings(data, mouse, method, iterations, device, seed, progress)
    run_and_print("baselines", run, config, common, overwrite)
