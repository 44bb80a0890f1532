"""Through the real service: `download_content(variant="spritesheet")` gives a JPEG grid of the
video's frames, and once a video's `expires_at` has passed the retention sweeper removes its
files: the Video reads as expired, its content answers 410, nothing else is lost."""

from __future__ import annotations

import io
import time

import numpy as np
import openai
import pytest
from PIL import Image

from tests.integration.test_videos_api import decoded_frames, small_job, wait_for


def test_spritesheet_is_a_grid_of_the_videos_frames_first_to_last(service):
    client = service.client()
    video = client.videos.poll(small_job(client, num_frames=8).id)
    assert video.status == "completed", video.error
    frames = decoded_frames(client.videos.download_content(video.id).read())

    response = client.videos.with_raw_response.download_content(video.id, variant="spritesheet")
    assert response.headers["content-type"] == "image/jpeg"
    sheet = Image.open(io.BytesIO(response.content))
    assert sheet.format == "JPEG"
    height, width = frames[0].shape[:2]
    assert sheet.size == (3 * width, 3 * height)  # 8 frames: a 3x3 grid of full-size tiles
    tiles = np.asarray(sheet.convert("RGB"), dtype=float)
    first, last = tiles[:height, :width], tiles[2 * height :, width : 2 * width]
    # Tile 0 is the first frame, tile 7 the last (JPEG over H.264: a loose tolerance).
    assert np.abs(first - frames[0]).mean() < 12
    assert np.abs(last - frames[-1]).mean() < 12


def test_an_expired_video_keeps_its_record_and_loses_its_files(service):
    client = service.client()
    video = client.videos.poll(small_job(client).id)
    assert video.status == "completed", video.error
    assert video.expires_at is not None and video.expires_at > time.time()
    remix = client.videos.poll(client.videos.remix(video.id, prompt="slower").id)
    assert remix.status == "completed", remix.error

    with service.jobs.engine.begin() as connection:  # as if the retention had passed
        connection.exec_driver_sql(
            "UPDATE jobs SET expires_at = ? WHERE id = ?", (time.time() - 1, video.id)
        )
    wait_for(lambda: client.videos.retrieve(video.id).model_extra["expired"], timeout_s=30)

    expired = client.videos.retrieve(video.id)
    assert expired.status == "completed" and expired.expires_at < time.time()
    for variant in ("video", "thumbnail", "spritesheet"):
        with pytest.raises(openai.APIStatusError) as caught:
            client.videos.download_content(video.id, variant=variant)
        assert caught.value.status_code == 410
        assert caught.value.body["code"] == "video_expired"
    assert not any(p.exists() for p in service.artifacts.output_paths(video.id))
    # Nothing else is lost: the row is listed, the remix plays, the picture stays.
    assert video.id in [v.id for v in client.videos.list(limit=100)]
    assert len(decoded_frames(client.videos.download_content(remix.id).read())) == 8
    assert service.artifacts.image_path(service.jobs.get(video.id).image_name).exists()
