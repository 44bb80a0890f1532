"""Groups generation requests that arrive together into one pipeline run. The generator's task
handlers run on several queue-consumer threads; each hands its request to the batcher and blocks
until its own result is ready, while one thread runs the grouped requests."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: Future


class Batcher(Generic[Item, Result]):
    """`submit(item)` returns `run([... item ...])`'s result for that item. Items with the same
    `key` that arrive within `wait_s` of the first are run together, at most `max_size` at once;
    the others wait for a later run. `run` gets a list and returns one result per item, or raises
    (then every item of that run gets the exception). When `companions_possible()` says no other
    item can come (the replica runs no other job), a run starts without waiting."""

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Sequence[Result]],
        key: Callable[[Item], Hashable],
        max_size: int,
        wait_s: float,
        companions_possible: Callable[[], bool] = lambda: True,
    ):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._run = run
        self._key = key
        self.max_size = max_size
        self.wait_s = wait_s
        self._companions_possible = companions_possible
        self._incoming: queue.Queue[_Pending] = queue.Queue()
        self._held: deque[_Pending] = deque()
        self.runs = 0  # how many times `run` was called, for tests and stats
        self._thread = threading.Thread(target=self._loop, name="generation-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Result:
        pending = _Pending(item, Future())
        self._incoming.put(pending)
        return pending.future.result()

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            self.runs += 1
            try:
                results = self._run([p.item for p in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for pending in batch:
                    pending.future.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                pending.future.set_result(result)

    def _collect(self) -> list[_Pending]:
        first = self._held.popleft() if self._held else self._incoming.get()
        key = self._key(first.item)
        batch = [first]
        for pending in list(self._held):
            if len(batch) < self.max_size and self._key(pending.item) == key:
                self._held.remove(pending)
                batch.append(pending)
        wait_s = self.wait_s if self._companions_possible() else 0.0
        deadline = time.monotonic() + wait_s
        while len(batch) < self.max_size:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    pending = self._incoming.get(timeout=remaining)
                else:  # what has arrived already still joins
                    pending = self._incoming.get_nowait()
            except queue.Empty:
                break
            if self._key(pending.item) == key:
                batch.append(pending)
            else:
                self._held.append(pending)
        return batch
