"""Alpha masks: the published procedure's shapes, thresholds, files and a known answer on a toy encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recon_toy import ToyEncoder, toy_trial

from v1recon.errors import V1ReconError
from v1recon.recon.masks import AlphaMask, blur, draw_mask, load_mask, mask_gradient, save_mask, train_alpha_mask


def _sampler(encoder, n_trials=6, frames=48):
    trials = [toy_trial(encoder, frames, seed=s) for s in range(n_trials)]

    def sample(rng):
        a, b = rng.choice(n_trials, 2, replace=False)
        s = int(rng.integers(frames - 32 + 1))
        return (
            trials[a][0][s : s + 32],
            trials[b][0][s : s + 32],
            trials[a][2][:, s : s + 32],
            trials[a][1][:, s : s + 32],
        )

    return sample


def test_mask_grows_where_the_neurons_look():
    torch.manual_seed(0)
    enc = ToyEncoder(40, seed=0, rf_sigma=3.0)
    mask = train_alpha_mask([enc], _sampler(enc), iterations=40, seed=1)
    assert mask.alpha.shape == (36, 64) and mask.loss.shape == (40,)
    assert mask.eval_mask.sum() > 0
    assert np.all(mask.eval_mask <= mask.update_mask)  # eval threshold 1.0 is stricter than 0.5
    rf = enc.rf.abs().sum(0).numpy()
    inside, outside = rf > 0.3 * rf.max(), rf < 0.02 * rf.max()
    assert mask.alpha[inside].mean() > mask.alpha[outside].mean() + 0.3
    assert mask.loss[-10:].mean() < mask.loss[:10].mean()
    first = train_alpha_mask([enc], _sampler(enc), iterations=3, seed=1)
    again = train_alpha_mask([enc], _sampler(enc), iterations=3, seed=1)
    np.testing.assert_array_equal(first.alpha, again.alpha)  # seeded


def test_mask_gradient_is_normalised_and_clipped():
    enc = ToyEncoder(10, seed=2)
    clip = torch.full((32, 36, 64), 127.5)
    g, loss = mask_gradient(
        enc, torch.full((36, 64), 0.5), clip + 40, clip - 40, torch.zeros(4, 32), torch.ones(10, 32)
    )
    assert g.shape == (36, 64) and loss > 0
    assert float(g.abs().max()) <= 1.0
    assert float(g.norm()) <= 1.0 + 1e-5  # the time average of unit-norm per-frame gradients has norm <= 1


def test_thresholds_and_blur():
    alpha = np.zeros((36, 64), np.float32)
    alpha[:, :20] = 0.7
    alpha[:, :10] = 1.2
    m = AlphaMask(alpha)
    assert m.update_mask.sum() == 36 * 20 and m.eval_mask.sum() == 36 * 10
    strict = m.with_thresholds(update=1.0)
    assert strict.update_mask.sum() == 36 * 10
    img = torch.zeros(36, 64)
    img[18, 32] = 1.0
    b = blur(img, 5.0)
    assert float(b.sum()) == pytest.approx(1.0, rel=1e-3) and float(b.max()) < 0.01
    assert int(b.argmax()) == 18 * 64 + 32


def test_mask_file_round_trip_and_drawing(tmp_path):
    rng = np.random.default_rng(3)
    m = AlphaMask(rng.uniform(0, 1.5, size=(36, 64)).astype(np.float32), 0.5, 1.0, np.arange(5.0))
    path = save_mask(tmp_path / "masks" / "m0.npz", m, config={"iterations": 5})
    assert (tmp_path / "masks" / "m0.json").is_file()
    back = load_mask(path)
    np.testing.assert_array_equal(back.alpha, m.alpha)
    assert back.update_threshold == 0.5 and back.eval_threshold == 1.0
    png = draw_mask(tmp_path / "m0.png", m, np.full((36, 64), 100.0))
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(V1ReconError, match="not found"):
        load_mask(tmp_path / "nope.npz")
