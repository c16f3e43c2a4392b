"""Generic response modulations of the fast3d readout: surround normalisation, adaptation, saturating gain."""

from __future__ import annotations

import math

import pytest
import torch

from v1recon.models import build_model, load_model, save_model
from v1recon.models.modulation import Adaptation, SaturatingGain

TINY = dict(channels=(4, 4), spatial_kernels=(3, 3), temporal_kernels=(3, 3), train_predicted_frames=6)
MODULATED = dict(TINY, surround=True, adaptation_frames=20, behaviour_hidden=3)


def inputs(batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 36, 64, generator=g) * 255, torch.rand(batch, 4, frames, generator=g) * 5


def test_adaptation_divides_by_the_low_passed_own_output():
    adapt = Adaptation(2, frames=90, tau_frames=15.0)
    with torch.no_grad():
        adapt.raw_strength.copy_(torch.tensor([-30.0, 0.5413]))  # softplus: 0 and 1
        adapt.scale.fill_(2.0)
    step = torch.cat([torch.zeros(1, 2, 10), torch.full((1, 2, 80), 2.0)], 2)
    with torch.no_grad():
        out = adapt(step)[0]
    torch.testing.assert_close(out[0], step[0, 0])  # no strength: unchanged
    mass = lambda lags: (1 - math.exp(-lags / 15)) / (1 - math.exp(-90 / 15))  # noqa: E731  (kernel mass)
    assert float(out[1, 10]) > 1.5  # onset: little history yet
    assert float(out[1, 25]) == pytest.approx(2.0 / (1 + mass(16)), rel=1e-3)
    assert float(out[1, -1]) == pytest.approx(2.0 / (1 + mass(80)), rel=1e-3)


def test_modulations_start_switched_off():
    torch.manual_seed(0)
    plain, modulated = build_model("fast3d", [7], **TINY), build_model("fast3d", [7], **MODULATED)
    modulated.load_state_dict(plain.state_dict(), strict=False)  # same core and readout weights
    assert modulated.context_frames == plain.context_frames + 19
    video, behaviour = inputs(1, 60)
    with torch.no_grad():
        a, b = plain.eval()(video, behaviour, 0), modulated.eval()(video, behaviour, 0)
    assert torch.allclose(a, b, rtol=0.1)  # surround divisor ~1.02, adaptation ~0.05, gain 1
    assert SaturatingGain(3, 2)(torch.randn(1, 4, 5)).abs().max() == 0


def test_modulated_clips_predict_what_the_whole_trial_does_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("fast3d", [9], **MODULATED)
    with torch.no_grad():
        for r in model.readouts:
            r.surround.weight.normal_(0, 0.5)
            r.adaptation.raw_strength.fill_(1.0)
            r.saturating.weight.normal_(0, 0.5)
    model.eval()
    video, behaviour = inputs(2, model.train_clip_frames + 10)
    clip = slice(10, None)
    with torch.no_grad():
        whole = model(video, behaviour, 0)
        pred, idx = model.train_forward(video[:, clip], behaviour[:, :, clip], 0)
    # past the core's context the clip's prediction only misses history older than the adaptation kernel
    torch.testing.assert_close(pred, whole[:, :, 10 + idx], rtol=1e-4, atol=1e-5)
    save_model(tmp_path / "m", model, {})
    loaded, _ = load_model(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(video, behaviour, 0), whole)
    video.requires_grad_(True)
    model(video, behaviour, 0).sum().backward()
    assert video.grad.abs().sum() > 0


def test_training_clips_take_the_adaptation_history_without_its_gradient():
    torch.manual_seed(0)
    model = build_model("fast3d", [5], **MODULATED).eval()  # eval: batch statistics do not differ between passes
    with torch.no_grad():
        model.readouts[0].adaptation.raw_strength.fill_(1.0)
    video, behaviour = inputs(1, model.train_clip_frames)
    video.requires_grad_(True)
    pred, idx = model.train_forward(video, behaviour, 0)
    with torch.no_grad():
        torch.testing.assert_close(pred, model(video, behaviour, 0)[:, :, idx], rtol=1e-5, atol=1e-6)
    pred.sum().backward()
    core = model.context_frames - (model.readouts[0].adaptation.frames - 1)  # the core's own temporal context
    assert video.grad[:, : idx[0] - core].abs().max() == 0  # frames seen only by the adaptation history
    assert video.grad[:, idx[0] - core :].abs().sum(dim=(0, 2, 3)).min() > 0


def test_point_readout_reads_the_features_at_the_position():
    torch.manual_seed(0)
    model = build_model("fast3d", [2], **dict(TINY, readout="point", downsample=1, surround=True)).eval()
    video, behaviour = inputs(1, 20)
    with torch.no_grad():
        model.set_readout_positions(0, torch.tensor([[-0.5, 0.25], [0.3, -0.6]]))
        feats = model.features(video, model.readouts[0].behaviour_norm(behaviour)[:, 2:], 0)  # (1, C, T, 18, 32)
        pooled = model.readouts[0]._point(feats)
    h, w = feats.shape[-2:]
    col, row = (0.3 + 1) * w / 2 - 0.5, (-0.6 + 1) * h / 2 - 0.5  # neuron 1: between pixels (10.7, 20.3)
    r0, c0, fr, fc = int(row), int(col), row - int(row), col - int(col)
    f = feats[0, :, :, r0 : r0 + 2, c0 : c0 + 2]
    expected = (f[..., 0, 0] * (1 - fr) * (1 - fc) + f[..., 0, 1] * (1 - fr) * fc + f[..., 1, 0] * fr * (1 - fc)
                + f[..., 1, 1] * fr * fc)  # fmt: skip
    torch.testing.assert_close(pooled[0, 1], model.readouts[0].weight[1] @ expected, rtol=1e-4, atol=1e-5)
    assert pooled.shape == (1, 4, 20)  # and the surround pools of both neurons
