"""Encodes generated frames as an H.264 MP4 and a single frame as a WebP thumbnail, in memory."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image


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
