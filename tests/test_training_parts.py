"""Unit tests of the training parts: loss, schedule, EMA, CutMix, splits, clip sampling."""

import math

import numpy as np
import pytest
import torch

from v1recon.errors import V1ReconError
from v1recon.training.clips import MouseTrials, sample_clips
from v1recon.training.config import train_config
from v1recon.training.cutmix import cutmix, cutmix_box
from v1recon.training.ema import EMA, ema_decay_for
from v1recon.training.losses import poisson_loss
from v1recon.training.schedules import WarmupCosine, warmup_cosine
from v1recon.training.splits import plan_splits
from v1recon.training.trainer import MIN_EPOCH_STEPS, cut_plan


def test_poisson_loss_matches_negative_log_likelihood():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.1, 3.0, size=(3, 5, 7))
    target = rng.poisson(1.5, size=(3, 5, 7)).astype(float)
    # Independent formula: -log Poisson pmf without the log(k!) constant, summed per sample, averaged.
    from scipy.special import gammaln
    from scipy.stats import poisson

    nll = -(poisson.logpmf(target, pred) + gammaln(target + 1))
    expected = nll.reshape(3, -1).sum(1).mean()
    got = poisson_loss(torch.tensor(pred), torch.tensor(target)).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # Gradient vanishes where prediction equals target.
    p = torch.full((1, 2, 3), 2.0, requires_grad=True)
    poisson_loss(p, torch.full((1, 2, 3), 2.0)).backward()
    assert torch.allclose(p.grad, torch.zeros_like(p.grad), atol=1e-6)


def test_warmup_cosine_values():
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm) == pytest.approx(1 / 11)
    assert warmup_cosine(9, total, warm) == pytest.approx(10 / 11)
    assert warmup_cosine(10, total, warm) == pytest.approx(1.0)
    mid = 10 + 45  # half-way through the decay: floor + (1 - floor) / 2
    assert warmup_cosine(mid, total, warm, floor=0.01) == pytest.approx(0.01 + 0.99 * 0.5)
    assert warmup_cosine(100, total, warm, floor=0.01) == pytest.approx(0.01)
    assert warmup_cosine(500, total, warm, floor=0.01) == pytest.approx(0.01)
    values = [warmup_cosine(s, total, warm) for s in range(total)]
    assert all(a <= b for a, b in zip(values[:warm], values[1 : warm + 1], strict=True))  # rising
    assert all(a >= b for a, b in zip(values[warm:], values[warm + 1 :], strict=False))  # then falling
    sched = WarmupCosine(total, warm)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    lr = torch.optim.lr_scheduler.LambdaLR(opt, sched)
    for _ in range(30):
        opt.step()
        lr.step()
    expected = 2.0 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 20 / 90)))
    assert opt.param_groups[0]["lr"] == pytest.approx(expected)


def test_ema_update_follows_the_formula():
    model = torch.nn.Linear(2, 1)
    model.weight.data.fill_(0.0)
    ema = EMA(model, decay=0.9)
    ema.updates = 1000  # past the warm-up of the decay
    model.weight.data.fill_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.1))
    ema.update(model)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.1 * 0.9 + 0.1))
    # Warm-up: the first update uses decay min(0.9, 1/10) = 0.1.
    fresh = EMA(torch.nn.Linear(2, 1), decay=0.9)
    assert fresh.current_decay() == pytest.approx(0.1)
    # Short runs average over at most 10% of their steps; long runs keep the published 0.999.
    assert ema_decay_for(500) == pytest.approx(1 - 1 / 50)
    assert ema_decay_for(10**6) == pytest.approx(0.999)


def test_ema_copies_integer_buffers():
    model = torch.nn.BatchNorm1d(3)
    ema = EMA(model, decay=0.99)
    model.train()
    model(torch.randn(8, 3))
    ema.update(model)
    assert int(ema.module.num_batches_tracked) == 1


def test_cutmix_box_and_area_blending():
    rng = np.random.default_rng(1)
    y0, y1, x0, x1 = cutmix_box(36, 64, lam=0.75, rng=rng)
    assert 0 <= y0 <= y1 <= 36 and 0 <= x0 <= x1 <= 64
    assert (y1 - y0) <= 18 and (x1 - x0) <= 32  # sqrt(1 - 0.75) = half each side

    b, t, n, k = 2, 4, 3, 4
    video = torch.stack([torch.zeros(t, 36, 64), torch.full((t, 36, 64), 255.0)])
    behaviour = torch.stack([torch.zeros(4, t), torch.ones(4, t)])
    target = torch.stack([torch.zeros(n, k), torch.ones(n, k)])
    v, beh, tg = cutmix(video, behaviour, target, np.random.default_rng(3), alpha=1.0, prob=1.0)
    assert torch.equal(video[0], torch.zeros(t, 36, 64))  # inputs untouched
    for i in range(b):
        other = 1 - i
        pasted = (v[i] != video[i]).float()  # pixels taken from the partner
        area = pasted[0].mean().item()
        assert torch.equal(pasted, pasted[:1].expand_as(pasted))  # same box in every frame
        expected = (1 - area) * target[i] + area * target[other]
        assert torch.allclose(tg[i], expected, atol=1e-6)
        assert torch.allclose(beh[i], (1 - area) * behaviour[i] + area * behaviour[other], atol=1e-6)
    # prob 0 leaves the batch as it is
    v0, _, t0 = cutmix(video, behaviour, target, np.random.default_rng(0), prob=0.0)
    assert torch.equal(v0, video) and torch.equal(t0, target)


def test_splits_never_use_the_held_out_fold():
    for ensemble in ("folds", "seeds"):
        splits = plan_splits(6 if ensemble == "folds" else 9, ensemble, seed=5, n_folds=7, test_fold=0)
        for s in splits:
            assert 0 not in s.train_folds and s.val_fold != 0
            assert s.val_fold not in s.train_folds
            assert set(s.train_folds) | {s.val_fold, 0} == set(range(7))
        assert [s.seed for s in splits] == list(range(5, 5 + len(splits)))
    folds = plan_splits(3, "folds")
    assert [s.val_fold for s in folds] == [1, 2, 3]
    assert {s.val_fold for s in plan_splits(3, "seeds")} == {1}
    with pytest.raises(V1ReconError, match="at most 6"):
        plan_splits(7, "folds")
    with pytest.raises(V1ReconError, match="ensemble must be"):
        plan_splits(2, "bagging")


def _mouse(n_trials=6, n_neurons=3, length=40):
    rng = np.random.default_rng(0)
    mouse = MouseTrials("m", n_neurons)
    for i in range(n_trials):
        mouse.trial_ids.append(i)
        mouse.folds.append(i % 3)
        mouse.videos.append(np.full((length, 36, 64), i, dtype=np.float16))
        mouse.behaviour.append(np.tile(np.arange(length, dtype=np.float32), (4, 1)))
        mouse.responses.append(rng.random((n_neurons, length)).astype(np.float32) + i * 10)
    return mouse


def test_clips_come_only_from_the_requested_folds_and_stay_aligned():
    mouse = _mouse()
    idx = mouse.indices([1, 2])
    assert [mouse.folds[i] for i in idx] == [1, 2, 1, 2]
    video, beh, resp = sample_clips(mouse, idx, 64, 10, np.random.default_rng(0))
    assert video.shape == (64, 10, 36, 64) and beh.shape == (64, 4, 10) and resp.shape == (64, 3, 10)
    trial = video[:, 0, 0, 0].long()
    assert set(trial.tolist()) <= {1, 2, 4, 5}
    start = beh[:, 0, 0].long()
    assert torch.equal(beh[:, 0, :], start[:, None] + torch.arange(10))  # consecutive frames
    assert int(start.max()) <= 30
    for b in range(4):  # responses from the same trial and frames as the video
        t, s = int(trial[b]), int(start[b])
        assert np.allclose(resp[b].numpy(), mouse.responses[t][:, s : s + 10])
    assert mouse.indices([0], min_frames=41) == []


def test_train_config_scales_lr_with_batch_and_rejects_unknown_options():
    assert train_config("paper").base_lr == pytest.approx(2.4e-3)
    assert train_config("paper", batch_size=64).base_lr == pytest.approx(4.8e-3)
    assert train_config("paper", batch_size=64, lr=1e-3).base_lr == pytest.approx(1e-3)
    assert train_config("small", epochs=None).epochs == train_config("small").epochs
    with pytest.raises(V1ReconError, match="unknown training option"):
        train_config("small", learning_rate=1.0)


def test_group_ratios_average_within_each_group_and_skip_empty_ones():
    from v1recon.training.evaluate import group_ratios

    model_r = np.array([0.1, 0.3, 0.2, 0.4])
    truth_r = np.array([0.2, 0.2, 0.4, 0.4])
    groups = {"a": np.array([1, 1, 0, 0], bool), "b": np.array([0, 0, 1, 1], bool), "none": np.zeros(4, bool)}
    out = group_ratios(model_r, truth_r, groups)
    assert set(out) == {"a", "b"}
    assert out["a"] == {"n_neurons": 2, "truth": pytest.approx(0.2), "ratio": pytest.approx(1.0)}
    assert out["b"]["ratio"] == pytest.approx(0.75)
    with pytest.raises(V1ReconError, match="group 'a'"):
        group_ratios(model_r[:3], truth_r[:3], groups)


def test_format_table_prints_each_family_of_neuron_groups_on_its_own_line():
    from v1recon.training.evaluate import format_table

    groups = {k: {"n_neurons": 3, "truth": 0.3, "ratio": 0.8}
              for k in ("pooling", "corner", "sf < 0.035 c/deg", "surround strong", "adaptation weak",
                        "running suppresses")}  # fmt: skip
    metrics = {"single_trial_correlation": 0.2, "correlation_to_average": 0.3, "feve": 0.4}
    mouse = {"n_trials": 6, "n_stimuli": 2, "tiers": ["oracle"], "encoders": {"model-0": metrics, "ensemble": metrics},
             "ensemble_beats_best_model": False, "best_model": "model-0", "ratio_by_group": groups}  # fmt: skip
    lines = format_table({"mice": {"m": mouse}}).splitlines()
    by = {line.split(" by ")[1].split(" (")[0]: line for line in lines if "relative to the truth by" in line}
    assert set(by) == {"cell type", "spatial frequency", "surround suppression", "contrast adaptation", "running gain"}
    assert "pooling 0.80 (3), corner 0.80 (3)" in by["cell type"] and "surround strong" in by["surround suppression"]


def test_shared_clip_gain_is_the_poisson_scale_relative_to_the_batch():
    import torch

    from v1recon.training.losses import poisson_loss
    from v1recon.training.trainer import shared_clip_gain

    pred = torch.rand(3, 5, 7) + 0.1
    target = pred * torch.tensor([0.5, 1.0, 2.0])[:, None, None]  # three brain states
    gain = shared_clip_gain(pred, target)
    ratios = torch.tensor([0.5, 1.0, 2.0]) / (3.5 / 3)
    torch.testing.assert_close(gain.flatten(), ratios)
    # per clip it is the scale that minimises the Poisson loss (up to the batch normalisation)
    scales = torch.linspace(0.2, 3.0, 281)
    losses = [float(poisson_loss(pred[2:] * s, target[2:])) for s in scales]
    assert float(scales[int(np.argmin(losses))]) == pytest.approx(2.0, abs=0.011)


def test_a_plan_that_fits_its_budget_is_kept():
    assert cut_plan(0, 6, 192, 0, left_s=700.0, step_s=0.5, val_s=5.0) == (6, 192)  # needs 606 s


@pytest.mark.parametrize(
    "epoch, steps_done, left_s, expected",
    [
        (0, 0, 300.0, (6, 90)),  # steps per epoch shrink first: 6 x (90 x 0.5 + 5) = 300 s
        (0, 0, 20.0, (2, 10)),  # then epochs: 2 of the minimum 10 steps, with their validations
        (0, 0, 12.0, (1, 14)),  # one epoch when two would fall below the minimum
        (2, 40, 100.0, (6, 50)),  # 40 steps into epoch 3: its 10 more and 3 epochs of 50 fit in 100 s
    ],
)
def test_a_cut_plan_fits_the_time_left(epoch, steps_done, left_s, expected):
    step_s, val_s = 0.5, 5.0
    epochs, per_epoch = cut_plan(epoch, 6, 192, steps_done, left_s, step_s, val_s)
    assert (epochs, per_epoch) == expected
    spent = (epochs - epoch) * (per_epoch * step_s + val_s) - steps_done * step_s
    assert spent <= left_s  # independent check of the arithmetic
    assert per_epoch >= max(steps_done, min(192, MIN_EPOCH_STEPS))
