"""A per-neuron quadrature-subunit encoder: each neuron's own pair of spatial filters at its receptive field.

The classical V1 energy model (Adelson & Bergen 1985) with learned parts, built to place fine-grained neurons
precisely, which the pooled fast3d core cannot (in silico, neurons above 0.07 cycles/deg reach under half of the
truth's correlation with fast3d):
- each neuron looks through a WINDOW x WINDOW pixel window at its receptive-field centre (an integer pixel of the full
  36 x 64 frame, estimated from the data before training, see v1recon.models.rf_init);
- its two spatial filters (a quadrature pair) are learned combinations of a fixed Gabor basis centred in the window
  (8 orientations x 5 periods x 2 phases), started from the response-weighted covariance of the basis responses
  (`filter_start`, spike-triggered covariance);
- two learned temporal kernels shared by all neurons (fast, slow) filter both, and the drive is a learned weighting
  of the 4 linear responses, the 2 energies and the 2 opposite-direction motion energies, divided by the local RMS
  contrast (Gaussian pool around the centre, low-passed in time) plus a learned per-neuron constant;
- behaviour adds a drive and a gain, and the pupil centre shifts the frame, as in fast3d (shared parts reused);
  a few tanh units of the behaviour add a saturating gain (in silico +0.01 of the truth's correlation);
- a learned kernel shared by all neurons smooths the rate in time, as the calcium indicator does (+0.005).
Whole trials run in one pass; the cost is one small matrix product per frame and tile of neighbouring neurons.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from v1recon import FRAME_SHAPE
from v1recon.filters import causal_conv
from v1recon.models.base import check_encoder_inputs, with_defaults
from v1recon.models.factorised import CausalWholeTrialModel, RunningNorm, Shifter, gabor_bank, inverse_softplus

SUBUNIT_KWARGS = dict(
    window=17,  # pixels per side of each neuron's filter window (full resolution)
    orientations=8,
    periods_px=(3.0, 4.5, 6.5, 10.0, 16.0),  # carrier periods of the basis (the in-silico RFs span 3-26 px)
    sigmas_px=(2.5, 2.5, 3.0, 3.5, 4.5),  # their envelope sigmas
    temporal_frames=12,  # length of the two shared temporal kernels (400 ms at 30 Hz)
    calcium_frames=8,  # length of the shared kernel that smooths the rate (indicator and deconvolution)
    behaviour_hidden=4,  # tanh units of behaviour per mouse whose weighted sum sets a further gain per neuron
    pool_sigma_px=5.0,  # Gaussian pool of the local contrast that divides the drive
    train_predicted_frames=30,
)
TILE = 8  # pixels per side of the tiles that group neurons by centre (see linear_responses)
N_FEATURES = 8  # per neuron: even/odd x fast/slow linear responses, 2 energies, 2 motion energies


def biphasic_kernel(frames: int, rate: float, order: int) -> torch.Tensor:
    """(frames,) unit-norm biphasic temporal kernel, lag 0 first: s^n e^-s (1/n! - 0.75 s^2/(n+2)!) with s = rate x
    lag; for order 3 the positive lobe peaks at 2.3 / rate frames."""
    s = torch.arange(frames, dtype=torch.float32) * rate
    k = s**order * torch.exp(-s) * (1 / math.factorial(order) - 0.75 * s**2 / math.factorial(order + 2))
    return k / k.norm()


class SubunitReadout(nn.Module):
    """Per-neuron parameters of one mouse: centre pixel, filter-pair coefficients, feature weights, behaviour."""

    def __init__(self, n_neurons: int, n_basis: int, n_hidden: int) -> None:
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
        # gains saturate with running speed: a few shared tanh units of the behaviour, weighted per neuron
        self.behaviour_hidden = nn.Linear(4, n_hidden)
        self.hidden_gain = nn.Parameter(torch.zeros(n_neurons, n_hidden))


class Subunit(CausalWholeTrialModel):
    """Per-neuron quadrature subunits on a fixed Gabor basis (see the module docstring), one readout per mouse.

    forward(video (B,T,36,64), behaviour (B,4,T), mouse) -> (B, N, T) for any T >= 1 in one causal pass.
    """

    architecture = "subunit"
    rf_init_options = {"full_resolution": True, "max_trials": 200}  # fine-grained neurons need precise centres

    def __init__(self, neuron_counts, **kwargs) -> None:
        super().__init__()
        kw = with_defaults(SUBUNIT_KWARGS, kwargs, "subunit")
        kw["periods_px"], kw["sigmas_px"] = tuple(map(float, kw["periods_px"])), tuple(map(float, kw["sigmas_px"]))
        if len(kw["periods_px"]) != len(kw["sigmas_px"]) or int(kw["window"]) % 2 == 0:
            raise ValueError("periods_px and sigmas_px must have equal lengths and the window an odd size")
        self.kwargs = kw
        self.neuron_counts = [int(n) for n in neuron_counts]
        self.window = int(kw["window"])
        frames, calcium = int(kw["temporal_frames"]), int(kw["calcium_frames"])
        self.context_frames = frames - 1 + calcium - 1
        self.train_clip_frames = self.context_frames + int(kw["train_predicted_frames"])
        n_filters = 2 * int(kw["orientations"]) * len(kw["periods_px"])
        bank = gabor_bank(n_filters, self.window, kw["periods_px"], kw["sigmas_px"])
        self.register_buffer("basis", bank.reshape(n_filters, -1), persistent=False)  # (F, window^2), pairs even/odd
        self.temporal = nn.Parameter(torch.stack([biphasic_kernel(frames, 1.15, 3), biphasic_kernel(frames, 1.0, 5)]))
        lowpass = torch.arange(frames, dtype=torch.float32) * torch.exp(-torch.arange(frames) / 2.0)
        self.contrast_logits = nn.Parameter(torch.log(lowpass / lowpass.sum() + 1e-3))  # softmax -> kernel
        self.calcium_logits = nn.Parameter(-torch.arange(calcium, dtype=torch.float32) / 2.5)  # softmax -> kernel
        hidden = int(kw["behaviour_hidden"])
        self.readouts = nn.ModuleList(SubunitReadout(n, n_filters, hidden) for n in self.neuron_counts)
        self.shifters = nn.ModuleList(Shifter() for _ in self.neuron_counts)

    # -- the forward pass --------------------------------------------------------------------------------------
    def _window_index(self, centre: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """(N, window^2) flat indices of each neuron's window in an image `width` pixels wide whose pixel (row, col)
        is the top-left corner of the window at `centre` (N, 2); by default the frame padded by window // 2."""
        k = self.window
        width = FRAME_SHAPE[1] + 2 * (k // 2) if width is None else width
        dy, dx = torch.meshgrid(torch.arange(k, device=centre.device), torch.arange(k, device=centre.device),
                                indexing="ij")  # fmt: skip
        return (centre[:, :1] + dy.reshape(1, -1)) * width + centre[:, 1:] + dx.reshape(1, -1)

    def window_filters(self, mouse: int) -> torch.Tensor:
        """(N, window^2, 2) every neuron's filter pair (even, odd) over its window, row-major."""
        return torch.einsum("nqf,fk->nkq", self.readouts[mouse].coefficients, self.basis)

    def linear_responses(self, x: torch.Tensor, mouse: int) -> torch.Tensor:
        """(F, N, 2) responses of every neuron's filter pair to F frames x (F, 36, 64) (even, odd).

        Neurons are grouped by the TILE x TILE pixel tile of their centre and each group reads only the crop its
        windows cover, so the cost is ~7x below that of one product over the whole frame for every neuron.
        """
        r = self.readouts[mouse]
        k, pad = self.window, self.window // 2
        padded = F.pad(x, (pad, pad, pad, pad))
        filters = self.window_filters(mouse)
        tile = r.centre // TILE
        keys = tile[:, 0] * FRAME_SHAPE[1] + tile[:, 1]
        outputs, order = [], []
        for key in torch.unique(keys).tolist():
            idx = torch.nonzero(keys == key)[:, 0]
            r0, c0 = (key // FRAME_SHAPE[1]) * TILE, (key % FRAME_SHAPE[1]) * TILE
            crop = padded[:, r0 : r0 + TILE + k - 1, c0 : c0 + TILE + k - 1]
            h, w = crop.shape[1:]
            local = self._window_index(r.centre[idx] - r.centre.new_tensor([r0, c0]), width=w)
            column = torch.arange(len(idx), device=x.device).repeat_interleave(k * k)
            dense = filters.new_zeros(h * w, len(idx), 2)
            dense = dense.index_put((local.reshape(-1), column), filters[idx].reshape(-1, 2))
            outputs.append((crop.reshape(crop.shape[0], -1) @ dense.reshape(h * w, -1)).view(-1, len(idx), 2))
            order.append(idx)
        return torch.cat(outputs, 1)[:, torch.argsort(torch.cat(order))]

    def local_contrast(self, x: torch.Tensor, mouse: int) -> torch.Tensor:
        """(F, N) variance of frames x (F, 36, 64) under a Gaussian pool (sigma pool_sigma_px, cut at the frame
        edge and renormalised) around each neuron's centre: separable blurs of x and x^2 read at the centres."""
        r = self.readouts[mouse]
        rows, cols = (torch.arange(n, device=x.device, dtype=torch.float32) for n in FRAME_SHAPE)
        g_rows, g_cols = (torch.exp(-((v[:, None] - v[None, :]) ** 2) / (2 * self.kwargs["pool_sigma_px"] ** 2))
                          for v in (rows, cols))  # fmt: skip
        weight = g_rows.sum(1)[:, None] * g_cols.sum(1)[None, :]  # (36, 64) pool mass inside the frame
        moments = g_rows @ torch.stack([x, x * x], 1) @ g_cols / weight  # (F, 2, 36, 64) local mean, mean square
        at_centre = moments.flatten(2)[:, :, r.centre[:, 0] * FRAME_SHAPE[1] + r.centre[:, 1]]  # (F, 2, N)
        return (at_centre[:, 1] - at_centre[:, 0] ** 2).clamp_min(0)

    def predict(self, video, behaviour, mouse: int, start: int = 0) -> torch.Tensor:
        """Responses (B, N, T - start) to frames start..T-1; earlier frames serve only as temporal context."""
        mouse = self.check_mouse(mouse)
        check_encoder_inputs(video, behaviour)
        r = self.readouts[mouse]
        n = r.n_neurons
        beh = r.behaviour_norm(behaviour)
        b, t = video.shape[:2]
        x = (video.float()[:, None] - 127.5) / 64.0
        x = self.shifters[mouse](x, beh[:, 2:])[:, 0]  # (B, T, 36, 64), moved with the eye
        frames = x.reshape(b * t, *FRAME_SHAPE)
        linear = self.linear_responses(frames, mouse).view(b, t, n, 2).permute(0, 3, 2, 1)  # (B, even/odd, N, T)
        linear = causal_conv(linear[:, :, None], self.temporal[:, None])  # (B, even/odd, fast/slow, N, T)
        # the rate is needed from calcium_frames - 1 frames before `start` on, for the calcium kernel
        first = max(0, start - self.calcium_logits.numel() + 1)
        ef, es, of, os_ = (v[..., first:] for v in (linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 0], linear[:, 1, 1]))
        eps = 1e-4  # keeps the square roots differentiable at zero
        features = torch.stack([
            ef, of, es, os_,
            torch.sqrt(ef**2 + of**2 + eps), torch.sqrt(es**2 + os_**2 + eps),
            torch.sqrt((ef + os_) ** 2 + (of - es) ** 2 + eps), torch.sqrt((ef - os_) ** 2 + (of + es) ** 2 + eps),
        ], 1)  # fmt: skip
        variance = self.local_contrast(frames, mouse).view(b, t, n).transpose(1, 2)
        contrast = torch.sqrt(causal_conv(variance, torch.softmax(self.contrast_logits, 0)) + 1e-4)[..., first:]
        beh = beh[:, :, first:]
        drive = torch.einsum("bfnt,nf->bnt", features, r.weight) / (F.softplus(r.log_c50)[None, :, None] + contrast)
        drive = drive + r.bias[:, None] + torch.einsum("bkt,nk->bnt", beh, r.behaviour_drive)
        hidden = torch.tanh(r.behaviour_hidden(beh.transpose(1, 2))).transpose(1, 2)
        gain_weight = torch.cat([r.behaviour_gain, r.hidden_gain], 1)
        log_gain = torch.einsum("bkt,nk->bnt", torch.cat([beh, hidden], 1), gain_weight)
        rate = F.softplus(drive) * torch.exp(log_gain.clamp(-5, 5))
        return causal_conv(rate, torch.softmax(self.calcium_logits, 0))[..., start - first :]

    # -- starting points from the data ---------------------------------------------------------------------------
    def start_from_data(self, mouse: int, data) -> None:
        """As every causal model (statistics, gaze, window centres), then each neuron's filter pair from the
        spike-triggered covariance at its window (`filter_start`), once per mouse for the models of a run."""
        super().start_from_data(mouse, data)
        gaze = data.gaze(self.gaze_trials)  # the estimate the shifter started from (kept, not repeated)
        filters = data.once("filters", lambda: self.filter_start(mouse, data.frames(gaze), data.responses))
        self.set_filters(mouse, filters)

    @torch.no_grad()
    def set_response_mean(self, mouse: int, mean) -> None:
        """Initialise the bias so that a zero drive predicts each neuron's mean response (N,)."""
        mean = torch.as_tensor(mean, dtype=torch.float32).clamp(min=1e-3)
        self.readouts[self.check_mouse(mouse)].bias.copy_(inverse_softplus(mean))

    @torch.no_grad()
    def set_readout_positions(self, mouse: int, positions) -> None:
        """Centre each neuron's window on the pixel nearest to its RF centre (N, 2) (x, y in [-1, 1])."""
        r = self.readouts[self.check_mouse(mouse)]
        pos = torch.as_tensor(positions, dtype=torch.float32, device=r.centre.device)
        col = ((pos[:, 0] + 1) * FRAME_SHAPE[1] / 2 - 0.5).round().clamp(0, FRAME_SHAPE[1] - 1)
        row = ((pos[:, 1] + 1) * FRAME_SHAPE[0] / 2 - 0.5).round().clamp(0, FRAME_SHAPE[0] - 1)
        r.centre.copy_(torch.stack([row, col], 1).long())

    @torch.no_grad()
    def set_filters(self, mouse: int, coefficients: torch.Tensor) -> None:
        """Set each neuron's filter pair, as coefficients (N, 2, basis) of the basis (see `filter_start`)."""
        self.readouts[self.check_mouse(mouse)].coefficients.copy_(coefficients)

    @torch.no_grad()
    def filter_start(
        self, mouse: int, videos: Sequence[np.ndarray], responses: Sequence[np.ndarray], max_trials: int = 20,
        skip_frames: int = 30,
    ) -> torch.Tensor:  # fmt: skip
        """Filter-pair coefficients (N, 2, basis) at the two basis directions along which each neuron's
        response-weighted covariance of the basis responses most exceeds their covariance (whitened spike-triggered
        covariance), at the windows set by `set_readout_positions`."""
        r = self.readouts[self.check_mouse(mouse)]
        pad = self.window // 2
        index = self._window_index(r.centre)
        kernel = biphasic_kernel(int(self.kwargs["temporal_frames"]), 1.04, 3)
        n_basis = self.basis.shape[0]
        prior = torch.zeros(r.n_neurons, n_basis, n_basis, dtype=torch.float64)
        weighted, total, frames = torch.zeros_like(prior), torch.zeros(r.n_neurons, dtype=torch.float64), 0
        for video, resp in itertools.islice(zip(videos, responses, strict=True), max_trials):  # one at a time
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
        return (top / filters.norm(dim=-1).median()).transpose(1, 2).float()
