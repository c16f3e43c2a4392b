"""The subunit encoder: contract, window layout, and the covariance start recovering a planted filter pair."""

from __future__ import annotations

import numpy as np
import torch
from models_toy import TINY_SUBUNIT, inputs, one_thread  # noqa: F401 (fixture)

from v1recon.models import build_model
from v1recon.models.subunit import biphasic_kernel
from v1recon.sim.model import causal_conv


def test_subunit_is_causal_non_negative_and_differentiable_in_the_video():
    torch.manual_seed(0)
    model = build_model("subunit", [5, 3], **TINY_SUBUNIT).eval()
    video, behaviour = inputs(2, 20)
    out = model(video, behaviour, 1)
    assert out.shape == (2, 3, 20) and bool((out >= 0).all())
    later = video.clone()
    later[:, 12:] = 255 - later[:, 12:]
    with torch.no_grad():
        assert torch.allclose(model(later, behaviour, 1)[..., :12], out[..., :12])  # the future does not leak back
        assert not torch.allclose(model(later, behaviour, 1)[..., 12:], out[..., 12:])
    v = video.clone().requires_grad_()
    model(v, behaviour, 0).sum().backward()
    assert v.grad.abs().sum() > 0
    pred, idx = model.train_forward(*inputs(2, model.train_clip_frames), 0)
    assert pred.shape == (2, 5, 6) and idx.tolist() == list(range(5, 11))  # 3 + 2 frames of context


def test_windows_sit_at_the_requested_pixels():
    model = build_model("subunit", [2], **TINY_SUBUNIT)
    x = torch.tensor([(2 * 10 + 1) / 64 - 1, (2 * 50 + 1) / 64 - 1])  # pixel centres of columns 10 and 50
    y = torch.tensor([(2 * 3 + 1) / 36 - 1, (2 * 30 + 1) / 36 - 1])  # rows 3 and 30
    model.set_readout_positions(0, torch.stack([x, y], 1))
    assert model.readouts[0].centre.tolist() == [[3, 10], [30, 50]]
    # a frame with one bright pixel at a neuron's centre gives that neuron's central filter taps
    frame = torch.zeros(1, 36, 64)
    frame[0, 30, 50] = 1.0
    linear = model.linear_responses(frame, 0)[0]  # neuron, even/odd
    filters = torch.einsum("nqf,fk->nqk", model.readouts[0].coefficients, model.basis)
    centre_tap = model.window**2 // 2
    assert torch.allclose(linear[1], filters[1, :, centre_tap], atol=1e-6)
    assert torch.allclose(linear[0], torch.zeros(2))  # the other window does not reach that pixel


def test_tiled_filters_and_contrast_match_whole_frame_formulas():
    """The tiled window products and the separable contrast pool equal their direct whole-frame definitions."""
    torch.manual_seed(0)
    model = build_model("subunit", [40], **TINY_SUBUNIT)
    r = model.readouts[0]
    r.centre.copy_(torch.stack([torch.randint(0, 36, (40,)), torch.randint(0, 64, (40,))], 1))  # many tiles, edges
    frames = torch.randn(3, 36, 64)
    k, pad = model.window, model.window // 2
    padded = torch.nn.functional.pad(frames, (pad,) * 4)
    filters = torch.einsum("nqf,fk->nqk", r.coefficients, model.basis).view(40, 2, k, k)
    direct = torch.stack([
        torch.einsum("fij,qij->fq", padded[:, row : row + k, col : col + k], filters[n])
        for n, (row, col) in enumerate(r.centre.tolist())
    ], 1)  # fmt: skip
    assert torch.allclose(model.linear_responses(frames, 0), direct, atol=1e-5)
    rows, cols = torch.meshgrid(torch.arange(36.0), torch.arange(64.0), indexing="ij")
    sigma = model.kwargs["pool_sigma_px"]
    for n, (row, col) in enumerate(r.centre.tolist()):
        pool = torch.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
        pool = pool / pool.sum()
        mean = (frames * pool).sum((1, 2))
        variance = (frames**2 * pool).sum((1, 2)) - mean**2
        assert torch.allclose(model.local_contrast(frames, 0)[:, n], variance, atol=1e-5)


def test_covariance_start_recovers_a_planted_quadrature_pair():
    torch.manual_seed(0)
    model = build_model("subunit", [3], window=9, orientations=4, periods_px=(4.0, 8.0), sigmas_px=(2.0, 3.0))
    centres = [(10, 20), (18, 32), (25, 45)]
    planted = [1, 4, 6]  # basis pair index of each neuron
    pos = [((2 * c + 1) / 64 - 1, (2 * r + 1) / 36 - 1) for r, c in centres]
    model.set_readout_positions(0, torch.tensor(pos))
    rng = np.random.default_rng(0)
    kernel = biphasic_kernel(12, 1.04, 3)
    videos, responses = [], []
    for _ in range(6):
        video = rng.uniform(0, 255, (150, 36, 64)).astype(np.float32)
        x = torch.from_numpy((video - 127.5) / 64.0)
        rates = []
        for (r, c), j in zip(centres, planted, strict=True):
            patch = torch.nn.functional.pad(x, (4, 4, 4, 4))[:, r : r + 9, c : c + 9].reshape(150, -1)
            pair = causal_conv((patch @ model.basis[2 * j : 2 * j + 2].T).T, kernel)  # (2, T)
            rates.append(pair.pow(2).sum(0).sqrt())
        rates = torch.stack(rates).numpy()
        shifted = np.concatenate([np.zeros((3, 2)), rates[:, :-2]], 1)  # responses follow by 2 frames
        videos.append(video)
        responses.append((shifted + rng.normal(0, 0.1, shifted.shape)).astype(np.float32))
    model.set_filters(0, model.filter_start(0, videos, responses))
    found = torch.einsum("nqf,fk->nqk", model.readouts[0].coefficients, model.basis)  # (3, 2, 81)
    for n, j in enumerate(planted):
        q, _ = torch.linalg.qr(found[n].T)  # orthonormal basis of the found pair
        truth = model.basis[2 * j : 2 * j + 2].T
        captured = (q.T @ truth).norm() / truth.norm()
        assert captured > 0.9, (n, float(captured))
