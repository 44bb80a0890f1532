"""Upload validation and the artifact store."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from deployments.classifier.protocol import Picture
from i2v_core.artifacts import ArtifactStore
from i2v_core.config import UploadLimits
from i2v_core.errors import APIError
from i2v_core.images import PREVIEW_MIN_SHORT_SIDE, load_rgb, validate_image

LIMITS = UploadLimits(max_image_bytes=100_000, max_image_pixels=1_000_000)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_supported_formats_validate(fmt):
    image = Image.new("RGB", (120, 80), (10, 200, 30))
    validated = validate_image(encode(image, fmt), LIMITS)
    assert (validated.width, validated.height, validated.format) == (120, 80, fmt)
    assert len(validated.sha256) == 64


def test_rgba_and_grayscale_become_rgb():
    for mode in ("RGBA", "L", "P"):
        data = encode(Image.new(mode, (32, 32)), "PNG")
        validate_image(data, LIMITS)
        assert load_rgb(data).mode == "RGB"


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (100, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown
    data = encode(image, "JPEG", exif=exif)
    validated = validate_image(data, LIMITS)
    assert (validated.width, validated.height) == (50, 100)
    assert load_rgb(data).size == (50, 100)
    assert validated.preview.size == (50, 100)  # small pictures are not enlarged


def test_the_preview_is_decoded_once_upright_and_small_and_reaches_the_classifier_as_is():
    """The ingress decodes once; the classifier gets that upright preview as raw pixels."""
    image = Image.new("RGB", (1200, 800), (200, 30, 30))
    image.paste((10, 10, 220), (0, 0, 1200, 100))  # a blue band along the top
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 270° when shown: the band ends up on the left
    validated = validate_image(encode(image, "JPEG", exif=exif), LIMITS)
    preview = validated.preview
    assert (validated.width, validated.height) == (800, 1200)
    assert min(preview.size) >= PREVIEW_MIN_SHORT_SIDE and max(preview.size) >= 512
    assert preview.size[0] < preview.size[1] and preview.size[0] < 800  # upright, shrunk
    left = preview.getpixel((2, preview.height // 2))
    assert left[2] > 150 and left[0] < 80  # the blue band is on the left side
    picture = Picture.from_image(preview)
    assert picture.to_image().tobytes() == preview.tobytes()
    assert Picture.model_validate(picture.model_dump()).to_image().size == preview.size


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "invalid_image"),
        (b"GIF89a-not-really", 400, "invalid_image"),
        (b"x" * 100_001, 413, "image_too_large"),
        (encode(Image.new("RGB", (2000, 1000)), "PNG"), 400, "image_too_large"),
        (encode(Image.new("RGB", (64, 64)), "TIFF"), 400, "unsupported_image_format"),
    ],
)
def test_bad_images_raise_api_errors(data, status, code):
    with pytest.raises(APIError) as caught:
        validate_image(data, LIMITS)
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert caught.value.param == "input_reference"


def test_artifact_store_is_content_addressed_and_cleans_up(tmp_path):
    store = ArtifactStore(tmp_path)
    path = store.put_image("abcdef.png", b"data")
    assert path == tmp_path / "images" / "ab" / "abcdef.png"
    assert store.put_image("abcdef.png", b"data") == path
    store.put_video("video_1", b"mp4", b"webp", b"jpeg")
    assert store.video_path("video_1").read_bytes() == b"mp4"
    assert store.thumbnail_path("video_1").read_bytes() == b"webp"
    assert store.spritesheet_path("video_1").read_bytes() == b"jpeg"
    assert store.usage() == len(b"data" + b"mp4" + b"webp" + b"jpeg")
    assert store.delete_outputs("video_1") == len(b"mp4" + b"webp" + b"jpeg")
    store.delete_image("abcdef.png")
    assert store.files() == []
