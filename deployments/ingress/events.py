"""The progress stream, `GET /v1/videos/{id}/events` (Server-Sent Events).

Every committed change of a job's status or progress, and every denoising step, is published
once on Redis pub/sub (`i2v_core/events.py`). Each ingress replica holds one `EventHub`: one
subscriber connection with one pattern subscription (PSUBSCRIBE `i2v:video-events:*`) that hands
each message to the queues of the streams open on that job on this replica. A pattern rather
than a SUBSCRIBE per watched job: it is confirmed once, when the hub starts, so a stream that
registers its queue can never miss an event published after it registered (a per-job SUBSCRIBE
would have to wait for its own confirmation on every stream start), and a message for a job
nobody here watches costs one dictionary lookup. Streams read no database per event.

A stream: register the queue, read the job's newest event id, then its row (in that order: an
event published between the two has an id the stream has already counted, and its change is in
the row, or it was a step announcement the next one supersedes). The row is the first event (id
= that newest id), unless the client's `Last-Event-ID` shows it has it already. Then only events
with larger ids whose (status, progress) differ from the last sent are forwarded (each event's
bytes are encoded once per replica, whatever the number of streams); a final status sends the
Video (`event: video`, the row read once per replica for all its streams on the job), and the
stream ends. A stream that heard nothing for `resync_s`, or whose hub reconnected to Redis,
reads its row once more.

Bounds: a key's open streams are counted across replicas in Redis, a sorted set of stream
tokens scored by their expiry, renewed on every heartbeat and removed when the stream ends (a
replica that dies leaves tokens that expire in a few heartbeats); with auth off the count is
per replica. `max_streams_per_replica` bounds one replica's streams in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import redis.asyncio as aioredis
from fastapi.sse import format_sse_event
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from deployments.ingress.auth import Caller
from deployments.ingress.config import EventsConfig
from deployments.ingress.protocol import VideoProgress, video_of
from i2v_core.domain import TERMINAL_STATUSES, VideoStatus
from i2v_core.errors import APIError, ErrorDetail, ErrorResponse, too_many_requests
from i2v_core.events import CHANNEL_PREFIX, JobEvent, seq_key
from i2v_core.jobs import Job, JobStore

logger = logging.getLogger("ray.serve")

SLOTS_PREFIX = "i2v:event-streams:"
QUEUE_SIZE = 256  # a stream this far behind drops its backlog and reads its row instead
READY_TIMEOUT_S = 5.0
REDIS_CONNECTIONS = 32  # per replica, for the streams' commands (not the subscriber)

# Count a stream in its bucket unless the bucket is full: drop the expired tokens, count, add.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class Change:
    """A job's event as the hub hands it to every stream open on the job: each frame is encoded
    once, by the first stream that sends it, and the others send the same bytes."""

    __slots__ = ("event", "_frames", "_final")

    def __init__(self, event: JobEvent):
        self.event = event
        self._frames: dict[str, bytes] = {}
        self._final: asyncio.Future[bytes] | None = None

    async def final_frame(self, jobs: JobStore) -> bytes:
        """The final Video, read from the row once for all the streams on the job (they all
        passed the project check when they opened)."""
        if self._final is None:
            self._final = asyncio.ensure_future(self._read_final(jobs))
        return await asyncio.shield(self._final)  # one stream leaving stops no other's read

    async def _read_final(self, jobs: JobStore) -> bytes:
        job = await run_in_threadpool(jobs.get, self.event.job_id)
        return _gone_frame(self.event.job_id) if job is None else _video_frame(self.event.id, job)

    def frame(self, name: str) -> bytes:
        frame = self._frames.get(name)
        if frame is None:
            event = self.event
            frame = progress_frame(
                event.id, name, event.job_id, event.status, event.progress, event.at
            )
            self._frames[name] = frame
        return frame


class _Resync:
    """Put in a stream's queue: read the row, events may have been lost."""


RESYNC: Final = _Resync()
QueueItem = Change | _Resync


class EventHub:
    """One per ingress replica: the Redis subscriber and the streams open here. Starts on the
    first stream, in the event loop that serves the requests."""

    def __init__(
        self, config: EventsConfig, redis_url: str, jobs: JobStore, retry_after_s: int = 5
    ):
        self.config = config
        self.jobs = jobs
        self.retry_after_s = retry_after_s
        self._redis_url = redis_url
        self._replica = uuid.uuid4().hex
        self._watchers: dict[str, set[asyncio.Queue[QueueItem]]] = {}
        self._open = 0
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._redis: aioredis.Redis | None = None
        self._acquire: Any = None
        self.reconnects = 0

    @property
    def open_streams(self) -> int:
        return self._open

    @property
    def redis(self) -> aioredis.Redis:
        assert self._redis is not None, "the hub has not started"
        return self._redis

    # --- the subscriber --------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._ready = asyncio.Event()
            # A bounded pool that makes a burst of stream starts wait for a connection (the
            # default pool refuses the 101st at once).
            pool = aioredis.BlockingConnectionPool.from_url(
                self._redis_url,
                max_connections=REDIS_CONNECTIONS,
                timeout=READY_TIMEOUT_S,
                decode_responses=True,
                socket_timeout=5,
                socket_connect_timeout=5,
            )
            self._redis = aioredis.Redis(connection_pool=pool)
            self._acquire = self._redis.register_script(_ACQUIRE)
            self._task = asyncio.get_running_loop().create_task(self._subscribe())
        assert self._ready is not None
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except TimeoutError:
            raise APIError(
                503,
                "The progress stream is unavailable (no connection to Redis); poll "
                "GET /v1/videos/{id} instead.",
                code="events_unavailable",
                headers={"Retry-After": str(self.retry_after_s)},
            ) from None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _subscribe(self) -> None:
        """Holds the pattern subscription; after a Redis error, reconnects with backoff and tells
        every open stream to read its row (what was published meanwhile is lost)."""
        assert self._ready is not None
        backoff = 0.1
        while True:
            client = aioredis.Redis.from_url(
                self._redis_url,
                decode_responses=True,
                socket_connect_timeout=5,
                health_check_interval=max(5.0, self.config.heartbeat_s),
            )
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                while True:
                    # A bounded wait, so the client's health check pings an idle connection.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "pmessage":
                        self._dispatch(message["channel"], message["data"])
                    elif kind == "psubscribe":
                        backoff = 0.1
                        if self._ready.is_set():
                            continue
                        self._ready.set()
                        if self.reconnects:
                            self._resync_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._ready.clear()
                self.reconnects += 1
                logger.warning("event subscriber lost Redis (%r); reconnecting", exc)
                self._resync_all()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass

    def _dispatch(self, channel: str, data: str) -> None:
        queues = self._watchers.get(channel[len(CHANNEL_PREFIX) :])
        if not queues:
            return  # nobody here follows this job
        try:
            event = JobEvent.from_message(channel, data)
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable job event on %s: %r", channel, data[:200])
            return
        change = Change(event)
        for queue in queues:
            _offer(queue, change)

    def _resync_all(self) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                _offer(queue, RESYNC)

    def watch(self, job_id: str, queue: asyncio.Queue[QueueItem]) -> None:
        self._watchers.setdefault(job_id, set()).add(queue)

    def unwatch(self, job_id: str, queue: asyncio.Queue[QueueItem]) -> None:
        queues = self._watchers.get(job_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._watchers[job_id]

    # --- streams ---------------------------------------------------------------------------

    def _bucket(self, caller: Caller) -> str:
        if caller.key_id is not None:
            return f"{SLOTS_PREFIX}key:{caller.key_id}"
        return f"{SLOTS_PREFIX}replica:{self._replica}"

    @property
    def _slot_ttl_s(self) -> float:
        return 3 * self.config.heartbeat_s + 5

    async def open(
        self, video_id: str, caller: Caller, last_event_id: int | None = None
    ) -> VideoStream:
        """A stream on the caller's video, ready to send: 429 over a bound, 404 for a video this
        project cannot see, 503 without Redis. The caller must `close()` it."""
        await self.start()
        if self._open >= self.config.max_streams_per_replica:
            raise too_many_requests(
                "This server has as many progress streams open as it may; poll "
                "GET /v1/videos/{id} or retry later.",
                "too_many_streams",
                self.retry_after_s,
            )
        stream = VideoStream(self, video_id, caller.project, self._bucket(caller), last_event_id)
        self._open += 1
        try:
            if not await stream.acquire(self.config.max_streams_per_key):
                raise too_many_requests(
                    f"This key has {self.config.max_streams_per_key} progress streams open, "
                    "its limit; close one, poll GET /v1/videos/{id}, or retry later.",
                    "too_many_streams",
                    self.retry_after_s,
                )
            self.watch(video_id, stream.queue)
            await stream.read_first()
        except BaseException:
            await stream.close()
            raise
        return stream

    async def count_streams(self, caller: Caller) -> int:
        """The caller's streams counted in its bucket (for tests and benchmarks)."""
        bucket = self._bucket(caller)
        await self.redis.zremrangebyscore(bucket, "-inf", time.time())
        return int(await self.redis.zcard(bucket))


def _offer(queue: asyncio.Queue[QueueItem], item: QueueItem) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:  # a stream far behind: its row tells it where things stand
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(RESYNC)


class VideoStream:
    """One client's stream of one video's events."""

    def __init__(
        self, hub: EventHub, video_id: str, project: str, bucket: str, last_event_id: int | None
    ):
        self.hub = hub
        self.video_id = video_id
        self.project = project
        self.bucket = bucket
        self.last_event_id = last_event_id
        self.token = uuid.uuid4().hex
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue(QUEUE_SIZE)
        self._acquired = False
        self._closed = False
        self._first: tuple[int, Job] | None = None
        self._seen = 0  # the newest event id taken into account
        self._sent: tuple[str, int] = ("", -1)  # the (status, progress) the client has

    async def acquire(self, limit: int) -> bool:
        now = time.time()
        ttl = self.hub._slot_ttl_s
        try:
            got = await self.hub._acquire(
                keys=[self.bucket], args=[now, now + ttl, self.token, limit, int(ttl) + 1]
            )
        except aioredis.RedisError as exc:
            raise events_unavailable(self.hub.retry_after_s) from exc
        self._acquired = bool(got)
        return self._acquired

    async def _renew(self) -> None:
        ttl = self.hub._slot_ttl_s
        try:
            async with self.hub.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self.bucket, {self.token: time.time() + ttl})
                pipe.expire(self.bucket, int(ttl) + 1)
                await pipe.execute()
        except aioredis.RedisError:
            logger.warning("could not renew a progress stream's place in its count")

    async def close(self) -> None:
        """Idempotent; the in-memory part first, so a cancelled close still frees the replica."""
        if self._closed:
            return
        self._closed = True
        self.hub.unwatch(self.video_id, self.queue)
        self.hub._open -= 1
        if self._acquired:
            try:
                await self.hub.redis.zrem(self.bucket, self.token)
            except Exception:  # it expires within a few heartbeats
                logger.warning("could not remove a closed progress stream from its count")

    async def _read(self) -> tuple[int, Job | None]:
        """The newest event id, then the row (this order: see the module's docstring)."""
        newest = int(await self.hub.redis.get(seq_key(self.video_id)) or 0)
        job = await run_in_threadpool(self.hub.jobs.get, self.video_id, self.project)
        return newest, job

    async def read_first(self) -> None:
        try:
            newest, job = await self._read()
        except aioredis.RedisError as exc:
            raise events_unavailable(self.hub.retry_after_s) from exc
        if job is None:
            raise APIError(
                404,
                f"No video found with id '{self.video_id}'.",
                param="video_id",
                code="video_not_found",
            )
        self._first = (newest, job)

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream's bytes until the final Video. Events already waiting in the queue go out
        together in one write: a stream that fell behind catches up in fewer, larger sends."""
        assert self._first is not None, "read_first() first"
        config = self.hub.config
        newest, job = self._first
        if job.status in TERMINAL_STATUSES:
            yield _video_frame(newest, job)
            return
        self._seen, self._sent = newest, (job.status, job.progress)
        if self.last_event_id is None or self.last_event_id < newest:
            yield progress_frame(newest, "status", self.video_id, job.status, job.progress, None)
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + config.heartbeat_s
        heard = loop.time()
        while True:
            now = loop.time()
            if now >= next_beat:
                next_beat = now + config.heartbeat_s
                await self._renew()
                if now - heard < config.resync_s:
                    yield KEEP_ALIVE
                    continue
                item: QueueItem = RESYNC
            else:
                try:
                    async with asyncio.timeout(next_beat - now):
                        item = await self.queue.get()
                except TimeoutError:
                    continue
            heard = loop.time()
            out: list[bytes] = []
            done = await self._take(item, out)
            while not done and not self.queue.empty():
                done = await self._take(self.queue.get_nowait(), out)
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
            if done:
                return

    async def _take(self, item: QueueItem, out: list[bytes]) -> bool:
        """Adds the frames `item` calls for to `out`; True when the stream is over."""
        if isinstance(item, _Resync):
            try:
                newest, row = await self._read()
            except aioredis.RedisError:
                return False  # the hub reconnects and asks again
            if row is None:
                out.append(_gone_frame(self.video_id))
                return True
            self._seen = max(self._seen, newest)
            if row.status in TERMINAL_STATUSES:
                out.append(_video_frame(self._seen, row))
                return True
            if row.status == self._sent[0] and row.progress <= self._sent[1]:
                return False  # the row is written at a bounded rate: announced steps run ahead
            name = self._changed(row.status, row.progress)
            if name is not None:
                out.append(
                    progress_frame(self._seen, name, self.video_id, row.status, row.progress, None)
                )
            return False
        event = item.event
        if event.id <= self._seen:
            return False
        self._seen = event.id
        if event.status in TERMINAL_STATUSES:
            out.append(await item.final_frame(self.hub.jobs))
            return True
        name = self._changed(event.status, event.progress)
        if name is not None:
            out.append(item.frame(name))
        return False

    def _changed(self, status: str, progress: int) -> str | None:
        """The event name for a new state (`status` or `progress`); None if nothing changed."""
        if (status, progress) == self._sent:
            return None
        name = "status" if status != self._sent[0] else "progress"
        self._sent = (status, progress)
        return name


KEEP_ALIVE = b": keep-alive\n\n"


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` from an iterator of ready frames: no caching, and no buffering in
    nginx-like proxies on the way. (FastAPI's EventSourceResponse is for generator routes: it
    re-encodes every item and adds two memory streams and a task per event, several times
    the cost of sending the bytes.)"""

    # Set per answer, not on the class: FastAPI would document a class media type as one
    # string, while `stream_responses` documents the stream event by event.
    media_type = None

    def __init__(self, frames: AsyncIterator[bytes], status_code: int = 200):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(
            frames, status_code=status_code, headers=headers, media_type="text/event-stream"
        )


def progress_frame(
    event_id: int, name: str, video_id: str, status: str, progress: int, at: float | None
) -> bytes:
    data = VideoProgress(
        id=video_id, status=cast(VideoStatus, status), progress=progress, published_at=at
    )
    return format_sse_event(data_str=data.model_dump_json(), event=name, id=str(event_id))


def _video_frame(event_id: int, job: Job) -> bytes:
    data = video_of(job).model_dump_json()
    return format_sse_event(data_str=data, event="video", id=str(event_id))


def _gone_frame(video_id: str) -> bytes:
    """The video was deleted while the stream followed it."""
    body = ErrorResponse(
        error=ErrorDetail(
            message=f"No video found with id '{video_id}' (it was deleted).",
            type="invalid_request_error",
            param="video_id",
            code="video_not_found",
        )
    )
    return format_sse_event(data_str=body.model_dump_json(), event="error")


def events_unavailable(retry_after_s: int) -> APIError:
    return APIError(
        503,
        "The progress stream is unavailable (Redis did not answer); poll "
        "GET /v1/videos/{id} instead.",
        code="events_unavailable",
        headers={"Retry-After": str(retry_after_s)},
    )


def last_event_id(header: str | None) -> int | None:
    """The `Last-Event-ID` a reconnecting client sends: one of our ids, or ignored."""
    if header is None or not header.strip().isdigit() or len(header.strip()) > 18:
        return None
    return int(header.strip())


def stream_responses(errors: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """The route's answers in the OpenAPI document: 200, the events and their data; `errors`
    (`{status: {"model", "description"}}`) as JSON, which FastAPI would otherwise file under the
    route's own media type."""
    error_answers: dict[int | str, dict[str, Any]] = {
        status: {
            "description": "no connection to Redis: poll GET /v1/videos/{id} instead"
            if status == 503
            else answer["description"],
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
        for status, answer in errors.items()
    }
    data_schema = {
        "oneOf": [
            VideoProgress.model_json_schema(),
            {"$ref": "#/components/schemas/Video"},
            {"$ref": "#/components/schemas/ErrorResponse"},
        ]
    }
    return {
        200: {
            "description": "Server-Sent Events: `status` and `progress` (data: VideoProgress, "
            "the first one the current state), then `video` (data: the final Video) and the "
            "stream ends; `error` (data: OpenAI's error body) if the video is deleted meanwhile. "
            "Each event's `id` grows; send the last one as `Last-Event-ID` when reconnecting. "
            "Idle streams carry `: keep-alive` comments.",
            "content": {
                "text/event-stream": {
                    "itemSchema": {
                        "type": "object",
                        "required": ["event", "data"],
                        "properties": {
                            "event": {
                                "type": "string",
                                "enum": ["status", "progress", "video", "error"],
                            },
                            "id": {"type": "string", "pattern": "^[0-9]+$"},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": data_schema,
                            },
                        },
                    },
                }
            },
        },
        **error_answers,
    }
