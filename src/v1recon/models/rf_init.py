"""Where each neuron looks, estimated from recordings before training.

A readout that starts at its neuron's receptive field learns several times faster than one that must first find
it (measured on the in-silico mouse: 0.42 -> 0.59 of the ground-truth correlation after 150 s of CPU training).
The estimate correlates every neuron's response with the local oriented contrast energy of the movie (quadrature
Gabor pairs, 4 orientations, on the frame average-pooled by 2) shortly before it, keeps the best orientation at
each position and takes the soft peak of that map. Energy, not luminance, so that complex cells and simple cells of
any phase are located alike. More trials sharpen the estimate (in silico, median centre error 2.2 px with 60
training trials, 1.4 px with 170; 2.3 s and 5.5 s for 1000 neurons on 2 CPU cores). Fine gratings are lost to the
pooling: neurons above 0.07 cycles/deg are misplaced by 6-8 px; `full_resolution=True` cuts that to 1.4 px (median
1.1 px over all neurons, 120 trials) at about 7x the cost.

Eye movements move every RF across the frame (in silico by 2.6 px SD horizontally, as much as a fine grating's
period), so the maps are computed on frames moved back by the gaze. The gaze is a linear function of the pupil
centre whose gain is unknown before training; `estimate_gaze` picks the gain per axis that makes the RF maps
sharpest (highest mean peak correlation). In silico it finds the horizontal gain within 1 % and the vertical one
(a smaller effect) within 12 % (60 trials, ~45 s per mouse here); with it 37 instead of 50 of the 180 fine-grained
neurons and 33 instead of 55 of the others are more than 3 px off (162 trials, full resolution).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from v1recon.errors import V1ReconError
from v1recon.filters import causal_conv

ORIENTATIONS = 4
POOL = 2  # average-pool the 36 x 64 frame by this factor (as the fast3d core)
KERNEL_PX = 7  # Gabor filter size on the pooled frame
FULL_RESOLUTION_PERIODS_PX = (10.0, 5.0)  # carrier periods when filtering the full frame (fine gratings kept)
FULL_RESOLUTION_KERNEL_PX = 13
DELAY_FRAMES = 2  # responses follow the movie by the visual latency (50-100 ms) ...
RESPONSE_TAU_FRAMES = 3.0  # ... and are smoothed by the calcium indicator
GAZE_STEPS_PX = (-4.5, -3.0, -1.5, 0.0, 1.5, 3.0, 4.5)  # candidate frame shifts per SD of the pupil position


def energy_maps(video: np.ndarray | torch.Tensor, full_resolution: bool = False) -> torch.Tensor:
    """Local contrast energy (T, channels, h, w) of a (T, 36, 64) grey-level movie on the frame pooled by POOL,
    smoothed causally in time by the response kernel (delay then exponential decay), so that frame t lines up with
    the response at t. Channels: ORIENTATIONS, or ORIENTATIONS x 2 periods with `full_resolution` (the frame is
    filtered before the energy is pooled, so gratings finer than the pooled frame can hold still count)."""
    from v1recon.models.factorised import gabor_bank

    x = (torch.as_tensor(video, dtype=torch.float32)[:, None] - 127.5) / 64.0
    if full_resolution:
        periods, size = FULL_RESOLUTION_PERIODS_PX, FULL_RESOLUTION_KERNEL_PX
        bank = gabor_bank(2 * ORIENTATIONS * len(periods), size, periods)[:, :, 0]  # even/odd pairs
        y = F.conv2d(x, bank, padding=size // 2)
        energy = F.avg_pool2d((y[:, 0::2] ** 2 + y[:, 1::2] ** 2).sqrt(), POOL, ceil_mode=True)
    else:
        x = F.avg_pool2d(x, POOL, ceil_mode=True)
        bank = gabor_bank(2 * ORIENTATIONS, KERNEL_PX)[:, :, 0]
        y = F.conv2d(x, bank, padding=KERNEL_PX // 2)
        energy = (y[:, 0::2] ** 2 + y[:, 1::2] ** 2).sqrt()  # (T, ORIENTATIONS, h, w)
    lags = torch.arange(4 * int(RESPONSE_TAU_FRAMES) + DELAY_FRAMES, dtype=torch.float32)
    kernel = torch.where(lags >= DELAY_FRAMES, torch.exp(-(lags - DELAY_FRAMES) / RESPONSE_TAU_FRAMES), 0.0)
    smoothed = causal_conv(energy.reshape(energy.shape[0], -1).T, kernel / kernel.sum())
    return smoothed.T.reshape(energy.shape)


def rf_positions(
    videos: Sequence[np.ndarray],
    responses: Sequence[np.ndarray],
    skip_frames: int = 30,
    max_trials: int = 200,
    full_resolution: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Receptive-field centres estimated from trials: positions (N, 2) as (x, y) in [-1, 1] screen units (pixel
    centres at (2k + 1) / size - 1, y down) and each neuron's peak correlation (N,), a measure of confidence.

    videos[i] (T_i, 36, 64) grey levels and responses[i] (N, T_i); the first `skip_frames` of each trial (the
    response to the trial onset) are left out; at most `max_trials` trials are used (statistics are streamed).
    `full_resolution` filters the unpooled frame at two periods (~7x slower; see the module docstring).
    """
    if not videos or len(videos) != len(responses):
        raise V1ReconError("rf_positions needs the same positive number of videos and response arrays.")
    sums = None
    for video, resp in itertools.islice(zip(videos, responses, strict=True), max_trials):  # one trial at a time
        if np.shape(resp)[1] != len(video):
            frames = np.shape(resp)[1]
            raise V1ReconError(f"rf_positions: a trial has {len(video)} video frames but {frames} of responses.")
        e = energy_maps(video, full_resolution)[skip_frames:]
        shape = e.shape[1:]
        e = e.reshape(e.shape[0], -1)
        r = torch.as_tensor(np.asarray(resp, dtype=np.float32)).T[skip_frames:]
        # products in float32 (8000 neurons stay fast), sums across trials in float64
        terms = tuple(t.double() for t in (r.T @ e, r.sum(0), (r * r).sum(0), e.sum(0), (e * e).sum(0)))
        terms = (*terms, r.shape[0])
        sums = terms if sums is None else tuple(a + b for a, b in zip(sums, terms, strict=True))
    if sums is None or sums[-1] < 3:
        raise V1ReconError(f"rf_positions: fewer than 3 frames after skipping the first {skip_frames} of each trial.")
    re, r1, r2, e1, e2, n = sums
    cov = re / n - torch.outer(r1 / n, e1 / n)
    std_r = (r2 / n - (r1 / n) ** 2).clamp_min(1e-12).sqrt()
    std_e = (e2 / n - (e1 / n) ** 2).clamp_min(1e-12).sqrt()
    corr = (cov / std_r[:, None] / std_e[None, :]).float().view(-1, *shape)  # (N, channels, h, w)
    best = F.avg_pool2d(corr.amax(1)[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    return _soft_peak(best)


def _soft_peak(maps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, 2) (x, y) in [-1, 1] of the soft maximum of each (h, w) map, and each map's maximum (N,)."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    # a temperature of a third of each map's spread: the peak dominates, a flat map gives a central estimate
    weights = torch.softmax(flat / (0.3 * flat.std(1, keepdim=True) + 1e-9), dim=1).view(n, h, w)
    ys = (torch.arange(h) + 0.5) * 2 / h - 1
    xs = (torch.arange(w) + 0.5) * 2 / w - 1
    x = (weights.sum(1) * xs).sum(1)
    y = (weights.sum(2) * ys).sum(1)
    return torch.stack([x, y], dim=1).numpy(), flat.amax(1).numpy()


def gaze_corrected(video: np.ndarray, pupil: np.ndarray, gain: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """A (T, 36, 64) grey-level movie moved back by the gaze: frame t is shifted (bilinear, grey fill) by
    gain * (pupil[:, t] - reference) pixels (x right, y down), pupil (2, T) the pupil centre in its own units.
    Returned as uint8, like the recordings."""
    from v1recon.models.factorised import translate

    x = torch.as_tensor(np.asarray(video, dtype=np.float32))[:, None] - 127.5
    offset_px = np.asarray(gain, np.float32)[:, None] * (np.asarray(pupil, np.float32) - np.asarray(reference)[:, None])
    shift = torch.as_tensor(offset_px.T) * torch.tensor([2.0 / x.shape[-1], 2.0 / x.shape[-2]])  # -> [-1, 1] units
    return (translate(x, shift)[:, 0] + 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def estimate_gaze(
    videos: Sequence[np.ndarray], pupils: Sequence[np.ndarray], responses: Sequence[np.ndarray], max_trials: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """Gain (2,) in frame pixels per unit of pupil position (x, y) and the reference pupil position (2,) (the mean)
    of the gaze correction that makes the RF maps sharpest (see the module docstring). Each axis in turn: the mean
    peak correlation of the pooled maps at GAZE_STEPS_PX shifts per SD of the pupil, then the vertex of the parabola
    through the best step and its neighbours. pupils[i] (2, T_i)."""
    n = min(len(videos), max_trials)
    videos, pupils, responses = list(videos[:n]), list(pupils[:n]), [responses[i] for i in range(n)]
    stacked = np.concatenate(pupils, axis=1)
    reference, spread = stacked.mean(1), stacked.std(1) + 1e-6
    gain = np.zeros(2)

    def sharpness(candidate: np.ndarray) -> float:
        moved = [gaze_corrected(v, p, candidate, reference) for v, p in zip(videos, pupils, strict=True)]
        return float(rf_positions(moved, responses)[1].mean())

    steps = np.asarray(GAZE_STEPS_PX)
    for axis in (0, 1):
        scores = np.array([sharpness(np.where(np.arange(2) == axis, step / spread[axis], gain)) for step in steps])
        k = int(np.clip(scores.argmax(), 1, len(steps) - 2))
        below, centre, above = scores[k - 1 : k + 2]
        curvature = below - 2 * centre + above
        offset = 0.5 * (below - above) / curvature if curvature < 0 else 0.0
        gain[axis] = (steps[k] + np.clip(offset, -1, 1) * (steps[1] - steps[0])) / spread[axis]
    return gain, reference
