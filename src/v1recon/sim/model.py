"""The ground-truth model of the in-silico mouse: a population of mouse V1 layer 2/3 neurons.

`GroundTruthV1` satisfies the encoder contract (v1recon.models.base): video (B, T, 36, 64) grey levels 0..255 and
behaviour (B, 4, T) -> expected responses (B, N, T), whole trials, differentiable in the video (and in the pupil
centre). Per neuron, at 30 Hz:

1. Eye position: the frame is resampled (bilinear) at positions shifted by the pupil centre, 1 degree of gaze per
   eye-camera pixel, so RFs move on the screen with the eye.
2. Linear stage: a Gabor receptive field in visual degrees and its quadrature partner, each filtered in time by
   biphasic kernels (Adelson-Bergen pair, positive-lobe latency 50-100 ms). Simple cells are the rectified even
   channel; complex cells the quadrature energy (its square root, so both scale linearly with contrast).
   Direction-selective cells (25 %) add the odd-space x slow-time product, a space-time inseparable RF.
3. Divisive normalisation by the local RMS contrast (Gaussian pool of sigma 14 deg, twice the median RF;
   ~70 ms low-pass).
4. Standardisation of the drive over natural movies (fixed at construction), a per-neuron selectivity and
   offset, a pupil-dilation offset, a softplus output nonlinearity and a running-speed gain
   (1 + g tanh(speed / 10 cm/s), g ~ 0.6): the spike rate in spikes per frame.
5. A causal exponential calcium/deconvolution kernel (tau 2.5 frames): expected deconvolved-trace response.

RF statistics (the Sensorium screen spans about 93 x 124 degrees over 36 x 64 px: 2.58 deg/px vertically,
1.94 deg/px horizontally):
- RF envelope sigma 4-12 deg, median 7 deg (about 3.6 px horizontally, 2.7 px vertically); aspect 1-1.6.
- Spatial frequency log-normal around 0.04 cycles/deg, clipped to 0.02-0.16 cycles/deg (0.04-0.31 cycles/px
  horizontally, 0.05-0.41 cycles/px vertically).
- RF centres follow a retinotopic map of the imaged cortex (20 um/deg) plus local scatter (5 deg), so that the
  population RF covers about 50 x 40 degrees, a part of the screen as in real recordings.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from v1recon import FRAME_SHAPE
from v1recon.errors import V1ReconError
from v1recon.filters import causal_conv
from v1recon.models.base import check_encoder_inputs
from v1recon.sim.behaviour import EyeAndBody

SCREEN_DEG = (93.0, 124.0)  # visual degrees covered by the 36 x 64 frame (height, width)
DEG_PER_PX = (SCREEN_DEG[0] / FRAME_SHAPE[0], SCREEN_DEG[1] / FRAME_SHAPE[1])
UM_PER_DEG = 20.0  # cortical magnification of mouse V1, microns per degree
CELL_TYPES = ("simple", "complex", "simple-ds", "complex-ds")
AMPLITUDE_MEDIAN = 0.08  # spikes per frame at softplus(z) = 1 before calibration
TARGET_CORRELATION = 0.34  # median per-neuron target of the single-trial correlation with the noise-free rate
KERNEL_FRAMES = 24  # length of the temporal kernels (800 ms)
SF_BAND_EDGES_CPD = (0.035, 0.05, 0.07)  # spatial-frequency bands (cycles/deg) of `GroundTruthV1.neuron_groups`

# per-neuron parameters, each an (N,) array; the filters are rebuilt from them
PARAM_NAMES = (
    "azimuth_deg",  # RF centre, degrees right of the screen centre
    "elevation_deg",  # RF centre, degrees above the screen centre
    "sigma_deg",  # RF envelope sigma across the bars
    "aspect",  # envelope sigma along the bars / across
    "sf_cpd",  # spatial frequency, cycles per degree
    "orientation_rad",  # direction of the carrier's wave vector
    "phase_rad",
    "is_complex",  # 1 complex (energy), 0 simple (rectified)
    "ds",  # direction selectivity: 0 separable, +-1 fully inseparable
    "latency_frames",  # peak latency of the fast temporal kernel
    "transience",  # 0 sustained .. 1 fully transient temporal kernel
    "c50",  # semi-saturation RMS contrast of the normalisation
    "selectivity",  # gain on the standardised drive
    "offset",  # offset of the standardised drive (sets sparseness)
    "amplitude",  # spikes per frame at softplus(z) = 1
    "run_gain",  # relative gain at full running speed
    "pupil_gain",  # drive offset per unit pupil dilation (in units of dilation_scale)
    "drive_mean",  # standardisation of the normalised drive (set on natural movies)
    "drive_std",
)

DEFAULT_CONFIG = {
    "gaze_deg_per_cam_px": 1.0,  # degrees of gaze per eye-camera pixel of pupil displacement
    "pupil_ref_x": 250.0,  # eye-camera px, gaze position at which the RFs sit at their nominal centres
    "pupil_ref_y": 180.0,
    "dilation_ref": 20.0,  # eye-camera px
    "dilation_scale": 5.0,
    "speed_scale": 10.0,  # cm/s, running speed of half the gain's saturation
    "calcium_tau_frames": 2.5,
    "contrast_tau_frames": 2.0,
    "pool_sigma_deg": 14.0,
}


def _pixel_grid_deg() -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (degrees, screen centre 0, up positive) of the pixel centres, each (36, 64)."""
    rows, cols = np.mgrid[0 : FRAME_SHAPE[0], 0 : FRAME_SHAPE[1]].astype(np.float64)
    azimuth = (cols + 0.5 - FRAME_SHAPE[1] / 2) * DEG_PER_PX[1]
    elevation = (FRAME_SHAPE[0] / 2 - rows - 0.5) * DEG_PER_PX[0]
    return azimuth, elevation


def deg_to_px(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Visual degrees -> (row, col) pixel coordinates (fractional, pixel centres at integers)."""
    col = np.asarray(azimuth_deg) / DEG_PER_PX[1] + FRAME_SHAPE[1] / 2 - 0.5
    row = FRAME_SHAPE[0] / 2 - 0.5 - np.asarray(elevation_deg) / DEG_PER_PX[0]
    return row, col


def gabor_filters(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Even and odd Gabor filters (N, 36, 64), zero-mean and unit-norm, and their envelopes (max 1), float64."""
    azimuth, elevation = _pixel_grid_deg()
    dx = azimuth[None] - p["azimuth_deg"][:, None, None]
    dy = elevation[None] - p["elevation_deg"][:, None, None]
    cos, sin = np.cos(p["orientation_rad"])[:, None, None], np.sin(p["orientation_rad"])[:, None, None]
    across, along = dx * cos + dy * sin, -dx * sin + dy * cos
    sigma = p["sigma_deg"][:, None, None]
    envelope = np.exp(-0.5 * (across / sigma) ** 2 - 0.5 * (along / (sigma * p["aspect"][:, None, None])) ** 2)
    carrier = 2 * np.pi * p["sf_cpd"][:, None, None] * across + p["phase_rad"][:, None, None]
    filters = []
    for wave in (np.cos(carrier), np.sin(carrier)):
        f = envelope * wave
        f = f - envelope * (f.sum((1, 2), keepdims=True) / envelope.sum((1, 2), keepdims=True))  # no DC response
        filters.append(f / (np.sqrt((f**2).sum((1, 2), keepdims=True)) + 1e-12))
    return filters[0], filters[1], envelope


def temporal_kernels(latency_frames: np.ndarray, transience: np.ndarray) -> np.ndarray:
    """Fast and slow biphasic kernels (N, 2, KERNEL_FRAMES), unit norm, lag 0 first (float64).

    k_n(s) = s^n exp(-s) (1/n! - b s^2/(n+2)!) with s = alpha t, n = 3 (fast) and 5 (slow); alpha puts the
    positive lobe of the fast kernel at `latency_frames`; b = transience sets the negative lobe (b = 1: no DC).
    """
    t = np.arange(KERNEL_FRAMES, dtype=np.float64)[None, :]
    s_peak = 2.29  # positive-lobe peak of the n = 3 kernel in units of 1/alpha
    alpha = (s_peak / latency_frames)[:, None]
    b = transience[:, None]
    out = []
    for n in (3, 5):
        s = alpha * t
        k = s**n * np.exp(-s) * (1 / math.factorial(n) - b * s**2 / math.factorial(n + 2))
        out.append(k / np.sqrt((k**2).sum(1, keepdims=True)))
    return np.stack(out, axis=1)


def exponential_kernel(tau_frames: float, n: int = KERNEL_FRAMES) -> np.ndarray:
    """Causal exponential kernel (n,), lag 0 first, summing to 1."""
    k = np.exp(-np.arange(n) / tau_frames)
    return k / k.sum()


def gaussian_matrix(n: int, sigma_px: float) -> np.ndarray:
    """(n, n) Gaussian blur along one image axis, truncated at the borders and renormalised (rows sum to 1)."""
    x = np.arange(n, dtype=np.float64)
    g = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma_px) ** 2)
    return g / g.sum(1, keepdims=True)


class GroundTruthV1(nn.Module):
    """The in-silico mouse's V1 layer 2/3: video + behaviour -> expected responses (see the module docstring).

    Build one with `GroundTruthV1.random(n_neurons, seed)`; save/load with `save(path)` / `GroundTruthV1.load`.
    Forward: video (B, T, 36, 64) float 0..255, behaviour (B, 4, T) raw -> (B, N, T) expected responses (spikes
    per frame, smoothed by the calcium kernel). `forward(..., return_spike_rate=True)` also returns the spike rate
    before the calcium kernel, which `v1recon.sim.observation.sample_responses` turns into noisy responses.
    """

    family = "energy"  # the model family (`v1recon simulate --family`), stored with the truth
    kind = "GroundTruthV1"  # the class name in the saved JSON, from which `load_truth` picks the class
    param_names = PARAM_NAMES
    cell_type_names = CELL_TYPES

    def __init__(self, params: dict[str, np.ndarray], config: dict | None = None):
        super().__init__()
        missing = [k for k in self.param_names if k not in params]
        if missing:
            raise V1ReconError(f"ground-truth parameters lack {', '.join(missing)}.")
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.n_neurons = int(np.asarray(params["azimuth_deg"]).shape[0])
        for name in self.param_names:
            value = torch.as_tensor(np.asarray(params[name], dtype=np.float64))
            if value.shape != (self.n_neurons,):
                raise V1ReconError(f"ground-truth parameter {name} has shape {tuple(value.shape)}, expected (N,).")
            self.register_buffer(name, value.float())
        coordinates = params.get("coordinates")
        coordinates = np.zeros((self.n_neurons, 3)) if coordinates is None else np.asarray(coordinates)
        self.register_buffer("coordinates", torch.as_tensor(coordinates, dtype=torch.float32))  # (N, 3) microns
        # build from the stored float32 values, so that a saved and reloaded model predicts identically
        self._build(self.parameters_numpy())

    # ------------------------------------------------------------------ construction
    def _build(self, params: dict[str, np.ndarray]) -> None:
        """Filters, kernels and pools from the per-neuron parameters (deterministic, so only those are saved)."""
        p = {k: np.asarray(params[k], dtype=np.float64) for k in PARAM_NAMES}
        n = self.n_neurons
        even, odd, envelope = gabor_filters(p)
        # the filters are computed on a window holding every RF out to 3.5 sigma (envelope > 0.2 %), which
        # skips the part of the screen no neuron sees
        rows = np.flatnonzero(envelope.max((0, 2)) > 2e-3)
        cols = np.flatnonzero(envelope.max((0, 1)) > 2e-3)
        self.window = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
        r0, r1, c0, c1 = self.window
        spatial = np.stack([even, odd], axis=1)[:, :, r0:r1, c0:c1].reshape(2 * n, -1).T  # (window px, 2N)
        self._buffer("spatial", spatial)
        self._buffer("population", envelope.sum(0) / envelope.sum(0).max())
        self._buffer("temporal", temporal_kernels(p["latency_frames"], p["transience"])[:, None])  # (N, 1, 2, L)
        self._buffer("calcium", exponential_kernel(self.config["calcium_tau_frames"]))
        t = np.arange(KERNEL_FRAMES)
        contrast = t * np.exp(-t / self.config["contrast_tau_frames"])
        self._buffer("contrast_kernel", contrast / contrast.sum())
        sigma = self.config["pool_sigma_deg"]
        self._buffer("pool_rows", gaussian_matrix(r1 - r0, sigma / DEG_PER_PX[0]))
        self._buffer("pool_cols", gaussian_matrix(c1 - c0, sigma / DEG_PER_PX[1]))
        row, col = deg_to_px(p["azimuth_deg"], p["elevation_deg"])
        row = np.clip(np.round(row), r0, r1 - 1).astype(np.int64) - r0
        col = np.clip(np.round(col), c0, c1 - 1).astype(np.int64) - c0
        self.register_buffer("centre_index", torch.from_numpy(row * (c1 - c0) + col), persistent=False)

    def _buffer(self, name: str, value: np.ndarray) -> None:
        self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)).float(), persistent=False)

    @classmethod
    def random(
        cls,
        n_neurons: int,
        seed: int,
        config: dict | None = None,
        calibration_trials: int = 3,
        eye: EyeAndBody | None = None,
    ) -> GroundTruthV1:
        """A random population (see `random_population`), calibrated on natural training movies.

        The drive of every neuron is standardised over the calibration movies, and its amplitude set so that
        single-trial responses correlate with the noise-free rate by a per-neuron target (median
        TARGET_CORRELATION), with behaviour drawn from `eye` (default: resting behaviour at the reference).
        """
        from v1recon.sim.behaviour import behaviour_trace
        from v1recon.sim.stimuli import natural_movie

        rng = np.random.default_rng(seed)
        params = cls.random_parameters(rng, n_neurons)
        model = cls(params, {**(config or {}), "seed": int(seed)})
        cal_rng = np.random.default_rng([seed, 1])
        video = np.stack([natural_movie(cal_rng, 300, "train") for _ in range(calibration_trials)])
        if eye is None:
            behaviour = np.stack([model.resting_behaviour(300) for _ in range(calibration_trials)])
        else:
            behaviour = np.stack([behaviour_trace(cal_rng, 300, eye) for _ in range(calibration_trials)])
        model._standardise(video, behaviour)
        target = np.clip(rng.normal(TARGET_CORRELATION, 0.1, n_neurons), 0.05, 0.6)
        model._calibrate_amplitude(video, behaviour, target)
        return model

    @staticmethod
    def random_parameters(rng: np.random.Generator, n_neurons: int) -> dict[str, np.ndarray]:
        """Random per-neuron parameters of this family (see `random_population`)."""
        return random_population(rng, n_neurons)

    def _standardise(self, video: np.ndarray, behaviour: np.ndarray) -> None:
        """Set drive_mean and drive_std to the statistics of the normalised drive on the calibration movies."""
        with torch.no_grad():
            drive = self.normalised_drive(torch.from_numpy(video), torch.from_numpy(behaviour))
        drive = drive[..., 30:].transpose(0, 1).reshape(self.n_neurons, -1).double()
        self.drive_mean.copy_(drive.mean(1).float())
        self.drive_std.copy_(drive.std(1).clamp_min(1e-6).float())

    def _calibrate_amplitude(self, video: np.ndarray, behaviour: np.ndarray, target: np.ndarray) -> None:
        """Set each neuron's amplitude (spikes per frame) so that its single-trial responses correlate with its
        noise-free rate by `target` (N,) on the calibration movies: fewer spikes, noisier responses.

        With rate s r(t), the observation model (v1recon.sim.observation) gives response noise of variance
        s c1 mean(r) + s^2 c2 mean(r^2) around the expected response x = s (k * r), so corr^2 = var(k * r) /
        (var(k * r) + c2 mean(r^2) + c1 mean(r) / s), which is solved for s.
        """
        from v1recon.sim.observation import noise_coefficients

        self.amplitude.fill_(1.0)
        with torch.no_grad():
            expected, rate = self(torch.from_numpy(video), torch.from_numpy(behaviour), return_spike_rate=True)
        expected, rate = expected[..., 30:].double(), rate[..., 30:].double()
        signal = expected.transpose(0, 1).reshape(self.n_neurons, -1).var(1).numpy()
        m1, m2 = rate.mean((0, 2)).numpy(), (rate**2).mean((0, 2)).numpy()
        sd = self.state_sd()
        c1, c2 = noise_coefficients(self.calcium.double().numpy(), 0.0 if sd is None else sd)
        room = signal * (1 / target**2 - 1) - c2 * m2
        scale = np.where(room > 0, c1 * m1 / np.maximum(room, 1e-12), np.inf)
        self.amplitude.copy_(torch.from_numpy(np.clip(scale, 1e-3, 3.0)).float())

    def state_sd(self) -> np.ndarray | None:
        """SD (N,) of each neuron's log gain under the unobserved shared brain state that the observation model
        draws (v1recon.sim.observation.sample_responses), or None: the energy family has no brain state."""
        return None

    def resting_behaviour(self, n_frames: int) -> np.ndarray:
        """Behaviour (4, n_frames) at the reference pupil position and size, not running."""
        c = self.config
        row = [c["dilation_ref"], 0.0, c["pupil_ref_x"], c["pupil_ref_y"]]
        return np.repeat(np.asarray(row, dtype=np.float32)[:, None], n_frames, axis=1)

    # ------------------------------------------------------------------ forward
    def _sample_window(self, u: torch.Tensor, pupil: torch.Tensor) -> torch.Tensor:
        """The filter window of frames u (B, T, H, W), resampled (bilinear) at positions moved by the gaze.

        pupil (B, 2, T) in eye-camera px; the gaze moves the sampling positions, so RFs move with the eye.
        Returns (B, T, window rows, window cols); outside the screen counts as grey (0).
        """
        b, t, h, w = u.shape
        c = self.config
        ref = pupil.new_tensor([c["pupil_ref_x"], c["pupil_ref_y"]])[None, :, None]
        gaze_deg = (pupil - ref) * c["gaze_deg_per_cam_px"]
        # normalised grid units (align_corners=False): pixel k sits at (2k + 1) / size - 1
        dx = gaze_deg[:, 0] / DEG_PER_PX[1] * (2.0 / w)
        dy = gaze_deg[:, 1] / DEG_PER_PX[0] * (2.0 / h)
        r0, r1, c0, c1 = self.window
        ys = (2 * torch.arange(r0, r1, dtype=u.dtype, device=u.device) + 1) / h - 1
        xs = (2 * torch.arange(c0, c1, dtype=u.dtype, device=u.device) + 1) / w - 1
        grid_x = xs.view(1, 1, 1, -1) + dx.reshape(b, t, 1, 1)
        grid_y = ys.view(1, 1, -1, 1) + dy.reshape(b, t, 1, 1)
        grid = torch.stack(torch.broadcast_tensors(grid_x, grid_y), dim=-1).reshape(b * t, r1 - r0, c1 - c0, 2)
        out = F.grid_sample(u.reshape(b * t, 1, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.view(b, t, r1 - r0, c1 - c0)

    def normalised_drive(self, video: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        """Contrast-normalised linear/energy drive (B, N, T), before standardisation and the nonlinearity."""
        check_encoder_inputs(video, behaviour)
        b, t = video.shape[:2]
        n = self.n_neurons
        u = self._sample_window((video.float() - 127.5) / 127.5, behaviour[:, 2:4].float())
        lin = (u.reshape(b * t, -1) @ self.spatial).view(b, t, n, 2, 1).permute(0, 2, 3, 4, 1)  # (B, N, eo, 1, T)
        lin = causal_conv(lin, self.temporal)  # (B, N, even/odd, fast/slow, T)
        ds = self.ds.view(1, n, 1)
        g0 = lin[:, :, 0, 0] + ds * lin[:, :, 1, 1]
        g1 = lin[:, :, 1, 0] - ds * lin[:, :, 0, 1]
        is_complex = self.is_complex.view(1, n, 1)
        drive = is_complex * torch.sqrt(g0**2 + g1**2 + 1e-6) + (1 - is_complex) * F.relu(g0)
        return drive / (self.c50.view(1, n, 1) + self._local_contrast(u))

    def _local_contrast(self, u: torch.Tensor) -> torch.Tensor:
        """RMS contrast (B, N, T) of the window u in a Gaussian pool around each RF centre, low-passed in time."""
        b, t, h, w = u.shape
        both = torch.stack([u, u * u], dim=2).reshape(-1, w) @ self.pool_cols.T  # blur along columns
        both = (self.pool_rows @ both.view(-1, h, w)).view(b, t, 2, h * w)[..., self.centre_index]  # (B, T, 2, N)
        var = (both[:, :, 1] - both[:, :, 0] ** 2).clamp_min(0).transpose(1, 2)  # (B, N, T)
        return torch.sqrt(causal_conv(var, self.contrast_kernel) + 1e-4)

    def forward(
        self, video: torch.Tensor, behaviour: torch.Tensor, return_spike_rate: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        n = self.n_neurons
        drive = self.normalised_drive(video, behaviour)
        c = self.config
        behaviour = behaviour.float()
        z = (drive - self.drive_mean.view(1, n, 1)) / self.drive_std.view(1, n, 1)
        dilation = (behaviour[:, None, 0] - c["dilation_ref"]) / c["dilation_scale"]
        z = self.selectivity.view(1, n, 1) * z + self.offset.view(1, n, 1) + self.pupil_gain.view(1, n, 1) * dilation
        running = 1 + self.run_gain.view(1, n, 1) * torch.tanh(behaviour[:, None, 1].clamp_min(0) / c["speed_scale"])
        rate = self.amplitude.view(1, n, 1) * running * F.softplus(z)
        expected = causal_conv(rate, self.calcium)
        return (expected, rate) if return_spike_rate else expected

    # ------------------------------------------------------------------ inspection
    def parameters_numpy(self) -> dict[str, np.ndarray]:
        """The per-neuron parameters (PARAM_NAMES, each (N,)) and "coordinates" (N, 3) microns, float64."""
        names = (*self.param_names, "coordinates")
        return {name: getattr(self, name).double().numpy() for name in names}

    def receptive_fields(self) -> np.ndarray:
        """Spatial RF maps (N, 36, 64): the even Gabor filter (the linear RF of simple cells), unit norm."""
        r0, r1, c0, c1 = self.window
        rfs = np.zeros((self.n_neurons, *FRAME_SHAPE), np.float32)
        rfs[:, r0:r1, c0:c1] = self.spatial.T.reshape(self.n_neurons, 2, r1 - r0, c1 - c0)[:, 0].numpy()
        return rfs

    def rf_envelopes(self) -> np.ndarray:
        """Gaussian RF envelopes (N, 36, 64), peak 1 at the RF centre (where on the screen each neuron looks)."""
        return gabor_filters(self.parameters_numpy())[2].astype(np.float32)

    def population_rf(self) -> np.ndarray:
        """Summed RF envelopes (36, 64), scaled to max 1: where on the screen the population looks."""
        return self.population.numpy().copy()

    def rf_centres_px(self) -> np.ndarray:
        """RF centres (N, 2) as (row, col) pixel coordinates (fractional)."""
        row, col = deg_to_px(self.azimuth_deg.double().numpy(), self.elevation_deg.double().numpy())
        return np.stack([row, col], axis=1)

    def cell_types(self) -> np.ndarray:
        """(N,) strings from CELL_TYPES."""
        kind = self.is_complex.numpy().astype(int) + 2 * (self.ds.numpy() != 0)
        return np.asarray(CELL_TYPES)[kind]

    def neuron_groups(self) -> dict[str, np.ndarray]:
        """Boolean masks (N,) by cell type (CELL_TYPES) and by spatial-frequency band (SF_BAND_EDGES_CPD), so that
        an encoder's shortfall can be traced to the neurons it misses; each family covers every neuron once."""
        types = self.cell_types()
        groups = {name: types == name for name in CELL_TYPES}
        sf = self.sf_cpd.double().numpy()
        edges = (0.0, *SF_BAND_EDGES_CPD, np.inf)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            name = f"sf {lo:g}-{hi:g} c/deg" if lo > 0 and np.isfinite(hi) else f"sf < {hi:g} c/deg"
            name = f"sf >= {lo:g} c/deg" if np.isinf(hi) else name
            groups[name] = (sf >= lo) & (sf < hi)
        return groups

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write `path` (.safetensors, the per-neuron parameters) and its .json (config); no pickle."""
        from safetensors.numpy import save_file

        from v1recon.io import atomic_path, write_json

        path = _weights_path(path)
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in self.parameters_numpy().items()}, str(tmp))
        write_json(path.with_suffix(".json"), {"kind": self.kind, "family": self.family, "n_neurons": self.n_neurons,
                                               "config": self.config})  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> GroundTruthV1:
        from safetensors.numpy import load_file

        from v1recon.io import read_json

        path = _weights_path(path)
        if not path.is_file():
            raise V1ReconError(f"{path}: ground-truth model file not found.")
        meta = read_json(path.with_suffix(".json"))
        if meta.get("kind") != cls.kind:
            found, where = meta.get("kind"), path.with_suffix(".json")
            raise V1ReconError(f"{where}: describes a {found!r} model, not a {cls.kind} ground truth.")
        try:
            params = load_file(str(path))
        except Exception as err:  # safetensors raises several types for corrupt files
            raise V1ReconError(f"{path}: cannot read the ground-truth parameters ({err}).") from err
        return cls(params, meta.get("config"))


def _weights_path(path: str | os.PathLike) -> Path:
    """`x.safetensors` stays; anything else gets `.safetensors` appended (the JSON is the same stem + .json)."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def random_population(rng: np.random.Generator, n_neurons: int) -> dict[str, np.ndarray]:
    """Random per-neuron parameters (see the module docstring for the ranges) and cortical positions.

    Besides PARAM_NAMES it returns "coordinates" (N, 3): x, y, z in microns (x, y across cortex, following the
    retinotopic map; z = depth 150-350 um, layer 2/3).
    """
    n = n_neurons
    # cortex first, then retinotopy: a 1000 x 800 um field of view, 20 um/deg, slightly rotated, plus scatter
    xy = rng.uniform([0, 0], [1000, 800], size=(n, 2))
    depth = rng.uniform(150, 350, size=n)
    centre_deg = np.array([rng.uniform(-25, 15), rng.uniform(-8, 10)])
    angle = rng.normal(0, 0.2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rf = (xy - xy.mean(0)) / UM_PER_DEG @ rot.T + centre_deg + rng.normal(0, 5.0, size=(n, 2))
    sf = np.exp(rng.normal(np.log(0.045), 0.45, size=n))
    is_complex = (rng.random(n) < 0.5).astype(float)
    ds = np.where(rng.random(n) < 0.25, rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.6, 1.0, size=n), 0.0)
    params = {
        "azimuth_deg": rf[:, 0],
        "elevation_deg": rf[:, 1],
        "sigma_deg": np.clip(np.exp(rng.normal(np.log(7.0), 0.25, size=n)), 4.0, 12.0),
        "aspect": rng.uniform(1.0, 1.6, size=n),
        "sf_cpd": np.clip(sf, 0.02, 0.16),
        "orientation_rad": rng.uniform(0, np.pi, size=n),
        "phase_rad": rng.uniform(0, 2 * np.pi, size=n),
        "is_complex": is_complex,
        "ds": ds,
        "latency_frames": rng.uniform(1.5, 3.0, size=n),  # 50-100 ms at 30 Hz
        "transience": rng.uniform(0.5, 1.0, size=n),
        "c50": np.exp(rng.normal(np.log(0.12), 0.4, size=n)),
        "selectivity": rng.uniform(0.5, 1.5, size=n),
        "offset": rng.uniform(-1.5, 0.0, size=n),
        "amplitude": np.exp(rng.normal(np.log(AMPLITUDE_MEDIAN), 0.5, size=n)),
        "run_gain": np.clip(rng.normal(0.6, 0.4, size=n), -0.4, 2.0),
        "pupil_gain": rng.normal(0.15, 0.15, size=n),
        "drive_mean": np.zeros(n),
        "drive_std": np.ones(n),
        "coordinates": np.column_stack([xy, depth]),
    }
    return params


def truth_path(recording_path: str | os.PathLike) -> Path:
    """Where the ground truth of a simulated mouse folder is stored: beside it, `<mouse>.truth.safetensors`."""
    recording_path = Path(recording_path)
    return recording_path.parent / f"{recording_path.name}.truth.safetensors"


def load_truth(recording_path: str | os.PathLike) -> GroundTruthV1 | None:
    """The ground-truth model of a simulated mouse folder, of the family it was simulated with, or None for a real
    recording (no truth beside it)."""
    from v1recon.sim.families import truth_class

    path = truth_path(recording_path)
    if not path.is_file():
        return None
    meta = path.with_suffix(".json")
    kind = json.loads(meta.read_text()).get("kind") if meta.is_file() else None
    return truth_class(kind, meta).load(path)


def truth_summary(recording_path: str | os.PathLike) -> dict | None:
    """The JSON description stored with the truth (config, calibration), or None."""
    path = truth_path(recording_path).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else None
