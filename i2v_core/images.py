"""Validation of an uploaded picture before any work is done: size in bytes, format, pixel count
(decompression bombs included), and that it really decodes."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

from i2v_core.config import UploadLimits
from i2v_core.errors import APIError, invalid

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}


# The smallest picture the classifier's engines need (a 224 crop of a 256 short side; faces are
# looked for at up to 512 px): the ingress hands it this, decoded and upright, once.
PREVIEW_MIN_SHORT_SIDE = 256
PREVIEW_MIN_LONG_SIDE = 512


@dataclass(frozen=True)
class ValidatedImage:
    """An upload that passed every check: its bytes (stored as they came, content-addressed),
    its upright size, and a small upright RGB preview decoded in the same pass."""

    data: bytes
    sha256: str
    format: str
    width: int
    height: int
    preview: Image.Image = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        """The content-addressed file name in the artifact store."""
        return f"{self.sha256}.{_EXTENSIONS.get(self.format, self.format.lower())}"


def validate_image(
    data: bytes, limits: UploadLimits, param: str = "input_reference"
) -> ValidatedImage:
    if not data:
        raise invalid("The uploaded image is empty.", param, "invalid_image")
    if len(data) > limits.max_image_bytes:
        raise APIError(
            413,
            f"The image is {len(data)} bytes; the limit is {limits.max_image_bytes} bytes.",
            param=param,
            code="image_too_large",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                image_format = probe.format or ""
                width, height = probe.size
                if image_format not in limits.image_formats:
                    raise invalid(
                        f"Unsupported image format {image_format or 'unknown'}; "
                        f"use one of {', '.join(limits.image_formats)}.",
                        param,
                        "unsupported_image_format",
                    )
                _check_pixels(width, height, limits, param)
                # Decode fully now: a truncated or corrupt file must fail here, not on a GPU.
                decoded = _to_rgb(probe)
    except APIError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise invalid(
            f"The image has too many pixels; the limit is {limits.max_image_pixels}.",
            param,
            "image_too_large",
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise invalid(
            "The uploaded file is not a readable image (corrupt or unsupported).",
            param,
            "invalid_image",
        ) from exc
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=image_format,
        width=decoded.width,
        height=decoded.height,
        preview=preview_of(decoded),
    )


def preview_of(image: Image.Image) -> Image.Image:
    """`image` shrunk (never enlarged) to the smallest size keeping both minimum sides."""
    short, long = sorted(image.size)
    scale = max(PREVIEW_MIN_SHORT_SIDE / short, PREVIEW_MIN_LONG_SIDE / long)
    if scale >= 1:
        return image
    size = (math.ceil(image.width * scale), math.ceil(image.height * scale))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _check_pixels(width: int, height: int, limits: UploadLimits, param: str) -> None:
    check_frame_size(width, height, limits.max_image_pixels, limits.min_image_side, "image", param)


def check_frame_size(
    width: int, height: int, max_pixels: int, min_side: int, what: str, param: str
) -> None:
    """A picture's (or a video frame's) size within the limits, else 400 `{what}_too_large` or
    `{what}_too_small`."""
    if width * height > max_pixels:
        raise invalid(
            f"The {what} is {width}x{height} = {width * height} pixels; the limit is {max_pixels}.",
            param,
            f"{what}_too_large",
        )
    if min(width, height) < min_side:
        raise invalid(
            f"The {what} is {width}x{height}; each side must be at least {min_side} pixels.",
            param,
            f"{what}_too_small",
        )


def load_rgb(data: bytes) -> Image.Image:
    """Decode stored picture bytes the same way validation did."""
    with Image.open(io.BytesIO(data)) as image:
        return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Upright (EXIF orientation applied) RGB; the first frame of an animation."""
    return ImageOps.exif_transpose(image).convert("RGB")
