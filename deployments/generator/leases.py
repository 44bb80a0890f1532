"""Keeps the queue from handing a running task to a second replica.

The generation queue (Celery on Redis, kombu's transport) delivers a task again when it stays
unacknowledged for longer than the visibility timeout: that is how the task of a replica or node
that died comes back. A job that simply runs long would be delivered again too, and two replicas
would spend GPU time on one job. So while a replica runs a task it keeps moving the task's
delivery time forward in kombu's index of unacknowledged tasks: only the tasks of dead replicas
ever pass the timeout, and the timeout can be short enough for their jobs to come back well
within the job deadline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import celery
import redis

from deployments.generator.queue_state import UNACKED_INDEX_KEY, UNACKED_KEY, unacked_tasks

logger = logging.getLogger("ray.serve")


def current_task_id() -> str | None:
    """The Celery id of the task this thread is running, None outside a task."""
    task = celery.current_task
    return task.request.id if task else None


class TaskLeases:
    """Renews, every fifth of the visibility timeout, the delivery time of the tasks held: a
    replica starved of CPU for most of the timeout still keeps its tasks."""

    def __init__(self, redis_url: str, visibility_timeout_s: float):
        self._client = redis.Redis.from_url(redis_url)
        self.renew_every_s = max(1.0, visibility_timeout_s / 5)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_closed, daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def held(self, task_id: str | None) -> Iterator[None]:
        if task_id is None:
            yield
            return
        with self._lock:
            self._held.add(task_id)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(task_id)

    def renew(self) -> int:
        """Moves the held tasks' delivery time to now; returns how many were found unacked."""
        with self._lock:
            held = set(self._held)
        if not held:
            return 0
        now = time.time()
        renewed = {}
        for task in unacked_tasks(self._client.hscan_iter(UNACKED_KEY)):
            if task.task_id in held:
                renewed[task.delivery_tag] = now
        if renewed:
            # XX: never re-add a task acknowledged (or restored) since the scan.
            self._client.zadd(UNACKED_INDEX_KEY, renewed, xx=True)
        return len(renewed)

    def _renew_until_closed(self) -> None:
        while not self._stopped.wait(self.renew_every_s):
            try:
                self.renew()
            except Exception:
                # Redis unreachable: the task may be delivered twice, which the job store's
                # guarded transitions make harmless. Keep trying.
                logger.warning("could not renew the leases of running tasks", exc_info=True)

    def close(self) -> None:
        self._stopped.set()
        self._client.close()
