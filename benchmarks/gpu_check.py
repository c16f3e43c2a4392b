"""GPU check of the reconstruction path with the full-size published DwiseNeuro (random weights: timing only).

One script for one H100/H200 (about 5 minutes, at most 8): it writes gpu_check.json and a table gpu_check.md with
- window forward + backward throughput (the input gradient a reconstruction needs) in fp32, bf16 autocast, bf16
  with channels-last-3d and bf16 under torch.compile, and the peak GPU memory of each;
- the published loop's seconds per iteration (`paper`, windows batched by `--paper-chunk`), extrapolated to the
  published 1000 iterations of a 10 s movie;
- the fast method's seconds per 10 s movie per model (its steps capped at `--fast-steps`; the table gives the
  seconds per step too) and for a 7-model ensemble;
- one step of a 7-model fast3d ensemble run model by model and stacked under vmap (benchmarks/ensemble_batching.py);
- with --run RUN --data DATA (a small trained run carried over as files): the ensemble reconstruction of held-out
  trials in fp32 and in bf16, and the difference of their video correlation with the truth (the claim: < 0.005).

    python benchmarks/gpu_check.py --out results/gpu                                 # one GPU
    python benchmarks/gpu_check.py --out results/gpu --run RUN --data RUN/data       # + bf16 quality
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu-smoke                      # tiny, on the CPU (tests)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from v1recon import PUBLISHED_ITERATIONS
from v1recon.device import pick_device
from v1recon.models import BoundEncoder, build_model
from v1recon.recon.fast import FastSettings
from v1recon.recon.reconstructor import ReconConfig, reconstruct_trials

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble_batching import batching_row  # noqa: E402  (a sibling script, not a package)

ENSEMBLE_MODELS = 7  # the published ensemble
SMOKE_KWARGS = dict(core_features=(8,) * 9, expansion_ratio=2, se_reduce_ratio=4, cortex_features=(16, 32, 64))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (Linux: kB)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def window_throughput(model, windows: int, variant: str, device: torch.device, repeats: int) -> dict:
    """Forward + input-gradient backward of `windows` stacked 16-frame windows in one batch."""
    bf16 = variant != "fp32"
    channels_last = variant == "bf16+channels-last-3d"
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).requires_grad_(False)  # frozen, as under reconstruction
    forward = torch.compile(model.forward_stacked) if variant == "bf16+compile" else model.forward_stacked
    x = torch.rand(windows, 5, 16, 64, 64, device=device).contiguous(memory_format=fmt).requires_grad_()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            out = forward(x, 0)
        (grad,) = torch.autograd.grad(out.float().sum(), x)
        return grad

    reset_peak(device)
    row = {"variant": variant, "windows": windows}
    try:
        start = time.perf_counter()
        seconds = timed(step, device, repeats)
        row.update(seconds=seconds, windows_per_s=windows / seconds, first_call_s=time.perf_counter() - start)
    except Exception as err:  # a compiler missing on this machine is a finding, not a crash of the check
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    row["peak_gib"] = peak_gib(device)
    model.to(memory_format=torch.contiguous_format)
    return row


def movie_inputs(encoder, frames: int, seed: int):
    """A natural test movie, its behaviour and the encoder's own predicted responses to it (noise-free)."""
    from v1recon.sim.behaviour import behaviour_trace
    from v1recon.sim.stimuli import natural_movie

    rng = np.random.default_rng(seed)
    video, behaviour = natural_movie(rng, frames, "test"), behaviour_trace(rng, frames)
    with torch.no_grad():
        pred = encoder(torch.from_numpy(video)[None], torch.from_numpy(behaviour)[None])[0]
    return video, behaviour, pred.cpu().numpy()


def reconstruction_cost(encoder, inputs, config: ReconConfig, device: torch.device) -> dict:
    video, behaviour, responses = inputs
    reset_peak(device)
    synchronize(device)
    start = time.perf_counter()
    (rec,) = reconstruct_trials([encoder], [responses], [behaviour], np.ones((36, 64), bool), config)
    synchronize(device)
    seconds = time.perf_counter() - start
    steps = int(max(rec.iterations))
    return {"steps": steps, "seconds": seconds, "seconds_per_step": seconds / steps, "peak_gib": peak_gib(device)}


def bf16_quality(run: Path, data: Path, trials: int, device: torch.device) -> dict:
    """Ensemble reconstructions of held-out trials of a trained run in fp32 and bf16; video r with the truth."""
    from v1recon.data import open_recordings
    from v1recon.jobs.mouse import open_setup
    from v1recon.metrics.video import video_correlation

    rec = next(iter(open_recordings(data)))
    setup = open_setup(run, data, rec.name, str(device), log=lambda _: None)
    ids = rec.trial_ids(tier="final_test", with_responses=True)[:trials]
    loaded = [rec.trial(t) for t in ids]
    out = {"trials": ids, "models": len(setup.encoders)}
    for precision in ("fp32", "bf16"):
        for encoder in setup.encoders:
            encoder.bf16 = precision == "bf16"
        start = time.perf_counter()
        recs = reconstruct_trials(
            setup.encoders,
            [t.responses for t in loaded],
            [t.behaviour for t in loaded],
            setup.update_mask,
            ReconConfig(method="fast"),
        )
        out[f"{precision}_seconds"] = time.perf_counter() - start
        pairs = zip(recs, loaded, strict=True)
        out[f"{precision}_r"] = [video_correlation(r.video, t.video, setup.eval_mask) for r, t in pairs]
    out["max_abs_r_difference"] = float(np.max(np.abs(np.subtract(out["bf16_r"], out["fp32_r"]))))
    return out


def table(result: dict) -> str:
    lines = [f"# GPU check: {result['device_name']}, torch {result['torch']}, {result['neurons']} neurons", ""]
    lines += ["| window fwd+bwd | windows | ms / window | windows / s | peak GiB | first call s |", "|" + "---|" * 6]
    for r in result["throughput"]:
        if "error" in r:
            lines.append(f"| {r['variant']} | {r['windows']} | failed: {r['error']} | | {r['peak_gib']:.1f} | |")
            continue
        lines.append(
            f"| {r['variant']} | {r['windows']} | {1000 * r['seconds'] / r['windows']:.2f} | {r['windows_per_s']:.1f} "
            f"| {r['peak_gib']:.1f} | {r['first_call_s']:.1f} |"
        )
    p, f = result["paper"], result["fast"]
    header = "| reconstruction of one 10 s movie | steps run | s / step | s per movie per model"
    lines += ["", f"{header} | {ENSEMBLE_MODELS} models, s | peak GiB |", "|" + "---|" * 6]
    lines.append(
        f"| paper (published loop, extrapolated to {PUBLISHED_ITERATIONS} iterations) | {p['steps']} | "
        f"{p['seconds_per_step']:.3f} | {p['movie_model_s']:.0f} | {p['ensemble_s']:.0f} | {p['peak_gib']:.1f} |"
    )
    lines.append(
        f"| fast (steps capped at {f['steps']}) | {f['steps']} | {f['seconds_per_step']:.3f} | "
        f"{f['movie_model_s']:.1f} | {f['ensemble_s']:.1f} | {f['peak_gib']:.1f} |"
    )
    b = result["ensemble_batching"]
    lines.append(
        f"\n{b['models']} fast3d models, one step on a {b['frames']}-frame movie each: {b['separate_s']:.3f} s one "
        f"after another, {b['stacked_s']:.3f} s stacked under vmap ({b['ratio']:.2f}x)"
    )
    if "bf16_quality" in result:
        q = result["bf16_quality"]
        lines.append(
            f"\nbf16 vs fp32 on {len(q['trials'])} trials of a trained run ({q['models']} models): video r fp32 "
            f"{np.mean(q['fp32_r']):.3f}, bf16 {np.mean(q['bf16_r']):.3f}, largest difference "
            f"{q['max_abs_r_difference']:.4f}; seconds {q['fp32_seconds']:.1f} / {q['bf16_seconds']:.1f}"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--smoke", action="store_true", help="tiny model and movie on any device (the test suite)")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default auto)")
    p.add_argument("--neurons", type=int, default=7863, help="neurons of the readout (default 7863, one mouse)")
    p.add_argument("--frames", type=int, default=300, help="frames per movie (default 300 = 10 s)")
    p.add_argument("--windows", type=int, default=70, help="windows per throughput batch (default 70)")
    p.add_argument("--paper-iterations", type=int, default=5, help="iterations run of the published loop (default 5)")
    p.add_argument("--paper-chunk", type=int, default=35, help="windows per forward in the published loop (35)")
    p.add_argument("--fast-steps", type=int, default=30, help="step cap of the fast method (default 30)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per throughput variant (default 3)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--run", type=Path, help="a trained run for the bf16 quality check (with --data)")
    p.add_argument("--data", type=Path, help="recording folder of --run")
    p.add_argument("--trials", type=int, default=2, help="held-out trials of the quality check (default 2)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    kwargs = {}
    if args.smoke:
        kwargs = SMOKE_KWARGS
        args.neurons, args.frames, args.windows = 20, 48, 4
        args.paper_iterations, args.fast_steps, args.repeats, args.no_compile = 2, 3, 1, True
    torch.manual_seed(0)
    model = build_model("paper", [args.neurons], **kwargs).to(device).eval()
    variants = ["fp32", "bf16", "bf16+channels-last-3d"] + ([] if args.no_compile else ["bf16+compile"])
    throughput = []
    for variant in variants:
        throughput.append(window_throughput(model, args.windows, variant, device, args.repeats))
        print(json.dumps(throughput[-1]), flush=True)
    encoder = BoundEncoder(model, 0, "dwiseneuro (random weights)")
    inputs = movie_inputs(encoder, args.frames, seed=0)
    paper_config = ReconConfig(method="paper", iterations=args.paper_iterations, paper_chunk=args.paper_chunk)
    paper = reconstruction_cost(encoder, inputs, paper_config, device)
    scale = 300 / args.frames  # to a 10 s movie
    paper["movie_model_s"] = paper["seconds_per_step"] * PUBLISHED_ITERATIONS * scale
    fast_config = ReconConfig(method="fast", fast=FastSettings(max_steps=args.fast_steps, min_steps=args.fast_steps))
    fast = reconstruction_cost(encoder, inputs, fast_config, device)
    fast["movie_model_s"] = fast["seconds"] * scale
    for row in (paper, fast):
        row["ensemble_s"] = row["movie_model_s"] * ENSEMBLE_MODELS
    fast3d = [build_model("fast3d", [args.neurons]) for _ in range(ENSEMBLE_MODELS)]
    batching = batching_row(fast3d, 0, args.frames, 1, device, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    result = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "smoke": args.smoke,
        "neurons": args.neurons,
        "frames": args.frames,
        "throughput": throughput,
        "paper": paper,
        "fast": fast,
        "ensemble_batching": batching,
    }
    if args.run is not None:
        result["bf16_quality"] = bf16_quality(args.run, args.data or args.run / "data", args.trials, device)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    text = table(result)
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
