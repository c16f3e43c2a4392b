"""Streaming reconstruction: chunking, the stated delay, the measured lags, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recon_toy import ToyEncoder, toy_trial

from v1recon.errors import V1ReconError
from v1recon.metrics.video import video_correlation
from v1recon.models import WindowGeometry
from v1recon.recon.streaming import StreamingReconstructor, StreamSettings, lag_quantile, response_lags

MASK = np.ones((36, 64), bool)


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    encoder = ToyEncoder(n_neurons=120, seed=0)
    video, responses, behaviour = toy_trial(encoder, n_frames=64, seed=0, noisy=False)
    return encoder, video, responses, behaviour


def stream(encoders, responses, behaviour, chunk, settings):
    """Push a trial in chunks; returns (movie, stream, frames returned after each push, frames received then)."""
    st = StreamingReconstructor(encoders, MASK, settings)
    outs, log = [], []
    for i in range(0, responses.shape[1], chunk):
        outs.append(st.push(responses[:, i : i + chunk], behaviour[:, i : i + chunk]))
        log.append((st.frames_out, st.frames_in, len(outs[-1])))
    outs.append(st.finish(steps=0))
    return np.concatenate(outs), st, log


def test_chunkings_give_the_same_movie(toy):
    """Chunks of 1, 8 and 32 frames with the same steps per frame (2 per frame of a push; the 32-frame window is a
    multiple of every chunk, so every frame gets 64 steps) give one movie: measured r 0.98-0.99 between chunkings,
    0.81-0.83 with the truth (larger chunks fit a little better: a frame's first steps then see more responses)."""
    encoder, video, responses, behaviour = toy
    movies = {}
    for chunk in (1, 8, 32):
        movies[chunk], _, _ = stream([encoder], responses, behaviour, chunk, StreamSettings(window=32, steps=2 * chunk))
    assert all(m.shape == video.shape for m in movies.values())
    for chunk in (8, 32):
        assert video_correlation(movies[chunk], movies[1], None, 0) > 0.95
        assert np.abs(movies[chunk] - movies[1]).mean() < 6  # grey levels (measured 3.4-3.7)
    quality = [video_correlation(m, video, None, 0) for m in movies.values()]
    assert min(quality) > 0.7 and max(quality) - min(quality) < 0.05
    # frames come out in order: the streamed movie matches the truth best without a time shift
    m = movies[8]
    shifted = [video_correlation(m[1:], video[:-1], None, 0), video_correlation(m[:-1], video[1:], None, 0)]
    assert video_correlation(m, video, None, 0) > max(shifted)


def test_no_frame_comes_out_before_its_delay(toy):
    encoder, _, responses, behaviour = toy
    window = 10
    movie, st, log = stream([encoder], responses, behaviour, 3, StreamSettings(window=window, steps=1))
    assert st.delay == window and st.delay_ms == pytest.approx(1000 * window / 30)
    for frames_out, frames_in, _ in log:
        # frame t is out only once the responses through frame t + window have arrived
        assert frames_out == max(0, frames_in - window)
    assert movie.shape[0] == responses.shape[1] and st.frames_out == responses.shape[1]
    assert np.all((movie >= 0) & (movie <= 255))


def test_lags_of_a_known_kernel(toy):
    """ToyEncoder filters the drive with exp(-lag / 2) over 6 taps: the measured lags follow the kernel, the 90 %
    point (the response delay) is lag 3 and the support (the context without `context_frames`) is 5 frames."""
    encoder, _, _, behaviour = toy
    lags = response_lags([encoder], behaviour[:, 0], 12)
    kernel = np.exp(-np.arange(6) / 2.0)
    np.testing.assert_allclose(lags[:6], kernel / kernel.sum(), atol=0.02)
    assert lags[6:].max() < 1e-3
    assert lag_quantile(lags, 0.9) == 3 and lag_quantile(lags, 0.999) == 5
    _, st, _ = stream([encoder], *toy[2:], 16, StreamSettings(window=8, steps=1))
    assert st.response_delay == 3 and st.context == 5


def test_an_ensemble_and_the_true_model_stream():
    from v1recon.sim.model import GroundTruthV1

    truth = GroundTruthV1.random(30, seed=3, calibration_trials=1)
    video = np.clip(127.5 + 40 * np.random.default_rng(0).standard_normal((40, 36, 64)), 0, 255).astype(np.float32)
    behaviour = truth.resting_behaviour(40)
    with torch.no_grad():
        responses = truth(torch.from_numpy(video)[None], torch.from_numpy(behaviour)[None])[0].numpy()
    movie, st, _ = stream([truth, truth], responses, behaviour, 8, StreamSettings(window=6, steps=2))
    assert movie.shape == video.shape and np.isfinite(movie).all()
    assert 2 <= st.response_delay <= st.context <= 40  # measured: the true model states no context_frames
    assert st.window_passes > 0 and not (movie == 127.5).all()


class WindowedToy:
    """ToyEncoder behind the windowed contract: windows of 4 frames, every 2nd (a 6-frame reach)."""

    windowing = WindowGeometry(frames=4, step=2)
    context_frames = 6  # as a windowed model states its reach

    def __init__(self, encoder):
        self.encoder, self.n_neurons = encoder, encoder.n_neurons

    def networks(self):
        return [self.encoder]

    def __call__(self, video, behaviour):
        return self.encoder(video, behaviour)

    def predict_windows(self, video, behaviour, ends):
        full = self.encoder(video, behaviour)
        idx = self.windowing.frame_index(torch.as_tensor(list(ends)))
        return torch.stack([full[..., i] for i in idx], dim=1)


def test_a_windowed_encoder_streams(toy):
    encoder, video, responses, behaviour = toy
    movie, st, _ = stream([WindowedToy(encoder)], responses, behaviour, 1, StreamSettings(window=4, steps=2))
    assert movie.shape == video.shape and st.context == 6
    assert (movie[:3] == 127.5).all()  # no window fits before 8 frames have arrived: the first frames stay grey
    assert video_correlation(movie, video, None, 8) > 0.3


@pytest.mark.parametrize(
    ("responses", "behaviour", "message"),
    [
        (np.ones((7, 4)), np.zeros((4, 4)), "120 neurons"),
        (np.full((120, 4), np.nan), np.zeros((4, 4)), "NaN"),
        (np.ones((120, 4)), np.zeros((4, 3)), r"expected \(4, 4\)"),
        (np.ones((120, 4)), np.zeros((3, 4)), r"expected \(4, 4\)"),
    ],
)
def test_bad_chunks_are_refused_and_change_nothing(toy, responses, behaviour, message):
    encoder, _, good_resp, good_beh = toy
    settings = StreamSettings(window=6, steps=1)
    clean = StreamingReconstructor([encoder], MASK, settings)
    hit = StreamingReconstructor([encoder], MASK, settings)
    for st in (clean, hit):
        st.push(good_resp[:, :10], good_beh[:, :10])
    before = hit.summary()
    with pytest.raises(V1ReconError, match=message) as err:
        hit.push(responses, behaviour)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")  # one sentence
    assert hit.summary() == before
    a = clean.push(good_resp[:, 10:20], good_beh[:, 10:20])
    b = hit.push(good_resp[:, 10:20], good_beh[:, 10:20])
    np.testing.assert_array_equal(a, b)  # same process, same seed: the refused chunk left no trace


def test_bad_settings_and_mask_are_refused(toy):
    encoder = toy[0]
    with pytest.raises(V1ReconError, match="update mask"):
        StreamingReconstructor([encoder], np.ones((10, 10)), StreamSettings())
    with pytest.raises(V1ReconError, match="window"):
        StreamingReconstructor([encoder], MASK, StreamSettings(window=0))
