"""Autoscaling policy of the generator: replicas for the tasks waiting in the queue *and* the tasks
being run.

Ray's `AsyncInferenceAutoscalingPolicy` counts only the messages waiting in the Redis list
(`LLEN`). A task a replica has taken is no longer in that list: kombu keeps it in its `unacked`
hash until the handler returns (acks late). So once every waiting task has been taken, Ray's policy
sees no work, asks for `min_replicas` while every replica is busy, and after `downscale_delay_s`
Serve stops busy replicas: their jobs are cut off and only come back after the visibility timeout,
each time costing one of the job's attempts. Near capacity it
oscillates.

This policy has the same interface and `policy_kwargs` (a class-based Serve policy:
`__init__(**policy_kwargs)`, `__call__(ctx) -> (desired, state)`) and asks for
`ceil((waiting + running + handle requests) / target_ongoing_requests)` replicas, where `running` is
the number of this queue's messages in the `unacked` hash. It polls Redis in a short-lived
background thread, so a slow or unreachable Redis never blocks Serve's controller loop; between
polls, and while Redis is down, it keeps the last counts it read.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import redis

from deployments.generator.queue_state import UNACKED_KEY, unacked_tasks, waiting_lists

logger = logging.getLogger("ray.serve")


class GeneratorQueuePolicy:
    def __init__(
        self,
        broker_url: str,
        queue_name: str,
        poll_interval_s: float = 5.0,
        socket_timeout_s: float = 2.0,
    ):
        self.queue_name = queue_name
        self.poll_interval_s = poll_interval_s
        self._client = redis.Redis.from_url(
            broker_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._lists = waiting_lists(queue_name)
        self.waiting = 0
        self.running = 0
        self.last_error: str | None = None
        self._poller: threading.Thread | None = None
        self._last_poll = float("-inf")

    def poll(self) -> None:
        """Reads the counts once (also called directly by tests)."""
        try:
            pipe = self._client.pipeline(transaction=False)
            for name in self._lists:
                pipe.llen(name)
            pipe.hgetall(UNACKED_KEY)
            *lengths, unacked = pipe.execute()
            self.waiting = int(sum(lengths))
            self.running = sum(
                1
                for task in unacked_tasks(unacked.items())
                if self.queue_name in (task.routing_key, task.exchange)
            )
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - keep the last counts; Serve keeps scaling
            if self.last_error is None:
                logger.warning("generator autoscaling: cannot read the queue: %s", exc)
            self.last_error = f"{type(exc).__name__}: {exc}"

    def _maybe_poll(self) -> None:
        now = time.monotonic()
        busy = self._poller is not None and self._poller.is_alive()
        if busy or now - self._last_poll < self.poll_interval_s:
            return
        self._last_poll = now
        self._poller = threading.Thread(
            target=self.poll, name="generator-autoscaling-poll", daemon=True
        )
        self._poller.start()

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        self._maybe_poll()
        work = self.waiting + self.running + ctx.total_num_requests
        state = {"waiting": self.waiting, "running": self.running}
        if self.last_error is not None:
            state["error"] = self.last_error
        if ctx.current_num_replicas == 0:
            return (1 if work > 0 else 0), state
        target = ctx.config.get_target_ongoing_requests()
        return math.ceil(work / target), state
