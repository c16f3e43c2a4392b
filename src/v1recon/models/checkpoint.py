"""Published DwiseNeuro checkpoints (`torch.save` of {'model_name', 'params', 'nn_state_dict'}).

Loading is safe (`torch.load(weights_only=True)`: plain containers and tensors only, no code) and strict: every
weight is checked by name and shape against the architecture the checkpoint's own kwargs describe.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from v1recon.errors import V1ReconError
from v1recon.io import atomic_path
from v1recon.models.dwiseneuro import CANVAS, WINDOW, DwiseNeuro
from v1recon.models.store import check_state_dict

FRAME_STACK = {"size": WINDOW.frames, "step": WINDOW.step, "position": "last"}
INPUTS_PROCESSOR = ("stack_inputs", {"size": (CANVAS, CANVAS), "pad_fill_value": 0.0})


def read_published(path: Path) -> dict:
    if not path.is_file():
        raise V1ReconError(f"{path}: file not found.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise V1ReconError(f"{path}: not a loadable weights-only torch checkpoint ({first}).") from err
    if not isinstance(payload, dict) or "nn_state_dict" not in payload or "params" not in payload:
        raise V1ReconError(f"{path}: not a DwiseNeuro checkpoint (no 'params' and 'nn_state_dict' entries).")
    return payload


def published_kwargs(path: Path, params: dict) -> dict:
    module = params.get("nn_module")
    if not isinstance(module, (tuple, list)) or len(module) != 2 or not isinstance(module[1], dict):
        raise V1ReconError(f"{path}: params['nn_module'] is not a (name, kwargs) pair.")
    name, kwargs = module
    if name != "dwiseneuro":
        raise V1ReconError(f"{path}: architecture {name!r} is not supported (only 'dwiseneuro').")
    stack = params.get("frame_stack", FRAME_STACK)
    if {k: stack.get(k) for k in FRAME_STACK} != FRAME_STACK:
        raise V1ReconError(f"{path}: frame stack {stack} differs from the supported {FRAME_STACK}.")
    proc = params.get("inputs_processor", INPUTS_PROCESSOR)
    if proc[0] != "stack_inputs" or tuple(proc[1].get("size", ())) != (CANVAS, CANVAS):
        raise V1ReconError(f"{path}: inputs processor {proc} differs from the supported {INPUTS_PROCESSOR}.")
    if float(proc[1].get("pad_fill_value", 0.0)) != 0.0:
        raise V1ReconError(f"{path}: inputs processor pads with {proc[1]['pad_fill_value']}, only 0 is supported.")
    return dict(kwargs)


def load_published_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> DwiseNeuro:
    """Load a published DwiseNeuro `.pth` -> the model in eval mode (readouts in the checkpoint's mouse order)."""
    path = Path(path)
    payload = read_published(path)
    kwargs = published_kwargs(path, payload["params"])
    try:
        model = DwiseNeuro(**kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise V1ReconError(f"{path}: cannot build DwiseNeuro from its kwargs ({err}).") from err
    state = payload["nn_state_dict"]
    check_state_dict(path, model, state)
    model.load_state_dict(state)
    model.preset = "published"
    model.published_name = path.name
    return model.to(device).eval()


def export_published_checkpoint(model: DwiseNeuro, path: str | os.PathLike, params: dict | None = None) -> Path:
    """Write a DwiseNeuro in the published checkpoint layout (atomically), loadable by the original code."""
    if not isinstance(model, DwiseNeuro):
        raise V1ReconError(f"{path}: only DwiseNeuro models can be exported as published checkpoints.")
    full = {
        "nn_module": ("dwiseneuro", dict(model.kwargs)),
        "frame_stack": dict(FRAME_STACK),
        "inputs_processor": INPUTS_PROCESSOR,
        "responses_processor": ("identity", {}),
        **(params or {}),
    }
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"model_name": "MouseModel", "params": full, "nn_state_dict": state}, tmp)
    return path
