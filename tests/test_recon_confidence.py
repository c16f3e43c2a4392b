"""Confidence movies: the ensemble spread, Hutchinson's estimator and the Laplace posterior std, restarts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recon_toy import ToyEncoder, toy_trial
from scipy.ndimage import gaussian_filter

from v1recon.errors import V1ReconError
from v1recon.recon.confidence import (
    ensemble_spread,
    fill_outside,
    hutchinson_diagonal,
    laplace_std,
    likelihood_hvp,
    nll_sum,
    parse_methods,
    posterior_std,
    stimulus_std,
    unexplained_std,
)
from v1recon.recon.reconstructor import ReconConfig, reconstruct_trials

PATCH = (slice(10, 13), slice(20, 23))  # the 3 x 3 pixels the tiny encoder sees


class PatchEncoder(torch.nn.Module):
    """A tiny nonlinear encoder of 5 neurons that sees a 3x3 patch of the current and the previous frame."""

    n_neurons = 5

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.now = torch.nn.Parameter(torch.randn(5, 9, generator=g) * 0.03)
        self.before = torch.nn.Parameter(torch.randn(5, 9, generator=g) * 0.03)

    def forward(self, video, behaviour):
        patch = (video[:, :, PATCH[0], PATCH[1]] - 127.5).flatten(2)  # (B, T, 9)
        previous = torch.cat([torch.zeros_like(patch[:, :1]), patch[:, :-1]], dim=1)
        drive = patch @ self.now.T + previous @ self.before.T  # (B, T, 5)
        return torch.nn.functional.softplus(drive + (drive**2) * 0.05).transpose(1, 2) + 0.01


def _patch_problem(n_frames: int = 4):
    enc = PatchEncoder()
    gen = torch.Generator().manual_seed(1)
    video = 127.5 + 40 * torch.randn(1, n_frames, 36, 64, generator=gen)
    behaviour = torch.zeros(1, 4, n_frames)
    responses = torch.poisson(enc(video, behaviour).detach() * 3, generator=gen) / 3
    return enc, video, behaviour, responses


def _exact_patch_hessian(enc, video, behaviour, responses) -> torch.Tensor:
    """The exact Hessian of the summed Poisson NLL with respect to the patch pixels: (T*9, T*9)."""
    n_frames = video.shape[1]

    def loss(flat):
        v = video.clone()
        v[0, :, PATCH[0], PATCH[1]] = flat.view(n_frames, 3, 3)
        return nll_sum([enc], v, behaviour, responses).sum()

    return torch.autograd.functional.hessian(loss, video[0, :, PATCH[0], PATCH[1]].reshape(-1))


def test_hutchinson_diagonal_matches_exact_hessian_of_a_tiny_model():
    enc, video, behaviour, responses = _patch_problem()
    for p in enc.parameters():
        p.requires_grad_(False)
    exact = _exact_patch_hessian(enc, video, behaviour, responses)
    probes = 1000
    estimate = hutchinson_diagonal(likelihood_hvp([enc], video, behaviour, responses), video, probes, seed=0)
    est_patch = estimate[0, :, PATCH[0], PATCH[1]].reshape(-1)
    diag = exact.diagonal()
    # the estimator's standard error per entry, from the exact off-diagonal entries
    se = torch.sqrt(((exact**2).sum(1) - diag**2) / probes)
    assert torch.all((est_patch - diag).abs() <= 5 * se + 1e-6 * diag.abs().max())
    assert diag.abs().max() > 10 * se.max()  # the test has teeth: the diagonal stands out of the noise
    outside = estimate.clone()
    outside[0, :, PATCH[0], PATCH[1]] = 0
    assert float(outside.abs().max()) == 0.0  # pixels no neuron sees have no curvature, exactly
    # a diagonal Hessian (a separable function) is recovered exactly by a single probe
    x = torch.linspace(-1, 1, 7)
    exact_sep = torch.autograd.functional.hessian(lambda v: (v**4 + torch.sin(v)).sum(), x).diagonal()
    one = hutchinson_diagonal(lambda z: (12 * x**2 - torch.sin(x)) * z, x, probes=1, seed=3)
    assert torch.allclose(one, exact_sep, atol=1e-5)


def test_laplace_std_against_the_exact_posterior_of_a_tiny_model():
    enc, video, behaviour, responses = _patch_problem()
    exact = _exact_patch_hessian(enc, video, behaviour, responses)
    probes, prior = 800, 20.0
    update = np.ones((36, 64), bool)
    update[:, 40:] = False  # the right of the frame is never optimised
    std = laplace_std(
        [enc],
        [video[0].numpy()],
        [responses[0].numpy()],
        [behaviour[0].numpy()],
        update,
        prior,
        probes,
        diagonal_sigma=0,
    )[0]
    assert std.shape == (4, 36, 64) and std.dtype == np.float32
    diag = exact.diagonal().numpy()
    se = np.sqrt(((exact**2).sum(1).numpy() - diag**2) / probes)
    lo, hi = posterior_std(diag + 5 * se, prior), posterior_std(diag - 5 * se, prior)
    got = std[:, PATCH[0], PATCH[1]].reshape(-1)
    assert np.all((got >= lo - 1e-4) & (got <= hi + 1e-4))
    assert got.min() < 0.5 * prior  # the neurons constrain the patch well below the prior
    rest = std.copy()
    rest[:, PATCH[0], PATCH[1]] = prior
    assert np.allclose(rest, prior)  # unseen pixels and those outside the update mask: the prior std
    # grey levels: (h + 1/prior^2)^(-1/2), known answers
    assert posterior_std(np.array([0.0, 3 / 400, -1.0]), 20.0) == pytest.approx([20.0, 10.0, 20.0])
    with pytest.raises(V1ReconError):
        posterior_std(np.zeros(3), 0.0)


def test_ensemble_spread_matches_numpy():
    rng = np.random.default_rng(0)
    members = rng.normal(128, 60, size=(4, 6, 36, 64)).astype(np.float32)  # some values outside [0, 255]
    clipped = np.clip(members.astype(np.float64), 0, 255)
    np.testing.assert_allclose(ensemble_spread(members), np.std(clipped, axis=0, ddof=1), rtol=1e-5, atol=1e-4)
    blurred = np.stack([gaussian_filter(m, 0.5, mode="reflect") for m in clipped])
    np.testing.assert_allclose(ensemble_spread(members, 0.5), np.std(blurred, axis=0, ddof=1), rtol=1e-5, atol=1e-4)
    assert np.all(ensemble_spread(np.repeat(members[:1], 3, axis=0)) == 0)  # identical members agree
    with pytest.raises(V1ReconError, match="at least 2"):
        ensemble_spread(members[:1])


def test_restarts_are_extra_members_from_jittered_starts():
    enc = ToyEncoder(n_neurons=40)
    video, responses, behaviour = toy_trial(enc, n_frames=40)
    update = np.zeros((36, 64), bool)
    update[4:32, 8:56] = True
    config = ReconConfig(iterations=6, seed=2)
    one = reconstruct_trials([enc], [responses], [behaviour], update, config)[0]
    two = reconstruct_trials([enc], [responses], [behaviour], update, ReconConfig(iterations=6, seed=2, restarts=2))[0]
    assert one.per_model.shape == (1, 40, 36, 64) and two.per_model.shape == (2, 40, 36, 64)
    np.testing.assert_allclose(two.per_model[0], one.per_model[0], atol=1e-4)  # restart 0: the plain run
    differ = np.abs(two.per_model[1] - two.per_model[0])
    assert differ[:, update].mean() > 1 and differ[:, ~update].max() == 0  # jitter only inside the mask
    # several members are averaged and blurred as a model ensemble is; the spread uses the same blur
    np.testing.assert_allclose(two.video, gaussian_filter(two.per_model.mean(0), 0.5, mode="reflect"), atol=1e-3)
    assert len(two.iterations) == 2 and two.smooth_sigma == 0.5 and one.smooth_sigma == 0
    with pytest.raises(V1ReconError, match="restarts"):
        reconstruct_trials([enc], [responses], [behaviour], update, ReconConfig(restarts=0))


def test_unexplained_std_and_the_prior():
    grey = np.full((5, 36, 64), 127.5, np.float32)
    assert np.allclose(unexplained_std(grey, 40.0), 40.0)  # nothing recovered: the prior
    contrast = grey + 30.0  # a recovered deviation of 30 everywhere: 40^2 / sqrt(40^2 + 30^2) = 32
    assert np.allclose(unexplained_std(contrast, 40.0), 32.0, atol=1e-3)
    assert stimulus_std([grey + 3.0, grey - 4.0]) == pytest.approx(np.sqrt((9 + 16) / 2))
    filled = fill_outside(np.zeros((2, 36, 64)), np.eye(36, 64, dtype=bool), 7.0)
    assert filled[0, 0, 0] == 0 and filled[0, 0, 1] == 7.0


def test_confidence_methods_option():
    assert parse_methods(None, 3) == ["ensemble"] and parse_methods(None, 1) == []
    assert parse_methods("both", 3) == ["ensemble", "laplace"]
    assert parse_methods("laplace,unexplained,laplace", 1) == ["laplace", "unexplained"]
    assert parse_methods("none", 1) == []
    with pytest.raises(V1ReconError, match="unknown method 'curvature'"):
        parse_methods("curvature", 3)
    with pytest.raises(V1ReconError, match="--restarts"):
        parse_methods("ensemble", 1)
