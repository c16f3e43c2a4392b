"""Published DwiseNeuro checkpoints: safe loading, strict key/shape checks, export round trip."""

from __future__ import annotations

import pytest
import torch
from models_toy import TINY_DWISE, inputs, one_thread, randomise_batchnorm  # noqa: F401 (fixture)

from v1recon.errors import V1ReconError
from v1recon.models import build_model, export_published_checkpoint, load_published_checkpoint
from v1recon.models.dwiseneuro import PAPER_KWARGS

COUNTS = (9, 7)


def published_payload(counts=COUNTS, **changes) -> dict:
    """A checkpoint laid out as published, random weights, built from its own key list."""
    kwargs = {**PAPER_KWARGS, **TINY_DWISE, "readout_outputs": tuple(counts), **changes}
    torch.manual_seed(3)
    model = build_model("small", list(counts), **{k: v for k, v in kwargs.items() if k != "readout_outputs"})
    randomise_batchnorm(model)
    state = {k: (torch.randn_like(v) if v.is_floating_point() and "inv_freq" not in k else v.clone())
             for k, v in model.state_dict().items()}  # fmt: skip
    state = {k: (v.abs() + 0.1 if "running_var" in k else v) for k, v in state.items()}
    params = {
        "nn_module": ("dwiseneuro", kwargs),
        "frame_stack": {"size": 16, "step": 2, "position": "last"},
        "inputs_processor": ("stack_inputs", {"size": (64, 64), "pad_fill_value": 0.0}),
        "responses_processor": ("identity", {}),
        "amp": True,
    }
    return {"model_name": "MouseModel", "params": params, "nn_state_dict": state}


def test_load_run_export_round_trip(tmp_path):
    path = tmp_path / "model-017-0.291974.pth"
    payload = published_payload()
    torch.save(payload, path)
    model = load_published_checkpoint(path)
    assert not model.training and model.neuron_counts == list(COUNTS)
    assert torch.equal(
        model.state_dict()["readouts.1.layer.1.bias"], payload["nn_state_dict"]["readouts.1.layer.1.bias"]
    )
    video, behaviour = inputs(1, 33)
    with torch.no_grad():
        before = model(video, behaviour, 0)
    again = load_published_checkpoint(export_published_checkpoint(model, tmp_path / "copy.pth"))
    with torch.no_grad():
        assert torch.equal(before, again(video, behaviour, 0))
    raw = torch.load(tmp_path / "copy.pth", weights_only=True)
    assert raw["model_name"] == "MouseModel" and raw["params"]["nn_module"][0] == "dwiseneuro"
    assert raw["params"]["frame_stack"] == {"size": 16, "step": 2, "position": "last"}


def test_missing_unexpected_and_misshaped_weights_are_named(tmp_path):
    path = tmp_path / "bad.pth"
    payload = published_payload()
    del payload["nn_state_dict"]["cortex.layers.1.bn_sc.bn.running_var"]
    torch.save(payload, path)
    with pytest.raises(V1ReconError, match=r"bad\.pth: weight cortex\.layers\.1\.bn_sc\.bn\.running_var is missing"):
        load_published_checkpoint(path)
    payload = published_payload()
    payload["nn_state_dict"]["readouts.2.layer.1.bias"] = torch.zeros(3)
    torch.save(payload, path)
    with pytest.raises(V1ReconError, match=r"unexpected weight readouts\.2\.layer\.1\.bias"):
        load_published_checkpoint(path)
    payload = published_payload()
    payload["params"]["nn_module"][1]["readout_outputs"] = (9, 9)  # kwargs disagree with the weights
    torch.save(payload, path)
    with pytest.raises(
        V1ReconError,
        match=r"readouts\.1\.layer\.1\.weight has shape \(8, 16, 1\), the architecture needs \(10, 16, 1\)",
    ):
        load_published_checkpoint(path)


def test_wrong_architecture_and_unsafe_files_are_refused(tmp_path):
    path = tmp_path / "x.pth"
    payload = published_payload()
    payload["params"]["nn_module"] = ("resnet", {})
    torch.save(payload, path)
    with pytest.raises(V1ReconError, match="'resnet' is not supported"):
        load_published_checkpoint(path)
    payload = published_payload()
    payload["params"]["frame_stack"] = {"size": 8, "step": 2, "position": "last"}
    torch.save(payload, path)
    with pytest.raises(V1ReconError, match="frame stack"):
        load_published_checkpoint(path)
    torch.save({"params": {}, "nn_state_dict": {}, "code": torch.nn.ReLU()}, path)  # an arbitrary object
    with pytest.raises(V1ReconError, match="not a loadable weights-only"):
        load_published_checkpoint(path)
    with pytest.raises(V1ReconError, match="not found"):
        load_published_checkpoint(tmp_path / "absent.pth")
