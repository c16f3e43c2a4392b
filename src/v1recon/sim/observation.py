"""Observation model of the in-silico mouse: spike rates -> noisy, non-negative deconvolved-trace-like responses.

Spikes are overdispersed: the rate of every neuron is multiplied by a slow log-normal gain fluctuation (mean 1,
sigma 0.5, time constant 1 s; trial-to-trial and within-trial excitability changes) and by a gamma variable per
frame, so counts are negative binomial (gamma-Poisson); every spike carries a gamma-distributed transient
amplitude, and the events are smoothed by the same causal calcium kernel that the
ground-truth model applies to its rates. So the expectation of a sampled response is exactly the model's output
(`GroundTruthV1.forward`), and responses are >= 0 and sparse like deconvolved two-photon traces.

Families with a brain state (`cascade`) add one more slow log-normal gain, shared by all neurons of a trial and
weighted per neuron (`state_sd`, the SD of each neuron's log gain): correlated variability that no encoder sees,
also of mean 1, so the expectation stays the model's output.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

RATE_SHAPE = 1.0  # gamma shape of the per-frame rate fluctuation (lower = more overdispersed)
AMPLITUDE_SHAPE = 2.0  # gamma shape of the transient amplitude per spike (mean 1)
GAIN_SIGMA = 0.5  # std of the log of the slow gain fluctuation
GAIN_TAU_FRAMES = 30.0  # its time constant (1 s)
STATE_TAU_FRAMES = 90.0  # time constant of the shared brain state (3 s)


def sample_responses(
    rng: np.random.Generator,
    spike_rate: np.ndarray,
    calcium_kernel: np.ndarray,
    rate_shape: float = RATE_SHAPE,
    amplitude_shape: float = AMPLITUDE_SHAPE,
    gain_sigma: float = GAIN_SIGMA,
    gain_tau_frames: float = GAIN_TAU_FRAMES,
    state_sd: np.ndarray | None = None,
) -> np.ndarray:
    """Noisy responses (..., N, T) float32 >= 0 from spike rates (..., N, T) in spikes per frame.

    rate' = rate x exp(gain_sigma x OU(gain_tau_frames) - gain_sigma^2 / 2); counts ~ Poisson(Gamma(rate_shape,
    rate' / rate_shape)); each spike adds a Gamma(amplitude_shape) transient of mean 1; the sum per frame is
    filtered by `calcium_kernel` (L,), lag 0 first, along time. E[response] = calcium_kernel * rate.
    `state_sd` (N,): the rate is also multiplied by exp(state_sd x S - state_sd^2 / 2), S one unit OU process
    (STATE_TAU_FRAMES) per trial shared by all neurons.
    """
    rate = np.clip(np.asarray(spike_rate, np.float64), 0, None)
    if gain_sigma > 0:
        rate = rate * np.exp(gain_sigma * _ou(rng, rate.shape, gain_tau_frames) - gain_sigma**2 / 2)
    if state_sd is not None:
        sd = np.asarray(state_sd, np.float64)[:, None]  # (N, 1)
        shared = _ou(rng, (*rate.shape[:-2], 1, rate.shape[-1]), STATE_TAU_FRAMES)
        rate = rate * np.exp(sd * shared - sd**2 / 2)
    if rate_shape == 1.0:  # Gamma(1) is the exponential distribution, drawn several times faster
        rate = rate * rng.standard_exponential(rate.shape)
    else:
        rate = rng.gamma(rate_shape, rate / rate_shape)
    counts = rng.poisson(rate)
    events = np.zeros(counts.shape)
    spiking = counts > 0  # a few percent of the frames: draw amplitudes only there
    events[spiking] = rng.gamma(counts[spiking] * amplitude_shape, 1.0 / amplitude_shape)
    return _smooth(events, calcium_kernel)


def _ou(rng: np.random.Generator, shape: tuple[int, ...], tau_frames: float) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck processes along the last axis, started in the stationary distribution."""
    a = np.exp(-1.0 / tau_frames)
    walk = rng.standard_normal(shape)
    walk[..., 0] /= np.sqrt(1 - a**2)
    return lfilter([np.sqrt(1 - a**2)], [1.0, -a], walk, axis=-1)


def _smooth(events: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Causal filtering along time with the calcium kernel (FFT convolution, as in the ground-truth model)."""
    import torch

    from v1recon.filters import causal_conv

    out = causal_conv(torch.from_numpy(events.astype(np.float32)), torch.as_tensor(kernel, dtype=torch.float32))
    return torch.where(out > 1e-6, out, 0.0).numpy()  # exact zeros between events, not FFT round-off


def noise_coefficients(calcium_kernel: np.ndarray, state_sd: np.ndarray | float = 0.0) -> tuple[float, np.ndarray]:
    """(c1, c2): the response noise variance is about c1 mean(rate) + c2 mean(rate^2) (rate in spikes/frame).

    c1 comes from Poisson counts and spike amplitudes (E[a^2] = 1 + 1/amplitude_shape) through the kernel's
    energy sum(k^2); c2 from the per-frame gamma (variance 1/RATE_SHAPE) and the slow gains (the neuron's own and,
    with `state_sd` (N,) or a scalar, the shared brain state), which stay nearly constant over the short kernel
    (variance exp(sigma^2 + state_sd^2) - 1, passed with gain (sum k)^2). c2 has the shape of `state_sd`.
    """
    k = np.asarray(calcium_kernel, np.float64)
    energy, dc = float((k**2).sum()), float(k.sum() ** 2)
    slow = np.exp(GAIN_SIGMA**2 + np.asarray(state_sd, np.float64) ** 2)
    gain_var = slow - 1
    frame_var = slow * (1 + 1 / RATE_SHAPE) - 1 - gain_var
    return energy * (1 + 1 / AMPLITUDE_SHAPE), energy * frame_var + dc * gain_var


class CorrelationMeter:
    """Per-neuron Pearson correlation between predictions and responses, accumulated over trials.

    Trials are concatenated along time (the Sensorium single-trial correlation, here without dropping frames).
    """

    def __init__(self, n_neurons: int):
        self.n = 0
        self.sums = np.zeros((5, n_neurons))  # x, y, xx, yy, xy

    def update(self, prediction: np.ndarray, responses: np.ndarray) -> None:
        """prediction, responses (N, T)."""
        x, y = np.asarray(prediction, np.float64), np.asarray(responses, np.float64)
        self.n += x.shape[1]
        self.sums += np.stack([x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)])

    def correlation(self) -> np.ndarray:
        """(N,) correlations; 0 where either signal is constant."""
        sx, sy, sxx, syy, sxy = self.sums / max(self.n, 1)
        cov = sxy - sx * sy
        var = (sxx - sx**2) * (syy - sy**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = cov / np.sqrt(var)
        return np.nan_to_num(np.where(var > 0, r, 0.0))
