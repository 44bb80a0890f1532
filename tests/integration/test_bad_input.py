"""Bad input gets a clear OpenAI-style 4xx and changes nothing: no row, no file, no crash."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import pytest
from PIL import Image

from i2v_testing.paths import EXAMPLES

CUP = (EXAMPLES / "cup.jpg").read_bytes()


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims another size (a decompression bomb's header)."""
    data = bytearray(png_bytes(32, 32))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : 12 + 4 + 13])) & 0xFFFFFFFF
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def post_video(service, fields: dict, files: dict | None = None) -> httpx.Response:
    if files is None:
        files = {"input_reference": ("cup.jpg", CUP, "image/jpeg")}
    return httpx.post(f"{service.base_url}/v1/videos", data=fields, files=files, timeout=60)


def assert_error(response: httpx.Response, status: int, param: str | None, code: str | None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["type"] == ("invalid_request_error" if status < 500 else error["type"])
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


BAD_CREATES = [
    pytest.param(
        {"prompt": "spin"},
        {},
        400,
        "input_reference",
        "missing_required_parameter",
        id="no-picture",
    ),
    pytest.param({}, None, 400, "prompt", "missing_required_parameter", id="no-prompt"),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("a.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")},
        400,
        "input_reference",
        "invalid_image",
        id="corrupt-png",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("a.jpg", CUP[: len(CUP) // 3], "image/jpeg")},
        400,
        "input_reference",
        "invalid_image",
        id="truncated-jpeg",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("a.txt", b"hello, not a picture", "text/plain")},
        400,
        "input_reference",
        "invalid_image",
        id="text-file",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("a.png", b"", "image/png")},
        400,
        "input_reference",
        "invalid_image",
        id="empty-file",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("a.tif", None, "image/tiff")},
        400,
        "input_reference",
        "unsupported_image_format",
        id="tiff",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("big.png", b"\0" * (2 * 1024 * 1024 + 10), "image/png")},
        413,
        "input_reference",
        "image_too_large",
        id="too-many-bytes",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("bomb.png", png_claiming_size(30000, 30000), "image/png")},
        400,
        "input_reference",
        "image_too_large",
        id="decompression-bomb",
    ),
    pytest.param(
        {"prompt": "x"},
        {"input_reference": ("tiny.png", png_bytes(4, 4), "image/png")},
        400,
        "input_reference",
        "image_too_small",
        id="too-small",
    ),
    pytest.param(
        {"prompt": "旋转" * 1001},
        None,
        400,
        "prompt",
        "string_above_max_length",
        id="prompt-too-long",
    ),
    pytest.param(
        {"prompt": "x", "num_frames": "1000"},
        None,
        400,
        "num_frames",
        "invalid_value",
        id="frames-out-of-range",
    ),
    pytest.param(
        {"prompt": "x", "num_inference_steps": "0"},
        None,
        400,
        "num_inference_steps",
        "invalid_value",
        id="steps-zero",
    ),
    pytest.param(
        {"prompt": "x", "seed": "-1"}, None, 400, "seed", "invalid_value", id="negative-seed"
    ),
    pytest.param(
        {"prompt": "x", "seed": "99999999999999999999"},
        None,
        400,
        "seed",
        "invalid_value",
        id="huge-seed",
    ),
    pytest.param(
        {"prompt": "x", "guidance_scale": "abc"},
        None,
        400,
        "guidance_scale",
        "invalid_value",
        id="guidance-not-a-number",
    ),
    pytest.param(
        {"prompt": "x", "guidance_scale": "nan"},
        None,
        400,
        "guidance_scale",
        "invalid_value",
        id="guidance-nan",
    ),
    pytest.param(
        {"prompt": "x", "fps": "2.5"}, None, 400, "fps", "invalid_value", id="fps-not-integer"
    ),
    pytest.param(
        {"prompt": "x", "seconds": "-4"},
        None,
        400,
        "seconds",
        "invalid_value",
        id="negative-seconds",
    ),
    pytest.param(
        {"prompt": "x", "size": "big"}, None, 400, "size", "invalid_value", id="size-garbage"
    ),
    pytest.param(
        {"prompt": "x", "size": "0x720"}, None, 400, "size", "invalid_value", id="size-zero"
    ),
    pytest.param(
        {"prompt": "x", "category": "robot"},
        None,
        400,
        "category",
        "invalid_value",
        id="unknown-category",
    ),
    pytest.param(
        {"prompt": "x", "params[num_frames]": "8"},
        None,
        400,
        "params[num_frames]",
        "unknown_parameter",
        id="unknown-field",
    ),
    pytest.param(
        {"prompt": "x", "input_reference": "cup.jpg"},
        None,
        400,
        "input_reference",
        "invalid_value",
        id="picture-as-text",
    ),
    pytest.param(
        {"prompt": "x", "session_id": "a\x07b"},
        None,
        400,
        "session_id",
        "invalid_value",
        id="session-id-control-char",
    ),
    pytest.param(
        {"prompt": "x", "model": "sora-2"},
        None,
        404,
        "model",
        "model_not_found",
        id="unknown-model",
    ),
]


@pytest.mark.parametrize(("fields", "files", "status", "param", "code"), BAD_CREATES)
def test_bad_create_is_rejected_and_changes_nothing(service, fields, files, status, param, code):
    if files and files["input_reference"][1] is None:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buffer, format="TIFF")
        files = {"input_reference": ("a.tif", buffer.getvalue(), "image/tiff")}
    before = service.snapshot()
    response = post_video(service, fields, files)
    assert_error(response, status, param, code)
    assert service.snapshot() == before


def test_json_body_is_refused_with_415(service):
    before = service.snapshot()
    response = httpx.post(f"{service.base_url}/v1/videos", json={"prompt": "spin"})
    assert_error(response, 415, None, "unsupported_media_type")
    assert service.snapshot() == before


def test_remote_image_url_is_refused(service):
    before = service.snapshot()
    response = post_video(
        service, {"prompt": "x", "input_reference[image_url]": "http://127.0.0.1:1/a.png"}, {}
    )
    assert_error(response, 400, "input_reference.image_url", "unsupported_image_url")
    assert service.snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/v1/videos/video_nope", {}),
        ("DELETE", "/v1/videos/video_nope", {}),
        ("GET", "/v1/videos/video_nope/content", {}),
        ("POST", "/v1/videos/video_nope/remix", {"json": {"prompt": "slower"}}),
    ],
)
def test_unknown_id_is_404(service, method, path, kwargs):
    before = service.snapshot()
    response = httpx.request(method, f"{service.base_url}{path}", timeout=30, **kwargs)
    assert_error(response, 404, "video_id", "video_not_found")
    assert service.snapshot() == before


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("order=sideways", "order"),
        ("limit=ten", "limit"),
        ("colour=red", "colour"),
    ],
)
def test_bad_list_query_is_400(service, query, param):
    response = httpx.get(f"{service.base_url}/v1/videos?{query}")
    assert_error(response, 400, param, None)


def test_remix_without_prompt_is_400(service):
    response = httpx.post(f"{service.base_url}/v1/videos/video_nope/remix", json={})
    assert_error(response, 400, "prompt", "missing_required_parameter")


def test_service_still_works_after_bad_input(service):
    """No replica crashed: a good request after all of the above still completes."""
    response = post_video(
        service, {"prompt": "spin", "size": "64x64", "num_frames": "4", "num_inference_steps": "1"}
    )
    assert response.status_code == 200, response.text
    video = service.client().videos.poll(response.json()["id"])
    assert video.status == "completed", video.error
