"""`v1recon stream RUN --trial ID`: replay a recorded trial at its real rate and reconstruct it as it arrives."""

from __future__ import annotations

from pathlib import Path

import typer

from v1recon.cli import app
from v1recon.commands.options import DEVICE_OPT

# v1recon.recon.streaming.StreamSettings' defaults, repeated so that --help needs no torch (a test keeps them equal)
WINDOW, STEPS = 24, 4


@app.command("stream")
def stream(
    run: Path = typer.Argument(..., help="Run folder written by `v1recon train` (holds run.json and models/)."),
    trial: int = typer.Option(..., "--trial", help="Id of the recorded trial to replay (any tier with responses)."),
    data: Path = typer.Option(
        None, "--data", help="A mouse folder or a folder of mouse folders (default: the data the run was trained on)."
    ),
    mouse: str = typer.Option(None, "--mouse", help="Which of the run's mice (default: the first found in --data)."),
    chunk: int = typer.Option(
        8, "--chunk", help="Frames per push, i.e. how often the reconstructor is fed (default 8 = 267 ms at 30 Hz)."
    ),
    window: int = typer.Option(
        WINDOW,
        "--window",
        help=f"Frames a frame stays free before it is final: the delay of every output frame (default {WINDOW} = "
        f"{1000 * WINDOW / 30:.0f} ms; keep it at least the response delay that the command prints, measured from "
        "the encoders).",
    ),
    steps: int = typer.Option(STEPS, "--steps", help=f"Optimiser steps per push (default {STEPS})."),
    as_fast_as_possible: bool = typer.Option(
        False,
        "--as-fast-as-possible",
        help="Push each chunk as soon as the previous one is done instead of when it would have been recorded "
        "(30 Hz; default: the real rate).",
    ),
    oracle: bool = typer.Option(
        False, "--oracle", help="Stream through the in-silico mouse's true model instead of the run's encoders."
    ),
    models: str = typer.Option(None, "--models", help="Comma-separated indices of trained models (default: all)."),
    offline: bool = typer.Option(
        True,
        "--offline/--no-offline",
        help="Compare with the offline fast reconstruction of the trial: found under RUN/reconstructions, else "
        "computed now with the reconstruct defaults (default: yes).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Output folder (default RUN/streams/<mouse>-trial-<id>, where the report finds it; the same command "
        "there does nothing, another configuration needs --overwrite).",
    ),
    movies: bool = typer.Option(True, "--movies/--no-movies", help="Write the MP4/GIF/PNG (default: yes)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (window offsets of windowed encoders, saddle jitter)."),
    device: str = DEVICE_OPT,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of another configuration in OUT."),
) -> None:
    """Replay one recorded trial chunk by chunk, at 30 Hz or as fast as possible, through the streaming
    reconstructor (a sliding window of the fast method, warm-started every push), with a live line of frames in and
    out, the delay and the real-time factor (seconds of compute per second of recording). Writes the streamed movie
    as the reconstruct command writes a trial: .npz, JSON sidecar (delay, latency, metrics against the truth and the
    offline reconstruction), side-by-side MP4/GIF (truth | streamed | offline | error) and a PNG summary."""
    from v1recon.errors import V1ReconError
    from v1recon.jobs.stream import run_stream
    from v1recon.recon.streaming import StreamSettings

    if window < 1 or steps < 1:
        raise V1ReconError(f"--window {window} and --steps {steps}: both must be at least 1.")
    settings = StreamSettings(window=window, steps=steps, seed=seed)
    side = run_stream(run, trial, data=data, mouse=mouse, out=out, chunk=chunk, settings=settings,
                      realtime=not as_fast_as_possible, oracle=oracle, models=models, offline=offline,
                      movies=movies, overwrite=overwrite, device=device)  # fmt: skip
    delay, cost, metrics, comparison = side["delay"], side["cost"], side["metrics"], side["offline"]
    typer.echo(
        f"delay {delay['frames']} frames ({delay['ms']:.0f} ms; response delay of the encoders "
        f"{delay['response_delay_frames']} frames = {delay['response_delay_ms']:.0f} ms), per push "
        f"{cost['latency_median_ms']:.0f} ms median / {cost['latency_p95_ms']:.0f} ms p95, real-time factor "
        f"{cost['realtime_factor']:.2f}"
    )
    line = f"video correlation {metrics['video_correlation']:.3f}"
    if comparison.get("source"):
        line += (
            f" (offline {comparison['offline_video_correlation']:.3f}; streamed vs offline "
            f"{comparison['streamed_vs_offline_correlation']:.3f})"
        )
    typer.echo(f"{line}; wrote {side['path']} and its sidecar" + (", movies and figure" if movies else ""))
