"""Movies and frame strips that show reconstructions next to the truth.

Panels are (T, H, W) grey-level movies 0..255 (values outside are clipped), shown side by side with a title
above each, pixels enlarged `scale` times without smoothing, and optionally the evaluation mask outlined.

    write_side_by_side_movie(path, {"truth": v, "reconstruction": r, "error": error_panel(r, v)}, mask=m)
        .mp4: H.264, yuv420p, even frame size, +faststart (plays in browsers)
        .gif: looping, by default every third frame (10 fps at 30 Hz; GIF delays are whole 10 ms) at half
              the enlargement, to stay small
    frame_strip(path_or_axes, {"truth": v, "reconstruction": r}, frames=[30, 90, 150])   # PNG strip
    confidence_panel(std)     a confidence movie (predicted std, grey levels) as a panel, on the error's scale
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from v1recon import FRAME_RATE_HZ
from v1recon.errors import V1ReconError
from v1recon.io import atomic_path
from v1recon.metrics.video import as_movie

OUTLINE_RGB = (255, 60, 60)  # mask outline colour: red reads well on grey
BACKGROUND = 0  # grey level of the gaps and the title bar
GAP_PX = 4  # pixels between panels in the movie


def _as_movie(x: Any, what: str) -> np.ndarray:
    return as_movie(x, f"panel '{what}'", np.float32)


def _check_panels(panels: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not panels:
        raise V1ReconError("no panels given to show.")
    movies = {str(name): _as_movie(v, name) for name, v in panels.items()}
    shapes = {v.shape for v in movies.values()}
    if len(shapes) > 1:
        raise V1ReconError(f"panels differ in shape: {', '.join(f'{k} {v.shape}' for k, v in movies.items())}.")
    return movies


def _check_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask).astype(bool)
    if m.shape != shape:
        raise V1ReconError(f"mask has shape {m.shape}, the frames are {shape}.")
    return m


def error_panel(recon: Any, truth: Any, signed: bool = False) -> np.ndarray:
    """A grey-level picture of the reconstruction error, (T, H, W) float32 0..255.

    signed=False: |recon - truth| (black = no error, white = 255 grey levels off).
    signed=True: 127.5 + (recon - truth) / 2 (mid-grey = no error, brighter = reconstruction too bright).
    """
    r, t = _as_movie(recon, "reconstruction"), _as_movie(truth, "truth")
    if r.shape != t.shape:
        raise V1ReconError(f"reconstruction shape {r.shape} differs from truth shape {t.shape}.")
    err = r - t
    return np.clip(127.5 + err / 2 if signed else np.abs(err), 0, 255).astype(np.float32)


def confidence_panel(std: Any) -> np.ndarray:
    """A grey-level picture of a confidence movie (T, H, W): its predicted std, on the scale of error_panel's
    |error| (black = certain, white = 255 grey levels), so a calibrated estimate looks as bright as the error."""
    return np.clip(_as_movie(std, "confidence"), 0, 255).astype(np.float32)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _title_bar(titles: Sequence[str], panel_w: int, gap: int, width: int, height: int, font_px: int) -> np.ndarray:
    """(height, width, 3) uint8 strip with each title centred above its panel."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(img)
    font = _font(font_px)
    for i, title in enumerate(titles):
        centre = i * (panel_w + gap) + panel_w / 2
        draw.text((centre, height / 2), title, fill=(255, 255, 255), font=font, anchor="mm")
    return np.asarray(img)


def _outline(mask: np.ndarray, scale: int) -> np.ndarray:
    """Bool (H*scale, W*scale): the inner edge of the enlarged mask, one pixel wide."""
    from scipy.ndimage import binary_erosion

    big = np.kron(mask, np.ones((scale, scale), dtype=bool))
    return big & ~binary_erosion(big, border_value=0)


def compose_frames(panels: Mapping[str, Any], scale: int = 4, mask: Any = None, titles: bool = True) -> np.ndarray:
    """Lay the panels side by side -> (T, H', W', 3) uint8 RGB frames with even H' and W'."""
    movies = _check_panels(panels)
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise V1ReconError(f"scale must be a whole number >= 1, got {scale}.")
    t, h, w = next(iter(movies.values())).shape
    m = _check_mask(mask, (h, w))
    ph, pw, n = h * scale, w * scale, len(movies)
    font_px = max(10, min(16, pw // 12))
    title_h = font_px + 8 if titles else 0
    width, height = n * pw + (n - 1) * GAP_PX, title_h + ph
    width, height = width + width % 2, height + height % 2  # yuv420p needs even sizes

    frames = np.full((t, height, width, 3), BACKGROUND, dtype=np.uint8)
    if titles:
        frames[:, :title_h] = _title_bar(list(movies), pw, GAP_PX, width, title_h, font_px)
    edge = _outline(m, scale) if m is not None else None
    for i, v in enumerate(movies.values()):
        grey = np.clip(np.rint(v), 0, 255).astype(np.uint8)
        big = grey.repeat(scale, axis=1).repeat(scale, axis=2)
        tile = np.repeat(big[..., None], 3, axis=3)
        if edge is not None:
            tile[:, edge] = OUTLINE_RGB
        x0 = i * (pw + GAP_PX)
        frames[:, title_h : title_h + ph, x0 : x0 + pw] = tile
    return frames


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg

    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,  # sizes are already even; do not let the writer resize
        output_params=["-crf", "18", "-movflags", "+faststart"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)


def write_side_by_side_movie(
    path: str | os.PathLike,
    panels: Mapping[str, Any],
    fps: float = FRAME_RATE_HZ,
    scale: int | None = None,
    mask: Any = None,
    frame_step: int | None = None,
) -> Path:
    """Write the panels side by side as an .mp4 (H.264) or .gif, chosen by the file suffix; atomic.

    panels: title -> (T, H, W) movie 0..255, all the same shape, left to right in dict order.
    fps: frame rate of the movies in Hz; the written file plays in real time.
    scale: each pixel becomes scale x scale pixels, nearest neighbour (default 4 for mp4, 2 for gif).
    mask: (H, W) bool evaluation mask, outlined in red on every panel (None: no outline).
    frame_step: keep every k-th frame (default 1 for mp4, 3 for gif).
    Returns the written path.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".mp4", ".gif"):
        raise V1ReconError(f"{path}: movie files must end in .mp4 or .gif.")
    gif = kind == ".gif"
    step = frame_step if frame_step is not None else (3 if gif else 1)
    scale = scale if scale is not None else (2 if gif else 4)
    if step < 1:
        raise V1ReconError(f"{path}: frame_step must be >= 1, got {step}.")
    frames = compose_frames(panels, scale=scale, mask=mask)[::step]
    with atomic_path(path) as tmp:
        (_write_gif if gif else _write_mp4)(tmp, frames, fps / step)
    return path


def _mosaic(movies: dict[str, np.ndarray], frames: Sequence[int], gap: int) -> np.ndarray:
    """(rows*(H+gap)-gap, cols*(W+gap)-gap) float array of the chosen frames, NaN in the gaps."""
    _, h, w = next(iter(movies.values())).shape
    rows, cols = len(movies), len(frames)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i, v in enumerate(movies.values()):
        for j, f in enumerate(frames):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = v[f]
    return out


def frame_strip(
    target: Any,
    videos: Mapping[str, Any],
    frames: Sequence[int],
    mask: Any = None,
    fps: float = FRAME_RATE_HZ,
    dpi: int = 150,
    vmax: float = 255.0,
    cmap: str = "gray",
) -> Any:
    """A grid of still frames: one row per movie (labelled), one column per frame (labelled with its time).

    target: a matplotlib Axes to draw into (returned), or a .png path written atomically (path returned).
    videos: label -> (T, H, W) movie 0..255, all the same shape. frames: frame indices to show.
    mask: optional (H, W) bool evaluation mask, outlined in red on every frame.
    vmax, cmap: the value shown brightest and the colour map (e.g. a confidence row: its own range, "magma").
    """
    movies = _check_panels(videos)
    t, h, w = next(iter(movies.values())).shape
    frames = [int(f) for f in frames]
    if not frames:
        raise V1ReconError("frame strip needs at least one frame index.")
    bad = [f for f in frames if not 0 <= f < t]
    if bad:
        raise V1ReconError(f"frame strip: frame indices {bad} lie outside the {t}-frame movies.")
    m = _check_mask(mask, (h, w))
    if hasattr(target, "imshow"):
        _draw_strip(target, movies, frames, m, fps, vmax, cmap)
        return target

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(target)
    if path.suffix.lower() != ".png":
        raise V1ReconError(f"{path}: frame strips are written as .png files.")
    fig, ax = plt.subplots(figsize=(1.3 + 1.6 * len(frames), 0.5 + 0.95 * len(movies)))
    try:
        _draw_strip(ax, movies, frames, m, fps, vmax, cmap)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def _draw_strip(ax: Any, movies, frames: list[int], mask: np.ndarray | None, fps: float, vmax=255.0, cmap="gray"):
    import matplotlib.pyplot as plt

    _, h, w = next(iter(movies.values())).shape
    gap = max(2, w // 16)
    colours = plt.get_cmap(cmap).with_extremes(bad="white")
    mosaic = np.ma.masked_invalid(_mosaic(movies, frames, gap))
    ax.imshow(mosaic, cmap=colours, vmin=0, vmax=vmax, interpolation="nearest")
    if mask is not None:
        stacked = {k: np.broadcast_to(mask, (max(frames) + 1, h, w)).astype(float) for k in movies}
        ax.contour(
            np.nan_to_num(_mosaic(stacked, frames, gap)),
            levels=[0.5],
            colors=[np.array(OUTLINE_RGB) / 255],
            linewidths=0.8,
        )
    ax.set_xticks([j * (w + gap) + (w - 1) / 2 for j in range(len(frames))])
    ax.set_xticklabels([f"frame {f}\n{f / fps:.2f} s" for f in frames], fontsize=8)
    ax.set_yticks([i * (h + gap) + (h - 1) / 2 for i in range(len(movies))])
    ax.set_yticklabels(list(movies), fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
