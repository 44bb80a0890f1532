"""One long-lived thread for all of a process's torch work.

PyTorch's CPU kernels run on GNU OpenMP (libgomp), which keeps a separate team of worker threads
for every thread that starts parallel work. Once a process holds more OpenMP threads than it has
cores (two callers with two threads each on two cores), libgomp stops spinning between parallel
regions and puts its workers to sleep on a futex after about a hundred spins: every kernel then
pays a wake-up, and the same denoising ran 1.7 times slower on a thread of its own than on the
thread that had loaded the model (bench/RESULTS.md, issue 13). A replica calls the engine from
Ray's and the queue consumer's threads, so the engine hands all of its torch work to this thread
and only one team ever exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class TorchThread:
    """`run(fn, *args)` calls `fn` on the one thread and returns or raises what it did."""

    def __init__(self, name: str = "torch") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ident = self._executor.submit(threading.get_ident).result()

    @property
    def ident(self) -> int:
        return self._ident

    def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if threading.get_ident() == self._ident:  # already there: a nested call would deadlock
            return fn(*args, **kwargs)
        return self._executor.submit(fn, *args, **kwargs).result()
