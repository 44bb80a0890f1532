"""Validation of a video to extend or edit (uploaded, or one of ours read back from the store)
before any work is done: size in bytes, container (recognised by its first bytes, then opened
with that demuxer only), a video stream, pixels, duration and frame count, and that every frame
decodes. The first and last frames come out upright RGB, as pictures a job can start from."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from fractions import Fraction

import av
from PIL import Image

from i2v_core.config import UploadLimits
from i2v_core.errors import APIError, invalid
from i2v_core.images import ValidatedImage, check_frame_size, preview_of

# Our container names → FFmpeg's demuxer. Naming the demuxer keeps FFmpeg from probing the
# bytes as a playlist or a concat list (formats that open other files or URLs).
DEMUXERS = {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska"}
# QuickTime files may begin with another atom than `ftyp`.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


@dataclass(frozen=True)
class ValidatedVideo:
    """A video that passed every check: its bytes, what it holds, and its first and last frames
    (RGB)."""

    data: bytes = field(repr=False)
    sha256: str
    container: str
    width: int
    height: int
    fps: float
    num_frames: int
    first_frame: Image.Image = field(compare=False, repr=False)
    last_frame: Image.Image = field(compare=False, repr=False)

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def name(self) -> str:
        """The content-addressed file name in the artifact store."""
        return f"{self.sha256}.{self.container}"

    def summary(self) -> dict[str, object]:
        """What the decision trace says about the video."""
        return {
            "sha256": self.sha256,
            "container": self.container,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "num_frames": self.num_frames,
            "seconds": round(self.seconds, 3),
        }


def sniff_container(data: bytes) -> str | None:
    """The container the first bytes announce: mp4, mov, webm, mkv, or None."""
    box = data[4:8]
    if box == b"ftyp":
        return "mov" if data[8:12] == b"qt  " else "mp4"
    if box in _QUICKTIME_ATOMS:
        return "mov"
    if data.startswith(_EBML_MAGIC):
        return "webm" if b"webm" in data[:64] else "mkv"
    return None


def validate_video(data: bytes, limits: UploadLimits, param: str = "video") -> ValidatedVideo:
    """`data` checked against `limits`, every frame decoded once; a 400 (413 for the byte size)
    in OpenAI's shape naming `param` and a specific code otherwise."""
    if not data:
        raise invalid("The uploaded video is empty.", param, "invalid_video")
    if len(data) > limits.max_video_bytes:
        raise APIError(
            413,
            f"The video is {len(data)} bytes; the limit is {limits.max_video_bytes} bytes.",
            param=param,
            code="video_too_large",
        )
    container = sniff_container(data)
    if container is None or container not in limits.video_containers:
        raise invalid(
            f"Unsupported video format {container or 'unknown'}; use one of "
            f"{', '.join(limits.video_containers)}.",
            param,
            "unsupported_video_format",
        )
    try:
        with av.open(io.BytesIO(data), mode="r", format=DEMUXERS[container]) as source:
            if not source.streams.video:
                raise invalid("The file holds no video stream.", param, "no_video_stream")
            stream = source.streams.video[0]
            _check_size(stream.codec_context.width, stream.codec_context.height, limits, param)
            fps = _rate(stream.average_rate or stream.guessed_rate)
            _check_length(_declared_seconds(source, stream), stream.frames, limits, param)
            count = 0
            first: Image.Image | None = None
            last: av.VideoFrame | None = None
            for frame in source.decode(stream):
                count += 1
                if count > limits.max_video_frames:
                    raise _too_long(f"more than {limits.max_video_frames} frames", limits, param)
                _check_size(frame.width, frame.height, limits, param)
                if first is None:
                    first = upright(frame)
                last = frame
            declared_frames = stream.frames
            final = upright(last) if last is not None else None
    except APIError:
        raise
    except (av.FFmpegError, ValueError, OSError, MemoryError) as exc:
        raise invalid(
            "The uploaded file is not a readable video (corrupt, truncated or unsupported).",
            param,
            "invalid_video",
        ) from exc
    if first is None or final is None:
        raise invalid("No frame of the video decodes.", param, "invalid_video")
    if declared_frames and count < declared_frames:
        raise invalid(
            f"The video is truncated: {count} of its {declared_frames} frames decode.",
            param,
            "invalid_video",
        )
    if fps <= 0:
        raise invalid("The video's frame rate cannot be read.", param, "invalid_video")
    if count / fps > limits.max_video_seconds:
        raise _too_long(f"{count / fps:.1f} s", limits, param)
    return ValidatedVideo(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        container=container,
        width=first.width,
        height=first.height,
        fps=fps,
        num_frames=count,
        first_frame=first,
        last_frame=final,
    )


def upright(frame: av.VideoFrame) -> Image.Image:
    """The frame as RGB, turned as the container's display matrix says (phones record sideways
    and store the turn there)."""
    image = frame.to_image().convert("RGB")
    turn = quarter_turns(frame)
    return image.rotate(90 * turn, expand=True) if turn else image


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counterclockwise quarter turns that show the frame upright (0 to 3)."""
    return round((frame.rotation or 0) / 90) % 4


def picture_of_frame(frame: Image.Image) -> ValidatedImage:
    """One frame as the picture a job starts from: PNG bytes, content-addressed."""
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG")
    data = buffer.getvalue()
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format="PNG",
        width=frame.width,
        height=frame.height,
        preview=preview_of(frame),
    )


def _check_size(width: int, height: int, limits: UploadLimits, param: str) -> None:
    if width <= 0 or height <= 0:
        raise invalid("The video's frame size cannot be read.", param, "invalid_video")
    check_frame_size(width, height, limits.max_video_pixels, limits.min_image_side, "video", param)


def _check_length(seconds: float | None, frames: int, limits: UploadLimits, param: str) -> None:
    """What the container declares, checked before decoding (decoding checks again)."""
    if seconds is not None and seconds > limits.max_video_seconds:
        raise _too_long(f"{seconds:.1f} s", limits, param)
    if frames > limits.max_video_frames:
        raise _too_long(f"{frames} frames", limits, param)


def _too_long(what: str, limits: UploadLimits, param: str) -> APIError:
    return invalid(
        f"The video is too long ({what}); the limits are {limits.max_video_seconds:g} s and "
        f"{limits.max_video_frames} frames.",
        param,
        "video_too_long",
    )


def _declared_seconds(source: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if source.duration is not None:
        return source.duration / av.time_base
    return None


def _rate(rate: Fraction | None) -> float:
    return float(rate) if rate else 0.0
