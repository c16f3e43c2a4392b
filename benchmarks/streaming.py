"""Streaming reconstruction: latency, real-time factor and quality against the offline `fast` method and the truth.

For each window length (frames = the delay of every output frame) and number of optimiser steps per push, the
script streams held-out trials of a trained run's mouse in chunks (default 8 frames) through the run's ensemble
(and, with --encoders ensemble,truth, through the in-silico mouse's true model) and reports:
- per-push latency, median and 95th percentile (wall clock), and the real-time factor: seconds of compute per
  second of recording, by the wall clock and by the process's CPU time (on a shared machine the CPU-time factor is
  what one uncontended core would take; with --threads 1 the two agree on an idle machine);
- the video correlation of the streamed movie with the offline `fast` reconstruction of the same trial (the
  `v1recon reconstruct` defaults, computed once and cached in OUT) and with the truth, inside the evaluation mask
  from frame 30 on, and the fraction of the offline correlation with the truth that streaming keeps (left out when
  the offline correlation with the truth is below 0.1; the plot then shows the correlation with the offline movie).
It prints the table, writes OUT/streaming.csv and OUT/streaming.png, and prints the encoders' measured response
delay and the cost per second of recording in window passes (v1recon.recon.objective), which carries the CPU
figures over to other hardware.

    python benchmarks/streaming.py --run RUN --out OUT                      # the run's ensemble, defaults below
    python benchmarks/streaming.py --run RUN --out OUT --windows 12,24 --steps 4,8 --trials 1 --encoders truth
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from v1recon import FRAME_RATE_HZ
from v1recon.jobs.stream import MIN_OFFLINE_R
from v1recon.recon.streaming import DELAY_FRACTION, StreamingReconstructor, StreamSettings, lag_quantile

COLUMNS = (
    "encoders",
    "window",
    "steps",
    "delay_ms",
    "latency_median_ms",
    "latency_p95_ms",
    "realtime_wall",
    "realtime_cpu",
    "passes_per_second",
    "r_vs_offline",
    "r_vs_truth",
    "offline_r_vs_truth",
    "fraction_of_offline",
)


def load_inputs(run: Path, data: Path | None, mouse: int, tier: str, n_trials: int, names: list[str], device):
    """Encoder sets by name, trials (video, responses, behaviour, id), update and evaluation masks of one mouse."""
    from v1recon.data import open_recordings
    from v1recon.recon.masks import load_mask, mask_path
    from v1recon.runs import load_encoders, load_run
    from v1recon.sim import load_truth

    info = load_run(run)
    recordings = [r for r in open_recordings(data or Path(info.data)) if r.name in info.mouse_names]
    rec = recordings[mouse]
    ids = rec.trial_ids(tier=tier, with_responses=True)[:n_trials]
    trials = [(rec.trial(t), t) for t in ids]
    sets = {}
    for name in names:
        if name == "ensemble":
            sets[name] = load_encoders(run, rec.name, device=device)
        elif name == "truth":
            truth = load_truth(rec.path)
            if truth is None:
                raise SystemExit(f"{rec.path}: no ground truth beside it; use --encoders ensemble.")
            sets[name] = [truth.to(device).eval()]
        else:
            raise SystemExit(f"--encoders: unknown set {name!r} (ensemble, truth)")
    path = mask_path(run, rec.name)
    mask = load_mask(path) if path.is_file() else None
    update = mask.update_mask if mask is not None and mask.update_mask.any() else np.ones((36, 64), bool)
    evaluation = mask.eval_mask if mask is not None and mask.eval_mask.any() else update
    return rec, sets, trials, update, evaluation


def offline(encoders, trial, trial_id, update, name, rec, out: Path) -> tuple[np.ndarray, float]:
    """The offline `fast` reconstruction (the reconstruct command's defaults) and its seconds, cached in OUT."""
    from v1recon.recon.reconstructor import ReconConfig, reconstruct_trials

    cache = out / f"offline-{name}-{rec.name}-trial-{trial_id}.npz"
    if cache.is_file():
        with np.load(cache) as f:
            return f["video"], float(f["seconds"])
    start = time.perf_counter()
    result = reconstruct_trials(encoders, [trial.responses], [trial.behaviour], update, ReconConfig())[0]
    seconds = time.perf_counter() - start
    np.savez(cache, video=result.video, seconds=seconds)
    return result.video, seconds


def stream_trial(encoders, trial, update, settings: StreamSettings, chunk: int, realtime: bool):
    """Stream one trial; returns (movie, wall seconds per push, CPU seconds per push, stream)."""
    st = StreamingReconstructor(encoders, update, settings)
    st.measure(trial.behaviour[:, 0])
    frames, wall, cpu = [], [], []
    n = trial.responses.shape[1]
    started = time.perf_counter()
    for i in range(0, n, chunk):
        if realtime:  # wait until the chunk would have been recorded
            time.sleep(max(0.0, started + min(i + chunk, n) / FRAME_RATE_HZ - time.perf_counter()))
        w, c = time.perf_counter(), time.process_time()
        frames.append(st.push(trial.responses[:, i : i + chunk], trial.behaviour[:, i : i + chunk]))
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    frames.append(st.finish())
    return np.concatenate(frames), np.asarray(wall), np.asarray(cpu), st


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r["encoders"] for r in rows})
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 3.6 * len(sets)), squeeze=False)
    for row_axes, name in zip(axes, sets, strict=True):
        mine = [r for r in rows if r["encoders"] == name]
        for window in sorted({r["window"] for r in mine}):
            line = sorted((r for r in mine if r["window"] == window), key=lambda r: r["steps"])
            steps = [r["steps"] for r in line]
            label = f"window {window} ({1000 * window / FRAME_RATE_HZ:.0f} ms)"
            quality = "fraction_of_offline" if np.isfinite(line[0]["fraction_of_offline"]) else "r_vs_offline"
            row_axes[0].plot(steps, [r[quality] for r in line], "o-", label=label)
            row_axes[1].plot(steps, [r["realtime_cpu"] for r in line], "o-", label=label)
        ylabel = "streamed / offline r with the truth" if quality == "fraction_of_offline" else "r streamed vs offline"
        if quality == "fraction_of_offline":
            row_axes[0].axhline(0.9, color="grey", ls=":", lw=1)  # the target: 0.9 of the offline correlation
        row_axes[0].set(xlabel="steps per push", ylabel=ylabel, title=name)
        row_axes[1].axhline(1.0, color="grey", ls=":", lw=1)
        row_axes[1].set(xlabel="steps per push", ylabel="real-time factor (CPU s per s)", yscale="log", title=name)
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a training run (read only)")
    p.add_argument("--data", type=Path, default=None, help="recording folder (default: the run's data)")
    p.add_argument("--out", type=Path, required=True, help="folder for the table, plot and offline cache")
    p.add_argument("--mouse", type=int, default=0, help="index of the run's mouse (default 0)")
    p.add_argument("--tier", default="final_test")
    p.add_argument("--trials", type=int, default=2, help="trials streamed per setting (default 2)")
    p.add_argument("--chunk", type=int, default=8, help="frames per push (default 8 = 267 ms)")
    p.add_argument("--windows", default="12,24,36", help="window lengths in frames (default 12,24,36)")
    p.add_argument("--steps", default="2,4,8", help="optimiser steps per push (default 2,4,8)")
    p.add_argument("--encoders", default="ensemble", help="ensemble, truth or both (default ensemble)")
    p.add_argument("--realtime", action="store_true", help="push at the recording's 30 Hz instead of at once")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    from v1recon.metrics.video import video_correlation

    names = [s.strip() for s in args.encoders.split(",") if s.strip()]
    from v1recon.device import pick_device

    device = pick_device(args.device)
    rec, sets, trials, update, evaluation = load_inputs(
        args.run, args.data, args.mouse, args.tier, args.trials, names, device
    )
    rows = []
    for name, encoders in sets.items():
        offl = [offline(encoders, t, tid, update, name, rec, args.out) for t, tid in trials]
        print(f"{name}: offline fast {np.mean([s for _, s in offl]):.0f} s per trial (wall, {args.threads} thread(s))")
        for window in [int(w) for w in args.windows.split(",")]:
            for steps in [int(s) for s in args.steps.split(",")]:
                settings = StreamSettings(window=window, steps=steps)
                walls, cpus, vs_off, vs_truth, off_truth, passes, seconds = [], [], [], [], [], 0.0, 0.0
                for (trial, _), (off_video, _) in zip(trials, offl, strict=True):
                    movie, wall, cpu, st = stream_trial(encoders, trial, update, settings, args.chunk, args.realtime)
                    walls.append(wall)
                    cpus.append(cpu)
                    vs_off.append(video_correlation(movie, off_video, evaluation))
                    vs_truth.append(video_correlation(movie, trial.video, evaluation))
                    off_truth.append(video_correlation(off_video, trial.video, evaluation))
                    passes += st.window_passes
                    seconds += trial.responses.shape[1] / FRAME_RATE_HZ
                wall, cpu = np.concatenate(walls), np.concatenate(cpus)
                row = {
                    "encoders": name,
                    "window": window,
                    "steps": steps,
                    "delay_ms": 1000 * window / FRAME_RATE_HZ,
                    "latency_median_ms": 1000 * float(np.median(wall)),
                    "latency_p95_ms": 1000 * float(np.percentile(wall, 95)),
                    "realtime_wall": float(wall.sum() / seconds),
                    "realtime_cpu": float(cpu.sum() / seconds),
                    "passes_per_second": passes / seconds,
                    "r_vs_offline": float(np.mean(vs_off)),
                    "r_vs_truth": float(np.mean(vs_truth)),
                    "offline_r_vs_truth": float(np.mean(off_truth)),
                }
                off_r = row["offline_r_vs_truth"]  # a ratio to a correlation near 0 says nothing
                row["fraction_of_offline"] = row["r_vs_truth"] / off_r if off_r >= MIN_OFFLINE_R else float("nan")
                rows.append(row)
                print(format_row(row), flush=True)
        d = lag_quantile(st.lags, DELAY_FRACTION)
        print(
            f"{name}: response delay {d} frames ({1000 * d / FRAME_RATE_HZ:.0f} ms; {DELAY_FRACTION:.0%} of a "
            f"frame's effect on the responses), temporal context {st.context} frames"
        )
    with (args.out / "streaming.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "streaming.png")
    print(f"\n{rec.name}, {len(trials)} trial(s), chunk {args.chunk} frames, {device}, {args.threads} thread(s)")
    print(HEADER)
    for row in rows:
        print(format_row(row))
    print(f"wrote {args.out / 'streaming.csv'} and {args.out / 'streaming.png'}")


HEADER = (
    f"{'encoders':9}{'window':>7}{'steps':>6}{'delay ms':>9}{'lat med':>8}{'lat p95':>8}{'RT wall':>8}{'RT cpu':>7}"
    f"{'pass/s':>7}{'r off':>7}{'r truth':>8}{'off r':>7}{'frac':>6}"
)


def format_row(r: dict) -> str:
    return (
        f"{r['encoders']:9}{r['window']:>7}{r['steps']:>6}{r['delay_ms']:>9.0f}{r['latency_median_ms']:>8.0f}"
        f"{r['latency_p95_ms']:>8.0f}{r['realtime_wall']:>8.2f}{r['realtime_cpu']:>7.2f}{r['passes_per_second']:>7.0f}"
        f"{r['r_vs_offline']:>7.3f}{r['r_vs_truth']:>8.3f}{r['offline_r_vs_truth']:>7.3f}{r['fraction_of_offline']:>6.2f}"
    )


if __name__ == "__main__":
    main()
