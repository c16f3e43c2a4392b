"""Stimuli of the in-silico mouse: natural-like movies, Gaussian-noise movies and drifting gratings.

Every stimulus is a float32 array (T, 36, 64) of grey levels 0..255 shown at 30 Hz, the shape of the Sensorium
videos. Natural-like movies are built from the photographs bundled with scikit-image (read from the installed
wheel, no download) and from procedural 1/f textures; the photographs used for training and for test movies are
disjoint, and so are the seeds of the textures.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from v1recon import FRAME_RATE_HZ, FRAME_SHAPE

GREY = 127.5
NOISE_STD = 51.0  # grey levels, the contrast of the Gaussian-noise movies

# Photographs bundled inside the scikit-image wheel. Training and test movies never share a source image.
TRAIN_PHOTOS = ("camera", "astronaut", "coffee", "rocket", "grass", "moon", "hubble_deep_field", "clock", "coins")
TEST_PHOTOS = ("chelsea", "brick", "gravel", "immunohistochemistry", "text", "page")
SOURCE_HEIGHT = 108  # px; photographs are resampled to this height, 3x the frame height
SPLITS = ("train", "test")
LENGTH_CONSTANTS = (0, 1, 2, 4, 8, 16, 32)  # px and frames: the Gaussian-noise resolution series


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A bundled photograph as a grey float32 image (SOURCE_HEIGHT, W) in 0..255."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.transform import resize

    image = getattr(skimage.data, name)()
    if image.ndim == 3:
        image = rgb2gray(image[..., :3]) * 255.0
    image = np.asarray(image, dtype=np.float64)
    width = round(image.shape[1] * SOURCE_HEIGHT / image.shape[0])
    image = resize(image, (SOURCE_HEIGHT, width), anti_aliasing=True, preserve_range=True)
    return image.astype(np.float32)


def pink_noise_texture(seed: int, shape: tuple[int, int] = (SOURCE_HEIGHT, 192), exponent: float = 1.0) -> np.ndarray:
    """A 1/f^exponent amplitude-spectrum texture (shape) with mean 127.5 and std 51, float32.

    Natural images have amplitude spectra close to 1/f (exponent 1); a random orientation bias makes textures differ.
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    angle = rng.uniform(0, np.pi)
    stretch = rng.uniform(1.0, 2.5)
    along = fx * np.cos(angle) + fy * np.sin(angle)
    across = -fx * np.sin(angle) + fy * np.cos(angle)
    radius = np.sqrt(along**2 * stretch + across**2 / stretch)
    radius[0, 0] = np.inf
    spectrum = (rng.standard_normal(radius.shape) + 1j * rng.standard_normal(radius.shape)) / radius**exponent
    image = np.fft.irfft2(spectrum, s=shape)
    image = (image - image.mean()) / image.std() * NOISE_STD + GREY
    return np.clip(image, 0, 255).astype(np.float32)


def _sources(split: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one source image for a scene of the given split: a photograph (70 %) or a fresh 1/f texture."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if rng.random() < 0.7:
        names = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
        return _photo(names[rng.integers(len(names))])
    # even seeds for training textures, odd seeds for test textures: never the same texture in both
    seed = 2 * int(rng.integers(2**30)) + (split == "test")
    return pink_noise_texture(seed, exponent=float(rng.uniform(0.8, 1.4)))


def _scene(rng: np.random.Generator, source: np.ndarray, n_frames: int) -> np.ndarray:
    """Film `source` for n_frames with a moving camera: pan, zoom and saccade-like jumps. Returns (T, 36, 64)."""
    height, width = FRAME_SHAPE
    src_h, src_w = source.shape
    scale0 = rng.uniform(0.8, 1.6)  # source px per frame px
    zoom_rate = rng.normal(0, 0.004)  # relative change of scale per frame
    speed = rng.uniform(0, 1.5)  # source px per frame
    angle = rng.uniform(0, 2 * np.pi)
    t = np.arange(n_frames)
    scale = scale0 * np.exp(zoom_rate * t)
    centre = np.stack([rng.uniform(0.3, 0.7) * src_h, rng.uniform(0.3, 0.7) * src_w])
    path = centre[:, None] + speed * t[None, :] * np.array([np.sin(angle), np.cos(angle)])[:, None]
    # saccade-like jumps: a few instantaneous displacements of the camera
    n_jumps = rng.poisson(0.5 * n_frames / FRAME_RATE_HZ)
    for start in rng.integers(0, n_frames, n_jumps):
        path[:, start:] += rng.normal(0, 8, size=(2, 1))
    rows = (np.arange(height) - (height - 1) / 2)[None, :, None] * scale[:, None, None] + path[0][:, None, None]
    cols = (np.arange(width) - (width - 1) / 2)[None, None, :] * scale[:, None, None] + path[1][:, None, None]
    rows, cols = np.broadcast_arrays(rows, cols)
    frames = _bilinear(source, rows, cols)
    # vary luminance and contrast between scenes as natural movies do
    mean, std = frames.mean(), frames.std() + 1e-3
    frames = (frames - mean) / std * rng.uniform(30, 60) + rng.uniform(95, 160)
    return frames


def _bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample `image` (H, W) bilinearly at fractional (rows, cols) of any shape; mirrored outside the image."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape
    grid = np.empty((*rows.shape, 2), np.float32)
    grid[..., 0] = cols * (2 / (w - 1)) - 1
    grid[..., 1] = rows * (2 / (h - 1)) - 1
    src = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    grid = torch.from_numpy(grid).view(1, -1, rows.shape[-1], 2)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection",
                        align_corners=True)  # fmt: skip
    return out.numpy().reshape(rows.shape)


def natural_movie(rng: np.random.Generator, n_frames: int = 300, split: str = "train") -> np.ndarray:
    """A natural-like movie (n_frames, 36, 64) float32 0..255 at 30 Hz.

    Scenes of 1-4 s, each a photograph or 1/f texture filmed by a camera that pans (0-1.5 source px/frame), zooms
    and jumps (saccade-like, ~0.5 per second); scenes change by hard cuts. `split` ("train" or "test") selects
    disjoint source images, so that test movies are never seen in training.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    pieces, total = [], 0
    while total < n_frames:
        length = int(rng.integers(int(1 * FRAME_RATE_HZ), int(4 * FRAME_RATE_HZ) + 1))
        length = min(length, n_frames - total)
        pieces.append(_scene(rng, _sources(split, rng), length))
        total += length
    return np.clip(np.concatenate(pieces), 0, 255).astype(np.float32)


def gaussian_noise_movie(
    rng: np.random.Generator,
    spatial_px: float,
    temporal_frames: float,
    n_frames: int = 60,
    invert: bool = False,
) -> np.ndarray:
    """Gaussian noise (n_frames, 36, 64) float32 with spatial and temporal length constants.

    White noise smoothed by a Gaussian of sigma `spatial_px` (pixels) in space and `temporal_frames` (frames) in
    time (0 = no smoothing), then scaled to mean 127.5 and std 51 grey levels and clipped to 0..255. The
    autocorrelation of the smoothed noise is Gaussian with sigma sqrt(2) times the length constant. `invert`
    returns the phase-inverted copy 255 - v (draw it from an rng in the same state as the original).
    """
    if spatial_px < 0 or temporal_frames < 0 or n_frames < 1:
        raise ValueError("length constants must be >= 0 and n_frames >= 1")
    sigma = (float(temporal_frames), float(spatial_px), float(spatial_px))
    # generate on a padded canvas so that the borders are as smooth as the centre
    pad = [min(int(np.ceil(3 * s)), 96) for s in sigma]
    shape = (n_frames + 2 * pad[0], FRAME_SHAPE[0] + 2 * pad[1], FRAME_SHAPE[1] + 2 * pad[2])
    noise = rng.standard_normal(shape)
    if any(s > 0 for s in sigma):
        noise = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    noise = noise[pad[0] : pad[0] + n_frames, pad[1] : pad[1] + FRAME_SHAPE[0], pad[2] : pad[2] + FRAME_SHAPE[1]]
    movie = np.clip((noise - noise.mean()) / noise.std() * NOISE_STD + GREY, 0, 255)
    if invert:
        movie = 255.0 - movie
    return movie.astype(np.float32)


def drifting_grating(
    sf_cycles_per_px: float,
    tf_hz: float,
    direction_deg: float,
    n_frames: int = 60,
    contrast: float = 1.0,
    phase_deg: float = 0.0,
) -> np.ndarray:
    """A full-screen drifting sinusoidal grating (n_frames, 36, 64) float32 0..255.

    sf_cycles_per_px: spatial frequency in cycles per pixel (0..0.5; multiply by 1/1.94 for cycles/degree
    horizontally, the Sensorium screen spans about 124 deg over 64 px); tf_hz: temporal frequency in Hz at 30 Hz
    frames; direction_deg: direction of motion, 0 = rightwards, 90 = upwards; contrast: Michelson contrast 0..1.
    """
    rows, cols = np.mgrid[0 : FRAME_SHAPE[0], 0 : FRAME_SHAPE[1]].astype(np.float64)
    theta = np.deg2rad(direction_deg)
    along = cols * np.cos(theta) - rows * np.sin(theta)  # rows grow downwards, so "up" is -rows
    t = np.arange(n_frames)[:, None, None] / FRAME_RATE_HZ
    phase = 2 * np.pi * (sf_cycles_per_px * along[None] - tf_hz * t) + np.deg2rad(phase_deg)
    return (GREY + GREY * contrast * np.sin(phase)).astype(np.float32)
