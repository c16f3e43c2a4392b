"""Soak: many tiny reconstruct jobs back to back in one process; memory must not grow and no handle may leak.

    python benchmarks/soak.py                  # 50 jobs (4-10 minutes on 2 CPU cores)
    python benchmarks/soak.py --jobs 20 --iterations 2

Builds a tiny in-silico mouse and a tiny trained run (2 fast3d models, one short epoch) in a temporary folder,
then runs `run_reconstruction` `--jobs` times (one final_test trial through both models, movies and figures
written, the output folder removed again) and prints, per job: seconds, the peak resident memory during the job
(sampled every 20 ms from /proc/self/statm), the resident memory after it, open file descriptors
(/proc/self/fd), threads and child processes. It passes when the median peak of the last 10 jobs is within
10 % of the median peak of the first 10 (after one warm-up job) and the last job holds no more descriptors,
threads or children than the first; otherwise it exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return threading.active_count() if not Path("/proc/self/task").is_dir() else len(os.listdir("/proc/self/task"))


def children() -> int:
    """Child processes of this one that still exist (ffmpeg writers that were never reaped would show here)."""
    me = str(os.getpid())
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                count += f.read().rsplit(")", 1)[1].split()[1] == me
        except OSError:
            continue
    return count


class PeakSampler:
    """Largest resident memory seen while the block runs (a thread reads /proc/self/statm every 20 ms)."""

    def __enter__(self):
        self.peak, self._stop = rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        return False


def build_run(root: Path) -> tuple[Path, Path]:
    from v1recon.jobs.masks import run_masks
    from v1recon.sim.simulate import simulate
    from v1recon.training.run import train_run

    data = root / "data"
    simulate(data, "tiny", n_mice=1, seed=0, progress=False, figure=False, log=lambda _: None)
    config = dict(epochs=1, samples_per_epoch=8, batch_size=4, model_overrides={"pupil_shift": False})
    train_run(data, root / "run", "fast3d", n_models=2, device="cpu", progress=False, log=lambda _: None, **config)
    run_masks(root / "run", data, iterations=2, device="cpu", progress=False)
    return data, root / "run"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="Reconstruct jobs (default 50; at least 21).")
    parser.add_argument("--iterations", type=int, default=3, help="Fast-method steps per job (default 3).")
    args = parser.parse_args()
    if args.jobs < 21:
        parser.error("--jobs must be at least 21 (a warm-up, then the first and the last 10 are compared)")

    from v1recon.jobs.reconstruct import run_reconstruction
    from v1recon.recon.reconstructor import ReconConfig

    os.environ.setdefault("V1RECON_CACHE_DIR", "off")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, run = build_run(root)
        trial = None
        print(f"{'job':>4} {'s':>6} {'peak RSS MB':>12} {'RSS after MB':>13} {'fds':>5} {'threads':>8} {'children':>9}")
        for k in range(args.jobs):
            out = root / f"out-{k}"
            start = time.perf_counter()
            with PeakSampler() as peak, contextlib.redirect_stdout(io.StringIO()):
                summary = run_reconstruction(
                    run, data, out, config=ReconConfig(iterations=args.iterations), trials="1", device="cpu",
                    progress=False,
                )  # fmt: skip
            seconds = time.perf_counter() - start
            trial = trial or summary["trials"][0]["trial"]
            shutil.rmtree(out)
            row = (k, seconds, peak.peak / 2**20, rss_bytes() / 2**20, open_fds(), threads(), children())
            rows.append(row)
            print(f"{row[0]:>4} {row[1]:6.2f} {row[2]:12.1f} {row[3]:13.1f} {row[4]:>5} {row[5]:>8} {row[6]:>9}")
    first, last = rows[1:11], rows[-10:]  # job 0 pays one-off costs (imports, allocator pools, font cache)
    peak_first, peak_last = (statistics.median(r[2] for r in rows_) for rows_ in (first, last))
    growth = peak_last / peak_first - 1
    checks = {
        f"median peak RSS, last 10 vs first 10: {peak_last:.1f} vs {peak_first:.1f} MB ({growth:+.1%}, limit +10 %)":
            growth <= 0.10,
        f"open file descriptors, last vs first: {rows[-1][4]} vs {rows[1][4]}": rows[-1][4] <= rows[1][4],
        f"threads, last vs first: {rows[-1][5]} vs {rows[1][5]}": rows[-1][5] <= rows[1][5],
        f"child processes, last vs first: {rows[-1][6]} vs {rows[1][6]}": rows[-1][6] <= rows[1][6],
    }  # fmt: skip
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median_s = statistics.median(r[1] for r in rows)
    print(f"\n{args.jobs} jobs (trial {trial}, {args.iterations} steps, 2 models, movies written), "
          f"median {median_s:.2f} s per job, process max RSS {max_rss:.0f} MB")  # fmt: skip
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
