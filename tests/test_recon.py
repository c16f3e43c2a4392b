"""Reconstruction: the published schedule and update rule, the fast method, ensembling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from recon_toy import ToyEncoder, toy_trial

from v1recon.errors import V1ReconError
from v1recon.models import WindowGeometry
from v1recon.recon.ensemble import average_reconstructions, smooth_movie
from v1recon.recon.objective import poisson_nll, predict_clips
from v1recon.recon.paper import normalise_per_item, paper_step, subbatch_starts, warmup_lr
from v1recon.recon.reconstructor import ReconConfig, masked_correlation, reconstruct_trials


def test_subbatch_schedule_300_frames():
    starts = subbatch_starts(300)
    assert len(starts) == 35
    assert starts[:3] == [0, 8, 16]
    assert starts[-2] == 264 and starts[-1] == 268  # last pinned to frames 268..299
    assert subbatch_starts(32) == [0]
    assert subbatch_starts(40) == [0, 8]
    with pytest.raises(ValueError):
        subbatch_starts(31)


def test_paper_update_rule_matches_hand_computation():
    grads = [0.5, -1.0, 0.25, 1.0]
    m = torch.zeros(1)
    video = 127.5
    hand_m, hand_video = 0.0, 127.5
    for i, g in enumerate(grads):
        step = paper_step(m, torch.tensor([g]), i, lr=1000.0)
        video -= float(step)
        # by hand: m <- 0.9 m + 0.1 g; lr_i = 1000 * i / 10 (warm-up); two bias corrections, one sqrt term
        hand_m = 0.9 * hand_m + 0.1 * g
        lr_i = 1000.0 * i / 10
        lr_t = lr_i * math.sqrt(1 - 0.999 ** (i + 1)) / (1 - 0.9 ** (i + 1))
        hand_video -= lr_t * hand_m / (1 - 0.9 ** (i + 1))
        assert float(m) == pytest.approx(hand_m, rel=1e-6)
        assert video == pytest.approx(hand_video, rel=1e-6)
    # iteration 1 in numbers: m = 0.9*0.05 + 0.1*(-1) = -0.055; lr_t = 100*sqrt(0.001999)/0.19
    assert warmup_lr(0) == 0 and warmup_lr(5) == 500 and warmup_lr(10) == 1000 and warmup_lr(500) == 1000
    expected_1 = 100 * math.sqrt(1 - 0.999**2) / 0.19 * -0.055 / 0.19
    assert float(paper_step(torch.tensor([0.05]), torch.tensor([-1.0]), 1)) == pytest.approx(expected_1, rel=1e-6)


def test_gradient_normalisation_per_subbatch():
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    n = normalise_per_item(g)
    assert torch.allclose(n[0], torch.tensor([0.6, 0.8]), atol=1e-6)
    assert torch.all(n[1] == 0)  # a zero gradient stays zero thanks to the +1e-6
    assert n[2, 0] == pytest.approx(1 / (1 + 1e-6))


def test_poisson_loss_formula():
    pred = torch.tensor([[[1.0, 2.0]]])
    resp = torch.tensor([[[3.0, 0.0]]])
    expected = ((1 - 3 * math.log(1 + 1e-8)) + 2) / 2
    assert float(poisson_nll(pred, resp)) == pytest.approx(expected, rel=1e-6)


class _Windowed:
    """A windowed encoder: predict_windows returns each input frame's mean as every neuron's response."""

    n_neurons = 3
    windowing = WindowGeometry(frames=16, step=2)

    def predict_windows(self, video, behaviour, ends):
        frames = torch.stack([video[:, e - 30 : e + 1 : 2].mean(dim=(2, 3)) for e in ends], dim=1)  # (B, W, 16)
        return frames[:, :, None, :].expand(-1, -1, self.n_neurons, -1)

    def __call__(self, video, behaviour):
        raise AssertionError("the paper schedule must ask a windowed model for its windows")


def test_windowed_encoder_gets_the_two_windows_of_a_subbatch():
    clips = torch.arange(32.0).view(1, 32, 1, 1).expand(2, 32, 36, 64)
    pred, passes = predict_clips(_Windowed(), clips, torch.zeros(2, 4, 32))
    assert passes == 4  # 2 clips x 2 windows
    assert torch.allclose(pred[0, 0], torch.arange(32.0))  # windows ending at 30 and 31 cover every frame once
    _, passes = predict_clips(ToyEncoder(5), clips, torch.zeros(2, 4, 32))
    assert passes == 4  # frame-equivalents: 2 x 32 frames / 16


@pytest.mark.parametrize("method,iterations", [("fast", 60), ("paper", 40)])
def test_reconstruction_through_a_known_encoder_approaches_the_truth(method, iterations):
    torch.manual_seed(0)
    enc = ToyEncoder(80, seed=1)
    video, resp, beh = toy_trial(enc, 48, seed=2)
    mask = np.ones((36, 64), bool)
    (res,) = reconstruct_trials(
        [enc], [resp], [beh], mask, ReconConfig(method=method, iterations=iterations), truths=[video]
    )
    assert res.video.shape == video.shape and res.video.min() >= 0 and res.video.max() <= 255
    assert res.correlation[0, 0] == pytest.approx(0, abs=1e-6)  # grey start
    assert res.correlation[0, -1] > 0.5
    assert np.nanmean(res.loss[0, -5:]) < res.loss[0, 0]
    assert res.window_passes > 0
    assert all(p.requires_grad for p in enc.parameters())  # frozen only while reconstructing


def test_pixels_outside_the_update_mask_stay_grey():
    enc = ToyEncoder(30, seed=3)
    _, resp, beh = toy_trial(enc, 40, seed=4)
    mask = np.zeros((36, 64), bool)
    mask[10:20, 20:40] = True
    for method in ("fast", "paper"):
        (res,) = reconstruct_trials([enc], [resp], [beh], mask, ReconConfig(method=method, iterations=5))
        assert np.all(res.video[:, ~mask] == 127.5)
        assert np.any(res.video[:, mask] != 127.5)


@pytest.mark.parametrize("method", ["fast", "paper"])
def test_a_warm_start_begins_at_the_given_movie_inside_the_mask_only(method):
    enc = ToyEncoder(60, seed=11)
    video, resp, beh = toy_trial(enc, 40, seed=12)
    mask = np.zeros((36, 64), bool)
    mask[5:30, 10:50] = True
    config = ReconConfig(method=method, iterations=3)
    (res,) = reconstruct_trials([enc], [resp], [beh], mask, config, truths=[video], eval_mask=mask, starts=[video])
    assert res.correlation[0, 0] == pytest.approx(1.0, abs=1e-5)  # the first logged movie is the start itself
    assert np.all(res.video[:, ~mask] == 127.5)  # outside the update mask the start is not used
    (grey,) = reconstruct_trials([enc], [resp], [beh], mask, config, truths=[video], eval_mask=mask)
    assert grey.correlation[0, 0] == pytest.approx(0, abs=1e-6)


def test_a_start_movie_of_the_wrong_shape_is_refused():
    enc = ToyEncoder(20, seed=13)
    _, resp, beh = toy_trial(enc, 40, seed=14)
    with pytest.raises(V1ReconError, match="start movie has shape"):
        reconstruct_trials([enc], [resp], [beh], np.ones((36, 64), bool), starts=[np.zeros((39, 36, 64))])


def test_several_trials_in_one_batch_equal_one_at_a_time():
    enc = ToyEncoder(30, seed=5)
    trials = [toy_trial(enc, 40, seed=s) for s in (6, 7)]
    mask = np.ones((36, 64), bool)
    cfg = ReconConfig(method="paper", iterations=4, batch_size=2)
    together = reconstruct_trials([enc], [t[1] for t in trials], [t[2] for t in trials], mask, cfg)
    alone = reconstruct_trials([enc], [trials[1][1]], [trials[1][2]], mask, ReconConfig(method="paper", iterations=4))
    np.testing.assert_allclose(together[1].video, alone[0].video, atol=1e-3)


def test_ensemble_average_is_clipped_mean_then_blurred():
    rng = np.random.default_rng(0)
    movies = rng.uniform(-50, 300, size=(3, 8, 36, 64)).astype(np.float32)
    out = average_reconstructions(movies, sigma=0.5)
    expected = smooth_movie(np.clip(movies, 0, 255).mean(0), 0.5)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert out.std() < np.clip(movies, 0, 255).mean(0).std()  # the blur smooths
    flat = np.full((8, 36, 64), 90.0, np.float32)
    np.testing.assert_allclose(smooth_movie(flat, 0.5), flat, atol=1e-4)  # a constant movie is unchanged
    np.testing.assert_array_equal(smooth_movie(movies[0], 0), movies[0])


def test_gradient_ensembling_gives_one_reconstruction():
    encs = [ToyEncoder(30, seed=s) for s in (8, 9)]
    _, resp, beh = toy_trial(encs[0], 40, seed=10)
    cfg = ReconConfig(method="fast", iterations=5, ensemble="gradient")
    (res,) = reconstruct_trials(encs, [resp], [beh], np.ones((36, 64)), cfg)
    assert res.per_model.shape[0] == 1
    cfg = ReconConfig(method="fast", iterations=5, ensemble="average")
    (res,) = reconstruct_trials(encs, [resp], [beh], np.ones((36, 64)), cfg)
    assert res.per_model.shape[0] == 2


def test_masked_correlation_is_pearson_inside_the_mask():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 1, 40, 36, 64)).astype(np.float32)
    mask = np.zeros((36, 64), bool)
    mask[5:15, 5:30] = True
    r = masked_correlation(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(mask), 30)
    expected = np.corrcoef(a[0, 30:, mask].ravel(), b[0, 30:, mask].ravel())[0, 1]
    assert float(r[0]) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r, b: (r[:5], b), "neurons"),
        (lambda r, b: (r, None), "behaviour is missing"),
        (lambda r, b: (r[:, :20], b[:, :20]), "shorter than one"),
        (lambda r, b: (np.where(np.arange(r.shape[1]) == 7, np.nan, r).astype(np.float32), b), "NaN"),
    ],
)
def test_bad_input_is_refused_with_one_sentence(change, message):
    enc = ToyEncoder(10, seed=11)
    _, resp, beh = toy_trial(enc, 40, seed=12)
    resp, beh = change(resp, beh)
    with pytest.raises(V1ReconError, match=message):
        reconstruct_trials([enc], [resp], [beh], np.ones((36, 64)), ReconConfig(iterations=2), sources=["x.npy"])


class _Energy(torch.nn.Module):
    """Responds to contrast only: at uniform grey every input gradient is exactly zero (a saddle point)."""

    n_neurons = 4

    def forward(self, video, behaviour):
        energy = ((video - 127.5) / 127.5).pow(2).mean(dim=(2, 3))  # (B, T)
        return (1 + torch.arange(4.0)[None, :, None]) * energy[:, None, :] + 0.1


@pytest.mark.parametrize("method", ["fast", "paper"])
def test_grey_saddle_is_escaped_with_a_seeded_jitter(method):
    enc = _Energy()
    video = np.full((40, 36, 64), 127.5, np.float32)
    video[:, :, :32] = 200.0
    beh = np.zeros((4, 40), np.float32)
    with torch.no_grad():
        resp = enc(torch.from_numpy(video)[None], torch.from_numpy(beh)[None])[0].numpy()
    cfg = ReconConfig(method=method, iterations=3)
    (res,) = reconstruct_trials([enc], [resp], [beh], np.ones((36, 64)), cfg)
    assert np.abs(res.video - 127.5).max() > 0.5  # left the saddle
    (again,) = reconstruct_trials([enc], [resp], [beh], np.ones((36, 64)), cfg)
    np.testing.assert_array_equal(res.video, again.video)  # the jitter is seeded
    per_iteration = 2 * 2 if method == "paper" else 40 / 16  # paper: 2 sub-batches x 2 windows
    assert res.window_passes == pytest.approx(4 * per_iteration)  # 3 iterations + iteration 0 taken again
