"""NWB in, NWB out at a realistic size: an in-silico mouse written as a pynwb session, imported, trained on,
reconstructed and exported, every stage timed and held against the truth.

    python benchmarks/nwb_roundtrip.py OUT                       # 300 neurons, 78 trials of 10 s (13 min of movie)
    python benchmarks/nwb_roundtrip.py OUT --neurons 500 --train-trials 100 --train-minutes 10

The session file: the movie at twice the resolution (72 x 128, 8-bit, 30 Hz), the responses imaged at 15 Hz (each
sample the mean of two 30 Hz frames, so the import has to interpolate), running speed but no eye tracking (the
reader fills the pupil channels). The truth model is copied beside the imported folder, so `evaluate` reports the
encoders' ratio to the true model on the imported (resampled) responses. Needs the nwb extra (pip install -e
'.[nwb]'). Prints one table: sizes and seconds per stage, agreement of imported and simulated arrays, encoder and
reconstruction quality, and what NWB Inspector says about the export.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the pynwb session builder of the tests


def v1recon(*args) -> float:
    """Run `v1recon ARGS` (progress on stderr), fail loudly; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "v1recon", *map(str, args)], check=True)
    return time.perf_counter() - start


def simulate(folder: Path, neurons: int, train_trials: int, test_movies: int) -> Path:
    from v1recon.sim.simulate import Preset, _one_mouse

    preset = Preset(n_neurons=neurons, n_train=train_trials, n_test_movies=test_movies, n_repeats=10, n_frames=300,
                    pad_frames=15)  # fmt: skip
    folder.mkdir(parents=True)
    _one_mouse(folder, preset, seed=0, index=0, options={"progress": True, "figure": False})
    return folder / "insilico-s0-m0"


def agreement(original, imported) -> dict:
    """Largest pixel difference, and per neuron the correlation of imported and simulated responses."""
    if len(imported.trials) != len(original.trials):
        raise SystemExit(f"imported {len(imported.trials)} of the {len(original.trials)} simulated trials")
    pixel = 0.0
    responses = {"mine": [], "theirs": []}
    for info in imported.trials:
        mine, theirs = imported.trial(info.trial_id), original.trial(info.trial_id)
        pixel = max(pixel, float(np.abs(mine.video - theirs.video).max()))
        responses["mine"].append(mine.responses)
        responses["theirs"].append(theirs.responses)
    a, b = (np.concatenate(responses[k], 1) for k in ("mine", "theirs"))
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return {"max_pixel_difference": pixel, "response_correlation_median": float(np.median(corr))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="Working folder (must not exist).")
    parser.add_argument("--neurons", type=int, default=300, help="Neurons of the mouse (default: 300).")
    parser.add_argument("--train-trials", type=int, default=48, help="10-s training trials (default: 48).")
    parser.add_argument("--test-movies", type=int, default=1, help="Test movies per test tier, 10 repeats each.")
    parser.add_argument("--train-minutes", type=float, default=6.0, help="Training budget, all models (default: 6).")
    parser.add_argument("--models", type=int, default=3, help="Encoders in the ensemble (default: 3).")
    parser.add_argument("--recon-trials", type=int, default=4, help="final_test trials reconstructed (default: 4).")
    parser.add_argument("--recon-iterations", type=int, default=30, help="fast steps per reconstruction (default: 30).")
    parser.add_argument("--mask-iterations", type=int, default=150, help="alpha-mask iterations (default: 150).")
    args = parser.parse_args()
    from nwb_build import from_recording
    from nwbinspector import Importance, inspect_nwbfile

    from v1recon.data import open_recordings
    from v1recon.sim.model import truth_path

    out, t, rows = args.out, {}, {}
    start = time.perf_counter()
    original = open_recordings(simulate(out / "sim", args.neurons, args.train_trials, args.test_movies))[0]
    t["simulate"] = time.perf_counter() - start
    start = time.perf_counter()
    session = from_recording(original, out / "session.nwb", imaging_step=2)
    t["write session.nwb (pynwb)"] = time.perf_counter() - start
    data = out / "data"
    t["import nwb"] = v1recon("import", "nwb", session, data)
    imported = open_recordings(data)[0]
    for suffix in (".safetensors", ".json"):  # the truth of the simulated mouse, under the imported name
        shutil.copy(truth_path(original.path).with_suffix(suffix), truth_path(imported.path).with_suffix(suffix))
    rows.update(agreement(original, imported))
    run = out / "run"
    t["train"] = v1recon("train", data, "--out", run, "--preset", "fast3d", "--models", args.models,
                         "--time-budget", args.train_minutes)  # fmt: skip
    t["evaluate"] = v1recon("evaluate", run, "--data", data)
    t["mask"] = v1recon("mask", run, "--data", data, "--iterations", args.mask_iterations)
    t["reconstruct"] = v1recon("reconstruct", run, "--data", data, "--out", out / "recon", "--trials",
                               args.recon_trials, "--iterations", args.recon_iterations, "--no-movies")  # fmt: skip
    t["export nwb"] = v1recon("export", "nwb", out / "recon", out / "recon.nwb")
    messages = inspect_nwbfile(nwbfile_path=str(out / "recon.nwb"))
    by_importance = {i.name: sum(1 for m in messages if m.importance == i) for i in Importance}
    evaluation = json.loads((run / "evaluation" / "encoders.json").read_text())
    summary = json.loads((out / "recon" / "summary.json").read_text())
    provenance = json.loads(imported.path.with_suffix(".json").read_text())
    print("\n| quantity | value |\n|---|---|")
    print(f"| session | {args.neurons} neurons, {len(imported.trials)} trials of 10 s, tiers "
          f"{provenance['choices']['tiers']['counts']} |")  # fmt: skip
    print(f"| session.nwb | {session.stat().st_size / 1e6:.0f} MB |")
    print(f"| imported folder | {sum(f.stat().st_size for f in data.rglob('*') if f.is_file()) / 1e6:.0f} MB |")
    for stage, seconds in t.items():
        print(f"| {stage} | {seconds:.1f} s |")
    print(f"| largest pixel difference, imported vs simulated (8-bit file) | {rows['max_pixel_difference']:.3f} |")
    print(f"| response correlation, imported (15 Hz -> 30 Hz) vs simulated, median neuron | "
          f"{rows['response_correlation_median']:.3f} |")  # fmt: skip
    print(f"| encoders (evaluate) | {json.dumps(_headline(evaluation))} |")
    print(f"| reconstruction video correlation, mean of {len(summary['trials'])} trials | "
          f"{summary['mean']['video_correlation']:.3f} |")  # fmt: skip
    print(f"| NWB Inspector messages on recon.nwb | {by_importance} |")


def _headline(evaluation: dict) -> dict:
    """The ensemble's and the true model's single-trial correlation on the test tiers, and their ratio."""
    (res,) = evaluation["mice"].values()
    enc = res["encoders"]
    return {
        "ensemble r": round(enc["ensemble"]["single_trial_correlation"], 3),
        "true model r": round(enc["truth"]["single_trial_correlation"], 3) if "truth" in enc else None,
        "ratio": round(res["ratio_to_truth"]["ensemble"], 3) if "ratio_to_truth" in res else None,
        "test trials": res["n_trials"],
    }


if __name__ == "__main__":
    main()
