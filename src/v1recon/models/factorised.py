"""A fast encoder: factorised causal 3-D convolution core and a Gaussian-position readout per mouse.

Built for CPUs and for the thousands of forward/backward passes of a reconstruction:
- the frame is average-pooled (mouse V1 receptive fields are coarse), then each layer is a spatial convolution
  followed by a causal temporal convolution (frame t sees frames t-k+1..t), BatchNorm and ELU;
- each neuron reads the last feature map through a learned Gaussian spatial mask (position and width) and learned
  per-neuron feature weights; positions start at receptive-field centres estimated from the data when the
  trainer provides them (v1recon.models.rf_init), else wide at random places;
- behaviour modulates each neuron (an additive drive and a multiplicative gain from pupil dilation, running
  speed and pupil position) and the pupil centre shifts every readout position of the mouse (eye movements);
- the output is softplus (or ELU + 1), non-negative;
- optional generic modulations (v1recon.models.modulation, off by default): divisive normalisation by the features of
  a wider surround, divisive adaptation to the neuron's own output over `adaptation_frames` of history, a saturating
  behaviour gain of either sign.
Whole trials run in one pass (no windows); the first `context_frames` frames see replicated first frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from v1recon import FRAME_SHAPE
from v1recon.models.base import MultiMouseModel, check_encoder_inputs, with_defaults

FAST3D_KWARGS = dict(
    downsample=2,  # average-pool the 36x64 frame by this factor first
    channels=(8, 16),  # feature channels of each layer (16 learned as well as 32 in 150 s of CPU training, 1.4x faster)
    spatial_kernels=(7, 5),
    spatial_strides=(1, 2),
    temporal_kernels=(11, 5),
    output="softplus",  # or "elu1"
    gabor_init=True,  # first spatial filters start as a quadrature Gabor bank (a V1-like prior that speeds training)
    readout="gaussian",  # per-neuron spatial mask: "gaussian" (position + width), "free" (every pixel learned) or
    # "point" (features read bilinearly at the position alone: cheap on fine feature maps)
    train_predicted_frames=30,  # frames predicted per training clip (after the context)
    behaviour=True,  # per-neuron drive and gain from behaviour
    pupil_shift=True,  # per-mouse image shift from the pupil centre
    surround=False,  # divisive normalisation by the features under a wider Gaussian (modulation.SurroundNorm)
    adaptation_frames=0,  # > 0: divisive adaptation to the own output over this many frames (modulation.Adaptation)
    behaviour_hidden=0,  # > 0: tanh units of behaviour for a saturating gain of either sign (SaturatingGain)
)
# Readout width (in screen half-widths) for neurons whose RF centre is estimated from data before training: about
# the in-silico mouse's RF sigma (3.6 px of 64); narrower starts learned more slowly (0.06: 0.52 vs 0.59 of truth).
KNOWN_POSITION_SIGMA = 0.1


class RunningNorm(nn.Module):
    """Per-channel standardisation with statistics accumulated in training mode (cumulative mean and variance).

    Inputs (B, C, T). The statistics freeze in eval mode, so a trained model normalises deterministically.
    They can also be set from recording statistics with `set`.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))
        self.register_buffer("count", torch.zeros(()))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        flat = x.detach().transpose(0, 1).reshape(x.shape[1], -1).float()
        n = flat.shape[1]
        if n == 0:
            return
        m, v = flat.mean(1), flat.var(1, unbiased=False)
        total = self.count + n
        delta = m - self.mean
        self.var.copy_((self.count * self.var + n * v + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    @torch.no_grad()
    def set(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.var.copy_(torch.as_tensor(std, dtype=torch.float32) ** 2)
        self.count.fill_(1e9)  # trust these statistics over later batches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(x)
        return (x - self.mean[:, None]) / (self.var[:, None].sqrt() + 1e-6)


def gabor_bank(
    n_filters: int, size: int, periods_px: tuple[float, ...] | None = None, sigmas_px: tuple[float, ...] | None = None
) -> torch.Tensor:
    """(n_filters, 1, 1, size, size) zero-mean unit-norm Gabors: even/odd pairs over orientations, then periods.

    periods_px: carrier periods in pixels of the filtered frame; sigmas_px: their envelope sigmas (default 0.35
    period). By default up to 4 pairs share one period (6 px of the frame pooled by 2) and more pairs add a finer
    one (4 px).
    """
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    pairs = max(1, n_filters // 2)
    if periods_px is None:
        periods_px = (6.0,) if pairs <= 4 else (6.0, 4.0)
    n_orient = math.ceil(pairs / len(periods_px))
    filters = []
    for k in range(n_filters):
        pair = k // 2
        theta = math.pi * (pair % n_orient) / n_orient
        scale = (pair // n_orient) % len(periods_px)
        period = periods_px[scale]
        sigma = 0.35 * period if sigmas_px is None else sigmas_px[scale]
        u = x * math.cos(theta) + y * math.sin(theta)
        envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
        g = envelope * torch.cos(2 * math.pi * u / period - (math.pi / 2) * (k % 2))
        g = g - g.mean()
        filters.append(g / g.norm().clamp(min=1e-6))
    return torch.stack(filters)[:, None, None]


class CausalLayer(nn.Module):
    """Spatial conv (1, k, k) -> causal temporal conv (kt, 1, 1) -> BatchNorm3d -> ELU on (B, C, T, H, W)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, temporal_kernel: int) -> None:
        super().__init__()
        self.temporal_kernel = temporal_kernel
        self.spatial = nn.Conv3d(c_in, c_out, (1, kernel, kernel), stride=(1, stride, stride),
                                 padding=(0, kernel // 2, kernel // 2), bias=False)  # fmt: skip
        self.temporal = nn.Conv3d(c_out, c_out, (temporal_kernel, 1, 1), bias=False)
        self.bn = nn.BatchNorm3d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(x)
        x = F.pad(x, (0, 0, 0, 0, self.temporal_kernel - 1, 0), mode="replicate")  # causal in time
        b, c, t, h, w = x.shape
        # the (kt, 1, 1) convolution as a 2-D one over (time, pixels): several times faster on CPUs
        x = F.conv2d(x.reshape(b, c, t, h * w), self.temporal.weight[..., 0]).reshape(
            b, -1, t - self.temporal_kernel + 1, h, w
        )
        return F.elu(self.bn(x))


class GaussianReadout(nn.Module):
    """Per-neuron Gaussian spatial mask (centre in [-1, 1] screen units, learned width) and feature weights.

    The response drive of neuron n at frame t is sum over channels c and positions p of
    weight[n, c] * mask[n, p] * features[t, c, p]: one matrix product with a (C*h*w, N) matrix per call, the fastest
    form on CPUs and GPUs. Masks start wide so that every neuron's centre gets a gradient, and narrow as they learn.
    Behaviour (normalised per mouse) adds a per-neuron drive and a multiplicative gain. With `point`, each neuron
    reads the features at its position only (bilinear, as the Sensorium baseline's readout at its mean position:
    Lurz et al. 2021, ICLR), its surround from the features blurred by two 5 x 5 box filters.
    """

    def __init__(
        self, n_neurons: int, features: int, behaviour: bool, free_mask: tuple[int, int] | None = None,
        surround: bool = False, adaptation_frames: int = 0, behaviour_hidden: int = 0, point: bool = False,
    ) -> None:  # fmt: skip
        from v1recon.models.modulation import Adaptation, SaturatingGain, SurroundNorm

        super().__init__()
        self.n_neurons = n_neurons
        self.point = point
        # free_mask=(h, w): a free spatial mask per neuron (factorised readout) instead of a Gaussian one
        self.free_mask = (
            nn.Parameter(torch.full((n_neurons, free_mask[0] * free_mask[1]), 1.0 / (free_mask[0] * free_mask[1])))
            if free_mask
            else None
        )
        self.behaviour_norm = RunningNorm(4)
        self.position = nn.Parameter(torch.empty(n_neurons, 2).uniform_(-0.5, 0.5))
        self.log_sigma = nn.Parameter(torch.full((n_neurons,), math.log(0.3)))
        self.weight = nn.Parameter(torch.randn(n_neurons, features) / math.sqrt(features))
        self.bias = nn.Parameter(torch.zeros(n_neurons))
        self.behaviour_drive = nn.Parameter(torch.zeros(n_neurons, 4)) if behaviour else None
        self.behaviour_gain = nn.Parameter(torch.zeros(n_neurons, 4)) if behaviour else None
        self.surround = SurroundNorm(n_neurons, features) if surround else None
        self.adaptation = Adaptation(n_neurons, adaptation_frames) if adaptation_frames > 0 else None
        self.saturating = SaturatingGain(n_neurons, behaviour_hidden) if behaviour_hidden > 0 else None

    def masks(self, h: int, w: int, widen: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised spatial masks (N, h*w) on a grid of pixel centres in [-1, 1] (align_corners=False); `widen`
        (N,) multiplies each Gaussian's sigma."""
        dev = self.position.device
        ys = (torch.arange(h, device=dev) + 0.5) * 2 / h - 1
        xs = (torch.arange(w, device=dev) + 0.5) * 2 / w - 1
        d2 = (xs[None, None, :] - self.position[:, 0, None, None]) ** 2 + (
            ys[None, :, None] - self.position[:, 1, None, None]
        ) ** 2  # (N, h, w)
        sigma2 = torch.exp(2 * self.log_sigma).clamp(min=1e-4) * (1.0 if widen is None else widen**2)
        return torch.softmax((-d2 / (2 * sigma2[:, None, None])).reshape(self.n_neurons, h * w), dim=1)

    def forward(self, feats: torch.Tensor, behaviour_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats (B, C, T, h, w), normalised behaviour (B, 4, T) -> drive before the output nonlinearity (B, N, T)
        and, with a surround, its divisor (B, N, T) (else None)."""
        pooled = self._point(feats) if self.point else self._masked(feats)
        drive = pooled[:, : self.n_neurons] + self.bias[:, None]
        if self.behaviour_drive is not None:
            drive = drive + torch.einsum("bkt,nk->bnt", behaviour_z, self.behaviour_drive)
        divisor = None if self.surround is None else self.surround.divisor(pooled[:, self.n_neurons :])
        return drive, divisor

    def _masked(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N or 2N, T): the weighted features under each neuron's mask (then its surround's)."""
        b, c, t, h, w = feats.shape
        spatial = self.free_mask if self.free_mask is not None else self.masks(h, w)
        masks = [(self.weight[:, :, None] * spatial[:, None, :]).reshape(self.n_neurons, c * h * w)]
        if self.surround is not None:
            wide = self.masks(h, w, widen=self.surround.log_ratio.exp())
            masks.append((self.surround.weight[:, :, None] * wide[:, None, :]).reshape(self.n_neurons, c * h * w))
        flat = feats.transpose(1, 2).reshape(b * t, c * h * w)
        return (flat @ torch.cat(masks).t()).reshape(b, t, -1).transpose(1, 2)

    def _point(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N or 2N, T): the weighted features at each neuron's position (then blurred, for its surround)."""
        b, c, t, h, w = feats.shape
        x = feats.transpose(1, 2).reshape(b * t, c, h, w)
        grid = self.position.clamp(-1, 1).view(1, 1, -1, 2).expand(b * t, 1, self.n_neurons, 2)
        out = [torch.einsum("kcn,nc->kn", F.grid_sample(x, grid, align_corners=False)[:, :, 0], self.weight)]
        if self.surround is not None:
            for _ in range(2):
                x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
            wide = F.grid_sample(x, grid, align_corners=False)[:, :, 0]
            out.append(torch.einsum("kcn,nc->kn", wide, self.surround.weight))
        return torch.cat(out, 1).reshape(b, t, -1).transpose(1, 2)

    def gain(self, behaviour_z: torch.Tensor) -> torch.Tensor | None:
        if self.behaviour_gain is None:
            return None
        log_gain = torch.einsum("bkt,nk->bnt", behaviour_z, self.behaviour_gain)
        if self.saturating is not None:
            log_gain = log_gain + self.saturating(behaviour_z)
        return torch.exp(log_gain.clamp(-5, 5))


def translate(frames: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Frames (B, 1, H, W) resampled (bilinear, zero fill) so that output pixel p shows input position p + shift,
    shift (B, 2) as (x, y) in [-1, 1] screen units (a shift of 2 / W is one pixel to the right)."""
    b, _, h, w = frames.shape
    theta = torch.zeros(b, 2, 3, dtype=frames.dtype, device=frames.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta = theta + F.pad(shift[:, :, None].to(frames.dtype), (2, 0))  # last column = translation
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    return F.grid_sample(frames, grid, align_corners=False)


class Shifter(nn.Module):
    """Pupil centre (normalised, (B, 2, T)) -> per-frame image translation (eye movements), [-1, 1] units."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor, pupil_z: torch.Tensor) -> torch.Tensor:
        """Translate frames x (B, 1, T, H, W) by the shift predicted from the pupil centre (bilinear, grey fill)."""
        b, _, t, h, w = x.shape
        shift = self.net(pupil_z.transpose(1, 2)).reshape(b * t, 2)
        frames = translate(x.transpose(1, 2).reshape(b * t, 1, h, w), shift)
        return frames.reshape(b, t, 1, h, w).transpose(1, 2)

    @torch.no_grad()
    def set_linear(self, weight, bias) -> None:
        """Start at the shift weight * pupil_z + bias ((2,) each, x and y separately, [-1, 1] units): two hidden
        units work in the near-linear range of tanh (slope 0.1, 2 % compression at 2.5 SD) and feed one output
        each; the other hidden units keep their random input weights and start unused."""
        slope = 0.1
        first, last = self.net[0], self.net[2]
        first.weight[:2] = torch.eye(2) * slope
        first.bias[:2] = 0.0
        last.weight.zero_()
        last.weight[0, 0], last.weight[1, 1] = (torch.as_tensor(weight, dtype=torch.float32) / slope).tolist()
        last.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


class CausalWholeTrialModel(MultiMouseModel):
    """A model that predicts whole trials in one causal pass, `predict(video, behaviour, mouse, start)`, and keeps each
    mouse's behaviour normalisation in `readouts[mouse].behaviour_norm` (fast3d and subunit)."""

    gaze_trials = 60  # trials of the gaze estimate before training (v1recon.models.rf_init.estimate_gaze)
    rf_init_options: dict = {}  # keyword arguments of v1recon.models.rf_init.rf_positions for the readout start

    def __init__(self) -> None:
        super().__init__()
        self.shifters: nn.ModuleList | None = None  # one gaze shifter per mouse, where the model has them

    def forward(self, video, behaviour, mouse):
        return self.predict(video, behaviour, mouse)

    def predict(self, video, behaviour, mouse: int, start: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def train_forward(self, video, behaviour, mouse):
        """A clip of `train_clip_frames` frames -> predictions for its frames after the context (B, N, K)."""
        idx = torch.arange(self.context_frames, video.shape[1], device=video.device)
        return self.predict(video, behaviour, mouse, start=self.context_frames), idx

    def start_from_data(self, mouse: int, data) -> None:
        """Behaviour normalisation and readout bias from the training trials; then the gaze correction (models with a
        shifter) and the readout positions at the receptive-field centres found on frames moved back by it."""
        self.set_behaviour_statistics(mouse, *data.behaviour_statistics())
        self.set_response_mean(mouse, data.response_mean())
        gaze = self.start_gaze(mouse, data)
        self.set_readout_positions(mouse, data.rf_positions(gaze, **self.rf_init_options))

    def start_gaze(self, mouse: int, data) -> tuple | None:
        """Start the shifter at the gaze correction estimated from the data; returns it (None without a shifter)."""
        if self.shifters is None:
            return None
        gaze = data.gaze(self.gaze_trials)  # the RFs are found on frames moved back by it, so both agree
        self.set_gaze(mouse, *gaze)
        return gaze

    def set_response_mean(self, mouse: int, mean) -> None:
        raise NotImplementedError

    def set_readout_positions(self, mouse: int, positions) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def set_behaviour_statistics(self, mouse: int, mean, std) -> None:
        """Fix the behaviour normalisation of one mouse (4 values each: dilation, speed, pupil x, pupil y)."""
        self.readouts[self.check_mouse(mouse)].behaviour_norm.set(mean, std)

    @torch.no_grad()
    def set_gaze(self, mouse: int, gain, reference) -> None:
        """Start the mouse's shifter at the linear gaze correction gain * (pupil - reference) pixels (see
        v1recon.models.rf_init.estimate_gaze), through its behaviour normalisation (set it first)."""
        mouse = self.check_mouse(mouse)
        if self.shifters is None:
            return
        norm = self.readouts[mouse].behaviour_norm
        mean, std = norm.mean[2:].double(), norm.var[2:].double().sqrt() + 1e-6
        per_px = torch.tensor([2.0 / FRAME_SHAPE[1], 2.0 / FRAME_SHAPE[0]], dtype=torch.float64)
        gain, reference = torch.as_tensor(gain, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
        self.shifters[mouse].set_linear(gain * std * per_px, gain * (mean - reference) * per_px)


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y (y > 0)."""
    return y + torch.log(-torch.expm1(-y))


class Fast3d(CausalWholeTrialModel):
    """Factorised causal 3-D convolution core shared across mice, one Gaussian readout (+ shifter) per mouse.

    forward(video (B,T,36,64), behaviour (B,4,T), mouse) -> (B, N, T) for any T >= 1 in one causal pass.
    """

    architecture = "fast3d"
    gaze_trials = 20  # ~15 s per mouse instead of ~45 s: the estimate comes out of short CPU training budgets

    def __init__(self, neuron_counts, **kwargs) -> None:
        super().__init__()
        kw = with_defaults(FAST3D_KWARGS, kwargs, "fast3d")
        for key in ("channels", "spatial_kernels", "spatial_strides", "temporal_kernels"):
            kw[key] = tuple(int(v) for v in kw[key])
        if kw["output"] not in ("softplus", "elu1"):
            raise ValueError(f"output must be 'softplus' or 'elu1', got {kw['output']!r}")
        self.kwargs = kw
        self.neuron_counts = [int(n) for n in neuron_counts]
        self.context_frames = sum(k - 1 for k in kw["temporal_kernels"]) + max(0, int(kw["adaptation_frames"]) - 1)
        self.train_clip_frames = self.context_frames + int(kw["train_predicted_frames"])
        widths = (1, *kw["channels"])
        self.core = nn.Sequential(
            *[
                CausalLayer(widths[i], widths[i + 1], kw["spatial_kernels"][i], kw["spatial_strides"][i],
                            kw["temporal_kernels"][i])
                for i in range(len(kw["channels"]))
            ]
        )  # fmt: skip
        if kw["gabor_init"]:
            n_filters, size = self.core[0].spatial.weight.shape[::3]
            pairs, scale = n_filters // 2, 2.0 / kw["downsample"]  # the bank's periods are for the frame pooled by 2
            periods = tuple(p * scale for p in ((6.0,) if pairs <= 4 else (6.0, 4.0)))
            with torch.no_grad():
                self.core[0].spatial.weight.copy_(gabor_bank(n_filters, size, periods))
        if kw["readout"] not in ("gaussian", "free", "point"):
            raise ValueError(f"readout must be 'gaussian', 'free' or 'point', got {kw['readout']!r}")
        free = self.feature_shape() if kw["readout"] == "free" else None
        modulation = {k: kw[k] for k in ("surround", "adaptation_frames", "behaviour_hidden")}
        modulation["point"] = kw["readout"] == "point"
        self.readouts = nn.ModuleList(
            GaussianReadout(n, widths[-1], kw["behaviour"], free, **modulation) for n in self.neuron_counts
        )
        self.shifters = nn.ModuleList(Shifter() for _ in self.neuron_counts) if kw["pupil_shift"] else None

    @property
    def rf_init_options(self) -> dict:
        """Options of the RF start (v1recon.models.rf_init.rf_positions): full resolution for a full-resolution core."""
        return {"full_resolution": True} if self.kwargs["downsample"] == 1 else {}

    def feature_shape(self) -> tuple[int, int]:
        """Height and width of the core's output map for a 36 x 64 frame."""
        h, w = (math.ceil(n / self.kwargs["downsample"]) for n in FRAME_SHAPE)
        for s in self.kwargs["spatial_strides"]:
            h, w = math.ceil(h / s), math.ceil(w / s)
        return h, w

    def features(self, video: torch.Tensor, pupil_z: torch.Tensor | None = None, mouse: int = 0) -> torch.Tensor:
        """(B, T, 36, 64) grey levels -> core features (B, C, T, h, w); frames shifted by the mouse's pupil centre."""
        x = (video[:, None] - 127.5) / 64.0  # grey -> 0, roughly unit spread
        if self.shifters is not None and pupil_z is not None:
            x = self.shifters[mouse](x, pupil_z)
        d = self.kwargs["downsample"]
        if d > 1:
            x = F.avg_pool3d(x, (1, d, d), ceil_mode=True)
        return self.core(x)

    def predict(self, video, behaviour, mouse: int, start: int = 0) -> torch.Tensor:
        """Responses (B, N, T - start) to frames start..T-1; earlier frames serve only as temporal context."""
        mouse = self.check_mouse(mouse)
        check_encoder_inputs(video, behaviour)
        readout = self.readouts[mouse]
        beh = readout.behaviour_norm(behaviour)
        adaptation = readout.adaptation
        if adaptation is None:
            return self._rate(video, beh, mouse, start)
        # adaptation divides by the output of its kernel's length before `start`; in training that history is
        # computed without a gradient (a forward pass only), which keeps long-memory clips affordable
        first = max(0, start - adaptation.frames + 1)
        if start > first and torch.is_grad_enabled():
            core = min(start, self.context_frames - adaptation.frames + 1)  # the core's own temporal context
            with torch.no_grad():
                history = self._rate(video[:, :start], beh[:, :, :start], mouse, first)
            rate = torch.cat([history, self._rate(video[:, start - core :], beh[:, :, start - core :], mouse, core)], 2)
        else:
            rate = self._rate(video, beh, mouse, first)
        return adaptation(rate)[..., start - first :]

    def _rate(self, video, beh, mouse: int, start: int) -> torch.Tensor:
        """Output before adaptation (B, N, T - start), behaviour already normalised (B, 4, T)."""
        readout = self.readouts[mouse]
        feats = self.features(video, beh[:, 2:], mouse)[:, :, start:]
        beh = beh[:, :, start:]
        drive, divisor = readout(feats, beh)
        out = F.softplus(drive) if self.kwargs["output"] == "softplus" else F.elu(drive) + 1.0
        if divisor is not None:
            out = out / divisor
        gain = readout.gain(beh)
        return out if gain is None else out * gain

    @torch.no_grad()
    def set_readout_positions(self, mouse: int, positions, sigma: float = KNOWN_POSITION_SIGMA) -> None:
        """Start each neuron's readout at a known receptive-field centre (N, 2) (x, y in [-1, 1]), narrowed to
        `sigma` (screen half-widths): see v1recon.models.rf_init."""
        readout = self.readouts[self.check_mouse(mouse)]
        readout.position.copy_(torch.as_tensor(positions, dtype=torch.float32).clamp(-1, 1))
        if readout.free_mask is None:
            readout.log_sigma.fill_(math.log(sigma))

    @torch.no_grad()
    def set_response_mean(self, mouse: int, mean) -> None:
        """Initialise the readout bias so that a zero drive predicts each neuron's mean response (N,)."""
        mean = torch.as_tensor(mean, dtype=torch.float32).clamp(min=1e-3)
        readout = self.readouts[self.check_mouse(mouse)]
        if readout.adaptation is not None:
            readout.adaptation.scale.copy_(mean)
        if self.kwargs["output"] == "softplus":
            readout.bias.copy_(inverse_softplus(mean))
        else:
            readout.bias.copy_(torch.where(mean >= 1, mean - 1, torch.log(mean)))  # inverse of elu + 1
