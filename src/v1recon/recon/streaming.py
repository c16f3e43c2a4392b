"""Streaming reconstruction: the movie while the activity arrives, each frame with a short, stated delay.

    stream = StreamingReconstructor(encoders, update_mask)
    for responses, behaviour in chunks:             # (N, k) and (4, k): the next k frames (30 Hz) of the recording
        frames = stream.push(responses, behaviour)  # (T', 36, 64): the frames that became final with this chunk
    frames = stream.finish()                        # at the end of the recording: the frames still in the window

The objective and the step direction are the `fast` method's (v1recon.recon.fast: Poisson loss through the encoder
contract, several encoders' losses averaged, unit-RMS multi-scale gradient, EMA momentum, [0, 255] box), applied to
a sliding window instead of the whole trial:
- the `window` most recent frames are free; a frame leaves the window, final and frozen, once it is `window` frames
  old, i.e. once the responses through frame t + window have arrived. `window` is the delay d of every output frame;
- the encoders see the free frames together with the `context` final frames before them (their temporal context),
  so the responses inside the window are predicted as in the whole trial, and the loss covers every response of
  that clip;
- a push appends its k frames at grey and takes `steps` optimiser steps of a constant size; the rest of the window
  starts where the previous push left it (a warm start shifted by k frames), and so does the momentum. The time
  blocks of the multi-scale direction sit on absolute frame numbers, so that chunking does not move them.
Choices measured on the in-silico mouse through its true model (one 10 s test trial, chunks of 8 frames, window
24, 8 steps per push, EMA 0.9): a cosine decay of the step size over a frame's age in the window (as the offline
schedule decays over its steps) lost a third of the correlation with the truth (0.28 against 0.38 at lr 0.7; lr 1.4
and 2.8 gave 0.46 alike); damping the steps of frames whose responses have not all arrived (in proportion to the
measured lags) lost 0.02 (0.46 against 0.48); starting new frames as a copy of the newest one instead of grey lost
0.06; two pyramid levels instead of three lost 0.06. A 1-pixel blur of each returned frame (no added delay) gained
0.036 (0.476 -> 0.512; 1.5 px: 0.513, 2 px: 0.502; a 3-D blur over 1 frame, which would add a frame of delay: 0.524).
Momentum (same trial, window 24, 4 steps per push): an EMA of 0.9 gave 0.37, 0.8 0.43, 0.7 0.46, 0.5 0.47, 0.3 0.45,
none 0.46; at 8 steps per push 0.9 is better (0.51 against 0.44 at 0.5): with few steps a slow EMA never reaches
full speed before its frame leaves the window (bias-correcting it per frame gave 0.43 and 0.48). Window and steps
per push: benchmarks/README.md.

How long responses lag the stimulus is measured from the encoders themselves (`response_lags`): the mean change of
the predicted responses at each lag after one frame of a noise movie is replaced. Its `DELAY_FRACTION` point is the
response delay (`StreamingReconstructor.response_delay`), the least useful window; its support is the temporal
context of encoders that do not state `context_frames` (the in-silico mouse's true model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from v1recon import FRAME_RATE_HZ, FRAME_SHAPE
from v1recon.device import autocast
from v1recon.errors import V1ReconError
from v1recon.recon.fast import fast_loss, multiscale_direction
from v1recon.recon.objective import encoder_device, escape_saddle, frozen, windowing

DELAY_FRACTION = 0.9  # the response delay: the lag by which this fraction of a frame's effect on responses is seen
SUPPORT_FRACTION = 0.999  # the temporal context of an encoder without `context_frames`: this fraction of the effect
PROBE_LAGS = 60  # lags (2 s) probed for an encoder that does not state its context
GREY = 127.5


@dataclass
class StreamSettings:
    """Knobs of the streaming reconstructor (defaults measured on the in-silico mouse, benchmarks/streaming.py)."""

    window: int = 24  # free frames = the delay of every output frame (30 Hz frames; 800 ms, twice the response delay)
    steps: int = 4  # optimiser steps per push (real time on one CPU core through the true model at chunks of 8)
    lr: float = 1.4  # RMS step of each scale's component, grey levels (constant: a frame's steps end when it leaves)
    momentum: float = 0.5  # EMA of the direction, kept per frame across pushes (0.9 is better from 8 steps per push)
    pyramid: int = 3  # multi-scale levels of the direction (v1recon.recon.fast.multiscale_direction)
    blur_px: float = 1.0  # Gaussian blur (sigma, pixels) of each returned frame; the window keeps the unblurred ones
    context: int | None = None  # final frames fed before the window; None: the encoders' temporal context
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def response_lags(
    encoders: Sequence, behaviour: np.ndarray, max_lag: int, update_mask: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """How strongly the predicted responses at lag 0..max_lag depend on one frame: (max_lag + 1,) summing to 1.

    Four noise movies (4 px, 2 frames; v1recon.sim.stimuli.gaussian_noise_movie) have their frame `max_lag`
    replaced, inside the update mask, by a frame of another noise movie; the profile is the mean absolute change of
    every neuron's prediction (all encoders averaged) at each lag, normalised. `behaviour` (4,) is held constant.
    """
    from v1recon.sim.stimuli import gaussian_noise_movie

    rng = np.random.default_rng(seed)
    probes, n_frames = 4, 2 * max_lag + 1
    base = np.stack([gaussian_noise_movie(rng, 4.0, 2.0, n_frames) for _ in range(probes)])
    other = np.stack([gaussian_noise_movie(rng, 4.0, 2.0, 1)[0] for _ in range(probes)])
    mask = np.ones(FRAME_SHAPE, bool) if update_mask is None else np.asarray(update_mask) > 0
    bumped = base.copy()
    bumped[:, max_lag] = np.where(mask, other, base[:, max_lag])
    device = encoder_device(encoders[0], torch.device("cpu"))
    video = torch.as_tensor(np.concatenate([base, bumped]), device=device)
    beh = torch.as_tensor(np.asarray(behaviour, np.float32), device=device)[None, :, None].expand(
        2 * probes, 4, n_frames
    )
    with torch.no_grad(), frozen(encoders), autocast(device):
        pred = torch.stack([enc(video, beh).float() for enc in encoders]).mean(0)
    change = (pred[probes:] - pred[:probes]).abs().mean(dim=(0, 1))[max_lag:].double().cpu().numpy()
    total = change.sum()
    if not total > 0:
        raise V1ReconError("the encoders' predictions do not change with the video; no delay can be measured.")
    return change / total


def lag_quantile(profile: np.ndarray, fraction: float) -> int:
    """The smallest lag by which `fraction` of the profile (from `response_lags`) has been seen."""
    return int(np.searchsorted(np.cumsum(profile), fraction - 1e-9))


class StreamingReconstructor:
    """Reconstruct a movie chunk by chunk as its responses arrive; see the module docstring.

    encoders: one encoder or several of the same neurons (the encoder contract; their losses are averaged every
    step); update_mask (36, 64): the pixels that may change (the rest stays grey). State is kept between pushes;
    a push with bad input raises V1ReconError and leaves it unchanged.
    """

    def __init__(self, encoders, update_mask: np.ndarray, settings: StreamSettings | None = None) -> None:
        self.encoders = list(encoders) if isinstance(encoders, (list, tuple)) else [encoders]
        if not self.encoders:
            raise V1ReconError("streaming reconstruction needs at least one encoder.")
        counts = {int(e.n_neurons) for e in self.encoders}
        if len(counts) != 1:
            raise V1ReconError(f"the encoders predict different neuron counts {sorted(counts)}.")
        self.n_neurons = counts.pop()
        if np.shape(update_mask) != FRAME_SHAPE:
            raise V1ReconError(f"update mask must be {FRAME_SHAPE} pixels, got {np.shape(update_mask)}.")
        self.settings = s = settings or StreamSettings()
        if s.window < 1 or s.steps < 0 or (s.context is not None and s.context < 0):
            raise V1ReconError(f"stream settings need window >= 1, steps >= 0 and context >= 0 (got {s}).")
        self.device = encoder_device(self.encoders[0], torch.device("cpu"))
        self.update_mask = np.asarray(update_mask) > 0
        self._mask = torch.as_tensor(self.update_mask, dtype=torch.float32, device=self.device)
        self._rng = np.random.default_rng(s.seed)
        stated = [getattr(e, "context_frames", None) for e in self.encoders]
        self._stated_context = max(int(c) for c in stated) if None not in stated else None
        geometries = [windowing(e) for e in self.encoders]
        self._min_clip = max([g.reach + g.step for g in geometries if g is not None] + [1])
        self.lags: np.ndarray | None = None  # response_lags, measured at the first push
        self.context: int | None = s.context
        self.frames_in = 0  # frames received
        self.frames_out = 0  # frames returned (final)
        self._last_chunk = 0
        self.steps_run = 0
        self.window_passes = 0.0
        self.last_loss = float("nan")  # Poisson loss of the clip at the last step
        empty = torch.zeros(0, *FRAME_SHAPE, device=self.device)
        self._final = empty  # the last `context` final frames (T_c, 36, 64)
        self._free = empty.clone()  # the window (T_w, 36, 64)
        self._momentum = empty.clone()
        self._responses = torch.zeros(self.n_neurons, 0, device=self.device)  # of the clip (context + window)
        self._behaviour = torch.zeros(4, 0, device=self.device)

    # ------------------------------------------------------------------ what the stream states
    @property
    def response_delay(self) -> int | None:
        """Frames by which DELAY_FRACTION of a frame's effect on the responses is seen (known after the first push)."""
        return None if self.lags is None else lag_quantile(self.lags, DELAY_FRACTION)

    @property
    def delay(self) -> int:
        """Frames between a frame and the last response that shapes it before it is returned (the window)."""
        return self.settings.window

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.delay / FRAME_RATE_HZ

    def summary(self) -> dict:
        """Plain data for sidecars and progress lines."""
        return {
            "settings": self.settings.to_dict(),
            "delay_frames": self.delay,
            "delay_ms": self.delay_ms,
            "response_delay_frames": self.response_delay,
            "context_frames": self.context,
            "lags": None if self.lags is None else [float(x) for x in self.lags],
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "steps": self.steps_run,
            "window_passes": self.window_passes,
        }

    # ------------------------------------------------------------------ streaming
    def push(self, responses: np.ndarray, behaviour: np.ndarray) -> np.ndarray:
        """Add the next k frames' responses (N, k) and behaviour (4, k); return the frames that became final.

        Returns (T', 36, 64) float32 grey levels, T' >= 0: frames frames_out .. frames_out + T' - 1 of the movie.
        """
        resp, beh = self._checked(responses, behaviour)
        if self.lags is None:
            self.measure(beh[:, 0].cpu().numpy())
        k = resp.shape[1]
        self._free = torch.cat([self._free, torch.full((k, *FRAME_SHAPE), GREY, device=self.device)])
        self._momentum = torch.cat([self._momentum, torch.zeros(k, *FRAME_SHAPE, device=self.device)])
        self._responses = torch.cat([self._responses, resp.clamp_min(0)], dim=1)  # ReLU'd, as published
        self._behaviour = torch.cat([self._behaviour, beh], dim=1)
        self.frames_in += k
        self._last_chunk = k
        self._optimise(self.settings.steps)
        return self._release(max(0, self._free.shape[0] - self.settings.window))

    def finish(self, steps: int | None = None) -> np.ndarray:
        """End of the recording: `steps` more steps, then return every frame still free. By default as many steps as
        the newest frame would have had before leaving (one push's per `last chunk` frames of the window)."""
        n = self._free.shape[0]
        if steps is None:
            steps = self.settings.steps * math.ceil(n / max(self._last_chunk, 1))
        if n:
            self._optimise(steps)
        return self._release(n)

    def _checked(self, responses, behaviour) -> tuple[torch.Tensor, torch.Tensor]:
        """The chunk as tensors, or one sentence on what is wrong with it (nothing of the state changes)."""
        resp, beh = np.asarray(responses), np.asarray(behaviour)
        if resp.ndim != 2 or resp.shape[0] != self.n_neurons:
            raise V1ReconError(
                f"responses chunk has shape {resp.shape}, but the encoders predict {self.n_neurons} neurons."
            )
        if resp.shape[1] < 1:
            raise V1ReconError("responses chunk holds no frames.")
        if beh.shape != (4, resp.shape[1]):
            raise V1ReconError(
                f"behaviour chunk has shape {beh.shape}, expected (4, {resp.shape[1]}) for these responses."
            )
        if not (np.all(np.isfinite(resp)) and np.all(np.isfinite(beh))):
            raise V1ReconError(
                f"chunk of frames {self.frames_in}..{self.frames_in + resp.shape[1] - 1} contains NaN or inf."
            )
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=self.device)  # noqa: E731
        return as_tensor(resp), as_tensor(beh)

    def measure(self, behaviour: np.ndarray) -> None:
        """Measure the encoders' response lags at this behaviour (4,) and, unless stated, their temporal context.

        The first push does it at its first frame's behaviour; call it before streaming to keep that cost (a few
        forward passes) out of the first push."""
        if self.frames_in:
            raise V1ReconError("the lags are measured before the first push; this stream has started.")
        behaviour = np.asarray(behaviour, np.float32)
        if behaviour.shape != (4,) or not np.all(np.isfinite(behaviour)):
            raise V1ReconError(f"behaviour for the lags must be 4 finite values, got shape {behaviour.shape}.")
        max_lag = self._stated_context if self._stated_context is not None else PROBE_LAGS
        self.lags = response_lags(self.encoders, behaviour, max(max_lag, 1), self.update_mask, self.settings.seed)
        if self.context is None:
            stated = self._stated_context
            self.context = stated if stated is not None else lag_quantile(self.lags, SUPPORT_FRACTION)

    def _gradient(self) -> torch.Tensor:
        """Gradient of the clip's loss (all encoders averaged) with respect to the free frames, inside the mask."""
        free = self._free[None].clone().requires_grad_(True)
        video = torch.cat([self._final[None], free], dim=1)
        with autocast(self.device):
            losses = [
                fast_loss(enc, video, self._behaviour[None], self._responses[None], self._rng) for enc in self.encoders
            ]
            loss = torch.stack([lo for lo, _ in losses]).mean(0)
        loss.sum().backward()
        self.last_loss = float(loss.detach().sum())
        self.window_passes += sum(c for _, c in losses)
        return free.grad * self._mask

    def _direction(self, grad: torch.Tensor, levels: int) -> torch.Tensor:
        """The multi-scale direction with its time blocks on absolute frame numbers (multiples of 2^levels), so that
        a coarse component means the same frames whichever way the stream was chunked."""
        first = self.frames_in - grad.shape[1]
        pad = first % (2**levels)
        padded = torch.nn.functional.pad(grad, (0, 0, 0, 0, pad, 0))
        return multiscale_direction(padded, self._mask, levels)[:, pad:]

    def _optimise(self, steps: int) -> None:
        s = self.settings
        if self._final.shape[0] + self._free.shape[0] < self._min_clip:
            return  # a windowed encoder cannot predict a clip this short yet: the first frames stay grey
        with frozen(self.encoders):
            for _ in range(steps):
                grad = self._gradient()
                if self.steps_run == 0 and escape_saddle(self._free[None], grad, self._mask, s.seed):
                    grad = self._gradient()  # no gradient at uniform grey (contrast-only encoders): jittered start
                levels = min(s.pyramid, int(math.log2(grad.shape[1])))  # a young stream's window is short
                direction = self._direction(grad, levels)
                self._momentum.mul_(s.momentum).add_(direction[0], alpha=1 - s.momentum)
                self._free.sub_(s.lr * self._momentum).clamp_(0, 255)
                self.steps_run += 1

    def _release(self, n: int) -> np.ndarray:
        """Move the n oldest free frames to the final ones; keep only the clip's context; return them, blurred."""
        out = self._free[:n]
        kept = torch.cat([self._final, out])
        self._final = kept[kept.shape[0] - min(self.context or 0, kept.shape[0]) :]
        self._free, self._momentum = self._free[n:], self._momentum[n:]
        drop = self._responses.shape[1] - (self._final.shape[0] + self._free.shape[0])
        self._responses, self._behaviour = self._responses[:, drop:], self._behaviour[:, drop:]
        self.frames_out += n
        frames = out.cpu().numpy().astype(np.float32)
        if self.settings.blur_px > 0 and n:
            frames = gaussian_filter(frames, (0, self.settings.blur_px, self.settings.blur_px), mode="reflect")
        return frames
