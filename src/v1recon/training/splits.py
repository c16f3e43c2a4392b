"""Which movies each model of an ensemble trains and validates on.

Trials are assigned to folds by a perceptual hash of their movie (`v1recon.data.movie_fold`), so every repeat of a
movie, in any tier and any mouse, lands in the same fold. One fold (`test_fold`, default 0) is held out from every
model: its movies are the ones reconstructed later. Of the remaining folds:

- ensemble "folds": model k validates on the k-th remaining fold (fold 1 + k when test_fold is 0) and trains on
  the others, so each model sees a different part of the data (at most n_folds - 1 models);
- ensemble "seeds": every model validates on the first remaining fold and trains on the same data; the models
  differ only in their seed, as in the published ensemble.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from v1recon.errors import V1ReconError

ENSEMBLE_KINDS = ("folds", "seeds")
N_FOLDS = 7
TEST_FOLD = 0


@dataclass(frozen=True)
class Split:
    """The data plan of one model: its seed, validation fold, training folds and the held-out test fold."""

    model_index: int
    seed: int
    val_fold: int
    train_folds: tuple[int, ...]
    test_fold: int

    def to_dict(self) -> dict:
        return {**asdict(self), "train_folds": list(self.train_folds)}

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(
            int(d["model_index"]), int(d["seed"]), int(d["val_fold"]), tuple(d["train_folds"]), int(d["test_fold"])
        )


def plan_splits(
    n_models: int, ensemble: str = "folds", seed: int = 0, n_folds: int = N_FOLDS, test_fold: int = TEST_FOLD
) -> list[Split]:
    """One Split per model; model k is seeded with seed + k in both ensemble kinds."""
    if ensemble not in ENSEMBLE_KINDS:
        raise V1ReconError(f"ensemble must be one of {', '.join(ENSEMBLE_KINDS)}, got {ensemble!r}.")
    if not 0 <= test_fold < n_folds:
        raise V1ReconError(f"test fold {test_fold} is outside 0..{n_folds - 1}.")
    if n_models < 1:
        raise V1ReconError(f"need at least one model, got {n_models}.")
    remaining = [f for f in range(n_folds) if f != test_fold]
    if len(remaining) < 2:
        raise V1ReconError(f"{n_folds} folds leave no fold to train on besides validation and the held-out fold.")
    if ensemble == "folds" and n_models > len(remaining):
        raise V1ReconError(
            f"--ensemble folds gives at most {len(remaining)} models with {n_folds} folds, got {n_models}; "
            "use --ensemble seeds for more."
        )
    splits = []
    for k in range(n_models):
        val_fold = remaining[k] if ensemble == "folds" else remaining[0]
        train = tuple(f for f in remaining if f != val_fold)
        splits.append(Split(k, seed + k, val_fold, train, test_fold))
    return splits
