"""What each effect of a cascade mouse is worth to an encoder: the truth without it, against the full truth.

    python benchmarks/cascade_effects.py runs/families/cascade/data/insilico-s0-m0 --tiers final_test

For every effect, a copy of the mouse's true model with that effect switched off (its parameter set to zero; the
drive re-standardised on 3 training trials, the spike amplitude kept) predicts the test trials; the table gives
its single-trial correlation with the recorded responses over the full truth's, overall and on the neurons the
effect concerns. An encoder that cannot represent an effect at all scores at most about that ratio (a fitted model
can make up part of it); effects whose ablation costs little are not what keeps an encoder from the truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

ABLATIONS = {  # effect -> (parameter changes, neurons it concerns)
    "surround suppression": (lambda p: p.update(surround_weight=np.zeros_like(p["surround_weight"])),
                             lambda p: p["surround_weight"] >= 0.5),
    "cross-orientation": (lambda p: p.update(cross_weight=np.zeros_like(p["cross_weight"])),
                          lambda p: p["cross_weight"] >= 0.75),
    "contrast adaptation": (lambda p: p.update(adapt_strength=np.zeros_like(p["adapt_strength"])),
                            lambda p: p["adapt_strength"] >= 0.5),
    "end-stopping": (lambda p: p.update(end_weight=np.zeros_like(p["end_weight"])), lambda p: p["cell_type"] == 2),
    "running suppression": (lambda p: p.update(run_gain=np.maximum(p["run_gain"], 0.0)), lambda p: p["run_gain"] < 0),
    "OFF bias of simple cells": (lambda p: p.update(off_bias=np.zeros_like(p["off_bias"])),
                                 lambda p: p["cell_type"] == 0),
}  # fmt: skip


def main() -> None:
    from v1recon.data import open_recordings
    from v1recon.metrics.encoder import single_trial_correlation
    from v1recon.sim import load_truth
    from v1recon.sim.cascade import CascadeV1
    from v1recon.training.trainer import predict_trials

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mouse", type=Path, help="a simulated cascade mouse folder (its truth beside it)")
    parser.add_argument("--tiers", nargs="+", default=["oracle", "live_test", "final_test"])
    args = parser.parse_args()
    (rec,) = open_recordings(args.mouse)
    truth = load_truth(rec.path)
    if not isinstance(truth, CascadeV1):
        raise SystemExit(f"{args.mouse}: not a cascade mouse")
    ids = rec.trial_ids(tier=tuple(args.tiers), with_responses=True)
    trials = [rec.trial(i) for i in ids]
    videos, behaviour = [t.video for t in trials], [t.behaviour for t in trials]
    responses = [t.responses for t in trials]
    calibration = [rec.trial(i) for i in rec.trial_ids("train")[:3]]
    cal_video = np.stack([t.video[:300] for t in calibration]).astype(np.float32)
    cal_beh = np.stack([t.behaviour[:, :300] for t in calibration]).astype(np.float32)
    device = torch.device("cpu")

    def per_neuron(model) -> np.ndarray:
        return single_trial_correlation(predict_trials(model.eval(), videos, behaviour, device), responses).per_neuron

    full = per_neuron(truth)
    print(f"{rec.name}: {len(ids)} trials ({'/'.join(args.tiers)}), truth single-trial r {full.mean():.3f}")
    print(f"{'without':<28}{'ratio (all)':>12}{'ratio (concerned)':>19}{'neurons':>9}")
    for effect, (change, concerned) in ABLATIONS.items():
        params = truth.parameters_numpy()
        change(params)
        ablated = CascadeV1(params, truth.config)
        ablated._standardise(cal_video, cal_beh)
        r = per_neuron(ablated)
        mask = concerned(truth.parameters_numpy())
        print(f"{effect:<28}{r.mean() / full.mean():>12.3f}{r[mask].mean() / full[mask].mean():>19.3f}{mask.sum():>9}")


if __name__ == "__main__":
    main()
