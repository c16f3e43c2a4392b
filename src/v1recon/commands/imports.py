"""`v1recon import nwb|suite2p ...` (recordings from where labs keep them, into the Sensorium layout) and
`v1recon export nwb ...` (reconstructions into an NWB file). NWB needs the extra: pip install -e '.[nwb]'."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app

import_app = typer.Typer(
    help="Convert a recording into one mouse folder in the Sensorium layout (OUT/<name>/) with its provenance "
    "beside it (OUT/<name>.json), so that train, evaluate, mask and reconstruct read it like any other.",
    no_args_is_help=True,
)
export_app = typer.Typer(help="Write results in the formats labs archive.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")

OUT_ARG = typer.Argument(..., help="Data folder that receives the mouse folder OUT/<name>/ and OUT/<name>.json.")
NAME_OPT = typer.Option(None, "--name", help="Name of the mouse folder (default: taken from the input's name).")
TRIAL_SECONDS_OPT = typer.Option(
    10.0, "--trial-seconds", min=1.04, help="Length of the fixed-length trials, in seconds (default: 10)."
)
MAX_TRIAL_OPT = typer.Option(
    60.0,
    "--max-trial-seconds",
    help="Trials from a table that last longer than this, in seconds, are cut into --trial-seconds pieces "
    "(default: 60).",
)
TEST_FRACTION_OPT = typer.Option(
    0.5,
    "--max-test-fraction",
    help="At most this fraction of the trials goes to the test tiers (repeated movies, most repeated first; "
    "default: 0.5).",
)
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace an existing mouse folder of that name (default: off).")
PROGRESS_OPT = typer.Option(True, "--progress/--no-progress", help="Show progress bars (default: on).")


def _report(folder: Path, provenance: dict) -> None:
    choices = provenance["choices"]
    tiers = ", ".join(f"{n} {tier}" for tier, n in sorted(choices["tiers"]["counts"].items()))
    absent = choices["behaviour"]["absent_in_trials"]
    typer.echo(
        f"wrote {folder}: {len(provenance['trials'])} trials ({tiers}), {choices['responses']['neurons']} neurons, "
        f"responses from {choices['responses']['series']} ({choices['responses']['kind']}), stimulus from "
        f"{choices['stimulus']['series']}; provenance in {folder.with_suffix('.json')}"
    )
    if absent:
        channels = ", ".join(f"{c} ({n} trials)" for c, n in absent.items())
        typer.echo(
            f"behaviour not recorded: {channels}; filled when read with the recording's mean (0 where no trial "
            f"recorded it)"
        )


@import_app.command("nwb")
def import_nwb_command(
    file: Path = typer.Argument(..., help="The NWB file (.nwb) of one two-photon session."),
    out: Path = OUT_ARG,
    name: str = NAME_OPT,
    responses: str = typer.Option(
        None,
        "--responses",
        help="Series of the responses, by name or path (default: a RoiResponseSeries; deconvolved events "
        "preferred, else dF/F, else fluorescence).",
    ),
    stimulus: str = typer.Option(
        None,
        "--stimulus",
        help="Stimulus series, by name or path: an OpticalSeries, ImageSeries or IndexSeries (default: the one under "
        "stimulus/).",
    ),
    trials: str = typer.Option(
        "auto",
        "--trials",
        help="Where trials come from: auto (the trials table, else epochs, else fixed pieces), fixed, or the name "
        "of an interval table (default: auto).",
    ),
    running: str = typer.Option(
        None, "--running", help="Running-speed series by name or path, or none (default: found by its name)."
    ),
    pupil_size: str = typer.Option(
        None, "--pupil-size", help="Pupil size (area or diameter) series, or none (default: found by its name)."
    ),
    pupil_position: str = typer.Option(
        None,
        "--pupil-position",
        help="Pupil position series, (samples, 2) x and y, or none (default: found by its name).",
    ),
    all_rois: bool = typer.Option(
        False, "--all-rois", help="Keep ROIs marked 0 in an iscell column too (default: cells only)."
    ),
    trial_seconds: float = TRIAL_SECONDS_OPT,
    max_trial_seconds: float = MAX_TRIAL_OPT,
    max_test_fraction: float = TEST_FRACTION_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
) -> None:
    """Import an NWB two-photon session: responses, the movie shown, behaviour, all on a 30 Hz clock."""
    from v1recon.data.nwb import import_nwb

    folder, provenance = import_nwb(
        file, out, name=name, responses=responses, stimulus=stimulus, trials=trials, running=running,
        pupil_size=pupil_size, pupil_position=pupil_position, cells_only=not all_rois, trial_seconds=trial_seconds,
        max_trial_seconds=max_trial_seconds, max_test_fraction=max_test_fraction, overwrite=overwrite,
        progress=progress,
    )  # fmt: skip
    _report(folder, provenance)


@import_app.command("suite2p")
def import_suite2p_command(
    plane: Path = typer.Argument(..., help="A suite2p plane folder (e.g. suite2p/plane0) with F.npy or spks.npy."),
    out: Path = OUT_ARG,
    stimulus: Path = typer.Option(
        ..., "--stimulus", help="The movie shown, .npy of (frames, height, width) or (frames, height, width, 3)."
    ),
    frame_times: Path = typer.Option(
        ..., "--frame-times", help="Onset of each movie frame in seconds on the imaging clock, .npy of (frames,)."
    ),
    name: str = NAME_OPT,
    responses: str = typer.Option(
        "auto",
        "--responses",
        help="spks (deconvolved), F (fluorescence minus neuropil) or auto (spks when present; default: auto).",
    ),
    neucoeff: float = typer.Option(
        None, "--neucoeff", help="Neuropil coefficient for F (default: ops.npy's neucoeff, else 0.7)."
    ),
    fs: float = typer.Option(None, "--fs", help="Imaging frame rate in Hz (default: ops.npy's fs)."),
    imaging_times: Path = typer.Option(
        None, "--imaging-times", help="Time of each imaging frame in seconds, .npy of (frames,) (default: k / fs)."
    ),
    trials: Path = typer.Option(
        None, "--trials", help="Trial start and stop times in seconds, .npy of (trials, 2) (default: fixed pieces)."
    ),
    all_rois: bool = typer.Option(False, "--all-rois", help="Keep ROIs that iscell.npy rejects (default: cells only)."),
    pixel_size: float = typer.Option(
        None, "--pixel-size", help="Microns per imaging pixel, for the neuron coordinates (default: pixels)."
    ),
    trial_seconds: float = TRIAL_SECONDS_OPT,
    max_trial_seconds: float = MAX_TRIAL_OPT,
    max_test_fraction: float = TEST_FRACTION_OPT,
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = PROGRESS_OPT,
) -> None:
    """Import a suite2p plane folder with the movie that was shown and the times of its frames."""
    from v1recon.data.suite2p import import_suite2p

    folder, provenance = import_suite2p(
        plane, out, stimulus=stimulus, frame_times=frame_times, name=name, responses=responses, neucoeff=neucoeff,
        fs=fs, imaging_times=imaging_times, trials=trials, all_rois=all_rois, pixel_size=pixel_size,
        trial_seconds=trial_seconds, max_trial_seconds=max_trial_seconds, max_test_fraction=max_test_fraction,
        overwrite=overwrite, progress=progress,
    )  # fmt: skip
    _report(folder, provenance)


@export_app.command("nwb")
def export_nwb_command(
    recon_dir: Path = typer.Argument(..., help="Output folder of `v1recon reconstruct` (holds summary.json)."),
    out: Path = typer.Argument(..., help="The NWB file to write (.nwb)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file (default: off)."),
) -> None:
    """Write reconstructions (and confidence, where present) as ImageSeries, with the run's provenance."""
    from v1recon.data.nwb_export import export_nwb

    result = export_nwb(recon_dir, out, overwrite=overwrite)
    session = f", on the clock of session {result['session']}" if result["session"] else ""
    typer.echo(f"wrote {out}: {result['trials']} reconstructed trials{session}")
