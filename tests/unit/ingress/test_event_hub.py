"""The progress stream without Ray: `build_api` served by uvicorn on 127.0.0.1 over a real Redis
and SQLite, jobs changed through the JobStore's real paths (start, announce, set_progress,
complete), which publish as the generator's do. SSE framing, order, late clients, resume,
keep-alives, the bounds (429, and no count left behind), one subscription per replica, and a
Redis connection lost and found again."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import uvicorn

from deployments.ingress.auth import OPEN, Caller
from deployments.ingress.events import EventHub, last_event_id
from deployments.ingress.routes import build_api
from deployments.ingress.services import build_services
from i2v_cli.events import EventParser, ServerEvent
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.events import JobEventPublisher
from i2v_core.jobs import JobStore
from i2v_testing.jobs import make_job
from i2v_testing.servers import free_port
from serve_app.config import AppConfig

pytestmark = pytest.mark.timeout(60)

EVENTS = {"heartbeat_s": 0.3, "resync_s": 30, "max_streams_per_key": 2}


async def _unavailable(*_):
    raise APIError(503, "not in this test", code="unavailable")


async def _ready() -> dict[str, bool]:
    return {"database": True}


class Served:
    def __init__(self, base_url: str, jobs: JobStore, hub: EventHub, redis_url: str):
        self.base_url = base_url
        self.jobs = jobs
        self.hub = hub
        self.redis = redis.Redis.from_url(redis_url)


@pytest.fixture(scope="module")
def served(tmp_path_factory, redis_server) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("events")
    config = AppConfig.model_validate(
        {"queue": {"redis_url": redis_server.url}, "events": EVENTS}
    ).ingress_config()
    jobs = JobStore(
        f"sqlite:///{folder / 'jobs.db'}", on_change=JobEventPublisher(redis_server.url)
    )
    services = build_services(
        config,
        jobs,
        ArtifactStore(str(folder / "artifacts")),
        classify=_unavailable,
        plan=_unavailable,
        enqueue=_unavailable,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_api(config, services, _ready),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield Served(f"http://127.0.0.1:{port}", jobs, services.events, redis_server.url)
    server.should_exit = True
    thread.join(timeout=10)
    jobs.close()


class Stream:
    """One client of the route: the events as they come, comments counted."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.lines = response.iter_lines()
        self.parser = EventParser()
        self.comments = 0

    def next(self) -> ServerEvent | None:
        """The next event; None when the stream ended."""
        for line in self.lines:
            if line.startswith(":"):
                self.comments += 1
            event = self.parser.feed(line)
            if event is not None:
                return event
        return None


@contextmanager
def stream(served: Served, video_id: str, **headers: str) -> Iterator[Stream]:
    with httpx.stream(
        "GET",
        f"{served.base_url}/v1/videos/{video_id}/events",
        headers=headers,
        timeout=httpx.Timeout(10.0),
    ) as response:
        yield Stream(response)


def queued(served: Served, project: str = "") -> str:
    return served.jobs.create(make_job(project=project)).id


def progress_of(event: ServerEvent) -> tuple[str, str, int]:
    data = event.json()
    return event.event, data["status"], data["progress"]


def test_a_finished_video_is_one_video_event_then_the_end(served):
    video_id = queued(served)
    served.jobs.start(video_id)
    served.jobs.complete(video_id, {"generate": 1.0}, [])
    with stream(served, video_id) as events:
        assert events.response.status_code == 200
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.response.headers["cache-control"] == "no-cache"
        raw = events.response.read().decode()
    assert raw.startswith("event: video\ndata: {")
    event_id = JobEventPublisher(served.hub._redis_url).last_id(video_id)
    assert raw.endswith(f"\nid: {event_id}\n\n")
    data = json.loads(raw.split("\n")[1].removeprefix("data: "))
    assert data["object"] == "video" and data["status"] == "completed"
    assert data["progress"] == 100 and data["id"] == video_id


def test_every_change_in_order_then_the_final_video(served):
    video_id = queued(served)
    with stream(served, video_id) as events:
        first = events.next()
        assert first is not None and progress_of(first) == ("status", "queued", 0)
        served.jobs.start(video_id)
        for step in (10, 20):
            served.jobs.announce_progress(video_id, step)
        served.jobs.set_progress(video_id, 30)
        served.jobs.announce_progress(video_id, 30)  # the same value again: not sent twice
        served.jobs.announce_progress(video_id, 45)
        served.jobs.complete(video_id, {"generate": 1.0}, [])
        seen = []
        while (event := events.next()) is not None:
            seen.append(event)
    assert [progress_of(e) for e in seen[:-1]] == [
        ("status", "in_progress", 0),
        ("progress", "in_progress", 10),
        ("progress", "in_progress", 20),
        ("progress", "in_progress", 30),
        ("progress", "in_progress", 45),
    ]
    assert all(e.json()["published_at"] > time.time() - 60 for e in seen[:-1])
    final = seen[-1]
    assert final.event == "video" and final.json()["status"] == "completed"
    ids = [int(first.id or 0)] + [int(e.id or 0) for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_late_client_gets_the_current_state_first(served):
    video_id = queued(served)
    served.jobs.start(video_id)
    served.jobs.set_progress(video_id, 40)
    newest = JobEventPublisher(served.hub._redis_url).last_id(video_id)
    with stream(served, video_id) as events:
        first = events.next()
        assert first is not None and progress_of(first) == ("status", "in_progress", 40)
        assert first.id == str(newest)
        assert first.json()["published_at"] is None
        served.jobs.fail(video_id, "boom", "it broke")
        final = events.next()
        assert final is not None and final.event == "video"
        assert final.json()["error"] == {"code": "boom", "message": "it broke"}
        assert events.next() is None


def test_last_event_id_skips_what_the_client_has(served):
    video_id = queued(served)
    served.jobs.start(video_id)
    served.jobs.set_progress(video_id, 20)
    newest = JobEventPublisher(served.hub._redis_url).last_id(video_id)
    with stream(served, video_id, **{"Last-Event-ID": str(newest)}) as events:
        time.sleep(0.2)  # the stream is open: the next change is the first thing it hears
        served.jobs.announce_progress(video_id, 25)
        first = events.next()
        assert first is not None and progress_of(first) == ("progress", "in_progress", 25)
        assert int(first.id or 0) == newest + 1
    with stream(served, video_id, **{"Last-Event-ID": str(newest - 1)}) as events:
        first = events.next()  # an older id: the current state again
        assert first is not None and progress_of(first) == ("status", "in_progress", 20)
    served.jobs.complete(video_id, {}, [])
    assert last_event_id("12") == 12 and last_event_id("x1") is None and last_event_id(None) is None


def test_idle_streams_send_keep_alive_comments(served):
    video_id = queued(served)
    with stream(served, video_id) as events:
        assert events.next() is not None
        started = time.monotonic()
        lines = [next(events.lines) for _ in range(4)]
        assert lines == [": keep-alive", "", ": keep-alive", ""]
        assert time.monotonic() - started >= EVENTS["heartbeat_s"]
    served.jobs.fail(video_id, "cancelled", "done with it")


def test_another_projects_video_and_a_missing_one_are_404(served):
    other = queued(served, project="someone-else")
    for video_id in (other, "video_missing"):
        response = httpx.get(f"{served.base_url}/v1/videos/{video_id}/events", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "video_not_found"


def test_a_deleted_video_ends_its_stream_with_an_error_event(served):
    video_id = queued(served)
    with stream(served, video_id) as events:
        assert events.next() is not None
        served.jobs.fail(video_id, "cancelled", "Cancelled by a DELETE request.")
        served.jobs.delete(video_id)
        last = events.next()
    # The failure may be read before or after the row is gone: the Video or the 404 body.
    assert last is not None and last.event in ("video", "error")
    if last.event == "error":
        assert last.json()["error"]["code"] == "video_not_found"


def _count(served: Served) -> int:
    return asyncio.run(_count_async(served))


async def _count_async(served: Served) -> int:
    client = aioredis.Redis.from_url(served.hub._redis_url)
    try:
        bucket = served.hub._bucket(OPEN)
        await client.zremrangebyscore(bucket, "-inf", time.time())
        return int(await client.zcard(bucket))
    finally:
        await client.aclose()


def test_over_the_bound_is_429_and_a_closed_stream_frees_its_place(served):
    video_id = queued(served)
    with stream(served, video_id) as one, stream(served, video_id) as two:
        assert one.next() is not None and two.next() is not None
        assert _count(served) == 2
        response = httpx.get(f"{served.base_url}/v1/videos/{video_id}/events", timeout=10)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "too_many_streams"
        assert response.headers["retry-after"]
    deadline = time.monotonic() + 10  # the server notices the disconnects at the next beat
    while _count(served) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _count(served) == 0 and served.hub.open_streams == 0
    with stream(served, video_id) as again:
        assert again.next() is not None
    served.jobs.fail(video_id, "cancelled", "done with it")


def test_one_subscription_fans_out_to_every_stream(served):
    video_id = queued(served)
    with stream(served, video_id) as one, stream(served, video_id) as two:
        assert one.next() is not None and two.next() is not None
        assert served.redis.execute_command("PUBSUB", "NUMPAT") == 1
        served.jobs.start(video_id)
        served.jobs.complete(video_id, {}, [])
        for events in (one, two):
            assert progress_of(events.next()) == ("status", "in_progress", 0)  # type: ignore[arg-type]
            final = events.next()
            assert final is not None and final.event == "video"


def test_a_lost_redis_connection_resyncs_from_the_row(served):
    video_id = queued(served)
    served.jobs.start(video_id)
    with stream(served, video_id) as events:
        assert events.next() is not None
        before = served.hub.reconnects
        served.redis.client_kill_filter(_type="pubsub")
        served.jobs.set_progress(video_id, 60)  # published while nobody may be listening
        event = events.next()
        assert event is not None and progress_of(event) == ("progress", "in_progress", 60)
        assert served.hub.reconnects == before + 1
        served.jobs.complete(video_id, {}, [])
        final = events.next()
        assert final is not None and final.event == "video"


def test_a_keys_streams_are_counted_across_replicas(redis_server, tmp_path):
    """Two hubs (two ingress replicas) share a key's count in Redis; another key has its own."""
    config = AppConfig.model_validate({"events": EVENTS}).events
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    video_id = jobs.create(make_job(project="p")).id
    key, other = Caller(project="p", key_id="k1"), Caller(project="p", key_id="k2")

    async def scenario() -> None:
        one = EventHub(config, redis_server.url, jobs)
        two = EventHub(config, redis_server.url, jobs)
        try:
            a = await one.open(video_id, key)
            b = await two.open(video_id, key)
            with pytest.raises(APIError) as refused:
                await one.open(video_id, key)
            assert refused.value.status_code == 429
            c = await two.open(video_id, other)
            assert await one.count_streams(key) == 2 and await one.count_streams(other) == 1
            with pytest.raises(APIError) as missing:
                await two.open("video_missing", other)
            assert missing.value.status_code == 404
            assert await one.count_streams(other) == 1  # a refused stream takes no place
            for opened in (a, b, c):
                await opened.close()
            assert await one.count_streams(key) == 0 and await two.count_streams(other) == 0
            assert one.open_streams == two.open_streams == 0
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())
    jobs.close()


def _follow_in_thread(served: Served, video_id: str) -> tuple[threading.Thread, list, dict]:
    from i2v_cli.client import Service

    updates: list[tuple[str, int]] = []
    result: dict = {}

    def run() -> None:
        service = Service(served.base_url, timeout_s=10)
        try:
            result["final"] = service.wait(
                video_id, on_update=lambda v: updates.append((v["status"], v["progress"]))
            )
        finally:
            service.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, updates, result


def test_the_cli_follows_the_stream(served):
    video_id = queued(served)
    thread, updates, result = _follow_in_thread(served, video_id)
    deadline = time.monotonic() + 10
    while not updates and time.monotonic() < deadline:
        time.sleep(0.02)
    served.jobs.start(video_id)
    for step in (12, 24, 36):
        served.jobs.announce_progress(video_id, step)
    served.jobs.complete(video_id, {}, [])
    thread.join(timeout=20)
    assert result["final"]["status"] == "completed"
    assert updates == [
        ("queued", 0),
        ("in_progress", 0),
        ("in_progress", 12),
        ("in_progress", 24),
        ("in_progress", 36),
        ("completed", 100),
    ]


def test_the_cli_polls_when_the_stream_is_refused(served):
    video_id = queued(served)
    with stream(served, video_id) as one, stream(served, video_id) as two:
        assert one.next() is not None and two.next() is not None  # the bound is reached
        thread, updates, result = _follow_in_thread(served, video_id)
        deadline = time.monotonic() + 10
        while not updates and time.monotonic() < deadline:
            time.sleep(0.02)
        assert updates[0] == ("queued", 0)  # from GET /v1/videos/{id}
        served.jobs.start(video_id)
        served.jobs.complete(video_id, {}, [])
        thread.join(timeout=20)
    assert result["final"]["status"] == "completed"


def test_the_openapi_document_describes_the_stream(served):
    document = httpx.get(f"{served.base_url}/openapi.json", timeout=10).json()
    operation = document["paths"]["/v1/videos/{video_id}/events"]["get"]
    assert {"200", "400", "404", "429", "503"} <= set(operation["responses"])
    assert "Last-Event-ID" in {p["name"] for p in operation["parameters"]}
    stream = operation["responses"]["200"]["content"]["text/event-stream"]
    item = stream["itemSchema"]["properties"]
    assert item["event"]["enum"] == ["status", "progress", "video", "error"]
    data = item["data"]["contentSchema"]["oneOf"]
    assert data[0]["title"] == "VideoProgress"
    assert {"$ref": "#/components/schemas/Video"} in data
    error = operation["responses"]["429"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorResponse"}


def test_a_stream_bound_that_would_fill_the_ingress_is_refused():
    with pytest.raises(ValueError, match="max_streams_per_replica"):
        AppConfig.model_validate(
            {
                "events": {"max_streams_per_replica": 300},
                "deployments": {"Ingress": {"max_ongoing_requests": 256}},
            }
        )
