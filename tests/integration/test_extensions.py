"""Extensions and edits through the official `openai` client against the running service: the
video as an uploaded file and as `video[id]` (`video=openai.omit, extra_body={"video[id]": id}`),
the results decoded. An extension is the source's frames followed by the new ones (chains too);
an edit starts from the first frame with the source's prompt revised; bad videos are 4xx and
change nothing."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from i2v_testing.paths import EXAMPLES
from i2v_testing.videos import (
    audio_only_mp4,
    decode,
    make_video,
    mean_difference,
    moving_frames,
)

TINY = {"num_inference_steps": 1}
# Frames coded twice (the source's MP4, then the extension's) stay within this of each other.
CODEC_TOLERANCE = 8.0
CLIP_MP4 = make_video(moving_frames(16, 64, 64), fps=8)


@pytest.fixture(scope="module")
def client(service):
    return service.client(timeout=120)


@pytest.fixture(scope="module")
def source(client):
    """One of ours: 8 frames of 64x64 at 8 fps."""
    with (EXAMPLES / "cup.jpg").open("rb") as picture:
        video = client.videos.create_and_poll(
            prompt="展示这个杯子旋转",
            input_reference=picture,
            size="64x64",
            extra_body={"num_frames": 8, "fps": 8, "seed": 31337, **TINY},
        )
    assert video.status == "completed", video.error
    return video


def content(client, video_id: str) -> bytes:
    return client.videos.download_content(video_id).read()


def completed(client, video) -> openai.types.Video:
    done = client.videos.poll(video.id)
    assert done.status == "completed", done.error
    return done


def assert_begins_with(frames: np.ndarray, prefix: np.ndarray) -> None:
    for index, (ours, theirs) in enumerate(zip(frames, prefix, strict=False)):
        assert mean_difference(ours, theirs) < CODEC_TOLERANCE, f"frame {index}"


def test_extend_by_id_then_extend_the_extension(client, service, source):
    source_frames, _ = decode(content(client, source.id))
    assert len(source_frames) == 8

    extension = client.videos.extend(
        prompt="keep turning",
        seconds="4",
        video=openai.omit,
        extra_body={"video[id]": source.id},
    )
    assert extension.model_extra["operation"] == "extension"
    assert extension.model_extra["source_video_id"] == source.id
    extension = completed(client, extension)
    frames, fps = decode(content(client, extension.id))
    new = extension.model_extra["plan"]["params"]["num_frames"]
    assert new == 32  # 4 s at 8 fps plus the repeated frame, clamped to the limit
    assert len(frames) == 8 + new - 1 and fps == 8.0
    assert frames.shape[1:3] == (64, 64)
    assert_begins_with(frames, source_frames)
    # The plan continued the source's prompt.
    plan = next(t for t in extension.model_extra["trace"] if t["stage"] == "plan")
    assert plan["detail"]["reason"].startswith("follow-up revision of the last prompt")
    source_prompt = source.model_extra["plan"]["prompt"]
    assert extension.model_extra["plan"]["prompt"].split(",")[0] == source_prompt.split(",")[0]
    job = service.jobs.get(extension.id)
    assert (job.operation, job.source_video_id) == ("extension", source.id)

    chained = completed(
        client,
        client.videos.extend(
            prompt="slower",
            seconds="1",
            video=openai.omit,
            extra_body={"video": {"id": extension.id}},  # sent as the same video[id] field
        ),
    )
    chain_frames, _ = decode(content(client, chained.id))
    assert len(chain_frames) == len(frames) + 8  # 1 s at 8 fps
    assert_begins_with(chain_frames, frames)


def test_extend_an_uploaded_mp4(client, tmp_path):
    clip = moving_frames(8, 64, 64)
    path = tmp_path / "clip.mp4"
    path.write_bytes(make_video(clip, fps=8))
    with path.open("rb") as upload:
        extension = client.videos.extend(
            prompt="the colours keep shifting",
            seconds="1",
            video=upload,
            extra_body={"category": "still_life", **TINY},
        )
    assert extension.model_extra["source_video_id"] is None
    extension = completed(client, extension)
    frames, fps = decode(content(client, extension.id))
    uploaded, _ = decode(path.read_bytes())
    assert fps == 8.0 and len(frames) == 8 + 8
    assert_begins_with(frames, uploaded)
    source = next(t for t in extension.model_extra["trace"] if t["stage"] == "source")
    assert source["decision"] == "upload" and source["detail"]["frame"] == "last"


def test_edit_by_id_revises_the_prompt_from_the_first_frame(client, service, source):
    edit = completed(
        client,
        client.videos.edit(
            prompt="now make it rain", video=openai.omit, extra_body={"video[id]": source.id}
        ),
    )
    assert edit.model_extra["operation"] == "edit"
    plan = edit.model_extra["plan"]
    assert "rain" in plan["prompt"]
    assert plan["prompt"].split(",")[0] == source.model_extra["plan"]["prompt"].split(",")[0]
    assert plan["params"]["seed"] == source.model_extra["plan"]["params"]["seed"]
    assert (plan["params"]["width"], plan["params"]["height"]) == (64, 64)
    frames, _ = decode(content(client, edit.id))
    assert len(frames) == plan["params"]["num_frames"]  # a new video, nothing prepended
    # The job started from the source video's first frame.
    source_first = decode(content(client, source.id))[0][0]
    job = service.jobs.get(edit.id)
    picture = np.asarray(Image.open(service.artifacts.image_path(job.image_name)))
    assert mean_difference(picture, source_first) < 1
    assert job.prefix_video is None


def test_edit_an_uploaded_video_given_as_bytes(client):
    clip = make_video(moving_frames(8, 64, 64), fps=8)
    edit = completed(
        client,
        client.videos.edit(
            prompt="make it snow",
            video=("clip.mp4", clip, "video/mp4"),
            extra_body={"category": "landscape", **TINY},
        ),
    )
    assert edit.model_extra["source_video_id"] is None
    frames, _ = decode(content(client, edit.id))
    assert len(frames) == edit.model_extra["plan"]["params"]["num_frames"]
    assert "snow" in edit.model_extra["plan"]["prompt"]


@pytest.mark.parametrize(
    ("video", "code"),
    [
        (("notes.txt", b"not a video\n" * 20, "text/plain"), "unsupported_video_format"),
        (("cut.mp4", CLIP_MP4[: len(CLIP_MP4) // 2], "video/mp4"), "invalid_video"),
        (("sound.mp4", audio_only_mp4(), "video/mp4"), "no_video_stream"),
        (("empty.mp4", b"", "video/mp4"), "invalid_video"),
    ],
    ids=["text", "truncated", "audio-only", "empty"],
)
def test_bad_uploads_are_400_and_change_nothing(client, service, video, code):
    before = service.snapshot()
    for call in (
        lambda: client.videos.extend(prompt="go on", seconds="4", video=video),
        lambda: client.videos.edit(prompt="rain", video=video),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        error = caught.value.body
        assert (error["param"], error["code"]) == ("video", code)
    assert service.snapshot() == before


def test_an_unknown_id_is_404_and_no_video_at_all_400(client, service):
    before = service.snapshot()
    with pytest.raises(openai.NotFoundError) as caught:
        client.videos.extend(
            prompt="go on", seconds="4", video=openai.omit, extra_body={"video[id]": "video_nope"}
        )
    assert caught.value.body["param"] == "video[id]"
    # A multipart body naming neither form is a 400 that says what to send.
    response = httpx.post(
        f"{service.base_url}/v1/videos/edits", files={"prompt": (None, "rain")}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_required_parameter"
    assert service.snapshot() == before


def test_the_extension_survives_its_source_being_deleted(client, service):
    with (EXAMPLES / "cup.jpg").open("rb") as picture:
        own = client.videos.create_and_poll(
            prompt="spin",
            input_reference=picture,
            size="64x64",
            extra_body={"num_frames": 4, "fps": 8, "seed": 7, **TINY},
        )
    extension = client.videos.extend(
        prompt="more", seconds="1", video=openai.omit, extra_body={"video[id]": own.id}
    )
    client.videos.delete(own.id)  # possibly before the extension ran
    extension = completed(client, extension)
    frames, _ = decode(content(client, extension.id))
    assert len(frames) == 4 + 8
    prefix = service.artifacts.source_video_path(service.jobs.get(extension.id).prefix_video)
    client.videos.delete(extension.id)
    assert not prefix.exists()
