"""Simulation time per model family: how long `v1recon simulate` takes per mouse, and the ground-truth forward pass.

    python benchmarks/simulation.py                           # default preset, 2 mice (one per core), both families
    python benchmarks/simulation.py --preset tiny --repeats 2

Prints one row per family (families alternate over the repeats, so that a busy machine slows both alike):
- simulate: wall seconds of `simulate(preset, 2 mice)` with the automatic worker count, per mouse-core
  (wall x workers / mice: the cost of one mouse on one core);
- forward: seconds of the ground-truth model's forward pass per 300-frame trial, one thread, no gradient
  (the part of the simulation that depends on the family), and with the gradient to the video (what a step of the
  oracle reconstruction costs);
- calibration: median single-trial correlation of the responses with the noise-free rates (test tiers).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from v1recon.sim.families import FAMILY_NAMES, family_class
from v1recon.sim.simulate import PRESETS, simulate
from v1recon.sim.stimuli import natural_movie


def forward_seconds(family: str, n_neurons: int, trials: int = 4) -> tuple[float, float]:
    """(no-grad, with-grad) seconds per 300-frame trial of the family's forward pass on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = family_class(family).random(n_neurons, seed=0, calibration_trials=1)
        rng = np.random.default_rng(0)
        video = torch.from_numpy(np.stack([natural_movie(rng, 300, "test") for _ in range(trials)]))
        beh = torch.from_numpy(np.stack([model.resting_behaviour(300)] * trials))
        with torch.no_grad():
            model(video, beh)
            t = time.perf_counter()
            model(video, beh)
            plain = (time.perf_counter() - t) / trials
        video.requires_grad_(True)
        t = time.perf_counter()
        model(video, beh).sum().backward()
        grad = (time.perf_counter() - t) / trials
        return plain, grad
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="default", choices=list(PRESETS))
    parser.add_argument("--mice", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--families", nargs="+", default=list(FAMILY_NAMES), choices=list(FAMILY_NAMES))
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    rows = {f: {"simulate": [], "calibration": []} for f in args.families}
    for _ in range(args.repeats):
        for family in args.families:
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                out = simulate(Path(tmp) / "mice", args.preset, args.mice, seed=0, progress=False, figure=False,
                               log=lambda _: None, family=family)  # fmt: skip
                wall = time.perf_counter() - t
            rows[family]["simulate"].append(wall * out["workers"] / args.mice)
            rows[family]["calibration"] += [m["single_trial_correlation_median"] for m in out["mice"]]
    print(
        f"preset {args.preset}: {preset.n_neurons} neurons, {preset.n_trials} trials of {preset.n_frames} frames; "
        f"{args.mice} mice, {args.repeats} repeat(s); torch {torch.__version__}"
    )
    print(f"{'family':<10}{'s per mouse-core':>18}{'fwd s/trial':>14}{'fwd+grad s/trial':>18}{'median r (test)':>18}")
    for family, r in rows.items():
        plain, grad = forward_seconds(family, preset.n_neurons)
        cal = ", ".join(f"{c:.3f}" for c in r["calibration"])
        print(f"{family:<10}{np.median(r['simulate']):>18.1f}{plain:>14.3f}{grad:>18.3f}{cal:>18}")


if __name__ == "__main__":
    main()
