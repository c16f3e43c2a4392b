"""The `cascade` family of the in-silico mouse: mouse V1 layer 2/3 with the effects that the energy family lacks.

`CascadeV1` follows the ground-truth encoder contract of `GroundTruthV1` (video (B, T, 36, 64) grey levels 0..255 and
behaviour (B, 4, T) -> expected responses (B, N, T), whole trials, differentiable in the video and the pupil centre,
with a non-zero gradient at a uniform grey screen) and keeps its eye model, RF statistics (retinotopy, sizes, spatial
frequencies, latencies), output stage, calcium kernel and noise calibration. Per neuron, at 30 Hz:

1. Eye position: the frame is resampled at positions moved by the gaze, as in the energy family.
2. Subunits: linear spatial filters (Gabors in visual degrees, or a difference of Gaussians), each filtered in time
   by the neuron's biphasic kernels (50-100 ms latency). Half-wave rectification is smooth, h(x) = softplus(b x) / b,
   so the drive has a gradient at grey. Seven cell types (fractions of the population in brackets):
   - simple (20 %): the rectified even Gabor with a dark (OFF) bias: a uniform dark field drives it 0-15 % as much
     as the optimal grating of equal contrast (OFF subfields dominate in mouse V1: Jimenez et al. 2018,
     J Neurophysiol 120:2876; Kremkow et al. 2014, PNAS 111:3170 in cat); a quarter are direction selective
     (space-time inseparable, as in the energy family);
   - complex (25 %): the quadrature energy, a quarter direction selective;
   - end-stopped (12 %): centre energy minus 0.5-1.0 times the energy of two end zones displaced along the bars by
     1.5-2.5 along-sigmas, rectified, so short bars win over long ones (hypercomplex cells: Hubel & Wiesel 1965,
     J Neurophysiol 28:229; in mouse V1: Van den Bergh et al. 2010, J Comp Neurol 518:2051);
   - pooling (12 %), an LN-LN cascade: four rectified simple subunits of one orientation at positions 1-2 sigma
     apart and phases 90 degrees apart, squared and summed: phase- and position-invariant pooling, texture-like
     (convolutional subunit models: Vintch, Movshon & Simoncelli 2015, J Neurosci 35:14829; Rust et al. 2005,
     Neuron 46:945);
   - corner (8 %), an LN-LN cascade: the geometric mean of the energies of two elongated arms whose orientations
     differ by 60-120 degrees and which meet at the RF centre: an AND of two edges (mouse V1 features beyond
     Gabors: Walker et al. 2019, Nat Neurosci 22:2060; Ukita, Yoshida & Ohki 2019, Sci Rep 9:3791; angle cells of
     Ito & Komatsu 2004, J Neurosci 24:3313);
   - on-centre (8 %) and off-centre (15 %): a rectified difference of Gaussians (centre sigma 0.6 of the RF sigma,
     2.5-7 deg; surround 2-3x wider, weight 0.75-0.95, so some luminance response remains); OFF cells outnumber ON
     cells about 2:1 (Jimenez et al. 2018; unoriented cells of mouse V1: Niell & Stryker 2008, J Neurosci 28:7520).
3. Divisive normalisation by a pool of local oriented energies (2 scales x 4 orientations, read at 4-px resolution):
   an untuned centre pool (the contrast normalisation of the energy family), a cross-orientation pool (energy at
   the orthogonal orientation inside the RF, weight 0-1.5: Priebe & Ferster 2006, Nat Neurosci 9:552; Busse, Wade &
   Carandini 2009, Neuron 64:931) and a surround pool (an annulus 2-3.5 RF sigmas wide, 50-100 % iso-oriented;
   weight 0.5-2.5 in 75 % of the neurons, 0-0.3 in the others: surround suppression, Niell & Stryker 2008;
   Adesnik et al. 2012, Nature 490:226; Vaiceliunaite et al. 2013, J Neurophysiol 109:1775). Strengths are in units
   of the RMS contrast of the pooled region; semi-saturation c50 as in the energy family.
4. Contrast adaptation: the normalised drive x is divided by 1 + a x_slow / x_ref, where x_slow is x low-passed by
   an exponential of time constant 0.5-1.5 s (15-45 frames), x_ref its mean over natural movies and a = 0-1: the
   response to a sustained high-contrast stimulus falls over about a second and responses depend on seconds of
   history; adaptation follows the neuron's own (orientation- and frequency-tuned) drive (Sanchez-Vives, Nowak &
   McCormick 2000, J Neurosci 20:4267; in mouse V1, spatial-frequency specific: King, Lowe & Crowder 2015,
   Neuroscience 310:198).
5. Output stage as the energy family (standardisation over natural movies, selectivity, offset, pupil-dilation
   offset, softplus, calcium kernel), with a running gain 1 + g tanh(speed / 10 cm/s) that enhances 70 % of the
   neurons (g 0-1.5, median 0.6) and suppresses 30 % (g -0.6 to -0.2) (Niell & Stryker 2010, Neuron 65:472;
   Dipoppa et al. 2018, Neuron 98:602; Pakan et al. 2016, eLife 5:e14985).
6. Brain state: an unobserved slow gain shared by all neurons of a trial (log-normal, time constant 3 s), coupled
   per neuron with a log-gain SD of 0-0.7 (median 0.3), drawn by the observation model
   (`v1recon.sim.observation.sample_responses`, `state_sd`): correlated variability that no encoder can see
   (Goris, Movshon & Simoncelli 2014, Nat Neurosci 17:858; Lin et al. 2015, Neuron 87:644; Okun et al. 2015,
   Nature 521:511). The calibration of the response noise accounts for it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from v1recon import FRAME_SHAPE
from v1recon.models.base import check_encoder_inputs
from v1recon.sim.model import (
    DEG_PER_PX,
    KERNEL_FRAMES,
    PARAM_NAMES,
    SF_BAND_EDGES_CPD,
    GroundTruthV1,
    _pixel_grid_deg,
    causal_conv,
    random_population,
    temporal_kernels,
)

CELL_TYPES = ("simple", "complex", "end-stopped", "pooling", "corner", "on-centre", "off-centre")
TYPE_FRACTIONS = (0.20, 0.25, 0.12, 0.12, 0.08, 0.08, 0.15)
SLOTS = {"simple": 2, "complex": 2, "end-stopped": 4, "pooling": 4, "corner": 4, "on-centre": 1, "off-centre": 1}
RECTIFIER_SHARPNESS = 20.0  # b of h(x) = softplus(b x) / b; linear responses to natural movies have SD ~0.3
EPS = 1e-6  # inside the square roots of energies
POOL_PX = 4  # pixels per cell of the normalisation pool's grid
BANK_PERIOD_PX = 4.0  # carrier period of the energy bank on the frame pooled by 2 and by 4 (8 and 16 px)
BANK_SIZE = 7
ENERGY_TO_CONTRAST = 3.45  # scales the untuned centre pool to the local RMS contrast of natural movies (measured)
ADAPT_FRAMES = 180  # length of the adaptation kernels (6 s, 4 time constants at 1.5 s)
SURROUND_SUPPRESSED = 0.75  # fraction of neurons with a strong surround
RUN_SUPPRESSED = 0.30  # fraction of neurons whose responses running suppresses
GROUP_EDGES = {"surround": 0.5, "adaptation": 0.5}  # strong / weak boundary of the effect groups of neuron_groups

EXTRA_PARAMS = (
    "cell_type",  # index into CELL_TYPES
    "off_bias",  # simple cells: response to a uniform dark field over that to the optimal grating of equal contrast
    "cross_weight",  # cross-orientation pool weight
    "surround_weight",  # surround pool weight
    "surround_ratio",  # surround sigma / RF sigma
    "iso_fraction",  # fraction of the surround pool tuned to the preferred orientation
    "end_weight",  # end-stopped: weight of the end zones' energy
    "end_offset",  # end-stopped: end zones' distance from the centre, in along-sigmas
    "subunit_spread",  # pooling: subunit spacing, in RF sigmas
    "arm_angle_rad",  # corner: orientation of the second arm relative to the first
    "dog_ratio",  # centre-surround: surround sigma / centre sigma
    "dog_weight",  # centre-surround: surround weight (volume-normalised Gaussians)
    "adapt_strength",
    "adapt_tau_frames",
    "adapt_ref",  # mean normalised drive over natural movies (set at calibration)
    "state_coupling",  # SD of the log gain under the shared brain state
)
CASCADE_PARAMS = tuple(p for p in PARAM_NAMES if p != "is_complex") + EXTRA_PARAMS


def _unit(f: np.ndarray) -> np.ndarray:
    return f / (np.sqrt((f**2).sum((1, 2), keepdims=True)) + 1e-12)


def oriented_filters(
    cx: np.ndarray, cy: np.ndarray, sigma: np.ndarray, aspect: np.ndarray, sf: np.ndarray, ori: np.ndarray,
    phase: np.ndarray, lobes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Even and odd Gabor filters (K, 36, 64) at centres (cx, cy) degrees, zero-mean and unit-norm, and their
    envelopes (max 1); every argument (K,). `lobes` (K,): the envelope is two lobes displaced by +-lobes along-sigmas
    along the bars (same carrier: the end zones of end-stopped cells)."""
    azimuth, elevation = _pixel_grid_deg()
    dx, dy = azimuth[None] - cx[:, None, None], elevation[None] - cy[:, None, None]
    cos, sin = np.cos(ori)[:, None, None], np.sin(ori)[:, None, None]
    across, along = dx * cos + dy * sin, -dx * sin + dy * cos
    s_across, s_along = sigma[:, None, None], (sigma * aspect)[:, None, None]
    if lobes is None:
        envelope = np.exp(-0.5 * (across / s_across) ** 2 - 0.5 * (along / s_along) ** 2)
    else:
        shift = lobes[:, None, None] * s_along
        envelope = sum(np.exp(-0.5 * (across / s_across) ** 2 - 0.5 * ((along - k * shift) / s_along) ** 2)
                       for k in (-1, 1))  # fmt: skip
    carrier = 2 * np.pi * sf[:, None, None] * across + phase[:, None, None]
    out = []
    for wave in (np.cos(carrier), np.sin(carrier)):
        f = envelope * wave
        f = f - envelope * (f.sum((1, 2), keepdims=True) / envelope.sum((1, 2), keepdims=True))
        out.append(_unit(f))
    return out[0], out[1], envelope / envelope.max((1, 2), keepdims=True)


def dog_filters(cx, cy, sigma_c, ratio, weight) -> tuple[np.ndarray, np.ndarray]:
    """Difference-of-Gaussians filters (K, 36, 64), unit norm (volume-normalised centre minus `weight` x surround),
    and their centre envelopes (max 1)."""
    azimuth, elevation = _pixel_grid_deg()
    d2 = (azimuth[None] - cx[:, None, None]) ** 2 + (elevation[None] - cy[:, None, None]) ** 2
    centre = np.exp(-0.5 * d2 / sigma_c[:, None, None] ** 2)
    surround = np.exp(-0.5 * d2 / (sigma_c * ratio)[:, None, None] ** 2)
    f = centre / centre.sum((1, 2), keepdims=True) - weight[:, None, None] * surround / surround.sum(
        (1, 2), keepdims=True
    )
    return _unit(f), centre


def dog_peak_sf(sigma_c: np.ndarray, ratio: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Spatial frequency (cycles/deg) at which a difference of volume-normalised Gaussians responds most: the root
    of d/df [exp(-2 pi^2 sc^2 f^2) - w exp(-2 pi^2 ss^2 f^2)] = 0 (0.01 where the filter is low-pass)."""
    ss = sigma_c * ratio
    arg = weight * ss**2 / sigma_c**2
    f2 = np.log(np.maximum(arg, 1.0)) / (2 * np.pi**2 * (ss**2 - sigma_c**2))
    return np.where(arg > 1, np.sqrt(f2), 0.01)


def energy_bank() -> np.ndarray:
    """(8, 1, BANK_SIZE, BANK_SIZE) quadrature pairs at 4 orientations (wave vector angle 0, 45, 90, 135 degrees
    in (column, up) pixel axes), period BANK_PERIOD_PX, each scaled so that a unit-amplitude sinusoid at its
    period and orientation has quadrature energy 1."""
    r = np.arange(BANK_SIZE) - (BANK_SIZE - 1) / 2
    up, col = np.meshgrid(-r, r, indexing="ij")
    sigma = 0.4 * BANK_PERIOD_PX
    envelope = np.exp(-(col**2 + up**2) / (2 * sigma**2))
    out = []
    for k in range(4):
        theta = np.pi * k / 4
        u = col * np.cos(theta) + up * np.sin(theta)
        pair = [envelope * np.cos(2 * np.pi * u / BANK_PERIOD_PX), envelope * np.sin(2 * np.pi * u / BANK_PERIOD_PX)]
        pair[0] = pair[0] - envelope * pair[0].sum() / envelope.sum()
        gain = np.sum(pair[0] * np.cos(2 * np.pi * u / BANK_PERIOD_PX)) + 1e-12  # response to the sinusoid
        out += [p / gain for p in pair]
    return np.stack(out)[:, None]


def orientation_weights(theta_px: np.ndarray, kappa: float = 1.5) -> np.ndarray:
    """(N, 4) weights of the bank's orientations for neurons preferring wave-vector angle `theta_px` (pixel axes),
    von Mises in the doubled angle, mean 1."""
    bank = np.pi * np.arange(4) / 4
    w = np.exp(kappa * np.cos(2 * (bank[None] - theta_px[:, None])))
    return w / w.mean(1, keepdims=True)


class CascadeV1(GroundTruthV1):
    """The in-silico mouse's V1 layer 2/3, cascade family (see the module docstring): the `GroundTruthV1` contract,
    eye model, output stage, persistence and calibration, with richer cells, normalisation, adaptation and a
    shared brain state."""

    family = "cascade"
    kind = "CascadeV1"
    param_names = CASCADE_PARAMS
    cell_type_names = CELL_TYPES

    # ------------------------------------------------------------------ construction
    @staticmethod
    def random_parameters(rng: np.random.Generator, n_neurons: int) -> dict[str, np.ndarray]:
        return random_cascade_population(rng, n_neurons)

    def _build(self, params: dict[str, np.ndarray]) -> None:
        """Filters, kernels and pools from the per-neuron parameters (deterministic, so only those are saved)."""
        p = {k: np.asarray(params[k], dtype=np.float64) for k in self.param_names}
        filters, envelopes, owner, index = self._filters(p)
        rows = np.flatnonzero(envelopes.max((0, 2)) > 2e-3)
        cols = np.flatnonzero(envelopes.max((0, 1)) > 2e-3)
        # the gaze-sampled window holds the linear filters and the normalisation pools; it is aligned to the pool grid
        pool_weights = self._pool_weights(p)  # (N, 8, 9, 16) on the POOL_PX grid of the whole frame
        reach = pool_weights.max((0, 1)) > 1e-3 * pool_weights.max()
        prow, pcol = np.flatnonzero(reach.any(1)), np.flatnonzero(reach.any(0))
        r0 = POOL_PX * min(rows.min() // POOL_PX, prow.min())
        r1 = POOL_PX * max(-(-(rows.max() + 1) // POOL_PX), prow.max() + 1)
        c0 = POOL_PX * min(cols.min() // POOL_PX, pcol.min())
        c1 = POOL_PX * max(-(-(cols.max() + 1) // POOL_PX), pcol.max() + 1)
        self.window = (int(r0), int(r1), int(c0), int(c1))
        self.linear_window = (int(rows.min()) - r0, int(rows.max()) + 1 - r0, int(cols.min()) - c0,
                              int(cols.max()) + 1 - c0)  # fmt: skip
        lr0, lr1, lc0, lc1 = self.linear_window
        crop = filters[:, r0:r1, c0:c1][:, lr0:lr1, lc0:lc1]
        self._buffer("spatial", crop.reshape(len(filters), -1).T)  # (linear window px, F)
        self._buffer("filters_full", filters.reshape(len(filters), -1))  # for receptive_fields()
        self.register_buffer("filter_owner", torch.from_numpy(owner), persistent=False)
        for name, idx in index.items():
            self.register_buffer(f"index_{name.replace('-', '_')}", torch.from_numpy(idx), persistent=False)
        self.type_index = {name: getattr(self, f"index_{name.replace('-', '_')}") for name in CELL_TYPES}
        self._buffer("envelopes", self._neuron_envelopes(envelopes, owner))
        self._buffer("population", self.envelopes.numpy().sum(0) / self.envelopes.numpy().sum(0).max())
        kernels = temporal_kernels(p["latency_frames"], p["transience"])  # (N, 2, L) fast, slow
        self._buffer("temporal_fast", kernels[owner, 0])  # (F, L)
        slow = np.flatnonzero(np.isin(p["cell_type"][owner], [0, 1]))  # simple and complex: direction selectivity
        self.register_buffer("slow_filters", torch.from_numpy(slow), persistent=False)
        self._buffer("temporal_slow", kernels[owner[slow], 1])
        from v1recon.sim.model import exponential_kernel

        self._buffer("calcium", exponential_kernel(self.config["calcium_tau_frames"]))
        t = np.arange(KERNEL_FRAMES)
        contrast = t * np.exp(-t / self.config["contrast_tau_frames"])
        self._buffer("contrast_kernel", contrast / contrast.sum())
        lags = np.arange(ADAPT_FRAMES)[None]
        adapt = np.exp(-lags / p["adapt_tau_frames"][:, None])
        self._buffer("adapt_kernel", adapt / adapt.sum(1, keepdims=True))  # (N, ADAPT_FRAMES)
        self._buffer("bank", energy_bank())
        g0, g1 = r0 // POOL_PX, c0 // POOL_PX
        gh, gw = (r1 - r0) // POOL_PX, (c1 - c0) // POOL_PX
        self._buffer("pool", pool_weights[:, :, g0 : g0 + gh, g1 : g1 + gw].reshape(self.n_neurons, -1).T)

    def _filters(self, p: dict[str, np.ndarray]):
        """All subunit filters (F, 36, 64), their envelopes, owning neuron (F,) and per type the (n_type, slots)
        filter indices."""
        n = self.n_neurons
        code = p["cell_type"].astype(int)
        filters, envelopes, owner, index = [], [], [], {}
        count = 0

        def add(neurons, parts):
            nonlocal count
            for f, e in parts:
                filters.append(f)
                envelopes.append(e)
                owner.append(neurons)
            k = len(neurons)
            idx = count + np.arange(len(parts))[None, :] * k + np.arange(k)[:, None]  # (k, slots)
            count += k * len(parts)
            return idx

        for t, name in enumerate(CELL_TYPES):
            m = np.flatnonzero(code == t)
            q = {k: v[m] for k, v in p.items()}
            names = ("azimuth_deg", "elevation_deg", "sigma_deg", "aspect", "sf_cpd", "orientation_rad", "phase_rad")
            cx, cy, sigma, aspect, sf, ori, phase = (q[k] for k in names)
            if name in ("simple", "complex", "end-stopped"):
                even, odd, env = oriented_filters(cx, cy, sigma, aspect, sf, ori, phase)
                if name == "simple":  # a dark-preferring luminance part (OFF dominance), see off_bias
                    even = even - q["off_bias"][:, None, None] * _unit(env) / np.sqrt(2)
                parts = [(even, env), (odd, env)]
                if name == "end-stopped":
                    e_even, e_odd, e_env = oriented_filters(cx, cy, sigma, aspect, sf, ori, phase, q["end_offset"])
                    parts += [(e_even, e_env), (e_odd, e_env)]
            elif name == "pooling":
                parts = []
                cos, sin = np.cos(ori), np.sin(ori)
                for k, (a, b) in enumerate(((-1, -1), (1, -1), (-1, 1), (1, 1))):
                    across = a * 0.35 * q["subunit_spread"] * sigma
                    along = b * 0.5 * q["subunit_spread"] * sigma * aspect
                    sx, sy = cx + across * cos - along * sin, cy + across * sin + along * cos
                    even, _, env = oriented_filters(sx, sy, 0.6 * sigma, aspect, sf, ori, phase + k * np.pi / 2)
                    parts.append((even, env))
            elif name == "corner":
                parts = []
                for arm_ori in (ori, ori + q["arm_angle_rad"]):
                    reach = 0.9 * sigma * aspect  # each arm extends from the vertex along its own bars
                    sx, sy = cx - reach * np.sin(arm_ori), cy + reach * np.cos(arm_ori)
                    even, odd, env = oriented_filters(sx, sy, sigma, aspect, sf, arm_ori, phase)
                    parts += [(even, env), (odd, env)]
            else:  # on-centre, off-centre
                f, env = dog_filters(cx, cy, 0.6 * sigma, q["dog_ratio"], q["dog_weight"])
                parts = [(f, env)]
            index[name] = add(m, parts).astype(np.int64)
        filters = np.concatenate(filters)
        envelopes = np.concatenate(envelopes)
        owner = np.concatenate(owner).astype(np.int64)
        assert len(owner) == count and set(owner.tolist()) <= set(range(n))
        return filters, envelopes, owner, index

    def _neuron_envelopes(self, envelopes: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """(N, 36, 64) per neuron the sum of its subunit envelopes (distinct ones), max 1."""
        out = np.zeros((self.n_neurons, *FRAME_SHAPE))
        np.add.at(out, owner, envelopes)
        return out / out.max((1, 2), keepdims=True)

    def _pool_weights(self, p: dict[str, np.ndarray]) -> np.ndarray:
        """(N, 8, 9, 16) weights of the normalisation pool over the bank's channels (2 scales x 4 orientations) on
        the POOL_PX grid of the whole frame: untuned centre + cross-orientation centre + surround annulus."""
        azimuth, elevation = _pixel_grid_deg()
        gh, gw = FRAME_SHAPE[0] // POOL_PX, FRAME_SHAPE[1] // POOL_PX
        az = azimuth.reshape(gh, POOL_PX, gw, POOL_PX).mean((1, 3))
        el = elevation.reshape(gh, POOL_PX, gw, POOL_PX).mean((1, 3))
        d2 = (az[None] - p["azimuth_deg"][:, None, None]) ** 2 + (el[None] - p["elevation_deg"][:, None, None]) ** 2
        sigma_c = np.maximum(1.2 * p["sigma_deg"], 7.0)[:, None, None]
        centre = np.exp(-0.5 * d2 / sigma_c**2)
        centre /= centre.sum((1, 2), keepdims=True)
        sigma_s = (p["surround_ratio"] * p["sigma_deg"])[:, None, None]
        annulus = np.exp(-0.5 * d2 / sigma_s**2) * (1 - np.exp(-0.5 * d2 / sigma_c**2))
        annulus /= annulus.sum((1, 2), keepdims=True)
        # the preferred wave vector in pixel axes (column, up): pixels are not square in degrees
        ori = p["orientation_rad"]
        theta_px = np.arctan2(np.sin(ori) * DEG_PER_PX[0], np.cos(ori) * DEG_PER_PX[1])
        iso, orth = orientation_weights(theta_px), orientation_weights(theta_px + np.pi / 2)
        oriented = p["cell_type"] < 5  # centre-surround cells have no preferred orientation
        iso_mix = np.where(oriented, p["iso_fraction"], 0.0)[:, None] * iso + (1 - np.where(
            oriented, p["iso_fraction"], 0.0))[:, None]  # fmt: skip
        cross = np.where(oriented, p["cross_weight"], 0.0)[:, None] * orth
        per_channel = np.concatenate([np.ones((len(d2), 4)), np.ones((len(d2), 4))], 1) / 8  # 2 scales
        tile = np.tile
        w = per_channel[:, :, None, None] * (
            centre[:, None] * (1 + tile(cross, 2))[:, :, None, None]
            + p["surround_weight"][:, None, None, None] * annulus[:, None] * tile(iso_mix, 2)[:, :, None, None]
        )
        return w * ENERGY_TO_CONTRAST

    # ------------------------------------------------------------------ forward
    def normalised_drive(self, video: torch.Tensor, behaviour: torch.Tensor, adapt: bool = True) -> torch.Tensor:
        """Normalised (and, with `adapt`, contrast-adapted) drive (B, N, T), before standardisation."""
        check_encoder_inputs(video, behaviour)
        u = self._sample_window((video.float() - 127.5) / 127.5, behaviour[:, 2:4].float())
        drive = self._subunit_drive(u)
        x = drive / (self.c50.view(1, -1, 1) + self._pool(u))
        if not adapt:
            return x
        slow = causal_conv(x, self.adapt_kernel)
        return x / (1 + self.adapt_strength.view(1, -1, 1) * slow / self.adapt_ref.view(1, -1, 1))

    def _subunit_drive(self, u: torch.Tensor) -> torch.Tensor:
        """Rectified subunits combined per cell type (B, N, T) from the window u (B, T, h, w)."""
        b, t = u.shape[:2]
        lr0, lr1, lc0, lc1 = self.linear_window
        lin = (u[:, :, lr0:lr1, lc0:lc1].reshape(b * t, -1) @ self.spatial).view(b, t, -1).transpose(1, 2)
        fast = causal_conv(lin, self.temporal_fast)  # (B, F, T)
        slow_part = causal_conv(lin[:, self.slow_filters], self.temporal_slow)
        slow = torch.zeros_like(fast).index_copy(1, self.slow_filters, slow_part)
        h = lambda x: F.softplus(RECTIFIER_SHARPNESS * x) / RECTIFIER_SHARPNESS  # noqa: E731
        drive = fast.new_zeros(b, self.n_neurons, t)
        for name in CELL_TYPES:
            idx = self.type_index[name]
            if idx.numel() == 0:
                continue
            neurons = self.filter_owner[idx[:, 0]]
            s = fast[:, idx]  # (B, n, slots, T)
            if name in ("simple", "complex"):
                ds = self.ds[neurons].view(1, -1, 1)
                g0 = s[:, :, 0] + ds * slow[:, idx[:, 1]]
                g1 = s[:, :, 1] - ds * slow[:, idx[:, 0]]
                d = h(g0) if name == "simple" else torch.sqrt(g0**2 + g1**2 + EPS)
            elif name == "end-stopped":
                centre = torch.sqrt(s[:, :, 0] ** 2 + s[:, :, 1] ** 2 + EPS)
                ends = torch.sqrt(s[:, :, 2] ** 2 + s[:, :, 3] ** 2 + EPS)
                d = h(centre - self.end_weight[neurons].view(1, -1, 1) * ends)
            elif name == "pooling":
                d = torch.sqrt((h(s) ** 2).mean(2) + EPS)
            elif name == "corner":
                e1 = torch.sqrt(s[:, :, 0] ** 2 + s[:, :, 1] ** 2 + EPS)
                e2 = torch.sqrt(s[:, :, 2] ** 2 + s[:, :, 3] ** 2 + EPS)
                d = torch.sqrt(e1 * e2)
            else:
                d = h(s[:, :, 0] if name == "on-centre" else -s[:, :, 0])
            drive[:, neurons] = d
        return drive

    def _pool(self, u: torch.Tensor) -> torch.Tensor:
        """The normalisation pool (B, N, T): local oriented energies of the window u (B, T, h, w) at 2 scales,
        low-passed in time (~70 ms), weighted per neuron."""
        b, t, h, w = u.shape
        x = F.avg_pool2d(u.reshape(b * t, 1, h, w), 2)
        fine = self._energy(x)
        coarse = self._energy(F.avg_pool2d(x, 2))
        maps = torch.cat([F.avg_pool2d(fine, 2), coarse], 1)  # (B*T, 8, h/4, w/4)
        pooled = (maps.reshape(b * t, -1) @ self.pool).view(b, t, -1).transpose(1, 2)
        return causal_conv(pooled, self.contrast_kernel)

    def _energy(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.bank, padding=BANK_SIZE // 2)
        return torch.sqrt(y[:, 0::2] ** 2 + y[:, 1::2] ** 2 + EPS)

    def _standardise(self, video: np.ndarray, behaviour: np.ndarray) -> None:
        """Set the adaptation reference (mean unadapted drive), then the standardisation of the adapted drive."""
        with torch.no_grad():
            x = self.normalised_drive(torch.from_numpy(video), torch.from_numpy(behaviour), adapt=False)
        self.adapt_ref.copy_(x[..., 30:].double().mean((0, 2)).clamp_min(1e-6).float())
        super()._standardise(video, behaviour)

    # ------------------------------------------------------------------ inspection
    def state_sd(self) -> np.ndarray:
        """SD (N,) of each neuron's log gain under the shared brain state (drawn by the observation model)."""
        return self.state_coupling.double().cpu().numpy()

    def receptive_fields(self) -> np.ndarray:
        """Spatial RF maps (N, 36, 64): the sum of each neuron's even (first-of-pair) subunit filters, with the sign
        of its rectification (negative for OFF-centre cells), unit norm: the linear part a reverse correlation finds."""
        full = self.filters_full.numpy().reshape(-1, *FRAME_SHAPE)
        rfs = np.zeros((self.n_neurons, *FRAME_SHAPE), np.float64)
        for name in CELL_TYPES:
            idx = self.type_index[name].numpy()
            if idx.size == 0:
                continue
            slots = idx[:, ::2] if name in ("end-stopped", "corner") else idx
            slots = slots[:, :1] if name in ("simple", "complex", "end-stopped") else slots
            sign = -1.0 if name == "off-centre" else 1.0
            rfs[self.filter_owner[idx[:, 0]].numpy()] = sign * full[slots].sum(1)
        return (rfs / (np.sqrt((rfs**2).sum((1, 2), keepdims=True)) + 1e-12)).astype(np.float32)

    def rf_envelopes(self) -> np.ndarray:
        """RF envelopes (N, 36, 64), peak 1: the summed envelopes of each neuron's subunits."""
        return self.envelopes.numpy().astype(np.float32).copy()

    def cell_types(self) -> np.ndarray:
        """(N,) strings from CELL_TYPES."""
        return np.asarray(CELL_TYPES)[self.cell_type.numpy().astype(int)]

    def preferred_sf(self) -> np.ndarray:
        """(N,) preferred spatial frequency (cycles/deg): the carrier's, or the peak of a centre-surround filter."""
        p = self.parameters_numpy()
        dog = dog_peak_sf(0.6 * p["sigma_deg"], p["dog_ratio"], p["dog_weight"])
        return np.where(p["cell_type"] >= 5, dog, p["sf_cpd"])

    def neuron_groups(self) -> dict[str, np.ndarray]:
        """Boolean masks (N,) by cell type, by preferred spatial-frequency band, by the strength of surround
        suppression and adaptation and by the sign of the running gain; each family covers every neuron once."""
        types = self.cell_types()
        groups = {name: types == name for name in CELL_TYPES}
        sf = self.preferred_sf()
        edges = (0.0, *SF_BAND_EDGES_CPD, np.inf)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            name = f"sf {lo:g}-{hi:g} c/deg" if lo > 0 and np.isfinite(hi) else f"sf < {hi:g} c/deg"
            name = f"sf >= {lo:g} c/deg" if np.isinf(hi) else name
            groups[name] = (sf >= lo) & (sf < hi)
        for effect, values in (("surround", self.surround_weight), ("adaptation", self.adapt_strength)):
            strong = values.numpy() >= GROUP_EDGES[effect]
            groups[f"{effect} strong"], groups[f"{effect} weak"] = strong, ~strong
        suppressed = self.run_gain.numpy() < 0
        groups["running suppresses"], groups["running enhances"] = suppressed, ~suppressed
        return groups


def random_cascade_population(rng: np.random.Generator, n_neurons: int) -> dict[str, np.ndarray]:
    """Random per-neuron parameters of the cascade family (ranges in the module docstring) and cortical positions:
    the energy family's RF layout and output stage (`random_population`), then the cascade's own parameters."""
    n = n_neurons
    p = random_population(rng, n)
    p.pop("is_complex")
    code = rng.choice(len(CELL_TYPES), size=n, p=TYPE_FRACTIONS)
    p["cell_type"] = code.astype(float)
    p["ds"] = np.where(code <= 1, p["ds"], 0.0)  # direction selectivity in simple and complex cells
    strong = rng.random(n) < SURROUND_SUPPRESSED
    suppressed = rng.random(n) < RUN_SUPPRESSED
    p.update(
        off_bias=rng.uniform(0.0, 0.15, n),
        cross_weight=rng.uniform(0.0, 1.5, n),
        surround_weight=np.where(strong, rng.uniform(0.5, 2.5, n), rng.uniform(0.0, 0.3, n)),
        surround_ratio=rng.uniform(2.0, 3.5, n),
        iso_fraction=rng.uniform(0.5, 1.0, n),
        end_weight=rng.uniform(0.5, 1.0, n),
        end_offset=rng.uniform(1.5, 2.5, n),
        subunit_spread=rng.uniform(1.0, 2.0, n),
        arm_angle_rad=rng.choice([-1.0, 1.0], n) * np.deg2rad(rng.uniform(60, 120, n)),
        dog_ratio=rng.uniform(2.0, 3.0, n),
        dog_weight=rng.uniform(0.75, 0.95, n),
        adapt_strength=rng.uniform(0.0, 1.0, n),
        adapt_tau_frames=rng.uniform(15.0, 45.0, n),
        adapt_ref=np.ones(n),
        state_coupling=np.clip(rng.normal(0.3, 0.15, n), 0.0, 0.7),
        run_gain=np.where(suppressed, -rng.uniform(0.2, 0.6, n), np.clip(rng.normal(0.6, 0.35, n), 0.0, 1.5)),
    )
    return p
