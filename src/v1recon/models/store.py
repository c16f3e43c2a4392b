"""Saving and loading trained models: safetensors weights + a JSON config beside them."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from v1recon.errors import V1ReconError
from v1recon.io import atomic_path, read_json, write_json
from v1recon.models.base import MultiMouseModel
from v1recon.models.presets import build_architecture


def model_paths(path_stem: str | os.PathLike) -> tuple[Path, Path]:
    """`runs/x/models/model-0` -> (model-0.safetensors, model-0.json); a given suffix is dropped."""
    stem = Path(path_stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_model(path_stem: str | os.PathLike, model: MultiMouseModel, extra: dict | None = None) -> Path:
    """Write the weights (safetensors) and config (JSON: architecture, kwargs, neuron counts, `extra`) atomically."""
    from safetensors.torch import save_file

    weights, config = model_paths(path_stem)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
    write_json(
        config,
        {
            **model.config,
            "preset": getattr(model, "preset", None),
            "neuron_counts": list(model.neuron_counts),
            "weights": weights.name,
            **(extra or {}),
        },
    )
    return weights


def load_model(path_stem: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[MultiMouseModel, dict]:
    """Rebuild a saved model in eval mode -> (model, config dict as saved)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, config_path = model_paths(path_stem)
    config = read_json(config_path)
    if "architecture" not in config or "kwargs" not in config:
        raise V1ReconError(f"{config_path}: not a model config (no architecture or kwargs).")
    if not weights.is_file():
        raise V1ReconError(f"{weights}: file not found.")
    model = build_architecture(config["architecture"], config.get("neuron_counts", []), config["kwargs"])
    model.preset = config.get("preset")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise V1ReconError(f"{weights}: not a readable safetensors file ({err}).") from err
    check_state_dict(weights, model, state)
    model.load_state_dict(state)
    return model.to(device).eval(), config


def check_state_dict(path: Path, model: torch.nn.Module, state: dict) -> None:
    """Raise one clear sentence on the first missing, unexpected or mis-shaped weight."""
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise V1ReconError(f"{path}: weight {key} is missing (checkpoint does not match the architecture).")
        if tuple(state[key].shape) != tuple(value.shape):
            raise V1ReconError(
                f"{path}: weight {key} has shape {tuple(state[key].shape)}, the architecture needs "
                f"{tuple(value.shape)} (wrong architecture or neuron count)."
            )
    for key in state:
        if key not in expected:
            raise V1ReconError(f"{path}: unexpected weight {key} (checkpoint does not match the architecture).")
