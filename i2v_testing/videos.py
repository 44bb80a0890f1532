"""Small real videos for tests: frames that differ from one another, muxed with PyAV in the
containers the service accepts (and some it refuses), plus the broken files uploads must survive."""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import av
import numpy as np

# container → (PyAV muxer, video codec)
MUXERS = {
    "mp4": ("mp4", "libx264"),
    "mov": ("mov", "mpeg4"),
    "webm": ("webm", "libvpx"),
    "mkv": ("matroska", "libx264"),
}


def moving_frames(num_frames: int, width: int, height: int) -> np.ndarray:
    """uint8 RGB frames (num_frames, height, width, 3): smooth gradients whose colours shift
    from frame to frame, so each frame is recognisable after lossy coding."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        phase = index / max(1, num_frames - 1)
        frames[index, ..., 0] = (x * 255 / max(1, width - 1)).astype(np.uint8)
        frames[index, ..., 1] = (y * 255 / max(1, height - 1)).astype(np.uint8)
        frames[index, ..., 2] = int(40 + 180 * phase)
    return frames


def make_video(
    frames: np.ndarray, fps: int = 8, container: str = "mp4", faststart: bool = False
) -> bytes:
    """`frames` muxed as `container` (mp4, mov, webm or mkv); `faststart` puts an MP4's index
    before its data (as streaming services do) instead of after."""
    muxer, codec = MUXERS[container]
    options = {"movflags": "faststart"} if faststart else {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container}"
        with av.open(str(path), mode="w", format=muxer, options=options) as output:
            stream = output.add_stream(codec, rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            for index, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts = index
                output.mux(stream.encode(frame))
            output.mux(stream.encode())
        return path.read_bytes()


def audio_only_mp4(seconds: float = 0.5) -> bytes:
    """An MP4 with one AAC stream and no video."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("aac", rate=44100)
        samples = int(44100 * seconds)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 44100, start
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()


def turned_clockwise(mp4: bytes) -> bytes:
    """`mp4` with its track's display matrix saying "turn 90° clockwise to show" (what phones
    write when recording sideways); the coded frames are unchanged."""
    data = bytearray(mp4)
    tkhd = data.find(b"tkhd")
    if tkhd < 0 or data[tkhd + 4] != 0:
        raise ValueError("expected a version-0 tkhd box")
    # type, version+flags, created, modified, track id, reserved, duration, reserved[2],
    # layer+group, volume+reserved: then the 3x3 matrix.
    matrix = tkhd + 4 + 4 + 4 * 5 + 8 + 8
    values = (0, 0x10000, 0, -0x10000 & 0xFFFFFFFF, 0, 0, 0, 0, 0x40000000)
    data[matrix : matrix + 36] = struct.pack(">9I", *values)
    return bytes(data)


def decode(data: bytes) -> tuple[np.ndarray, float]:
    """Every frame (as coded, not turned) and the frame rate, as a standard decoder reads them."""
    with av.open(io.BytesIO(data), mode="r") as source:
        stream = source.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in source.decode(stream)]
        return np.stack(frames), float(stream.average_rate or 0)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 arrays of one shape, in grey levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
