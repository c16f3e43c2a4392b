"""Encoding models: DwiseNeuro layout and windowing, the fast factorised model, adapters, saving and loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from models_toy import TINY_DWISE, TINY_FAST, TINY_SUBUNIT, inputs, one_thread, tiny_dwise  # noqa: F401 (fixture)

from v1recon.errors import V1ReconError
from v1recon.models import BoundEncoder, EnsembleEncoder, build_model, load_model, save_model
from v1recon.models.dwiseneuro import PositionalEncoding3d, stack_inputs

REFERENCE = Path(__file__).resolve().parent / "data" / "dwiseneuro_state_dict.txt"


def test_paper_preset_matches_published_state_dict():
    with torch.device("meta"):
        model = build_model("paper", [7863, 7908])
    lines = [line.split() for line in REFERENCE.read_text().splitlines() if line and not line.startswith("#")]
    ours = [
        (k, str(v.dtype).removeprefix("torch."), "x".join(map(str, v.shape)) or "scalar")
        for k, v in model.state_dict().items()
    ]
    assert ours == [tuple(line) for line in lines]


def test_positional_encoding_known_values():
    pe = PositionalEncoding3d(6)  # c = 2: one frequency (1.0) per axis
    assert pe.inv_freq.tolist() == [1.0]
    enc = pe.encoding(3, 4, 5, torch.device("cpu"))
    t, h, w = 2, 3, 4
    expected = [math.sin(t), math.cos(t), math.sin(h), math.cos(h), math.sin(w), math.cos(w)]
    assert torch.allclose(enc[:, t, h, w], torch.tensor(expected))
    assert PositionalEncoding3d(64).inv_freq.shape == (11,)


def test_stack_inputs_layout():
    video, behaviour = inputs(1, 3)
    x = stack_inputs(video, behaviour)
    assert x.shape == (1, 5, 3, 64, 64)
    assert torch.equal(x[0, 0, :, 14:50], video[0])
    assert x[0, 0, :, :14].abs().sum() == 0 and x[0, 0, :, 50:].abs().sum() == 0
    assert torch.equal(x[0, 1:, 2, 37, 5], behaviour[0, :, 2])
    assert torch.equal(x[0, 3, 1], behaviour[0, 2, 1].expand(64, 64))


def test_batched_windows_equal_published_one_window_loop():
    model = tiny_dwise()
    video, behaviour = inputs(2, 37)
    with torch.no_grad():
        ours = model(video, behaviour, 1)
        total, count = torch.zeros(2, 7, 37), torch.zeros(37)
        for end in range(30, 37):  # published: one window at a time, summed, divided by coverage
            frames = torch.arange(end - 30, end + 1, 2)
            total[:, :, frames] += model.forward_stacked(stack_inputs(video[:, frames], behaviour[:, :, frames]), 1)
            count[frames] += 1
    assert torch.allclose(ours, total / count.clamp(min=1), atol=1e-5)
    with torch.no_grad():
        single = model(video[:, :31], behaviour[:, :, :31], 1)  # one window: odd frames are covered by none
    assert single[:, :, 1::2].abs().sum() == 0 and single[:, :, ::2].min() > 0


def test_chunked_windows_with_recompute_give_same_values_and_gradients():
    model = tiny_dwise()
    video, behaviour = inputs(1, 34)
    grads, outs = [], []
    for budget in (1 << 40, 1):  # everything at once, then one window per chunk (recomputed in backward)
        model.memory_budget_bytes = budget
        v = video.clone().requires_grad_()
        out = model(v, behaviour, 0)
        (out * torch.linspace(0, 1, 34)).sum().backward()
        outs.append(out.detach())
        grads.append(v.grad)
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_bound_encoder_backward_through_recomputed_chunks_of_a_training_model():
    model = tiny_dwise()
    video, behaviour = inputs(1, 33)
    grads = []
    for budget in (1 << 40, 1):
        model.memory_budget_bytes = budget
        model.train()  # BoundEncoder restores training mode before backward recomputes the chunks
        v = video.clone().requires_grad_()
        BoundEncoder(model, 0)(v, behaviour).sum().backward()
        grads.append(v.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_predict_windows_and_train_forward_agree():
    model = tiny_dwise()
    video, behaviour = inputs(2, 40)
    with torch.no_grad():
        win = model.predict_windows(video, behaviour, 0, [30, 39])
        pred, idx = model.train_forward(video[:, 9:40], behaviour[:, :, 9:40], 0)
    assert win.shape == (2, 2, 9, 16)
    assert idx.tolist() == list(range(0, 31, 2))
    assert torch.allclose(win[:, 1], pred, atol=1e-5)
    with pytest.raises(ValueError):
        model.predict_windows(video, behaviour, 0, [29])


def test_dwiseneuro_training_mode_is_stochastic_and_eval_is_not():
    model = tiny_dwise()
    video, behaviour = inputs(2, 31)
    model.train()
    a, _ = model.train_forward(video, behaviour, 0)
    b, _ = model.train_forward(video, behaviour, 0)
    assert not torch.allclose(a, b)  # dropout and stochastic depth
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.train_forward(video, behaviour, 0)[0], model.train_forward(video, behaviour, 0)[0])


def test_dwiseneuro_needs_a_full_window():
    with pytest.raises(V1ReconError, match="31"):
        tiny_dwise()(*inputs(1, 30), 0)


def test_fast3d_is_causal_with_its_context():
    torch.manual_seed(0)
    model = build_model("fast3d", [11], **TINY_FAST).eval()
    video, behaviour = inputs(1, 30)
    changed = video.clone()
    changed[:, 20] = 255 - changed[:, 20]
    with torch.no_grad():
        a, b = model(video, behaviour, 0), model(changed, behaviour, 0)
    diff = (a - b).abs().amax(dim=(0, 1))
    assert diff[:20].max() == 0  # no frame before the change is affected
    assert diff[20] > 0
    assert diff[20 + model.context_frames + 1 :].max() == 0  # nor any frame beyond the context
    assert model.context_frames == 4 + 2


def test_fast3d_train_forward_and_response_mean():
    torch.manual_seed(0)
    model = build_model("fast3d", [5, 3], **TINY_FAST)
    video, behaviour = inputs(2, model.train_clip_frames)
    pred, idx = model.train_forward(video, behaviour, 1)
    assert pred.shape == (2, 3, 6) and idx.tolist() == list(range(6, 12))
    mean = torch.tensor([0.05, 1.0, 4.0])
    model.set_response_mean(1, mean)
    with torch.no_grad():
        model.readouts[1].weight.zero_()
        model.eval()
        out = model(video, behaviour, 1)
    assert torch.allclose(out, mean[None, :, None].expand_as(out), rtol=1e-4)


@pytest.mark.parametrize(
    "preset,overrides",
    [
        ("small", TINY_DWISE),
        ("fast3d", TINY_FAST),
        ("fast3d", {**TINY_FAST, "readout": "free"}),
        ("subunit", TINY_SUBUNIT),
    ],
)
def test_save_load_round_trip(tmp_path, preset, overrides):
    torch.manual_seed(0)
    model = build_model(preset, [9, 7], **overrides)
    model.train()
    model.train_forward(*inputs(3, model.train_clip_frames), 0)  # moves running statistics
    save_model(tmp_path / "model-0", model, {"note": "x"})
    loaded, config = load_model(tmp_path / "model-0")
    assert config["note"] == "x" and config["preset"] == preset and config["neuron_counts"] == [9, 7]
    video, behaviour = inputs(1, 40)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(video, behaviour, 1), loaded(video, behaviour, 1))


def test_load_model_errors(tmp_path):
    model = build_model("fast3d", [9, 7], **TINY_FAST)
    save_model(tmp_path / "m", model, {})
    with pytest.raises(V1ReconError, match="not found"):
        load_model(tmp_path / "missing")
    config = tmp_path / "m.json"
    config.write_text(config.read_text().replace("[\n    9,\n    7\n  ]", "[\n    9,\n    8\n  ]", 1))
    with pytest.raises(V1ReconError, match=r"m\.safetensors: weight readouts\.1\.\w+ has shape"):
        load_model(tmp_path / "m")
    with pytest.raises(V1ReconError, match="unknown model preset"):
        build_model("huge", [3])


def test_bound_encoder_is_eval_frozen_and_restores_the_model():
    model = tiny_dwise()
    model.train()
    encoder = BoundEncoder(model, 1)
    video, behaviour = inputs(1, 33)
    v = video.clone().requires_grad_()
    out = encoder(v, behaviour)
    out.sum().backward()
    assert out.shape == (1, 7, 33) and encoder.n_neurons == 7
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # weights frozen during the call
    assert model.training and all(p.requires_grad for p in model.parameters())  # and restored after
    model.eval()
    with torch.no_grad():
        assert torch.equal(out.detach(), model(video, behaviour, 1))
    assert encoder.predict_windows(video, behaviour, [32]).shape == (1, 1, 7, 16)
    with pytest.raises(V1ReconError, match="out of range"):
        BoundEncoder(model, 2)


def test_ensemble_is_the_mean_and_checks_neuron_counts():
    a, b = BoundEncoder(tiny_dwise(seed=0), 1), BoundEncoder(tiny_dwise(seed=1), 1)
    video, behaviour = inputs(1, 32)
    ensemble = EnsembleEncoder([a, b])
    assert torch.allclose(ensemble(video, behaviour), (a(video, behaviour) + b(video, behaviour)) / 2)
    assert ensemble.windowing is not None and ensemble.n_neurons == 7
    fast = BoundEncoder(build_model("fast3d", [7], **TINY_FAST), 0)
    assert EnsembleEncoder([a, fast]).windowing is None
    with pytest.raises(V1ReconError, match="different neuron counts"):
        EnsembleEncoder([a, BoundEncoder(tiny_dwise(), 0)])
