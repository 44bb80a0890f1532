"""What the generation queue holds in Redis, read the way kombu's Redis transport writes it: tasks
waiting in one list per priority (`<queue><sep><priority>`), and tasks delivered but not yet
acknowledged in one hash (`unacked`: delivery tag -> JSON `[message, exchange, routing_key]`)
with their delivery times in a sorted set (`unacked_index`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from kombu.transport.redis import Channel

UNACKED_KEY = Channel.unacked_key
UNACKED_INDEX_KEY = Channel.unacked_index_key


def waiting_lists(queue_name: str) -> list[str]:
    """The Redis lists holding a queue's waiting tasks, one per priority step."""
    return [
        queue_name if step == 0 else f"{queue_name}{Channel.sep}{step}"
        for step in Channel.priority_steps
    ]


class UnackedTask(NamedTuple):
    delivery_tag: Any
    message: dict
    exchange: str
    routing_key: str

    @property
    def task_id(self) -> str | None:
        return self.message.get("headers", {}).get("id")


def unacked_tasks(entries: Iterable[tuple[Any, bytes]]) -> Iterator[UnackedTask]:
    """Decodes (delivery tag, payload) pairs of the unacked hash; skips what is not kombu's."""
    for tag, payload in entries:
        try:
            message, exchange, routing_key = json.loads(payload)
        except (ValueError, TypeError):
            continue
        if isinstance(message, dict):
            yield UnackedTask(tag, message, exchange, routing_key)
