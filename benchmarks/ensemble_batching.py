"""Batching the ensemble: K encoders' forward + input-gradient backward one after another, or stacked under vmap.

One optimiser step of the `average` ensemble runs every model on its own movie. Stacked, the K models' weights are
held as one batch (`torch.func.stack_module_state`) and one `vmap`ped call runs them all on their K movies, which
gives the GPU K times larger kernels; the gradients are the same (checked here). Prints the median seconds of one
step both ways and their ratio.

    python benchmarks/ensemble_batching.py --run RUN --data RUN/data              # the run's trained models
    python benchmarks/ensemble_batching.py --models 7 --neurons 8000 --device cuda  # random fast3d weights
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch


def separate_step(models, mouse: int, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
    total = sum(m(video[k], behaviour, mouse).sum() for k, m in enumerate(models))
    return torch.autograd.grad(total, video)[0]


def stacked_step_fn(models, mouse: int):
    """A function (video (K, B, T, H, W), behaviour) -> its gradient, all models in one vmapped call."""
    from torch.func import functional_call, stack_module_state, vmap

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, v, beh):
        return functional_call(base, (p, b), (v, beh, mouse))

    batched = vmap(one, in_dims=(0, 0, 0, None))

    def step(video, behaviour):
        return torch.autograd.grad(batched(params, buffers, video, behaviour).sum(), video)[0]

    return step


def median_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def batching_row(models, mouse: int, frames: int, trials: int, device: torch.device, repeats: int = 3) -> dict:
    """Seconds of one ensemble step separately and stacked, and the largest gradient difference."""
    for m in models:
        m.to(device).eval().requires_grad_(False)
    k = len(models)
    video = torch.rand(k, trials, frames, 36, 64, device=device).mul(255).requires_grad_()
    behaviour = torch.zeros(trials, 4, frames, device=device)
    stacked = stacked_step_fn(models, mouse)
    difference = float((separate_step(models, mouse, video, behaviour) - stacked(video, behaviour)).abs().max())
    sep = median_seconds(lambda: separate_step(models, mouse, video, behaviour), device, repeats)
    stk = median_seconds(lambda: stacked(video, behaviour), device, repeats)
    return {"models": k, "trials": trials, "frames": frames, "separate_s": sep, "stacked_s": stk,
            "ratio": sep / stk, "max_gradient_difference": difference}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="a training run whose models are stacked (with --data)")
    p.add_argument("--data", type=Path, help="recording folder of --run")
    p.add_argument("--models", type=int, default=3, help="random fast3d models without --run (default 3)")
    p.add_argument("--neurons", type=int, default=1000, help="neurons of the random models (default 1000)")
    p.add_argument("--frames", type=int, default=300, help="frames per movie (default 300)")
    p.add_argument("--trials", type=int, default=1, help="trials per model (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per variant (default 3)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.run is not None:
        from v1recon.data import open_recordings
        from v1recon.runs import load_encoders

        rec = next(iter(open_recordings(args.data or args.run / "data")))
        encoders = load_encoders(args.run, rec.name, device=device)
        models, mouse = [e.model for e in encoders], encoders[0].mouse
        what = f"{len(models)} trained {models[0].architecture} models of {args.run}"
    else:
        from v1recon.models import build_model

        torch.manual_seed(0)
        models, mouse = [build_model("fast3d", [args.neurons]) for _ in range(args.models)], 0
        what = f"{args.models} random fast3d models, {args.neurons} neurons"
    row = batching_row(models, mouse, args.frames, args.trials, device, args.repeats)
    print(
        f"{what}; {args.trials} trial(s) x {args.frames} frames per model; {device}, {torch.get_num_threads()} threads"
    )
    print(f"one step separately {row['separate_s']:.3f} s, stacked under vmap {row['stacked_s']:.3f} s: "
          f"{row['ratio']:.2f}x; largest gradient difference {row['max_gradient_difference']:.1e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
