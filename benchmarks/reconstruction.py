"""Reconstruction cost and quality: the published `paper` procedure and the `fast` method, side by side.

Both methods run on the same encoder(s) and trials in one process and the script prints, for each: window
passes (one forward + backward of a 16-frame model window, or 16 frames of a whole-trial model; see
v1recon.recon.objective), seconds, peak memory, the video correlation reached, and the ratios.

In-silico mouse (default): a ground-truth V1 population writes noisy responses to held-out natural movies and
the reconstruction runs through the true model itself (or, with --run/--data, through a trained run's encoders
on the recording's test trials):

    python benchmarks/reconstruction.py --neurons 1000 --frames 64 --trials 1          # CPU, minutes
    python benchmarks/reconstruction.py --run RUN --data DATA --tier final_test --trials 3

Full-size published model on a GPU (random weights: timing only), seconds per 10 s movie per model:

    python benchmarks/reconstruction.py --preset paper --neurons 7863 --frames 300 --device cuda \\
        --paper-iterations 20 --fast-steps 20 --timing-only

With --paper-iterations below 1000, the paper method's seconds are also extrapolated to the published 1000.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from v1recon.recon.fast import FastSettings
from v1recon.recon.masks import load_mask, mask_path
from v1recon.recon.paper import PAPER_ITERATIONS
from v1recon.recon.reconstructor import ReconConfig, reconstruct_trials


def in_silico_trials(n_neurons: int, n_trials: int, frames: int, seed: int):
    """(truth model, videos, behaviours, noisy responses, evaluation mask) of a fresh in-silico population."""
    from v1recon.sim.behaviour import behaviour_trace
    from v1recon.sim.model import GroundTruthV1
    from v1recon.sim.observation import sample_responses
    from v1recon.sim.stimuli import natural_movie

    truth = GroundTruthV1.random(n_neurons, seed)
    rng = np.random.default_rng(seed + 1)
    videos = [natural_movie(rng, frames, "test") for _ in range(n_trials)]
    behaviours = [behaviour_trace(rng, frames) for _ in range(n_trials)]
    with torch.no_grad():
        _, rate = truth(
            torch.from_numpy(np.stack(videos)), torch.from_numpy(np.stack(behaviours)), return_spike_rate=True
        )
    responses = sample_responses(np.random.default_rng(seed + 2), rate.numpy(), truth.calcium.numpy())
    eval_mask = truth.population_rf() >= 0.5
    return truth, videos, behaviours, list(responses), eval_mask


def run_trials(args):
    """Trials and encoders from a training run and a recording folder."""
    from v1recon.data import open_recordings
    from v1recon.runs import load_encoders

    rec = [r for r in open_recordings(args.data)][args.mouse]
    ids = rec.trial_ids(tier=args.tier, with_responses=True)[: args.trials]
    trials = [rec.trial(t) for t in ids]
    encoders = load_encoders(args.run, rec.name, device=args.device)
    mask = load_mask(mask_path(args.run, rec.name)) if mask_path(args.run, rec.name).is_file() else None
    update = mask.update_mask if mask is not None and mask.update_mask.any() else np.ones((36, 64), bool)
    evaluation = mask.eval_mask if mask is not None and mask.eval_mask.any() else update
    return (
        encoders,
        [t.video for t in trials],
        [t.behaviour for t in trials],
        [t.responses for t in trials],
        update,
        evaluation,
    )


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: kB)


def measure(name, encoders, videos, behaviours, responses, update, evaluation, config, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    results = reconstruct_trials(encoders, responses, behaviours, update, config, truths=videos, eval_mask=evaluation)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    from v1recon.metrics.video import video_correlation

    corr = float(np.mean([video_correlation(r.video, v, evaluation) for r, v in zip(results, videos, strict=True)]))
    return {
        "method": name,
        "iterations": int(np.max([max(r.iterations) for r in results])),
        "window_passes": float(np.sum([r.window_passes for r in results])),
        "seconds": seconds,
        "seconds_per_movie_per_model": seconds / len(videos) / len(encoders),
        "peak_memory_mb": peak_memory_mb(device),
        "video_correlation": corr,
        "curve": np.nanmean(np.stack([r.correlation[0] for r in results]), axis=0),
        # the members' mean correlation per iteration against the cumulative window passes of the whole job
        "member_curve": member_curve(results),
        "passes_per_iteration": float(np.sum([r.window_passes for r in results]))
        / max(1, int(np.max([max(r.iterations) for r in results]))),
    }


def member_curve(results) -> np.ndarray:
    """Mean over trials and members of the per-iteration correlation, held at its last value after a member
    stopped (a stopped member's movie no longer changes)."""
    rows = []
    for r in results:
        for c in r.correlation:
            c = c.copy()
            last = np.flatnonzero(~np.isnan(c))
            if len(last):
                c[last[-1] + 1 :] = c[last[-1]]
            rows.append(c)
    width = max(len(c) for c in rows)
    return np.nanmean(np.stack([np.pad(c, (0, width - len(c)), mode="edge") for c in rows]), axis=0)


def first_reaching(curve: np.ndarray, target: float) -> int | None:
    """1-based iteration at which `curve` first reaches `target`, or None."""
    hit = np.flatnonzero(np.nan_to_num(curve, nan=-np.inf) >= target)
    return int(hit[0]) + 1 if len(hit) else None


def write_curves(out: Path, rows: list[dict]) -> None:
    """CSV (method, iteration, window passes, members' mean video r) and a PNG of r against window passes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    lines = ["method,iteration,window_passes,member_video_r"]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for r in rows:
        passes = r["passes_per_iteration"] * np.arange(1, len(r["member_curve"]) + 1)
        points = enumerate(zip(passes, r["member_curve"], strict=True))
        lines += [f"{r['method']},{i + 1},{p:.0f},{c:.5f}" for i, (p, c) in points]
        ax.plot(passes, r["member_curve"], label=f"{r['method']} (ensemble r {r['video_correlation']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("window passes (all models and trials)")
    ax.set_ylabel("video r of the members")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reconstruction_curve.png", dpi=120)
    (out / "reconstruction_curve.csv").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", type=int, default=1000, help="in-silico neurons (default 1000)")
    p.add_argument("--frames", type=int, default=64, help="frames per movie (default 64; 300 = a 10 s movie)")
    p.add_argument("--trials", type=int, default=1, help="movies reconstructed (default 1)")
    p.add_argument(
        "--preset",
        default=None,
        help="reconstruct through a random-weight model of this preset "
        "(paper, small, fast3d) instead of the true model: timing only",
    )
    p.add_argument("--run", default=None, help="a training run: reconstruct through its encoders (with --data)")
    p.add_argument("--data", default=None, help="recording folder for --run")
    p.add_argument("--mouse", type=int, default=0, help="mouse index in --data (default 0)")
    p.add_argument("--tier", default="final_test", help="tier of --data trials (default final_test)")
    p.add_argument("--paper-iterations", type=int, default=PAPER_ITERATIONS, help="paper iterations (default 1000)")
    p.add_argument("--fast-steps", type=int, default=None, help="fast method step limit (default: its own)")
    p.add_argument(
        "--paper-chunk",
        type=int,
        default=35,
        help="sub-batches per forward in the paper method (1 = the published sequential loop; default 35)",
    )
    p.add_argument(
        "--fast-variants",
        default="[]",
        help="extra fast rows: JSON list of FastSettings overrides, "
        'e.g. \'[{"pyramid": 3, "lr": 0.7, "max_steps": 30}]\'',
    )
    p.add_argument("--methods", default="paper,fast", help="which of paper, fast to run (default both)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timing-only", action="store_true", help="skip the quality comparison in the verdict")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=None, help="folder for the curve (CSV and PNG) and a JSON of the rows")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from v1recon.device import pick_device

    device = pick_device(args.device)
    args.device = str(device)
    truth, videos, behaviours, responses, evaluation = in_silico_trials(
        args.neurons, args.trials, args.frames, args.seed
    )
    update = np.ones((36, 64), bool)
    encoders = [truth.to(device)]
    if args.run:
        encoders, videos, behaviours, responses, update, evaluation = run_trials(args)
    elif args.preset:
        from v1recon.models import BoundEncoder, build_model

        encoders = [BoundEncoder(build_model(args.preset, [args.neurons]).to(device).eval(), 0)]
    fast = FastSettings() if args.fast_steps is None else FastSettings(max_steps=args.fast_steps)
    data = (encoders, videos, behaviours, responses, update, evaluation)
    configs = {
        "paper": ReconConfig(method="paper", iterations=args.paper_iterations, paper_chunk=args.paper_chunk),
        "fast": ReconConfig(method="fast", fast=fast, seed=args.seed),
    }
    for k, over in enumerate(json.loads(args.fast_variants)):
        configs[f"fast-v{k + 1}"] = ReconConfig(method="fast", fast=replace(fast, **over), seed=args.seed)
        print(f"fast-v{k + 1}: {over}")
    rows = [measure(name, *data, cfg, device) for name, cfg in configs.items() if name.split("-")[0] in args.methods]
    print(
        f"device {device}, {len(encoders)} encoder(s), {len(videos)} movie(s) x {len(videos[0])} frames, "
        f"{encoders[0].n_neurons} neurons"
    )
    print(
        f"{'method':8}{'iter':>6}{'window passes':>15}{'seconds':>10}{'s/movie/model':>15}{'peak MB':>10}{'video r':>9}"
    )
    for r in rows:
        print(
            f"{r['method']:8}{r['iterations']:>6}{r['window_passes']:>15.0f}{r['seconds']:>10.1f}"
            f"{r['seconds_per_movie_per_model']:>15.2f}{r['peak_memory_mb']:>10.0f}{r['video_correlation']:>9.3f}"
        )
    if args.out is not None:
        write_curves(args.out, rows)
        keep = ("method", "iterations", "window_passes", "seconds", "peak_memory_mb", "video_correlation")
        (args.out / "reconstruction.json").write_text(json.dumps([{k: r[k] for k in keep} for r in rows], indent=1))
    if len(rows) < 2 or rows[0]["method"] != "paper":
        return
    paper, fast_row = rows[:2]
    print(
        f"ratios paper/fast: window passes {paper['window_passes'] / fast_row['window_passes']:.1f}x, "
        f"seconds {paper['seconds'] / fast_row['seconds']:.1f}x; "
        f"video r fast - paper = {fast_row['video_correlation'] - paper['video_correlation']:+.3f}"
    )
    # equal correlation: where the paper loop's members first come within 0.01 of the fast members' final r
    target = fast_row["member_curve"][-1] - 0.01
    reach = first_reaching(paper["member_curve"], target)
    if reach is None:
        print(
            f"the paper loop's members never came within 0.01 of the fast members' r {target + 0.01:.3f} in "
            f"{len(paper['member_curve'])} iterations (best {np.nanmax(paper['member_curve']):.3f})"
        )
    else:
        at = reach / len(paper["member_curve"])
        print(
            f"equal member r ({target + 0.01:.3f} - 0.01) at paper iteration {reach}: window passes "
            f"{reach * paper['passes_per_iteration'] / fast_row['window_passes']:.1f}x, seconds "
            f"{at * paper['seconds'] / fast_row['seconds']:.1f}x those of fast"
        )
    if args.paper_iterations < PAPER_ITERATIONS:
        scale = PAPER_ITERATIONS / args.paper_iterations * 300 / args.frames
        print(
            f"paper extrapolated to {PAPER_ITERATIONS} iterations of a 300-frame movie: "
            f"{paper['seconds_per_movie_per_model'] * scale:.0f} s per movie per model"
        )
    if not args.timing_only:
        curve = paper["curve"]
        marks = [i for i in (9, 49, 99, 249, 499, 999) if i < len(curve)]
        print("paper video r at iterations " + ", ".join(f"{i + 1}: {curve[i]:.3f}" for i in marks))
        ok = fast_row["video_correlation"] >= paper["video_correlation"] - 0.01
        ok &= fast_row["window_passes"] <= paper["window_passes"] / 30
        print("fast within 0.01 of paper with <= 1/30 of its window passes:", "yes" if ok else "no")


if __name__ == "__main__":
    sys.exit(main())
