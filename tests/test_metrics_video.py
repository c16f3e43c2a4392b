import numpy as np
import pytest

from v1recon import EVAL_START_FRAME
from v1recon.errors import V1ReconError
from v1recon.metrics import (
    average_metrics,
    frame_correlation,
    frame_correlations,
    full_screen_correlation,
    motion_energy,
    motion_energy_correlation,
    psnr,
    response_consistency,
    rmse,
    ssim_global,
    ssim_windowed,
    video_correlation,
    video_metrics,
)


@pytest.fixture
def movies():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 255, (45, 36, 64))
    recon = np.clip(truth + rng.normal(0, 40, truth.shape), 0, 255)
    mask = np.zeros((36, 64), bool)
    mask[6:30, 12:50] = True
    return recon, truth, mask


def test_video_correlation_equals_corrcoef_of_masked_evaluated_pixels(movies):
    recon, truth, mask = movies
    recon = recon.copy()
    recon[:, ~mask] = 0  # pixels outside the mask must not matter
    recon[:EVAL_START_FRAME] = 255 - truth[:EVAL_START_FRAME]  # nor frames before the start
    expected = np.corrcoef(recon[30:, mask].ravel(), truth[30:, mask].ravel())[0, 1]
    assert video_correlation(recon, truth, mask) == pytest.approx(expected)
    assert video_correlation(2 * truth + 3, truth, mask) == pytest.approx(1.0)
    assert video_correlation(-truth, truth, mask) == pytest.approx(-1.0)


def test_full_screen_correlation_uses_every_pixel(movies):
    recon, truth, _ = movies
    expected = np.corrcoef(recon[30:].ravel(), truth[30:].ravel())[0, 1]
    assert full_screen_correlation(recon, truth) == pytest.approx(expected)


def test_frame_correlation_is_mean_of_per_frame_spatial_r(movies):
    recon, truth, mask = movies
    per = frame_correlations(recon, truth, mask)
    expected = [np.corrcoef(recon[t][mask], truth[t][mask])[0, 1] for t in range(30, 45)]
    assert per.shape == (15,)
    assert np.allclose(per, expected)
    assert frame_correlation(recon, truth, mask) == pytest.approx(np.mean(expected))


def test_constant_reconstruction_scores_zero_not_nan(movies):
    _, truth, mask = movies
    flat = np.full_like(truth, 128.0)
    metrics = video_metrics(flat, truth, mask)
    assert metrics["video_correlation"] == 0.0
    assert metrics["frame_correlation"] == 0.0
    assert metrics["motion_energy_correlation"] == 0.0
    assert not any(np.isnan(v) for v in metrics.values())


def test_ssim_identical_is_one_and_global_matches_formula(movies):
    recon, truth, mask = movies
    assert ssim_global(truth, truth, mask) == pytest.approx(1.0)
    assert ssim_windowed(truth, truth, mask) == pytest.approx(1.0)
    c = 255.0**2
    vals = []
    for t in range(30, 45):
        x, y = recon[t][mask], truth[t][mask]
        cov = np.cov(x, y, ddof=0)[0, 1]
        num = (2 * x.mean() * y.mean() + c) * (2 * cov + c)
        vals.append(num / ((x.mean() ** 2 + y.mean() ** 2 + c) * (x.var() + y.var() + c)))
    assert ssim_global(recon, truth, mask) == pytest.approx(np.mean(vals))
    assert ssim_windowed(recon, truth, mask) < ssim_global(recon, truth, mask) < 1.0


def test_rmse_and_psnr_of_known_constant_error(movies):
    _, truth, mask = movies
    assert rmse(truth + 10, truth, mask) == pytest.approx(10.0)
    assert psnr(truth + 10, truth, mask) == pytest.approx(20 * np.log10(25.5))
    assert psnr(truth, truth, mask) == float("inf")


def test_motion_energy_of_a_known_movie():
    movie = np.zeros((40, 36, 64))
    movie[1::2] = 10.0  # alternates 0, 10, 0, ...: every frame difference is 10
    assert np.allclose(motion_energy(movie, start=30), 10.0)
    assert motion_energy(movie, start=30).shape == (9,)
    ramp = np.cumsum(np.arange(40.0))[:, None, None] * np.ones((1, 36, 64))
    assert motion_energy_correlation(2 * ramp, ramp) == pytest.approx(1.0)


def test_video_metrics_keys_and_agreement(movies):
    recon, truth, mask = movies
    m = video_metrics(recon, truth, mask)
    assert set(m) == {
        "video_correlation",
        "frame_correlation",
        "ssim_global",
        "ssim_windowed",
        "rmse",
        "psnr",
        "motion_energy_correlation",
        "motion_energy_recon",
        "motion_energy_truth",
        "full_screen_correlation",
    }
    assert m["video_correlation"] == pytest.approx(video_correlation(recon, truth, mask))
    assert m["motion_energy_correlation"] == pytest.approx(motion_energy_correlation(recon, truth, mask))
    assert all(isinstance(v, float) for v in m.values())


def test_torch_and_integer_mask_inputs(movies):
    torch = pytest.importorskip("torch")
    recon, truth, mask = movies
    r = torch.tensor(recon, dtype=torch.float32, requires_grad=True)
    got = video_correlation(r, torch.tensor(truth), torch.tensor(mask.astype(np.uint8)))
    assert got == pytest.approx(video_correlation(recon, truth, mask), abs=1e-5)


def test_response_consistency_accepts_one_trial():
    rng = np.random.default_rng(1)
    rec = rng.normal(size=(5, 60))
    assert response_consistency(3 * rec + 1, rec).mean == pytest.approx(1.0)
    assert response_consistency(rec[None], rec[None], skip=0).per_neuron.shape == (5,)


@pytest.mark.parametrize(
    "recon_shape, mask_shape, match",
    [
        ((45, 36, 60), (36, 64), "differs"),
        ((45, 36, 64), (36, 60), "mask has shape"),
        ((1, 45, 36, 64), (36, 64), r"\(T, H, W\)"),
    ],
)
def test_shape_mismatches_raise(recon_shape, mask_shape, match):
    truth = np.zeros((45, 36, 64)) if len(recon_shape) == 3 else np.zeros(recon_shape)
    with pytest.raises(V1ReconError, match=match):
        video_correlation(np.zeros(recon_shape), truth, np.ones(mask_shape, bool))


def test_empty_mask_short_movie_and_alpha_mask_raise(movies):
    recon, truth, mask = movies
    with pytest.raises(V1ReconError, match="empty"):
        video_correlation(recon, truth, np.zeros_like(mask))
    with pytest.raises(V1ReconError, match="frames"):
        video_correlation(recon[:20], truth[:20], mask)
    with pytest.raises(V1ReconError, match="boolean"):
        video_correlation(recon, truth, np.full(mask.shape, 0.5))
    with pytest.raises(V1ReconError, match="NaN"):
        video_correlation(np.full_like(recon, np.nan), truth, mask)


def test_average_metrics_is_per_key_mean_over_movies():
    out = average_metrics([{"video_correlation": 0.2, "rmse": 10.0}, {"video_correlation": 0.4, "rmse": 20.0}])
    assert out == pytest.approx({"video_correlation": 0.3, "rmse": 15.0})
    with pytest.raises(V1ReconError, match="no movies"):
        average_metrics([])
