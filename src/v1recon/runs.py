"""The run folder: an ensemble trained on a set of mice, and everything later steps add to it; reading it.

RUN/run.json                          data path and identity, mice, preset, training config, folds, seeds,
                                      per-model status and timings
RUN/models/model-<k>.safetensors      EMA weights of model k (v1recon.models.save_model)
RUN/models/model-<k>.json             its config: preset, neuron counts, mouse names, split, seed, data identity
RUN/models/model-<k>.log.csv          loss, learning rate and validation correlation per epoch
RUN/models/model-<k>.state.pt         optimiser/EMA/sampler state while model k is unfinished (for resume)
RUN/masks/<mouse>.npz (+ .json)       alpha masks (v1recon mask)
RUN/evaluation/encoders.json          encoder metrics (v1recon evaluate)
RUN/reconstructions/                  reconstructions (v1recon reconstruct)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from v1recon.errors import V1ReconError
from v1recon.io import file_digest, provenance, read_json, write_json
from v1recon.training.splits import Split

RUN_FILE = "run.json"
DEMO_FILE = "demo.json"  # stage log of `v1recon demo`, which keeps its data and this log inside the run folder
RUN_FORMAT = "v1recon-run/1"
MODELS_DIR = "models"
RUN_SUBDIRS = ("models", "masks", "evaluation", "reconstructions")


def model_stem(run_dir: str | Path, index: int) -> Path:
    """RUN/models/model-<index> (add .safetensors, .json, .log.csv)."""
    return Path(run_dir) / MODELS_DIR / f"model-{index}"


@dataclass
class RunInfo:
    """The content of RUN/run.json."""

    path: Path
    data: str
    mice: list[dict]  # name, path, n_neurons, identity
    preset: str
    ensemble: str
    seed: int
    n_folds: int
    test_fold: int
    splits: list[Split]
    train_config: dict
    models: list[dict] = field(default_factory=list)  # index, complete, epochs, val_corr, seconds
    timings: dict = field(default_factory=dict)

    @property
    def mouse_names(self) -> list[str]:
        return [m["name"] for m in self.mice]

    @property
    def neuron_counts(self) -> list[int]:
        return [int(m["n_neurons"]) for m in self.mice]

    @property
    def n_models(self) -> int:
        return len(self.splits)

    def mouse_index(self, name: str) -> int:
        if name not in self.mouse_names:
            raise V1ReconError(
                f"{self.path / RUN_FILE}: no mouse named {name!r} in this run (it has {', '.join(self.mouse_names)})."
            )
        return self.mouse_names.index(name)

    def complete_models(self) -> list[int]:
        return [m["index"] for m in self.models if m.get("complete")]

    def to_dict(self) -> dict:
        return {
            "format": RUN_FORMAT,
            "data": self.data,
            "mice": self.mice,
            "preset": self.preset,
            "ensemble": self.ensemble,
            "seed": self.seed,
            "n_folds": self.n_folds,
            "test_fold": self.test_fold,
            "splits": [s.to_dict() for s in self.splits],
            "train_config": self.train_config,
            "models": self.models,
            "timings": self.timings,
        }

    def save(self) -> None:
        write_json(self.path / RUN_FILE, {**self.to_dict(), "provenance": provenance()})


def load_run(run_dir: str | Path) -> RunInfo:
    """Read RUN/run.json; a clear error when the folder is not a training run."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise V1ReconError(f"{path}: not found; is {run_dir} a folder written by `v1recon train`?")
    d = read_json(path)
    if d.get("format") != RUN_FORMAT:
        raise V1ReconError(f"{path}: unknown run format {d.get('format')!r} (expected {RUN_FORMAT}).")
    try:
        return RunInfo(
            path=run_dir,
            data=d["data"],
            mice=d["mice"],
            preset=d["preset"],
            ensemble=d["ensemble"],
            seed=int(d["seed"]),
            n_folds=int(d["n_folds"]),
            test_fold=int(d["test_fold"]),
            splits=[Split.from_dict(s) for s in d["splits"]],
            train_config=d["train_config"],
            models=d.get("models", []),
            timings=d.get("timings", {}),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise V1ReconError(f"{path}: malformed run description ({err}).") from err


def load_encoders(run_dir: str | Path, mouse_name: str, device="cpu", include_incomplete: bool = False) -> list:
    """One BoundEncoder (Encoder contract: video (B,T,36,64), behaviour (B,4,T) -> (B,N,T)) per trained model.

    Models still in training are left out unless `include_incomplete` (they then carry their last epoch's EMA
    weights). The encoders are in eval mode on `device`; `encoder.name` is `model-<k>`.
    """
    import torch

    from v1recon.models import BoundEncoder, load_model

    run = load_run(run_dir)
    mouse = run.mouse_index(mouse_name)
    encoders = []
    for k in range(run.n_models):
        stem = model_stem(run.path, k)
        if not Path(f"{stem}.safetensors").is_file():
            continue
        model, config = load_model(stem)
        extra = config.get("extra", config)
        if not (extra.get("complete") or include_incomplete):
            continue
        names = extra.get("mouse_names", run.mouse_names)
        if list(names) != run.mouse_names:
            raise V1ReconError(f"{stem}.json: its mice {names} differ from the run's {run.mouse_names}.")
        model = model.to(torch.device(device)).eval()
        encoders.append(BoundEncoder(model, mouse, name=f"model-{k}"))
    if not encoders:
        raise V1ReconError(f"{run.path / MODELS_DIR}: no trained model yet; run `v1recon train` to finish the run.")
    return encoders


def recording_identity(recording) -> dict:
    """Name, path, neuron count and a content digest of a mouse folder (its tiers and neuron ids)."""
    root = Path(recording.path)
    digests = [
        file_digest(p) for p in (root / "meta/trials/tiers.npy", root / "meta/neurons/unit_ids.npy") if p.is_file()
    ]
    filled = getattr(recording, "filled_behaviour", None)  # behaviour channels not recorded, filled by the reader
    return {
        "name": recording.name,
        "path": str(root.resolve()),
        "n_neurons": int(recording.n_neurons),
        "n_trials": len(recording.trials),
        "identity": "-".join(digests),
        **({"filled_behaviour": dict(filled)} if filled else {}),
    }


def match_recordings(run, data: str | Path) -> list:
    """The recording of every mouse of the run, found by name under `data`; neuron counts must agree."""
    from v1recon.data import open_recordings

    found = {r.name: r for r in open_recordings(data)}
    out = []
    for mouse in run.mice:
        name, n = mouse["name"], int(mouse["n_neurons"])
        if name not in found:
            raise V1ReconError(
                f"{data}: holds no mouse {name!r} of the run {run.path} (found: {', '.join(sorted(found)) or 'none'})."
            )
        rec = found[name]
        if int(rec.n_neurons) != n:
            raise V1ReconError(f"{rec.path}: has {rec.n_neurons} neurons but the run's models predict {n} for {name}.")
        out.append(rec)
    return out


