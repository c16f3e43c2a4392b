"""Warm starts of the fast method: grey (the published start) against a ridge decoder's estimate and a chain.

The ridge decoder of `v1recon analyse baselines` (time-lagged population activity -> frame) is fitted on the
run's training trials of one mouse (never on a movie of the evaluated trials or of the run's held-out fold); each
held-out trial's decoded movie is then the first movie of the input optimisation (inside the update mask; grey
outside). Both starts run the `fast` method through the run's ensemble on the same trials, in one process, and
the script prints per start: steps and seconds per model, window passes, the members' and the ensemble's video
correlation with the truth, and the steps the ridge start needs to reach the correlation the grey start ends at.
The chain runs the models one after another, each starting from the previous model's reconstruction (the first
from grey); its ensemble is the average of the members' movies, as for the others.

    python benchmarks/warm_start.py --run RUN --data RUN/data --trials 4
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from v1recon.metrics.video import video_correlation
from v1recon.recon.fast import FastSettings
from v1recon.recon.reconstructor import ReconConfig, pad_rows, reconstruct_trials


def steps_to_reach(curve: np.ndarray, target: float) -> float:
    """First step (1-based) at which a per-step correlation curve reaches `target`; NaN if it never does."""
    hit = np.flatnonzero(np.nan_to_num(curve, nan=-np.inf) >= target)
    return float(hit[0] + 1) if len(hit) else float("nan")


def chained(run, setup) -> list:
    """The models one after another, each from the previous model's movie: per trial one Reconstruction whose
    members are the models' (the ensemble movie averaged and blurred as reconstruct_trials does)."""
    from v1recon.recon.ensemble import ensemble_movie

    links, starts = [], None
    for encoder in setup.encoders:
        links.append(run([encoder], starts))
        starts = [r.per_model[0] for r in links[-1]]
    out = []
    for parts in zip(*links, strict=True):
        per_model = np.concatenate([r.per_model for r in parts])
        out.append(
            replace(
                parts[0],
                video=ensemble_movie(per_model, len(parts)),
                per_model=per_model,
                correlation=pad_rows([row for r in parts for row in r.correlation]),
                iterations=[i for r in parts for i in r.iterations],
                window_passes=sum(r.window_passes for r in parts),
            )
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a training run (with masks)")
    p.add_argument("--data", type=Path, default=None, help="its recording folder (default: the run's)")
    p.add_argument("--mouse", default=None, help="mouse name (default: the run's first)")
    p.add_argument("--trials", type=int, default=4, help="held-out trials (distinct test movies, default 4)")
    p.add_argument("--max-train-trials", type=int, default=None, help="decoder fit on at most this many trials")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-steps", type=int, default=None, help="fast method step limit (default: its own)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from v1recon.experiments import common
    from v1recon.experiments.baselines import RecordingPairs, fit_ridge_decoder, split_training_trials
    from v1recon.jobs.mouse import load_trials, open_setup

    setup = open_setup(args.run, args.data, args.mouse, "cpu", log=lambda m: print(m, file=sys.stderr))
    rec = setup.recording
    ids = common.held_out_trials(setup, args.trials)
    train, val = split_training_trials(setup, ids, args.max_train_trials)
    start = time.perf_counter()
    decoder = fit_ridge_decoder(RecordingPairs(rec, train), RecordingPairs(rec, val), mask=setup.eval_mask)
    fit_s = time.perf_counter() - start
    trials = load_trials(rec, ids)
    decoded = [decoder.predict(r) for r in trials.responses]
    r_decoded = [video_correlation(d, v, setup.eval_mask) for d, v in zip(decoded, trials.videos, strict=True)]
    print(f"{rec.name}: trials {ids}; ridge decoder on {len(train)} + {len(val)} training trials in {fit_s:.0f} s")
    config = ReconConfig(
        method="fast", fast=FastSettings(max_steps=args.max_steps) if args.max_steps else FastSettings()
    )

    def run(encoders, starts):
        return reconstruct_trials(encoders, trials.responses, trials.behaviours, setup.update_mask, config,
                                  truths=trials.videos, eval_mask=setup.eval_mask, starts=starts)  # fmt: skip

    starts = {
        "grey": lambda: run(setup.encoders, None),
        "ridge": lambda: run(setup.encoders, decoded),
        "chain": lambda: chained(run, setup),
    }
    rows = {}
    for name, reconstruct in starts.items():
        start = time.perf_counter()
        recs = reconstruct()
        seconds = time.perf_counter() - start
        curves = [r.correlation for r in recs]  # (K, I) per trial
        finals = np.array([[c[~np.isnan(c)][-1] for c in cs] for cs in curves])  # (trials, K)
        rows[name] = {
            "seconds": seconds,
            "steps": float(np.mean([np.mean(r.iterations) for r in recs])),
            "passes": float(np.mean([r.window_passes for r in recs])),
            "member_r": finals,
            "ensemble_r": np.array(
                [video_correlation(r.video, v, setup.eval_mask) for r, v in zip(recs, trials.videos, strict=True)]
            ),
            "curves": curves,
        }
    grey, ridge, chain = rows["grey"], rows["ridge"], rows["chain"]
    reach = [
        steps_to_reach(ridge["curves"][t][k], grey["member_r"][t, k])
        for t in range(len(ids))
        for k in range(len(setup.encoders))
    ]
    print(f"ridge decoder alone: video r {np.mean(r_decoded):.3f} (per trial {np.round(r_decoded, 3).tolist()})")
    print(f"{'start':7}{'steps/model':>12}{'passes/trial':>14}{'seconds':>9}{'member r':>10}{'ensemble r':>12}")
    for name, row in rows.items():
        print(
            f"{name:7}{row['steps']:>12.1f}{row['passes']:>14.0f}{row['seconds']:>9.1f}"
            f"{row['member_r'].mean():>10.3f}{row['ensemble_r'].mean():>12.3f}"
        )
    reached = np.array(reach)
    ok = np.isfinite(reached)
    median = np.nanmedian(reached) if ok.any() else float("nan")
    print(
        f"ridge start reaches the grey start's final member r in {median:.0f} "
        f"steps (median; {ok.sum()} of {len(reached)} members reach it) against {grey['steps']:.1f} steps from grey; "
        f"ensemble r ridge - grey = {ridge['ensemble_r'].mean() - grey['ensemble_r'].mean():+.3f}; "
        f"seconds ratio grey / ridge = {grey['seconds'] / ridge['seconds']:.2f}"
    )
    print(
        f"chain: ensemble r chain - grey = {chain['ensemble_r'].mean() - grey['ensemble_r'].mean():+.3f}; "
        f"seconds ratio grey / chain = {grey['seconds'] / chain['seconds']:.2f}; member r along the chain "
        f"{np.round(chain['member_r'].mean(0), 3).tolist()} (grey {np.round(grey['member_r'].mean(0), 3).tolist()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
