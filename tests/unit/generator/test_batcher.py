"""The batcher groups items that arrive together, and a lone item does not wait for company that
cannot come (the replica runs no other job)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from deployments.generator.batching import Batcher

AN_HOUR = 3600.0  # a wait no test could sit out: finishing at all shows it was skipped


def _batcher(companions_possible=lambda: True) -> tuple[Batcher, list[list[str]]]:
    runs: list[list[str]] = []

    def run(items: Sequence[str]) -> list[str]:
        runs.append(list(items))
        return [item.upper() for item in items]

    batcher = Batcher(
        run, key=len, max_size=2, wait_s=AN_HOUR, companions_possible=companions_possible
    )
    return batcher, runs


def _submit_in_thread(batcher: Batcher, item: str, results: dict[str, str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.setdefault(item, batcher.submit(item)))
    thread.start()
    return thread


def test_a_lone_item_runs_at_once_when_no_companion_can_come() -> None:
    batcher, runs = _batcher(companions_possible=lambda: False)
    results: dict[str, str] = {}
    _submit_in_thread(batcher, "ab", results).join(timeout=60)
    assert results == {"ab": "AB"}
    assert runs == [["ab"]]


def test_items_arriving_together_share_a_run_while_companions_can_come() -> None:
    batcher, runs = _batcher()
    results: dict[str, str] = {}
    threads = [_submit_in_thread(batcher, item, results) for item in ("ab", "cd")]
    for thread in threads:
        thread.join(timeout=60)
    assert results == {"ab": "AB", "cd": "CD"}
    assert [sorted(items) for items in runs] == [["ab", "cd"]]  # max_size 2 ends the wait


def test_items_already_waiting_join_even_without_a_wait() -> None:
    release = threading.Event()
    runs: list[list[str]] = []

    def run(items: Sequence[str]) -> list[str]:
        runs.append(list(items))
        release.wait(timeout=60)  # the first run holds the batcher while more items arrive
        return list(items)

    batcher = Batcher(run, key=len, max_size=3, wait_s=0.0)
    results: dict[str, str] = {}
    first = _submit_in_thread(batcher, "a", results)
    while not runs:
        time.sleep(0.01)
    later = [_submit_in_thread(batcher, item, results) for item in ("bb", "cc")]
    while batcher._incoming.qsize() < 2:
        time.sleep(0.01)
    release.set()
    for thread in [first, *later]:
        thread.join(timeout=60)
    assert runs == [["a"], ["bb", "cc"]]
