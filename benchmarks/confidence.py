"""How honest are the confidence movies? Tables from the summary.json of reconstruct jobs run with --confidence.

For each job and confidence method: the Spearman correlation between the predicted std and |error| over the
pixel-frames inside the evaluation mask (frames 30 on), pooled over the job's trials and as the mean of the
per-trial values (pooling mixes trials whose overall error and std differ); the calibration slope and intercept of
the reliability diagram; RMS error / RMS std; the fraction of errors within 1 std; the Spearman correlation between
a frame's std and its spatial correlation with the truth (pooled and per trial); the confidence-weighted video
correlation beside the unweighted one; the scale factor applied (fitted on another job's trials) and the one these
trials would fit. Then the reliability diagram of each method (predicted std -> observed RMS error per bin).

    python benchmarks/confidence.py OUT1/summary.json OUT2/summary.json ...

See benchmarks/README.md for the jobs that produced the published figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows_of(path: Path) -> list[list[str]]:
    summary = json.loads(path.read_text())
    conf = summary.get("confidence")
    if not conf:
        raise SystemExit(f"{path}: this job ran without --confidence.")
    video_r = summary["mean"]["video_correlation"]
    out = []
    for method, entry in conf["methods"].items():
        c = entry["calibration"]
        weighted = summary["mean"].get(f"video_correlation_weighted_{method}")
        out.append(
            [
                path.parent.name,
                summary.get("config", {}).get("tier", "?"),
                method,
                str(c["trials"]),
                f"{c['spearman']:.3f}",
                f"{entry.get('spearman_per_trial_mean', float('nan')):.3f}",
                f"{c['slope']:.2f}",
                f"{c['intercept']:.1f}",
                f"{c['rms_ratio']:.2f}",
                f"{c['coverage_1sd']:.2f}",
                f"{c['frame_spearman_correlation']:.3f}",
                f"{entry.get('frame_spearman_correlation_per_trial_mean', float('nan')):.3f}",
                f"{video_r:.3f}",
                "" if weighted is None else f"{weighted:.3f}",
                f"{entry['scale_applied']:.3g}",
                f"{entry['fitted_scale']:.3g}",
            ]
        )
    return out


def table(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


def reliability_lines(path: Path) -> list[str]:
    conf = json.loads(path.read_text())["confidence"]
    out = [f"{path.parent.name}: reliability (predicted std -> observed RMS error, grey levels, equal-count bins)"]
    for method, entry in conf["methods"].items():
        rel = entry["calibration"]["reliability"]
        pairs = " ".join(f"{s:.0f}->{e:.0f}" for s, e in zip(rel["std"], rel["rms_error"], strict=True))
        out.append(f"  {method:>11}: {pairs}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+", type=Path, help="summary.json files of reconstruct jobs")
    args = parser.parse_args()
    head = ["job", "tier", "method", "trials", "Spearman", "per trial", "slope", "icept", "rms/std", "in 1sd",
            "frame rho", "per trial", "video r", "weighted r", "scale", "fit here"]  # fmt: skip
    lines = [head]
    for path in args.summaries:
        lines += rows_of(path)
    print(table(lines))
    print()
    for path in args.summaries:
        print("\n".join(reliability_lines(path)))
    best = max(((float(r[5]), r[2], r[0]) for r in lines[1:]), default=None)
    if best is not None:
        print(f"\nhighest mean per-trial Spearman with |error|: {best[1]} in {best[2]} ({best[0]:.3f})")


if __name__ == "__main__":
    main()
