"""Training encoders: Poisson loss, AdamW with warm-up + cosine, weight EMA, same-mouse CutMix, folds by movie,
ensembles over folds or seeds, checkpoints with resume.

    v1recon.training.run.train_run(data, out, preset, n_models, ...) -> RunInfo   (what `v1recon train` does)
    evaluate_run(run_dir, data) -> dict                                           (what `v1recon evaluate` does)
The run folder they write is read with v1recon.runs (load_run, load_encoders).
"""

from v1recon.training.config import TRAIN_PRESETS, TrainConfig, train_config
from v1recon.training.cutmix import cutmix, cutmix_box
from v1recon.training.ema import EMA, ema_decay_for
from v1recon.training.evaluate import evaluate_run, format_table
from v1recon.training.losses import poisson_loss
from v1recon.training.schedules import WarmupCosine, warmup_cosine
from v1recon.training.splits import ENSEMBLE_KINDS, Split, plan_splits
from v1recon.training.trainer import Trainer, predict_trials

__all__ = [
    "EMA",
    "ENSEMBLE_KINDS",
    "TRAIN_PRESETS",
    "Split",
    "TrainConfig",
    "Trainer",
    "WarmupCosine",
    "cutmix",
    "cutmix_box",
    "ema_decay_for",
    "evaluate_run",
    "format_table",
    "plan_splits",
    "poisson_loss",
    "predict_trials",
    "train_config",
    "warmup_cosine",
]
