"""The progress stream through Ray Serve's HTTP proxy against the running tiny service: an SSE
client sees the denoising steps as increasing progress values and then the final Video, and the
stream ends; a client that connects late starts from the current state; several streams on one
job all follow it; another project's video is 404; a client that goes away frees its place."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import pytest
import redis

from deployments.ingress.events import SLOTS_PREFIX
from i2v_cli.events import EventParser, ServerEvent
from i2v_testing.jobs import make_job
from i2v_testing.paths import EXAMPLES

pytestmark = [pytest.mark.serve, pytest.mark.timeout(240)]

_seeds = itertools.count(int(time.time()) % 100_000 * 10 + 3)
STEPS = 30  # ~one progress value per step, long enough that the stream opens before the end


def create(service, steps: int = STEPS) -> dict:
    response = httpx.post(
        f"{service.base_url}/v1/videos",
        data={
            "prompt": "展示这个杯子旋转",
            "size": "64x64",
            "num_frames": "4",
            "num_inference_steps": str(steps),
            "seed": str(next(_seeds)),
        },
        files={"input_reference": ("cup.jpg", (EXAMPLES / "cup.jpg").read_bytes(), "image/jpeg")},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def follow(
    client: httpx.AsyncClient, video_id: str, first: asyncio.Event | None = None
) -> list[ServerEvent]:
    """Every event of one stream, until the service ends it."""
    events: list[ServerEvent] = []
    parser = EventParser()
    async with client.stream("GET", f"/v1/videos/{video_id}/events") as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is not None:
                events.append(event)
                if first is not None and event.event == "progress":
                    first.set()
    return events


def check_stream(events: list[ServerEvent], video_id: str) -> list[int]:
    """Progress increasing, ids increasing, exactly one final Video at the end."""
    *changes, final = events
    assert final.event == "video", [e.event for e in events]
    video = final.json()
    assert video["id"] == video_id and video["object"] == "video"
    assert video["status"] == "completed" and video["progress"] == 100
    assert all(e.event in ("status", "progress") for e in changes)
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(ids)
    running = [e.json()["progress"] for e in changes if e.json()["status"] == "in_progress"]
    assert running == sorted(running) and len(set(running)) == len(running)
    return running


def test_a_client_sees_every_step_in_order_then_the_video(service):
    video = create(service)

    async def scenario() -> tuple[list[ServerEvent], list[ServerEvent], list[list[ServerEvent]]]:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as client:
            started = asyncio.Event()
            early = asyncio.create_task(follow(client, video["id"], started))
            others = [asyncio.create_task(follow(client, video["id"])) for _ in range(8)]
            await asyncio.wait_for(started.wait(), 60)
            late = await follow(client, video["id"])  # joins while the job runs
            return await early, late, await asyncio.gather(*others)

    early, late, others = asyncio.run(scenario())
    running = check_stream(early, video["id"])
    assert len(running) >= 5, running  # the denoising steps, not just the row's writes
    assert running[-1] < 100
    assert all(e.json()["published_at"] for e in early[1:-1])
    # The late client's first event is the state at the moment it connected, then onwards.
    first = late[0]
    if first.event != "video":
        assert first.event == "status" and first.json()["status"] == "in_progress"
        assert first.json()["progress"] >= running[0]
    check_stream(late, video["id"])
    for events in others:
        check_stream(events, video["id"])


def test_another_projects_video_is_404_like_a_missing_one(service):
    other = service.jobs.create(make_job(project="another-project"))
    for video_id in (other.id, "video_does_not_exist"):
        response = httpx.get(f"{service.base_url}/v1/videos/{video_id}/events", timeout=30)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "video_not_found"
    service.jobs.fail(other.id, "cancelled", "test over")


def _open_stream_places(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    now = time.time()
    return sum(
        client.zcount(key, now, "+inf") for key in client.scan_iter(f"{SLOTS_PREFIX}replica:*")
    )


def test_a_client_that_goes_away_frees_its_place(service):
    """Ray Serve's proxy tells the replica when the client leaves: the stream ends there too."""
    queued = service.jobs.create(make_job())  # never enqueued: its stream would stay open
    redis_url = service.config.queue.redis_url
    before = _open_stream_places(redis_url)
    try:
        with httpx.stream(
            "GET", f"{service.base_url}/v1/videos/{queued.id}/events", timeout=30
        ) as response:
            # One iterator for the whole block: an abandoned line iterator is closed when it is
            # collected, and httpx then closes the connection (the client would leave early).
            lines = response.iter_lines()
            parser = EventParser()
            event = None
            while event is None:
                event = parser.feed(next(lines))
            assert event.event == "status"
            assert event.json() | {"published_at": None} == {
                "id": queued.id,
                "object": "video.progress",
                "status": "queued",
                "progress": 0,
                "published_at": None,
            }
            assert _open_stream_places(redis_url) == before + 1
        deadline = time.monotonic() + 20
        while _open_stream_places(redis_url) > before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _open_stream_places(redis_url) == before
    finally:
        service.jobs.fail(queued.id, "cancelled", "test over")


def test_i2v_create_follows_the_stream(service, capsys, tmp_path, monkeypatch):
    """`i2v create` learns the end from the progress stream, not by polling."""
    from i2v_cli import client
    from i2v_cli.main import main

    followed: list = []
    original = client.Service.follow

    def spy(self, video_id, on_update=None):
        final = original(self, video_id, on_update)
        followed.append(final)
        return final

    monkeypatch.setattr(client.Service, "follow", spy)
    target = tmp_path / "cup.mp4"
    code = main(
        [
            *["create", str(EXAMPLES / "cup.jpg"), "make it spin", "-o", str(target)],
            *["--size", "64x64", "--num-frames", "4", "--steps", "4"],
            *["--seed", str(next(_seeds)), "--base-url", service.base_url],
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(followed) == 1 and followed[0]["status"] == "completed"
    assert target.stat().st_size > 0
