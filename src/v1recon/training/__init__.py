"""Training encoders: Poisson loss, AdamW with warm-up + cosine, weight EMA, same-mouse CutMix, folds by movie,
ensembles over folds or seeds, checkpoints with resume, and the run folder that later steps build on.

    train_run(data, out, preset, n_models, ensemble, ...)  -> RunInfo      (what `v1recon train` does)
    load_run(run_dir) -> RunInfo;  load_encoders(run_dir, mouse_name, device) -> [BoundEncoder, ...]
    evaluate_run(run_dir, data) -> dict                                     (what `v1recon evaluate` does)
"""

from v1recon.training.config import TRAIN_PRESETS, TrainConfig, train_config
from v1recon.training.cutmix import cutmix, cutmix_box
from v1recon.training.ema import EMA, ema_decay_for
from v1recon.training.evaluate import evaluate_run, format_table
from v1recon.training.losses import poisson_loss
from v1recon.training.run import RunInfo, load_encoders, load_run, model_stem, train_run
from v1recon.training.schedules import WarmupCosine, warmup_cosine
from v1recon.training.splits import ENSEMBLE_KINDS, Split, plan_splits
from v1recon.training.trainer import Trainer, predict_trials

__all__ = [
    "EMA",
    "ENSEMBLE_KINDS",
    "TRAIN_PRESETS",
    "RunInfo",
    "Split",
    "TrainConfig",
    "Trainer",
    "WarmupCosine",
    "cutmix",
    "cutmix_box",
    "ema_decay_for",
    "evaluate_run",
    "format_table",
    "load_encoders",
    "load_run",
    "model_stem",
    "plan_splits",
    "poisson_loss",
    "predict_trials",
    "train_config",
    "train_run",
    "warmup_cosine",
]
