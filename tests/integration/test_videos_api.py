"""The Videos API through the official `openai` client against the running service."""

from __future__ import annotations

import io
import itertools
import time

import av
import httpx
import openai
import pytest
from PIL import Image

from i2v_testing.paths import EXAMPLES


def decoded_frames(data: bytes) -> list:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def decode_mp4(data: bytes) -> tuple[int, int, int, float]:
    """(frames, width, height, fps) as a standard decoder reads them."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        return len(frames), frames[0].width, frames[0].height, float(stream.average_rate)


_seeds = itertools.count(1000)


def small_job(client, image="cup.jpg", prompt="展示这个杯子旋转", **extra):
    """A quick job; each call gets a fresh seed unless one is given, so none hits the cache."""
    with (EXAMPLES / image).open("rb") as handle:
        return client.videos.create(
            prompt=prompt,
            input_reference=handle,
            size="64x64",
            extra_body={"num_frames": 8, "num_inference_steps": 2, "seed": next(_seeds), **extra},
        )


def test_create_poll_download_list_remix_delete(service):
    client = service.client()
    with (EXAMPLES / "cup.jpg").open("rb") as handle:
        video = client.videos.create(prompt="展示这个杯子旋转", input_reference=handle)
    assert video.status == "queued"
    assert video.progress == 0
    extra = video.model_extra
    assert extra["plan"]["prompt"].isascii() and "rotating" in extra["plan"]["prompt"]
    assert extra["category"] in ("person", "animal", "landscape", "still_life")
    assert abs(sum(extra["category_scores"].values()) - 1) < 1e-4

    done = client.videos.poll(video.id)
    assert done.status == "completed", done.error
    assert done.progress == 100
    assert done.completed_at >= done.created_at
    params = done.model_extra["plan"]["params"]
    assert done.size == f"{params['width']}x{params['height']}"
    timings = done.model_extra["timings"]
    assert {"classify", "plan", "queue_wait", "generate", "encode", "total"} <= set(timings)

    content = client.videos.download_content(video.id).read()
    frames, width, height, fps = decode_mp4(content)
    assert (frames, width, height) == (params["num_frames"], params["width"], params["height"])
    assert fps == pytest.approx(params["fps"])

    thumbnail = client.videos.download_content(video.id, variant="thumbnail").read()
    assert Image.open(io.BytesIO(thumbnail)).size == (params["width"], params["height"])

    listed = [v.id for v in client.videos.list(limit=100)]
    assert video.id in listed

    remix = client.videos.remix(video.id, prompt="slower")
    assert remix.remixed_from_video_id == video.id
    remix_done = client.videos.poll(remix.id)
    assert remix_done.status == "completed", remix_done.error
    assert remix_done.model_extra["plan"]["params"]["seed"] == params["seed"]

    deleted = client.videos.delete(video.id)
    assert deleted.deleted and deleted.id == video.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    assert not service.artifacts.video_path(video.id).exists()
    # The remix still uses the picture, so the content-addressed image stays.
    assert service.artifacts.image_path(service.jobs.get(remix.id).image_name).exists()


def test_create_and_poll_honours_extension_fields(service):
    client = service.client()
    with (EXAMPLES / "cat.jpg").open("rb") as handle:
        video = client.videos.create_and_poll(
            prompt="make the cat blink slowly",
            input_reference=handle,
            size="128x64",
            extra_body={
                "num_frames": 6,
                "num_inference_steps": 3,
                "guidance_scale": 7.5,
                "fps": 6,
                "seed": 11,
                "category": "animal",
                "session_id": "s-1",
            },
        )
    assert video.status == "completed", video.error
    plan = video.model_extra["plan"]
    assert plan["params"] == {
        "width": 128,
        "height": 64,
        "num_frames": 6,
        "num_inference_steps": 3,
        "guidance_scale": 7.5,
        "fps": 6,
        "seed": 11,
    }
    assert video.model_extra["category"] == "animal"
    assert video.model_extra["session_id"] == "s-1"
    assert video.seconds == "1"
    frames, width, height, fps = decode_mp4(client.videos.download_content(video.id).read())
    assert (frames, width, height, fps) == (6, 128, 64, 6.0)


def test_progress_moves_between_0_and_100(service):
    client = service.client()
    video = small_job(client, num_inference_steps=50, num_frames=16)
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = client.videos.retrieve(video.id)
        seen.add(current.progress)
        if current.status in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert current.status == "completed", current.error
    assert any(0 < p < 100 for p in seen), seen


def test_list_pages_with_after_and_order(service):
    client = service.client()
    ids = [small_job(client).id for _ in range(3)]
    for video_id in ids:
        client.videos.poll(video_id)
    newest_first = [v.id for v in client.videos.list(limit=100, order="desc")]
    assert [i for i in newest_first if i in ids] == ids[::-1]
    page = client.videos.list(limit=1, order="asc", after=ids[0])
    assert [v.id for v in page.data] == [ids[1]]
    assert page.has_more
    # The SDK follows `last_id` to walk every page.
    walked = [v.id for v in client.videos.list(limit=1, order="asc", after=ids[0])]
    assert walked[:2] == ids[1:]


def test_identical_seeded_request_is_served_from_the_result_cache(service):
    client = service.client()
    first = client.videos.poll(small_job(client, seed=3).id)
    again = small_job(client, seed=3)
    assert again.status == "completed" and again.progress == 100  # at once, no queueing
    hit = [t for t in again.model_extra["trace"] if t["stage"] == "cache"]
    assert hit == [{"stage": "cache", "decision": "hit", "detail": {"source_video_id": first.id}}]
    other = client.videos.poll(small_job(client, seed=4).id)
    assert not any(t["stage"] == "cache" for t in other.model_extra["trace"])
    videos = [
        decoded_frames(client.videos.download_content(v.id).read()) for v in (first, again, other)
    ]
    assert all((a == b).all() for a, b in zip(videos[0], videos[1], strict=True))
    assert any((a != b).any() for a, b in zip(videos[0], videos[2], strict=True))
    # Deleting the original leaves the cached copy playable.
    client.videos.delete(first.id)
    assert decode_mp4(client.videos.download_content(again.id).read())[0] == 8


def test_request_without_seed_is_never_served_from_cache(service):
    client = service.client()
    ids = []
    for _ in range(2):
        with (EXAMPLES / "cup.jpg").open("rb") as handle:
            video = client.videos.create(
                prompt="展示这个杯子旋转",
                input_reference=handle,
                size="64x64",
                extra_body={"num_frames": 4, "num_inference_steps": 1},
            )
        ids.append(video.id)
    for video_id in ids:
        done = client.videos.poll(video_id)
        assert done.status == "completed"
        assert not any(t["stage"] == "cache" for t in done.model_extra["trace"])
        assert done.model_extra["plan"]["param_sources"]["seed"] == "random"


def test_health_and_readiness(service):
    assert httpx.get(f"{service.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{service.base_url}/readyz", timeout=30)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "classifier": True,
        "router": True,
        "generator": True,
        "database": True,
    }


def test_polling_sends_poll_after_header(service):
    client = service.client()
    video = small_job(client, num_inference_steps=20)
    response = httpx.get(f"{service.base_url}/v1/videos/{video.id}")
    if response.json()["status"] in ("queued", "in_progress"):
        assert response.headers["openai-poll-after-ms"] == "100"
    client.videos.poll(video.id)
    finished = httpx.get(f"{service.base_url}/v1/videos/{video.id}")
    assert "openai-poll-after-ms" not in finished.headers


def wait_for(predicate, timeout_s: float = 120, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError("condition not met in time")


def test_delete_of_running_job_cancels_it_and_it_is_gone(service):
    client = service.client()
    video = small_job(client, num_inference_steps=50, num_frames=16)
    wait_for(lambda: client.videos.retrieve(video.id).progress > 0)
    assert client.videos.delete(video.id).deleted
    with pytest.raises(openai.NotFoundError):  # as OpenAI's API: deleted means gone
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)
    # The replica is free again (its run stopped on finding the row gone) and left no files.
    assert client.videos.poll(small_job(client).id).status == "completed"
    assert not service.artifacts.video_path(video.id).exists()
    assert service.jobs.get(video.id) is None


def test_session_reuses_its_last_picture_and_records_turns(service):
    from i2v_core.jobs import SessionTurn

    client = service.client()
    session = f"s-{time.monotonic_ns()}"
    first = client.videos.poll(small_job(client, image="cat.jpg", session_id=session).id)
    follow_up = client.videos.create(
        prompt="让它动起来",
        size="64x64",
        extra_body={"session_id": session, "num_frames": 4, "num_inference_steps": 1},
    )
    follow_up = client.videos.poll(follow_up.id)
    assert follow_up.status == "completed", follow_up.error
    rows = {r.id: r for r in (service.jobs.get(first.id), service.jobs.get(follow_up.id))}
    assert rows[first.id].image_sha256 == rows[follow_up.id].image_sha256
    assert follow_up.model_extra["category"] == first.model_extra["category"]
    assert any(
        t["stage"] == "picture" and t["decision"] == "session"
        for t in follow_up.model_extra["trace"]
    )
    with service.jobs._session() as db:
        turns = db.query(SessionTurn).filter_by(session_id=session).order_by(SessionTurn.seq).all()
    assert [(t.role, t.video_id) for t in turns] == [
        ("user", None),
        ("assistant", first.id),
        ("user", None),
        ("assistant", follow_up.id),
    ]
    assert turns[2].text == "让它动起来"
    assert turns[3].prompt == follow_up.model_extra["plan"]["prompt"]


def test_follow_up_without_picture_or_session_is_400(service):
    before = service.snapshot()
    response = httpx.post(
        f"{service.base_url}/v1/videos",
        data={"prompt": "让它动起来", "session_id": "never-seen"},
        files={},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input_reference"
    assert service.snapshot() == before
