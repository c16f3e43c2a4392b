"""A per-neuron quadrature-subunit encoder: each neuron's own pair of spatial filters at its receptive field.

The classical V1 energy model (Adelson & Bergen 1985) with learned parts, built to place fine-grained neurons
precisely, which the pooled fast3d core cannot (in silico, neurons above 0.07 cycles/deg reach under half of the
truth's correlation with fast3d):
- each neuron looks through a WINDOW x WINDOW pixel window at its receptive-field centre (an integer pixel of the full
  36 x 64 frame, estimated from the data before training, see v1recon.models.rf_init);
- its two spatial filters (a quadrature pair) are learned combinations of a fixed Gabor basis centred in the window
  (8 orientations x 5 periods x 2 phases), started from the response-weighted covariance of the basis responses
  (`init_filters`, spike-triggered covariance);
- two learned temporal kernels shared by all neurons (fast, slow) filter both, and the drive is a learned weighting
  of the 4 linear responses, the 2 energies and the 2 opposite-direction motion energies, divided by the local RMS
  contrast (Gaussian pool around the centre, low-passed in time) plus a learned per-neuron constant;
- behaviour adds a drive and a gain, and the pupil centre shifts the frame, as in fast3d (shared parts reused).
Whole trials run in one pass; the cost is one (pixels x 2N) matrix product per frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from v1recon import FRAME_SHAPE
from v1recon.models.base import check_encoder_inputs, with_defaults
from v1recon.models.factorised import CausalWholeTrialModel, RunningNorm, Shifter, gabor_bank, inverse_softplus

SUBUNIT_KWARGS = dict(
    window=17,  # pixels per side of each neuron's filter window (full resolution)
    orientations=8,
    periods_px=(3.0, 4.5, 6.5, 10.0, 16.0),  # carrier periods of the basis (the in-silico RFs span 3-26 px)
    sigmas_px=(2.5, 2.5, 3.0, 3.5, 4.5),  # their envelope sigmas
    temporal_frames=12,  # length of the two shared temporal kernels (400 ms at 30 Hz)
    pool_sigma_px=5.0,  # Gaussian pool of the local contrast that divides the drive
    train_predicted_frames=30,
)
N_FEATURES = 8  # per neuron: even/odd x fast/slow linear responses, 2 energies, 2 motion energies


def biphasic_kernel(frames: int, rate: float, order: int) -> torch.Tensor:
    """(frames,) unit-norm biphasic temporal kernel, lag 0 first: s^n e^-s (1/n! - 0.75 s^2/(n+2)!) with s = rate x
    lag; for order 3 the positive lobe peaks at 2.3 / rate frames."""
    s = torch.arange(frames, dtype=torch.float32) * rate
    k = s**order * torch.exp(-s) * (1 / math.factorial(order) - 0.75 * s**2 / math.factorial(order + 2))
    return k / k.norm()


class SubunitReadout(nn.Module):
    """Per-neuron parameters of one mouse: centre pixel, filter-pair coefficients, feature weights, behaviour."""

    def __init__(self, n_neurons: int, n_basis: int) -> None:
        super().__init__()
        self.n_neurons = n_neurons
        self.behaviour_norm = RunningNorm(4)
        centre = torch.tensor([FRAME_SHAPE[0] // 2, FRAME_SHAPE[1] // 2]).repeat(n_neurons, 1)
        self.register_buffer("centre", centre)  # (N, 2) row, col
        self.coefficients = nn.Parameter(torch.randn(n_neurons, 2, n_basis) / math.sqrt(n_basis))
        weight = torch.zeros(n_neurons, N_FEATURES)
        weight[:, 0], weight[:, 4] = 0.1, 0.3  # a little of the linear response, mostly the energy
        self.weight = nn.Parameter(weight)
        self.log_c50 = nn.Parameter(torch.full((n_neurons,), -1.0))  # softplus -> semi-saturation contrast
        self.bias = nn.Parameter(torch.zeros(n_neurons))
        self.behaviour_drive = nn.Parameter(torch.zeros(n_neurons, 4))
        self.behaviour_gain = nn.Parameter(torch.zeros(n_neurons, 4))


class Subunit(CausalWholeTrialModel):
    """Per-neuron quadrature subunits on a fixed Gabor basis (see the module docstring), one readout per mouse.

    forward(video (B,T,36,64), behaviour (B,4,T), mouse) -> (B, N, T) for any T >= 1 in one causal pass.
    """

    architecture = "subunit"
    rf_init_options = {"full_resolution": True, "max_trials": 120}  # fine-grained neurons need precise centres

    def __init__(self, neuron_counts, **kwargs) -> None:
        super().__init__()
        kw = with_defaults(SUBUNIT_KWARGS, kwargs, "subunit")
        kw["periods_px"], kw["sigmas_px"] = tuple(map(float, kw["periods_px"])), tuple(map(float, kw["sigmas_px"]))
        if len(kw["periods_px"]) != len(kw["sigmas_px"]) or int(kw["window"]) % 2 == 0:
            raise ValueError("periods_px and sigmas_px must have equal lengths and the window an odd size")
        self.kwargs = kw
        self.neuron_counts = [int(n) for n in neuron_counts]
        self.window = int(kw["window"])
        frames = int(kw["temporal_frames"])
        self.context_frames = frames - 1
        self.train_clip_frames = self.context_frames + int(kw["train_predicted_frames"])
        n_filters = 2 * int(kw["orientations"]) * len(kw["periods_px"])
        bank = gabor_bank(n_filters, self.window, kw["periods_px"], kw["sigmas_px"])
        self.register_buffer("basis", bank.reshape(n_filters, -1), persistent=False)  # (F, window^2), pairs even/odd
        self.temporal = nn.Parameter(torch.stack([biphasic_kernel(frames, 1.15, 3), biphasic_kernel(frames, 1.0, 5)]))
        lowpass = torch.arange(frames, dtype=torch.float32) * torch.exp(-torch.arange(frames) / 2.0)
        self.contrast_logits = nn.Parameter(torch.log(lowpass / lowpass.sum() + 1e-3))  # softmax -> kernel
        self.readouts = nn.ModuleList(SubunitReadout(n, n_filters) for n in self.neuron_counts)
        self.shifters = nn.ModuleList(Shifter() for _ in self.neuron_counts)

    # -- the forward pass --------------------------------------------------------------------------------------
    def _window_index(self, centre: torch.Tensor) -> torch.Tensor:
        """(N, window^2) flat indices of each neuron's window in the frame padded by window // 2 on every side."""
        k, pad = self.window, self.window // 2
        dy, dx = torch.meshgrid(torch.arange(k, device=centre.device), torch.arange(k, device=centre.device),
                                indexing="ij")  # fmt: skip
        return (centre[:, :1] + dy.reshape(1, -1)) * (FRAME_SHAPE[1] + 2 * pad) + centre[:, 1:] + dx.reshape(1, -1)

    def spatial_filters(self, mouse: int) -> torch.Tensor:
        """Every neuron's filter pair laid out on the padded frame: (padded pixels, 2N), columns even_n, odd_n."""
        r = self.readouts[mouse]
        pad = self.window // 2
        pixels = (FRAME_SHAPE[0] + 2 * pad) * (FRAME_SHAPE[1] + 2 * pad)
        filters = torch.einsum("nqf,fk->nkq", r.coefficients, self.basis)  # (N, window^2, 2)
        neuron = torch.arange(r.n_neurons, device=filters.device).repeat_interleave(self.window**2)
        dense = filters.new_zeros(pixels, r.n_neurons, 2)
        dense = dense.index_put((self._window_index(r.centre).reshape(-1), neuron), filters.reshape(-1, 2))
        return dense.reshape(pixels, 2 * r.n_neurons)

    def contrast_pools(self, mouse: int) -> torch.Tensor:
        """(36*64, N) normalised Gaussian pools around each neuron's centre (local contrast)."""
        r = self.readouts[mouse]
        rows = torch.arange(FRAME_SHAPE[0], device=r.centre.device, dtype=torch.float32)
        cols = torch.arange(FRAME_SHAPE[1], device=r.centre.device, dtype=torch.float32)
        row, col = r.centre.float().T
        d2 = (rows[None, :, None] - row[:, None, None]) ** 2 + (cols[None, None, :] - col[:, None, None]) ** 2
        pools = torch.exp(-d2 / (2 * self.kwargs["pool_sigma_px"] ** 2)).reshape(r.n_neurons, -1)
        return (pools / pools.sum(1, keepdim=True)).T

    def predict(self, video, behaviour, mouse: int, start: int = 0) -> torch.Tensor:
        """Responses (B, N, T - start) to frames start..T-1; earlier frames serve only as temporal context."""
        from v1recon.sim.model import causal_conv  # (the simulator imports the models package)

        mouse = self.check_mouse(mouse)
        check_encoder_inputs(video, behaviour)
        r = self.readouts[mouse]
        n = r.n_neurons
        beh = r.behaviour_norm(behaviour)
        b, t = video.shape[:2]
        x = (video.float()[:, None] - 127.5) / 64.0
        x = self.shifters[mouse](x, beh[:, 2:])[:, 0]  # (B, T, 36, 64), moved with the eye
        pad = self.window // 2
        linear = F.pad(x, (pad, pad, pad, pad)).reshape(b * t, -1) @ self.spatial_filters(mouse)
        linear = linear.view(b, t, n, 2).permute(0, 3, 2, 1)  # (B, even/odd, N, T)
        linear = causal_conv(linear[:, :, None], self.temporal[:, None])  # (B, even/odd, fast/slow, N, T)
        ef, es, of, os_ = linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 0], linear[:, 1, 1]
        eps = 1e-4  # keeps the square roots differentiable at zero
        features = torch.stack([
            ef, of, es, os_,
            torch.sqrt(ef**2 + of**2 + eps), torch.sqrt(es**2 + os_**2 + eps),
            torch.sqrt((ef + os_) ** 2 + (of - es) ** 2 + eps), torch.sqrt((ef - os_) ** 2 + (of + es) ** 2 + eps),
        ], 1)[..., start:]  # fmt: skip
        flat = x.reshape(b * t, -1)
        pools = self.contrast_pools(mouse)
        variance = ((flat * flat) @ pools - (flat @ pools) ** 2).clamp_min(0).view(b, t, n).transpose(1, 2)
        contrast = torch.sqrt(causal_conv(variance, torch.softmax(self.contrast_logits, 0)) + 1e-4)[..., start:]
        beh = beh[:, :, start:]
        drive = torch.einsum("bfnt,nf->bnt", features, r.weight) / (F.softplus(r.log_c50)[None, :, None] + contrast)
        drive = drive + r.bias[:, None] + torch.einsum("bkt,nk->bnt", beh, r.behaviour_drive)
        gain = torch.exp(torch.einsum("bkt,nk->bnt", beh, r.behaviour_gain).clamp(-5, 5))
        return F.softplus(drive) * gain

    # -- starting points from the data ---------------------------------------------------------------------------
    @torch.no_grad()
    def set_response_mean(self, mouse: int, mean) -> None:
        """Initialise the bias so that a zero drive predicts each neuron's mean response (N,)."""
        mean = torch.as_tensor(mean, dtype=torch.float32).clamp(min=1e-3)
        self.readouts[self.check_mouse(mouse)].bias.copy_(inverse_softplus(mean))

    @torch.no_grad()
    def set_readout_positions(self, mouse: int, positions, sigma: float | None = None) -> None:
        """Centre each neuron's window on the pixel nearest to its RF centre (N, 2) (x, y in [-1, 1])."""
        r = self.readouts[self.check_mouse(mouse)]
        pos = torch.as_tensor(positions, dtype=torch.float32, device=r.centre.device)
        col = ((pos[:, 0] + 1) * FRAME_SHAPE[1] / 2 - 0.5).round().clamp(0, FRAME_SHAPE[1] - 1)
        row = ((pos[:, 1] + 1) * FRAME_SHAPE[0] / 2 - 0.5).round().clamp(0, FRAME_SHAPE[0] - 1)
        r.centre.copy_(torch.stack([row, col], 1).long())

    @torch.no_grad()
    def init_filters(
        self, mouse: int, videos: Sequence[np.ndarray], responses: Sequence[np.ndarray], max_trials: int = 20,
        skip_frames: int = 30,
    ) -> None:  # fmt: skip
        """Start each neuron's filter pair at the two basis directions along which its response-weighted
        covariance of the basis responses most exceeds their covariance (whitened spike-triggered covariance)."""
        from v1recon.sim.model import causal_conv

        r = self.readouts[self.check_mouse(mouse)]
        pad = self.window // 2
        index = self._window_index(r.centre)
        kernel = biphasic_kernel(int(self.kwargs["temporal_frames"]), 1.04, 3)
        n_basis = self.basis.shape[0]
        prior = torch.zeros(r.n_neurons, n_basis, n_basis, dtype=torch.float64)
        weighted, total, frames = torch.zeros_like(prior), torch.zeros(r.n_neurons, dtype=torch.float64), 0
        for video, resp in list(zip(videos, responses, strict=True))[:max_trials]:
            x = F.pad((torch.as_tensor(video, dtype=torch.float32) - 127.5) / 64.0, (pad, pad, pad, pad))
            u = x.reshape(x.shape[0], -1)[:, index] @ self.basis.T  # (T, N, F) basis responses at each window
            u = causal_conv(u.permute(1, 2, 0), kernel)[..., skip_frames:]  # (N, F, T')
            y = torch.as_tensor(np.asarray(resp, dtype=np.float32))[:, skip_frames:]
            y = torch.cat([y[:, 2:], y[:, -1:].expand(-1, 2)], 1)  # the calcium response lags by ~2 frames
            prior += (u @ u.transpose(1, 2)).double()
            weighted += ((u * y[:, None]) @ u.transpose(1, 2)).double()
            total += y.sum(1).double()
            frames += u.shape[-1]
        prior /= frames
        excess = weighted / frames - (total / frames)[:, None, None] * prior
        eye = torch.eye(n_basis, dtype=torch.float64)
        values, vectors = torch.linalg.eigh(prior + 1e-3 * prior.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * eye)
        whiten = vectors @ torch.diag_embed(values.clamp_min(1e-12).rsqrt()) @ vectors.transpose(1, 2)
        top = whiten @ torch.linalg.eigh(whiten @ excess @ whiten)[1][..., -2:]  # (N, F, 2), largest excess last
        top = top / (top.transpose(1, 2) @ prior @ top).diagonal(dim1=1, dim2=2).clamp_min(1e-12).sqrt()[:, None]
        filters = torch.einsum("nfq,fk->nqk", top, self.basis.double())  # unit response variance, then one scale
        r.coefficients.copy_((top / filters.norm(dim=-1).median()).transpose(1, 2).float())
