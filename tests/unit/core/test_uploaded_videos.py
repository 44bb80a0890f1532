"""Videos to extend or edit: what `validate_video` accepts (MP4, MOV, WebM; every frame decodes;
first and last frames upright) and how it refuses the rest (OpenAI's error shape, param `video`,
a specific code), on real files made with PyAV in the test."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from i2v_core.artifacts import ArtifactStore
from i2v_core.config import UploadLimits
from i2v_core.errors import APIError
from i2v_core.videos import picture_of_frame, sniff_container, validate_video
from i2v_testing.videos import (
    audio_only_mp4,
    make_video,
    mean_difference,
    moving_frames,
    turned_clockwise,
)

LIMITS = UploadLimits()
FRAMES = moving_frames(8, 96, 64)


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return make_video(FRAMES, fps=8)


def refused(data: bytes, limits: UploadLimits = LIMITS, param: str = "video") -> APIError:
    with pytest.raises(APIError) as caught:
        validate_video(data, limits, param)
    return caught.value


@pytest.mark.parametrize("container", ["mp4", "mov", "webm"])
def test_accepted_containers_decode_with_their_first_and_last_frames(container):
    data = make_video(FRAMES, fps=8, container=container)
    video = validate_video(data, LIMITS)
    assert (video.container, video.width, video.height) == (container, 96, 64)
    assert (video.num_frames, video.fps, video.seconds) == (8, 8.0, 1.0)
    assert video.sha256 == hashlib.sha256(data).hexdigest()
    assert video.name == f"{video.sha256}.{container}"
    assert video.first_frame.mode == video.last_frame.mode == "RGB"
    assert mean_difference(np.asarray(video.first_frame), FRAMES[0]) < 10
    assert mean_difference(np.asarray(video.last_frame), FRAMES[-1]) < 10
    # The two ends differ (the frames' blue channel shifts along the clip).
    assert mean_difference(np.asarray(video.first_frame), np.asarray(video.last_frame)) > 30


def test_a_sideways_phone_video_comes_out_upright(mp4):
    video = validate_video(turned_clockwise(mp4), LIMITS)
    assert (video.width, video.height) == (64, 96)
    upright = np.rot90(FRAMES[0], -1)  # turned clockwise
    assert mean_difference(np.asarray(video.first_frame), upright) < 10


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_video"),
        (b"just some text, not a video at all\n" * 4, "unsupported_video_format"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "unsupported_video_format"),
        (b"\x00\x00\x00\x18ftypisom" + bytes(200), "invalid_video"),  # a header, then nothing
    ],
    ids=["empty", "text", "png", "header-only"],
)
def test_not_a_video_is_400(data, code):
    error = refused(data)
    assert (error.status_code, error.param, error.code) == (400, "video", code)


def test_a_truncated_mp4_is_400(mp4):
    error = refused(mp4[: len(mp4) // 2])
    assert (error.status_code, error.code) == (400, "invalid_video")
    assert "readable video" in error.message


@pytest.mark.parametrize("kept", [0.5, 0.8, 0.95])
def test_a_truncated_faststart_mp4_is_400(kept):
    """The index comes first, so the file opens; the frames it lists are missing."""
    data = make_video(moving_frames(16, 96, 64), faststart=True)
    error = refused(data[: int(len(data) * kept)])
    assert (error.status_code, error.param, error.code) == (400, "video", "invalid_video")


def test_an_mp4_without_a_video_stream_is_400():
    error = refused(audio_only_mp4())
    assert (error.status_code, error.param, error.code) == (400, "video", "no_video_stream")


def test_matroska_is_refused_unless_configured():
    data = make_video(FRAMES, container="mkv")
    assert refused(data).code == "unsupported_video_format"
    limits = UploadLimits(video_containers=["mp4", "mkv"])
    assert validate_video(data, limits).container == "mkv"
    assert refused(make_video(FRAMES, container="webm"), limits).code == "unsupported_video_format"


def test_too_long_by_seconds_or_frames_is_400(mp4):
    by_seconds = refused(mp4, UploadLimits(max_video_seconds=0.5))
    assert (by_seconds.status_code, by_seconds.code) == (400, "video_too_long")
    by_frames = refused(mp4, UploadLimits(max_video_frames=4))
    assert (by_frames.status_code, by_frames.code) == (400, "video_too_long")
    # A container that declares no length (WebM's stream has none) is stopped while decoding.
    webm = make_video(moving_frames(12, 96, 64), container="webm")
    assert refused(webm, UploadLimits(max_video_frames=10)).code == "video_too_long"


def test_too_many_pixels_or_too_small_is_400(mp4):
    large = refused(mp4, UploadLimits(max_video_pixels=96 * 64 - 1))
    assert (large.status_code, large.code) == (400, "video_too_large")
    small = refused(mp4, UploadLimits(min_image_side=65))
    assert (small.status_code, small.code) == (400, "video_too_small")


def test_too_many_bytes_is_413_and_the_param_is_the_callers(mp4):
    error = refused(mp4, UploadLimits(max_video_bytes=len(mp4) - 1), param="video[id]")
    assert (error.status_code, error.param, error.code) == (413, "video[id]", "video_too_large")


def test_sniffing_names_the_container_by_its_first_bytes(mp4):
    assert sniff_container(mp4) == "mp4"
    assert sniff_container(make_video(FRAMES, container="mov")) == "mov"
    assert sniff_container(make_video(FRAMES, container="webm")) == "webm"
    assert sniff_container(make_video(FRAMES, container="mkv")) == "mkv"
    assert sniff_container(b"#EXTM3U\nhttp://example.com/a.ts\n") is None  # a playlist


def test_a_frame_becomes_a_content_addressed_png_picture():
    picture = picture_of_frame(Image.fromarray(FRAMES[3]))
    assert (picture.format, picture.width, picture.height) == ("PNG", 96, 64)
    assert picture.name == f"{hashlib.sha256(picture.data).hexdigest()}.png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(picture.data))), FRAMES[3])


def test_source_videos_are_stored_content_addressed_and_linked(tmp_path, mp4):
    store = ArtifactStore(tmp_path)
    name = f"{hashlib.sha256(mp4).hexdigest()}.mp4"
    path = store.put_source_video(name, mp4)
    assert path == store.source_video_path(name) and path.read_bytes() == mp4
    store.delete_source_video(name)
    assert not path.exists()
    # One of ours: a hard link to its MP4, which outlives the video's own file.
    store.put_video("video_a", mp4, b"thumb", b"sheet")
    assert store.link_source_video("video_a", name)
    store.delete_outputs("video_a")
    assert path.read_bytes() == mp4
    assert not store.link_source_video("video_gone", "ff" * 32 + ".mp4")
    store.delete_source_video(name)
    assert store.files() == []
