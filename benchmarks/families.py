"""Encoder presets on both in-silico model families: train, evaluate against the truth, reconstruct against the oracle.

    # the full measurement (the demo's budget: 3 models, 30 training minutes per preset and family, 2 mice)
    python benchmarks/families.py runs/families --presets fast3d subunit --train-minutes 30
    # equal work instead of equal time (a busy machine): fixed epochs and clips per epoch, one mouse, one model
    python benchmarks/families.py runs/families-small --mice 1 --models 1 --epochs 4 --samples-per-epoch 1024

For every family (simulated once into ROOT/<family>/data with the `--sim-preset`, seed 0, and reused on later runs)
and every preset (trained into ROOT/<family>/<preset>[-<tag>], resumed when it exists), it trains the ensemble,
evaluates it on the test tiers with the ground-truth ceiling (`v1recon evaluate`) and, with `--recon-trials`,
reconstructs that many final_test movies per mouse (one repeat each, fast method, alpha mask) through the ensemble and
through the true model (the oracle). It prints one table row per family x preset:
- ens/truth, best/truth: the ensemble's and its best member's single-trial correlation over the truth's (mean of mice);
- one column per cell type: the ensemble over the truth on those neurons (mean of mice);
- recon r, oracle r, recon/oracle: mean masked video correlation of the reconstructions and their ratio;
- train s: training wall seconds of the whole ensemble, all mice (the budget includes the data-driven start).
The results also go to ROOT/families.json. `--override key=value` (repeatable) changes a model keyword argument
(a variant; name it with `--tag`).
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

import numpy as np

from v1recon.sim.families import FAMILY_NAMES, family_class


def simulated(root: Path, family: str, args) -> Path:
    """The family's mice under ROOT/<family>/data, simulated on the first call: the --sim-preset, optionally reduced
    (--neurons, --train-trials, --test-movies, --repeats: a smaller mouse for quick comparisons)."""
    from dataclasses import replace

    from v1recon.sim.simulate import PRESETS, simulate

    data = root / family / "data"
    if not (data / "simulation.json").is_file():
        preset = PRESETS[args.sim_preset]
        changes = {"n_neurons": args.neurons, "n_train": args.train_trials, "n_test_movies": args.test_movies,
                   "n_repeats": args.repeats}  # fmt: skip
        reduced = replace(preset, **{k: v for k, v in changes.items() if v})
        name = args.sim_preset if reduced == preset else f"{args.sim_preset}-reduced"
        PRESETS.setdefault(name, reduced)
        simulate(data, name, n_mice=args.mice, seed=0, overwrite=True, figure=False, family=family)
    return data


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def measure(args, family: str, preset: str) -> dict:
    from v1recon.jobs.masks import run_masks
    from v1recon.jobs.reconstruct import run_reconstruction
    from v1recon.recon.reconstructor import ReconConfig
    from v1recon.training.evaluate import evaluate_run, format_table
    from v1recon.training.run import train_run

    data = simulated(args.root, family, args)
    run_dir = args.root / family / (f"{preset}-{args.tag}" if args.tag else preset)
    started = time.perf_counter()
    options = {k: v for k, v in (("epochs", args.epochs), ("samples_per_epoch", args.samples_per_epoch)) if v}
    if args.overrides:
        options["model_overrides"] = parse_overrides(args.overrides)
    if args.shared_gain:
        options["shared_gain"] = True
    run = train_run(data, run_dir, preset=preset, n_models=args.models, seed=args.seed, device=args.device,
                    time_budget_min=args.train_minutes, progress=args.progress, **options)  # fmt: skip
    train_s = run.timings.get("total_seconds", time.perf_counter() - started)
    evaluation = evaluate_run(run_dir, data, device=args.device, tiers=tuple(args.tiers), progress=args.progress,
                              overwrite=True)  # fmt: skip
    print(format_table(evaluation), flush=True)
    mice = evaluation["mice"].values()
    row = {
        "family": family,
        "preset": preset + (f"-{args.tag}" if args.tag else ""),
        "models": len(run.complete_models()),
        "train_s": train_s,
        "ens_truth": float(np.mean([m["ratio_to_truth"]["ensemble"] for m in mice])),
        "best_truth": float(np.mean([m["ratio_to_truth"]["best_model"] for m in mice])),
        "truth_r": float(np.mean([m["encoders"]["truth"]["single_trial_correlation"] for m in mice])),
        "by_type": {
            t: float(np.mean([m["ratio_by_group"][t]["ratio"] for m in mice if t in m["ratio_by_group"]]))
            for t in family_class(family).cell_type_names
        },  # fmt: skip
        "by_group": {
            k: float(np.mean([m["ratio_by_group"][k]["ratio"] for m in mice if k in m["ratio_by_group"]]))
            for k in next(iter(mice))["ratio_by_group"]
        },  # fmt: skip
    }
    if args.recon_trials:
        for _ in run_masks(run_dir, data, iterations=args.mask_iterations, seed=0, device=args.device, overwrite=True):
            pass
        config = ReconConfig(method="fast", iterations=args.recon_iterations, seed=0)
        for variant in ("ensemble", "oracle"):
            summary = run_reconstruction(run_dir, data, run_dir / "reconstructions" / f"bench-{variant}",
                                         config=config, trials=str(args.recon_trials), one_repeat=True,
                                         device=args.device, oracle=variant == "oracle", overwrite=True,
                                         movies=False, progress=args.progress)  # fmt: skip
            row[f"recon_{variant}"] = summary["mean"]["video_correlation"]
        row["recon_ratio"] = row["recon_ensemble"] / row["recon_oracle"]
    return row


def print_table(rows: list[dict]) -> None:
    for family in dict.fromkeys(r["family"] for r in rows):
        sub = [r for r in rows if r["family"] == family]
        types = list(family_class(family).cell_type_names)
        head = f"{'preset':<18}{'models':>7}{'train s':>9}{'truth r':>8}{'ens/truth':>10}{'best/truth':>11}"
        head += "".join(f"{t[:11]:>12}" for t in types) + f"{'recon r':>9}{'oracle r':>9}{'rec/orac':>9}"
        print(f"\nfamily {family}: ratio to the truth's single-trial correlation (by cell type: ensemble)")
        print(head)
        for r in sub:
            line = f"{r['preset']:<18}{r['models']:>7}{r['train_s']:>9.0f}{r['truth_r']:>8.3f}{r['ens_truth']:>10.3f}"
            line += f"{r['best_truth']:>11.3f}" + "".join(f"{r['by_type'].get(t, float('nan')):>12.3f}" for t in types)
            recon = [r.get(k) for k in ("recon_ensemble", "recon_oracle", "recon_ratio")]
            line += "".join(f"{v:>9.3f}" if v is not None else f"{'-':>9}" for v in recon)
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="folder for the simulated mice, runs and families.json")
    parser.add_argument("--families", nargs="+", default=list(FAMILY_NAMES), choices=list(FAMILY_NAMES))
    parser.add_argument("--presets", nargs="+", default=["fast3d", "subunit"])
    parser.add_argument("--sim-preset", default="default")
    parser.add_argument("--mice", type=int, default=2)
    parser.add_argument("--neurons", type=int, default=None, help="reduce the --sim-preset's neurons per mouse")
    parser.add_argument("--train-trials", type=int, default=None, help="... its training trials")
    parser.add_argument("--test-movies", type=int, default=None, help="... its movies per test tier")
    parser.add_argument("--repeats", type=int, default=None, help="... its repeats per test movie")
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--train-minutes", type=float, default=None, help="budget per preset and family (minutes)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--samples-per-epoch", type=int, default=None)
    parser.add_argument("--override", dest="overrides", action="append", default=[], help="model kwarg key=value")
    parser.add_argument("--shared-gain", action="store_true", help="train with the clip's shared gain divided out")
    parser.add_argument("--tag", default="", help="suffix of the run folder of a variant")
    parser.add_argument("--tiers", nargs="+", default=["oracle", "live_test", "final_test"])
    parser.add_argument("--recon-trials", type=int, default=0, help="final_test movies per mouse (0: skip)")
    parser.add_argument("--recon-iterations", type=int, default=30)
    parser.add_argument("--mask-iterations", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    results = args.root / "families.json"
    for family in args.families:
        for preset in args.presets:
            row = measure(args, family, preset)
            rows = read_rows(results)  # read again: another measurement may have added its rows meanwhile
            rows = [r for r in rows if (r["family"], r["preset"]) != (row["family"], row["preset"])] + [row]
            results.write_text(json.dumps(rows, indent=1))
    print_table([r for r in read_rows(results) if r["family"] in args.families])


def read_rows(results: Path) -> list[dict]:
    return json.loads(results.read_text()) if results.is_file() else []


if __name__ == "__main__":
    main()
