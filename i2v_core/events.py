"""Job changes as events on Redis pub/sub: each committed change of a job's status or progress
is published once, on the job's channel, with a number that grows with every event of that job
(the SSE event id). An ingress replica subscribes once and fans the events out to its open
streams (`deployments/ingress/events.py`), so no stream reads the database per event."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

CHANNEL_PREFIX = "i2v:video-events:"
_SEQ_PREFIX = "i2v:video-event-seq:"
SEQ_TTL_S = 7 * 24 * 3600

# INCR the job's event counter and PUBLISH in one step, so ids and delivery order agree.
_PUBLISH = """
local id = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local event = {id = id, status = ARGV[2], progress = tonumber(ARGV[4]), at = tonumber(ARGV[5])}
redis.call('PUBLISH', ARGV[1], cjson.encode(event))
return id
"""


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    id: int
    status: str
    progress: int
    at: float | None = None  # when it was published (Unix seconds, the publisher's clock)

    @classmethod
    def from_message(cls, channel: str, data: bytes | str) -> JobEvent:
        fields = json.loads(data)
        return cls(
            job_id=channel.removeprefix(CHANNEL_PREFIX),
            id=int(fields["id"]),
            status=str(fields["status"]),
            progress=int(fields["progress"]),
            at=float(fields["at"]) if fields.get("at") is not None else None,
        )


def channel_of(job_id: str) -> str:
    return CHANNEL_PREFIX + job_id


def seq_key(job_id: str) -> str:
    """The key holding the id of the job's newest event."""
    return _SEQ_PREFIX + job_id


class JobEventPublisher:
    """The `on_change` hook of a `JobStore`: publishes (status, progress) on the job's channel."""

    def __init__(self, redis_url: str):
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._publish = self._redis.register_script(_PUBLISH)

    def __call__(self, job_id: str, status: str, progress: int) -> None:
        self._publish(
            keys=[seq_key(job_id)],
            args=[channel_of(job_id), status, SEQ_TTL_S, progress, f"{time.time():.6f}"],
        )

    def last_id(self, job_id: str) -> int:
        """The id of the job's newest event (0 before its first)."""
        return int(self._redis.get(seq_key(job_id)) or 0)

    def close(self) -> None:
        self._redis.close()
