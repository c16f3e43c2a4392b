"""What the simulation's thread-count promise costs: one in-silico mouse simulated three ways.

    python benchmarks/simulate_threads.py                       # default and paper presets, 6 % of their trials
    python benchmarks/simulate_threads.py --presets paper --fraction 0.02 --repeats 3

`v1recon simulate` promises byte-identical files for a seed whatever the worker count and OMP_NUM_THREADS. It
keeps that promise by running every torch operation of the ground truth on one thread, and uses a second core for
one mouse by computing the next chunk's rates in a second thread while the first samples the noise of the
previous chunk and writes it. This script times one mouse (its first `--fraction` of the trials; the model's
construction and calibration are timed apart) in three modes, interleaved `--repeats` times (median):

- `sequential, N threads`: every chunk in turn, torch on all N cores per operation (the thread-count dependent
  way the simulation ran before),
- `sequential, 1 thread`: every chunk in turn, one thread (what pinning alone would cost),
- `overlapped, 1 thread` (shipped): one thread per operation, rates of the next chunk in a second thread.

and prints seconds per trial, the time extrapolated to the whole mouse, and whether the recordings of the
shipped mode are byte-identical at 1 and N torch threads. On a shared machine prefer the ratios (one run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import os
import statistics
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from v1recon.device import torch_threads
from v1recon.sim.behaviour import random_eye_and_body
from v1recon.sim.model import GroundTruthV1

sim = importlib.import_module("v1recon.sim.simulate")  # the module (the package exports the function)


class InlineExecutor:
    """A stand-in for the rates thread that computes each job at once, in the calling thread."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future: Future = Future()
        future.set_result(fn(*args))
        return future


def build(preset: sim.Preset, threads: int) -> tuple[GroundTruthV1, object, float]:
    """The mouse's ground truth (construction + calibration on 3 movies) with `threads` torch threads."""
    eye = random_eye_and_body(np.random.default_rng([1, 3]))
    start = time.perf_counter()
    with torch_threads(threads):
        model = GroundTruthV1.random(preset.n_neurons, 1, eye=eye)
    return model, eye, time.perf_counter() - start


def run_mouse(preset: sim.Preset, model, eye, mode: str, threads: int, folder: Path) -> float:
    movies = sim._test_movies(preset, 0)
    inline = mock.patch.object(sim, "ThreadPoolExecutor", InlineExecutor) if mode != "overlapped" else None
    start = time.perf_counter()
    with torch_threads(threads), inline or contextlib.nullcontext():
        sim.simulate_mouse(folder, model, eye, preset, 1, movies, progress=False)
    return time.perf_counter() - start


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.npy")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["default", "paper"], choices=list(sim.PRESETS))
    parser.add_argument("--fraction", type=float, default=0.06, help="Fraction of the mouse's trials simulated.")
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved repeats of every mode (median).")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} CPU cores, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} at the start")
    header = f"{'preset':8} {'mode':24} {'s/trial':>8} {'whole mouse s':>14} {'vs before':>10}"
    for name in args.presets:
        full = sim.PRESETS[name]
        preset = dataclasses.replace(full, n_train=max(2, round(full.n_train * args.fraction)), n_test_movies=1,
                                     n_repeats=max(1, round(full.n_repeats * args.fraction * 3)))  # fmt: skip
        builds = {t: [build(preset, t)[2] for _ in range(args.repeats)] for t in (cores, 1)}
        model, eye, _ = build(preset, 1)
        modes = [("sequential", cores), ("sequential", 1), ("overlapped", 1)]
        times: dict = {m: [] for m in modes}
        hashes = {}
        with tempfile.TemporaryDirectory() as tmp:
            run_mouse(preset, model, eye, "overlapped", 1, Path(tmp) / "warm-up")  # photographs, allocator
            for r in range(args.repeats):
                for mode, threads in modes:
                    folder = Path(tmp) / f"{mode}-{threads}-{r}"
                    times[(mode, threads)].append(run_mouse(preset, model, eye, mode, threads, folder))
            for threads in (1, cores):  # the shipped entry point, called with 1 and N torch threads
                folder = Path(tmp) / f"check-{threads}"
                folder.mkdir()
                with torch_threads(threads):
                    sim._one_mouse(folder, preset, 1, 0, {"progress": False, "figure": False})
                hashes[threads] = digest(folder)
        print(f"\n{name}: {full.n_neurons} neurons, {preset.n_trials} of {full.n_trials} trials of {full.n_frames} "
              f"frames; model construction + calibration {statistics.median(builds[cores]):.1f} s on {cores} "
              f"threads, {statistics.median(builds[1]):.1f} s on 1")  # fmt: skip
        print(header)
        before = statistics.median(times[("sequential", cores)]) / preset.n_trials
        for mode, threads in modes:
            per_trial = statistics.median(times[(mode, threads)]) / preset.n_trials
            label = f"{mode}, {threads} thread{'s' if threads > 1 else ''}"
            whole = per_trial * full.n_trials + statistics.median(builds[threads])
            print(f"{name:8} {label:24} {per_trial:8.3f} {whole:14.0f} {per_trial / before:10.2f}")
        same = "yes" if len(set(hashes.values())) == 1 else "NO"
        print(f"shipped mode, recordings byte-identical at 1 and {cores} torch threads: {same}")


if __name__ == "__main__":
    main()
