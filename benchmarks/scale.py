"""Scale-out: the same small job with the local executor and with Ray at 1, 2, ... workers; wall time and speed-up
per stage (train, mask, reconstruct). Prints a table and writes it as JSON.

    python benchmarks/scale.py --out /tmp/scale                 # tiny in-silico mice, CPU workers
    python benchmarks/scale.py --out /tmp/scale --workers 1 2 4 --preset default --models 4

Each stage of each configuration runs in a fresh subprocess (`v1recon ...`), so Ray starts its own local cluster
with `--num-cpus`-limited workers, as a user's command would. On a cluster, pass --address to join it instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def v1recon(*args, env=None) -> float:
    """Run `v1recon ARGS` and return its wall time in seconds (raises on failure)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "v1recon", *map(str, args)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"v1recon {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="scratch folder (replaced)")
    p.add_argument("--preset", default="tiny", help="in-silico preset of the data (default: tiny)")
    p.add_argument("--mice", type=int, default=2)
    p.add_argument("--models", type=int, default=2, help="ensemble size (train tasks)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (CPUs of the cluster)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=64, help="training clips per epoch")
    p.add_argument("--trials", type=int, default=4, help="test trials reconstructed per mouse")
    p.add_argument("--iterations", type=int, default=30, help="fast-method steps per reconstruction")
    p.add_argument("--address", default=None, help="join this Ray cluster instead of starting local ones")
    args = p.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    data = args.out / "data"
    v1recon("simulate", data, "--preset", args.preset, "--mice", args.mice, "--no-figure")
    train = ["--preset", "fast3d", "--models", args.models, "--epochs", args.epochs, "--samples-per-epoch",
             args.samples, "--batch-size", 8, "--no-progress", "--device", "cpu"]  # fmt: skip
    recon = ["--trials", args.trials, "--iterations", args.iterations, "--no-movies", "--device", "cpu"]
    rows = []
    for executor, workers in [("local", 1)] + [("ray", w) for w in args.workers]:
        run = args.out / f"run-{executor}-{workers}"
        env = dict(os.environ)
        extra = ["--executor", executor]
        if executor == "ray":
            extra += ["--address", args.address] if args.address else []
            env["V1RECON_RAY_CPUS"] = str(workers)  # the local cluster's size (v1recon.jobs.executors)
        seconds = {
            "train": v1recon("train", data, "--out", run, *train, *extra, env=env),
            "mask": v1recon("mask", run, "--data", data, "--iterations", 20, "--device", "cpu", *extra, env=env),
            "reconstruct": v1recon("reconstruct", run, "--data", data, "--out", run / "reconstructions" / "x",
                                   *recon, *extra, env=env),  # fmt: skip
        }
        rows.append({"executor": executor, "workers": workers, **{k: round(v, 1) for k, v in seconds.items()}})
        print(rows[-1], flush=True)
    base = rows[0]
    print(f"\n{'executor':>9} {'workers':>7} " + " ".join(f"{s:>18}" for s in ("train", "mask", "reconstruct")))
    for r in rows:
        cells = [f"{r[s]:7.1f} s ({base[s] / r[s]:4.2f}x)" for s in ("train", "mask", "reconstruct")]
        print(f"{r['executor']:>9} {r['workers']:>7} " + " ".join(f"{c:>18}" for c in cells))
    print("\nspeed-up against the local (serial) executor; Ray includes the start of its local cluster in each stage")
    (args.out / "scale.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))


if __name__ == "__main__":
    main()
