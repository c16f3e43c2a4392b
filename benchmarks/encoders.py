"""Encoder throughput: training (forward + backward) and whole-trial prediction, per architecture preset.

    python benchmarks/encoders.py                      # CPU here, or the GPU when present (bf16 autocast)
    python benchmarks/encoders.py --presets fast3d small --neurons 1000 --threads 2

Prints one table row per preset:
- train: predicted frames per second for a training step (forward + backward + AdamW) on `train_clip_frames`
  clips (DwiseNeuro: one 16-frame window per clip), and the same as windows/s (16 predicted frames = 1 window);
- trial: whole 300-frame trials per second, forward only (no grad) and forward + backward to the video
  (weights frozen: what a reconstruction step costs);
- peak memory: process max RSS on the CPU (monotone, so measured presets in increasing order), or
  torch.cuda.max_memory_allocated per measurement on the GPU.
The paper preset is ~29 GFLOP per window forward: on a CPU it is timed on a couple of windows only.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from v1recon.device import autocast, pick_device
from v1recon.models import BoundEncoder, build_model

WINDOW = 16  # predicted frames per DwiseNeuro window: the unit that makes presets comparable


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up call (seconds)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def inputs(batch: int, frames: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    video = (torch.rand(batch, frames, 36, 64, generator=g) * 255).to(device)
    behaviour = (torch.rand(batch, 4, frames, generator=g) * 10).to(device)
    return video, behaviour


def bench_training(model, batch: int, device: torch.device, repeats: int) -> float:
    """Predicted frames per second of a training step (forward + backward + optimiser)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    video, behaviour = inputs(batch, model.train_clip_frames, device)
    n_pred = []

    def step():
        with autocast(device):
            pred, idx = model.train_forward(video, behaviour, 0)
        loss = (pred.float() - torch.log(pred.float() + 1e-8)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n_pred.append(pred.shape[0] * len(idx))

    seconds = timed(step, device, repeats)
    return n_pred[-1] / seconds


def bench_trial(model, frames: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """Whole trials per second: forward only, and forward + backward to the video."""
    encoder = BoundEncoder(model, 0)
    video, behaviour = inputs(1, frames, device)

    def forward():
        with torch.no_grad():
            encoder(video, behaviour)

    def forward_backward():
        v = video.clone().requires_grad_()
        encoder(v, behaviour).sum().backward()

    return 1 / timed(forward, device, repeats), 1 / timed(forward_backward, device, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["fast3d", "small", "paper"])
    parser.add_argument("--neurons", type=int, default=1000, help="neurons of the benchmarked mouse (paper: 7863)")
    parser.add_argument("--batch", type=int, default=16, help="training clips per step (paper on CPU: 2)")
    parser.add_argument("--frames", type=int, default=300, help="frames of a whole trial")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")  # fmt: skip
    header = (
        f"{'preset':8} {'neurons':>7} {'params M':>8} {'train fr/s':>10} {'win/s':>7} "
        f"{'trial fwd/s':>11} {'trial f+b/s':>11} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for preset in args.presets:
        cpu_paper = preset == "paper" and device.type == "cpu"
        neurons = 7863 if preset == "paper" and args.neurons == 1000 else args.neurons
        torch.manual_seed(0)
        model = build_model(preset, [neurons]).to(device)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        reset_peak(device)
        batch = 2 if cpu_paper else args.batch
        repeats = 1 if cpu_paper else args.repeats
        train = bench_training(model, batch, device, repeats)
        # the paper model on a CPU: a 31-frame trial (one window) stands for the cost per window
        frames = 32 if cpu_paper else args.frames
        fwd, fwd_bwd = bench_trial(model, frames, device, repeats)
        if cpu_paper:  # scale one-window timings to a trial of args.frames (windows ending at 30..T-1)
            windows = args.frames - 30
            fwd, fwd_bwd = fwd * 2 / windows, fwd_bwd * 2 / windows
        print(
            f"{preset:8} {neurons:7d} {params:8.2f} {train:10.1f} {train / WINDOW:7.2f} "
            f"{fwd:11.3f} {fwd_bwd:11.3f} {peak_mb(device):8.0f}",
            flush=True,
        )
        del model
    print("train fr/s: predicted frames per second, forward + backward + AdamW; win/s = fr/s / 16.")
    print(f"trial fwd/s, f+b/s: {args.frames}-frame trials per second; f+b = forward + backward to the video.")


if __name__ == "__main__":
    sys.exit(main())
