"""Encodes generated frames as an H.264 MP4, a single frame as a WebP thumbnail and evenly spaced
frames as a JPEG spritesheet, in memory; decodes the stored video an extension begins with and
joins it to the new frames."""

from __future__ import annotations

import io
import math
from pathlib import Path

import av
import numpy as np
from PIL import Image

from i2v_core.videos import DEMUXERS, quarter_turns


def encode_mp4(frames: np.ndarray, fps: int) -> bytes:
    """H.264 (yuv420p) MP4 of uint8 RGB frames shaped (num_frames, height, width, 3).

    4:2:0 H.264 cannot store an odd width or height (not even through its cropping fields), so an
    odd size is padded to the next even one by repeating the last row or column.
    """
    _check_rgb(frames, "(num_frames, height, width, 3)", ndim=4)
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    frames = _pad_to_even(frames)
    _, height, width, _ = frames.shape

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return buffer.getvalue()


def encode_thumbnail(frame: np.ndarray) -> bytes:
    """WebP of one uint8 RGB frame shaped (height, width, 3)."""
    _check_rgb(frame, "(height, width, 3)", ndim=3)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="WEBP", quality=85)
    return buffer.getvalue()


def encode_spritesheet(frames: np.ndarray, max_tiles: int = 16, tile_width: int = 160) -> bytes:
    """JPEG grid of up to `max_tiles` evenly spaced frames (first and last included), row by row,
    each scaled to `tile_width` pixels wide (never enlarged); the grid is as square as it can be."""
    _check_rgb(frames, "(num_frames, height, width, 3)", ndim=4)
    if max_tiles < 1:
        raise ValueError(f"max_tiles must be at least 1, got {max_tiles}")
    count, height, width, _ = frames.shape
    tiles = min(count, max_tiles)
    picks = np.linspace(0, count - 1, tiles).round().astype(int)
    columns = math.ceil(math.sqrt(tiles))
    rows = math.ceil(tiles / columns)
    tile_w = min(width, tile_width)
    tile_h = max(1, round(height * tile_w / width))
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h))
    for position, index in enumerate(picks):
        tile = Image.fromarray(frames[index]).resize((tile_w, tile_h), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((position % columns) * tile_w, (position // columns) * tile_h))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def decode_frames(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Every frame of a stored (already validated) video as uint8 RGB shaped (num_frames, height,
    width, 3), upright, scaled to `size` (width, height) when given."""
    demuxer = DEMUXERS.get(Path(path).suffix.lstrip("."))
    frames = []
    with av.open(str(path), mode="r", format=demuxer) as container:
        for frame in container.decode(video=0):
            turns = quarter_turns(frame)
            if size is not None:  # scaled before the turn: a sideways frame swaps its sides
                width, height = size if turns % 2 == 0 else size[::-1]
                frame = frame.reformat(width=width, height=height)
            array = frame.to_ndarray(format="rgb24")
            frames.append(np.rot90(array, turns) if turns else array)
    if not frames:
        raise ValueError(f"no frame of {path} decodes")
    return np.ascontiguousarray(np.stack(frames))


def join_extension(prefix: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """An extension's frames: `prefix` (scaled to the generated size if it differs) followed by
    the generated frames after the first, which repeats the prefix's last frame."""
    _check_rgb(prefix, "(num_frames, height, width, 3)", ndim=4)
    _check_rgb(generated, "(num_frames, height, width, 3)", ndim=4)
    _, height, width, _ = generated.shape
    if prefix.shape[1:3] != (height, width):
        prefix = np.stack(
            [
                np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC))
                for f in prefix
            ]
        )
    return np.concatenate([prefix, generated[1:]])


def _check_rgb(array: np.ndarray, shape: str, ndim: int) -> None:
    if not (
        isinstance(array, np.ndarray)
        and array.dtype == np.uint8
        and array.ndim == ndim
        and array.shape[-1] == 3
        and 0 not in array.shape
    ):
        got = (
            f"{array.dtype} {array.shape}"
            if isinstance(array, np.ndarray)
            else type(array).__name__
        )
        raise ValueError(f"expected a non-empty uint8 array shaped {shape}, got {got}")


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    _, height, width, _ = frames.shape
    padding = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, padding, mode="edge") if height % 2 or width % 2 else frames
