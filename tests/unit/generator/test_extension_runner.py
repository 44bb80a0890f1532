"""Extensions in the JobRunner, on the tiny weights with a real SQLite job store: the stored source
video's frames, then the generated ones after the first, in one MP4 (and its thumbnail and
spritesheet); a source of another size is scaled, a sideways one turned; a missing one fails."""

from __future__ import annotations

import hashlib

import av
import numpy as np
import pytest
from PIL import Image

from deployments.generator.generation import Generation
from deployments.generator.video import decode_frames, join_extension
from deployments.generator.worker import JobRunner
from i2v_core.artifacts import ArtifactStore
from i2v_core.config import UploadLimits
from i2v_core.jobs import JobStore
from i2v_core.videos import picture_of_frame, validate_video
from i2v_testing.jobs import JOB_PARAMS, make_job
from i2v_testing.videos import (
    decode,
    make_video,
    mean_difference,
    moving_frames,
    turned_clockwise,
)

SOURCE = moving_frames(8, 64, 64)


@pytest.fixture
def stores(tmp_path):
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield jobs, ArtifactStore(tmp_path / "artifacts")
    jobs.close()


def queued_extension(jobs, artifacts, source: bytes, num_frames: int = 4) -> str:
    """An extension as the ingress leaves it: the source video stored, its last frame as the
    picture, the source's size and frame rate."""
    video = validate_video(source, UploadLimits())
    artifacts.put_source_video(video.name, source)
    picture = picture_of_frame(video.last_frame)
    artifacts.put_image(picture.name, picture.data)
    job = make_job(
        image_sha256=picture.sha256,
        image_name=picture.name,
        params={**JOB_PARAMS, "num_frames": num_frames, "num_inference_steps": 1},
        operation="extension",
        prefix_video=video.name,
    )
    return jobs.create(job).id


def run(engine, stores, job_id: str):
    jobs, artifacts = stores
    return JobRunner(Generation(engine, 1, 0.0), jobs, artifacts, 300).run(job_id)


def test_the_video_is_the_source_then_the_new_frames(engine, stores):
    jobs, artifacts = stores
    source = make_video(SOURCE, fps=8)
    job_id = queued_extension(jobs, artifacts, source, num_frames=4)
    assert run(engine, stores, job_id).status == "completed"

    frames, fps = decode(artifacts.video_path(job_id).read_bytes())
    source_frames, _ = decode(source)
    assert fps == 8.0
    assert len(frames) == 8 + 4 - 1  # the first new frame repeats the source's last one
    for ours, theirs in zip(frames[:8], source_frames, strict=True):
        assert mean_difference(ours, theirs) < 8  # coded twice
    # The thumbnail is the source's first frame; the spritesheet covers the whole video.
    thumbnail = np.asarray(Image.open(artifacts.thumbnail_path(job_id)).convert("RGB"))
    assert mean_difference(thumbnail, source_frames[0]) < 8
    assert artifacts.spritesheet_path(job_id).exists()

    job = jobs.get(job_id)
    [generate] = [t for t in job.trace if t["stage"] == "generate"]
    assert (generate["detail"]["prefix_frames"], generate["detail"]["total_frames"]) == (8, 11)
    assert "decode_source" in job.timings
    assert job.params["num_frames"] == 4  # the generated segment
    # The source stays stored while its job exists (the ingress removes it with the job).
    assert artifacts.source_video_path(job.prefix_video).exists()


def test_a_source_of_another_size_is_scaled_and_a_sideways_one_turned(engine, stores):
    jobs, artifacts = stores
    sideways = turned_clockwise(make_video(moving_frames(6, 96, 64), fps=8))  # shows as 64x96
    job_id = queued_extension(jobs, artifacts, sideways, num_frames=3)
    assert run(engine, stores, job_id).status == "completed"
    with av.open(str(artifacts.video_path(job_id))) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 64)
        assert sum(1 for _ in container.decode(stream)) == 6 + 3 - 1


def test_a_missing_source_video_fails_the_job_and_leaves_no_output(engine, stores):
    jobs, artifacts = stores
    job_id = queued_extension(jobs, artifacts, make_video(SOURCE))
    artifacts.delete_source_video(jobs.get(job_id).prefix_video)
    outcome = run(engine, stores, job_id)
    assert (outcome.status, outcome.code) == ("failed", "source_video_missing")
    assert jobs.get(job_id).error_code == "source_video_missing"
    assert not artifacts.video_path(job_id).exists()
    assert not artifacts.thumbnail_path(job_id).exists()


def test_decode_frames_scales_and_turns(tmp_path):
    path = tmp_path / f"{hashlib.sha256(b'x').hexdigest()}.mp4"
    path.write_bytes(turned_clockwise(make_video(moving_frames(5, 96, 64))))
    upright = decode_frames(path)
    assert upright.shape == (5, 96, 64, 3)
    scaled = decode_frames(path, (32, 48))
    assert scaled.shape == (5, 48, 32, 3)
    expected = np.asarray(Image.fromarray(upright[0]).resize((32, 48), Image.Resampling.BICUBIC))
    assert mean_difference(scaled[0], expected) < 8


def test_join_extension_drops_the_repeated_frame_and_scales_the_prefix():
    prefix = moving_frames(5, 96, 64)
    generated = np.zeros((4, 32, 48, 3), dtype=np.uint8)
    joined = join_extension(prefix, generated)
    assert joined.shape == (5 + 3, 32, 48, 3)
    scaled = np.asarray(Image.fromarray(prefix[0]).resize((48, 32), Image.Resampling.BICUBIC))
    assert np.array_equal(joined[0], scaled)
    assert not joined[5:].any()
    same = join_extension(moving_frames(2, 48, 32), generated)
    assert np.array_equal(same[:2], moving_frames(2, 48, 32))
    with pytest.raises(ValueError):
        join_extension(prefix, generated[:0])
