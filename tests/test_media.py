import imageio.v3 as iio
import numpy as np
import pytest

from v1recon.errors import V1ReconError
from v1recon.report.media import OUTLINE_RGB, compose_frames, error_panel, frame_strip, write_side_by_side_movie


@pytest.fixture
def panels():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 255, (12, 35, 63)).astype(np.float32)  # odd sizes on purpose
    recon = np.clip(truth + rng.normal(0, 20, truth.shape), 0, 255)
    return {"truth": truth, "reconstruction": recon, "error": error_panel(recon, truth)}


def test_error_panel_values():
    truth = np.full((2, 4, 4), 100.0)
    recon = truth + np.array([-40.0, 300.0])[:, None, None]
    assert np.allclose(error_panel(recon, truth)[0], 40)
    assert np.allclose(error_panel(recon, truth)[1], 255)  # clipped
    signed = error_panel(recon, truth, signed=True)
    assert np.allclose(signed[0], 107.5) and np.allclose(signed[1], 255)
    assert np.allclose(error_panel(truth, truth, signed=True), 127.5)


def test_compose_layout_is_even_titled_and_outlined(panels):
    mask = np.zeros((35, 63), bool)
    mask[5:20, 10:40] = True
    frames = compose_frames(panels, scale=2, mask=mask)
    assert frames.dtype == np.uint8 and frames.shape[0] == 12
    assert frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0
    assert frames.shape[2] >= 3 * 63 * 2
    assert frames[:, :12].max() > 200  # white title text at the top
    outline = np.all(frames[0] == OUTLINE_RGB, axis=-1)
    assert outline.sum() > 0
    assert not np.all(compose_frames(panels, scale=2)[0] == OUTLINE_RGB, axis=-1).any()
    bare = compose_frames(panels, scale=2, titles=False)
    assert bare.shape[1] == 70  # 35 rows enlarged twice, already even
    # grey levels survive, each pixel enlarged to a 2x2 block
    assert np.all(bare[3, 0:2, 0:2] == np.rint(panels["truth"][3, 0, 0]))
    assert np.all(bare[3, 2:4, 2:4] == np.rint(panels["truth"][3, 1, 1]))


def test_mp4_reads_back_with_frame_count_and_size(tmp_path, panels):
    path = write_side_by_side_movie(tmp_path / "movie.mp4", panels, fps=30, scale=2)
    frames = _read_mp4(path)
    expected = compose_frames(panels, scale=2)
    assert frames.shape[0] == 12
    assert frames.shape[1:3] == expected.shape[1:3]
    # lossy, but the picture is the same
    assert np.abs(frames.astype(float) - expected).mean() < 12
    assert [p.name for p in tmp_path.iterdir()] == ["movie.mp4"]  # no temporary left behind


def _read_mp4(path):
    import imageio

    reader = imageio.get_reader(path, "ffmpeg")
    try:
        assert reader.get_meta_data()["codec"] == "h264"
        assert reader.get_meta_data()["pix_fmt"].startswith("yuv420p")
        return np.stack([frame for frame in reader.iter_data()])  # len(reader) is inf: no list(reader)
    finally:
        reader.close()


def test_gif_subsamples_frames_and_loops(tmp_path, panels):
    path = write_side_by_side_movie(tmp_path / "movie.gif", panels, fps=30)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 4  # every third of 12 frames
    assert frames.shape[1:3] == compose_frames(panels, scale=2).shape[1:3]
    meta = iio.immeta(path)
    assert meta["loop"] == 0 and meta["duration"] == 100


def test_bad_movie_inputs_raise_and_write_nothing(tmp_path, panels):
    with pytest.raises(V1ReconError, match=r"\.mp4 or \.gif"):
        write_side_by_side_movie(tmp_path / "movie.avi", panels)
    with pytest.raises(V1ReconError, match="differ in shape"):
        write_side_by_side_movie(tmp_path / "movie.mp4", {"a": panels["truth"], "b": panels["truth"][:5]})
    with pytest.raises(V1ReconError, match="mask has shape"):
        write_side_by_side_movie(tmp_path / "movie.mp4", panels, mask=np.ones((36, 64), bool))
    with pytest.raises(V1ReconError, match="no panels"):
        write_side_by_side_movie(tmp_path / "movie.mp4", {})
    assert list(tmp_path.iterdir()) == []


def test_frame_strip_png_and_axes(tmp_path, panels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    videos = {"truth": panels["truth"], "reconstruction": panels["reconstruction"]}
    path = frame_strip(tmp_path / "strip.png", videos, [0, 5, 11], mask=np.ones((35, 63), bool))
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]
    fig, ax = plt.subplots()
    assert frame_strip(ax, videos, [1, 2]) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["truth", "reconstruction"]
    plt.close(fig)
    with pytest.raises(V1ReconError, match="outside"):
        frame_strip(tmp_path / "bad.png", videos, [12])
    assert not (tmp_path / "bad.png").exists()
