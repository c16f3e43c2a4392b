"""A paper-size in-silico mouse end to end: simulate -> train -> reconstruct, with each stage's wall time, peak
resident memory (RSS) and disk, and the extrapolation to the published 5 mice.

The `paper` preset is one mouse of the published size: 8000 neurons, 350 training and 180 test trials of 300
frames (about 6.9 GB). Every stage runs as its own `v1recon` process; its peak RSS is the kernel's figure for that
process (wait4), so it shows whether a stage ever holds a whole mouse in memory (the target: below 8 GB).

    python benchmarks/paper_size.py --out /scratch/paper --mice 1 --train-minutes 5 --trials 2
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


def stage(name: str, args: list, logs: Path) -> dict:
    """Run `v1recon ARGS` (its output into logs/<name>.log); its wall seconds and peak RSS (GB)."""
    start = time.perf_counter()
    with open(logs / f"{name}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "v1recon", *map(str, args)], stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"v1recon {name} failed ({code}):\n{(logs / f'{name}.log').read_text()[-3000:]}")
    row = {"stage": name, "seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}
    print(json.dumps(row), flush=True)
    return row


def folder_gb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9, 2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="scratch folder (replaced)")
    p.add_argument("--preset", default="paper", help="in-silico preset (default paper; tiny to try the script)")
    p.add_argument("--mice", type=int, default=1, help="paper-size mice simulated (default 1; published: 5)")
    p.add_argument("--models", type=int, default=1, help="fast3d models trained (default 1)")
    p.add_argument("--train-minutes", type=float, default=5.0, help="training budget of the whole run (default 5)")
    p.add_argument("--trials", type=int, default=2, help="final_test trials reconstructed per mouse (default 2)")
    args = p.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    data, run = args.out / "data", args.out / "run"
    simulate = ["simulate", data, "--preset", args.preset, "--mice", args.mice, "--no-figure"]
    rows = [stage("simulate", simulate, args.out)]
    rows[-1]["disk_gb"] = folder_gb(data)
    train = ["train", data, "--out", run, "--preset", "fast3d", "--models", args.models,
             "--time-budget", args.train_minutes, "--device", "cpu", "--no-progress"]  # fmt: skip
    rows.append(stage("train", train, args.out))
    rows[-1]["disk_gb"] = folder_gb(run / "models")
    out = run / "reconstructions" / "paper-size"
    recon = ["reconstruct", run, "--data", data, "--out", out, "--trials", args.trials, "--one-repeat", "--no-mask",
             "--device", "cpu"]  # fmt: skip
    rows.append(stage("reconstruct", recon, args.out))
    rows[-1]["disk_gb"] = folder_gb(out)
    summary = json.loads((out / "summary.json").read_text())
    print(f"\n{args.mice} {args.preset}-preset mouse(s), {args.models} fast3d model(s), {os.cpu_count()} CPU cores")
    print(f"{'stage':12}{'wall s':>9}{'peak RSS GB':>13}{'disk GB':>9}")
    for r in rows:
        print(f"{r['stage']:12}{r['seconds']:>9.0f}{r['peak_rss_gb']:>13.2f}{r['disk_gb']:>9.2f}")
    per_mouse = {r["stage"]: r["seconds"] / args.mice for r in rows}
    print(
        f"video r of the reconstructions: {summary['mean']['video_correlation']:.3f}; extrapolated to 5 mice "
        f"(stages scale with the mice): simulate {5 * per_mouse['simulate'] / 60:.0f} min, "
        f"disk {5 * rows[0]['disk_gb'] / args.mice:.0f} GB"
    )
    (args.out / "paper_size.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
