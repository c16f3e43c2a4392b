"""Behaviour of the in-silico mouse: running bouts, pupil dilation coupled to running, and eye movements.

`behaviour_trace` returns (4, T) float32 in the order of the encoder contract: pupil dilation, running speed,
pupil x, pupil y, in units like the raw Sensorium values (dilation and pupil centre in eye-camera pixels, running
speed in cm/s). Time constants (at 30 Hz): rest periods ~8 s and running bouts ~5 s, speed relaxes with 0.5 s,
pupil dilation with 2-3 s, gaze drift with 2 s; saccades ~0.2/s at rest and ~0.8/s while running.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import lfilter

from v1recon import FRAME_RATE_HZ


@dataclass(frozen=True)
class EyeAndBody:
    """Per-mouse constants of the behaviour process (raw units as in Sensorium recordings)."""

    dilation_rest: float = 20.0  # eye-camera px, pupil size at rest
    dilation_running: float = 8.0  # eye-camera px added during running (after a slow lag)
    pupil_ref_x: float = 250.0  # eye-camera px, resting gaze position
    pupil_ref_y: float = 180.0
    speed_median: float = 15.0  # cm/s, median speed of a running bout
    rest_s: float = 8.0  # mean duration of rest periods
    bout_s: float = 5.0  # mean duration of running bouts

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def random_eye_and_body(rng: np.random.Generator) -> EyeAndBody:
    """Mouse-to-mouse variation of the behaviour constants."""
    return EyeAndBody(
        dilation_rest=float(rng.uniform(14, 26)),
        dilation_running=float(rng.uniform(4, 12)),
        pupil_ref_x=float(rng.uniform(200, 300)),
        pupil_ref_y=float(rng.uniform(150, 210)),
        speed_median=float(rng.uniform(8, 25)),
        rest_s=float(rng.uniform(5, 12)),
        bout_s=float(rng.uniform(3, 8)),
    )


def _decay(x: np.ndarray, tau_frames: float, gain: float = 1.0, start: float = 0.0) -> np.ndarray:
    """y[t] = a y[t-1] + gain x[t] with a = exp(-1/tau_frames), y[-1] = start (a leaky integrator)."""
    a = np.exp(-1.0 / tau_frames)
    y, _ = lfilter([gain], [1.0, -a], x, zi=[a * start])
    return y


def _ou(rng: np.random.Generator, n: int, tau_frames: float, std: float) -> np.ndarray:
    """Ornstein-Uhlenbeck process around 0 with stationary std `std`, started in its stationary distribution."""
    a = np.exp(-1.0 / tau_frames)
    return _decay(std * np.sqrt(1 - a**2) * rng.standard_normal(n), tau_frames, start=std * rng.standard_normal())


def _lowpass(x: np.ndarray, tau_frames: float, start: float) -> np.ndarray:
    """First-order low-pass with unit DC gain."""
    a = np.exp(-1.0 / tau_frames)
    return _decay(x, tau_frames, gain=1 - a, start=start)


def behaviour_trace(rng: np.random.Generator, n_frames: int, mouse: EyeAndBody | None = None) -> np.ndarray:
    """One trial of behaviour (4, n_frames) float32: pupil dilation, running speed (>= 0), pupil x, pupil y."""
    mouse = mouse or EyeAndBody()
    fps = FRAME_RATE_HZ
    # running state: a two-state Markov chain started in its stationary distribution
    p_start, p_stop = 1 / (mouse.rest_s * fps), 1 / (mouse.bout_s * fps)
    running = np.empty(n_frames, dtype=bool)
    running[0] = rng.random() < mouse.bout_s / (mouse.rest_s + mouse.bout_s)
    flips = rng.random(n_frames)
    for t in range(1, n_frames):
        running[t] = flips[t] >= p_stop if running[t - 1] else flips[t] < p_start
    bout_speed = mouse.speed_median * np.exp(0.4 * rng.standard_normal())
    target = np.where(running, bout_speed, 0.0)
    speed = _lowpass(target, 0.5 * fps, start=target[0])
    speed = speed + running * _ou(rng, n_frames, 0.5 * fps, 0.2 * bout_speed)
    speed = np.abs(speed + 0.3 * np.abs(rng.standard_normal(n_frames)))  # treadmill encoder jitter at rest
    # pupil dilation follows running slowly, plus its own slow fluctuation (arousal)
    arousal = _lowpass(running.astype(float), 2.5 * fps, start=float(running[0]))
    dilation = mouse.dilation_rest + mouse.dilation_running * arousal + _ou(rng, n_frames, 3 * fps, 1.5)
    dilation += 0.05 * rng.standard_normal(n_frames)
    # gaze: slow drift plus saccades (mostly horizontal) that relax back towards the resting position
    rate = np.where(running, 0.8, 0.2) / fps
    jumps = (rng.random(n_frames) < rate)[:, None] * rng.normal(0, [8.0, 3.0], size=(n_frames, 2))
    saccades = np.stack([_decay(jumps[:, i], 1.5 * fps) for i in range(2)])
    drift = np.stack([_ou(rng, n_frames, 2 * fps, s) for s in (2.0, 1.0)])
    gaze = saccades + drift + 0.1 * rng.standard_normal((2, n_frames))
    pupil_x = mouse.pupil_ref_x + gaze[0]
    pupil_y = mouse.pupil_ref_y + gaze[1]
    return np.stack([np.maximum(dilation, 1.0), speed, pupil_x, pupil_y]).astype(np.float32)
