"""The ingress's periodic sweeps, so that reads never write.

Deadlines: jobs nobody finished (no healthy replica took them, or their replica died and the
task was lost) fail once their deadline and a grace period have passed. A live replica fails its
own job earlier; this sweep is the backstop, run by each Ingress replica (the conditional update
makes concurrent sweeps harmless).

Retention: a completed video's files are removed once its `expires_at` has passed; the row stays
and reads as expired. One replica sweeps at a time (a Redis lock)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis

from i2v_core import metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.jobs import Job, JobStore

logger = logging.getLogger("ray.serve")

GRACE_S = 30.0
_BATCH = 100


def fail_overdue(jobs: JobStore, deadline_s: float, now: float | None = None) -> list[str]:
    """Fails every queued or running job created more than `deadline_s + GRACE_S` ago; returns
    the ids this call failed."""
    cutoff = (now if now is not None else time.time()) - deadline_s - GRACE_S
    failed: list[str] = []
    for status in ("queued", "in_progress"):
        while True:
            page = jobs.list(None, _BATCH, "asc", status=status, created_before=cutoff)
            rows = page[0] if page is not None else []
            # A row failed here, or finished meanwhile, leaves the filter: no paging needed.
            newly = [job for job in rows if _expire(jobs, job)]
            failed += [job.id for job in newly]
            if len(rows) < _BATCH:
                break
    return failed


def _expire(jobs: JobStore, job: Job) -> bool:
    if not jobs.fail(job.id, "deadline_exceeded", "The job did not finish before its deadline."):
        return False
    metrics.job_finished("failed", "deadline_exceeded")
    logger.warning("job expired", extra={"job_id": job.id, "session_id": job.session_id})
    return True


def remove_expired(
    jobs: JobStore, artifacts: ArtifactStore, now: float | None = None
) -> tuple[list[str], int]:
    """Removes the files of every completed video past its `expires_at` and marks it expired;
    returns the ids this call expired and the bytes it freed. Files go first, then the mark: a
    sweep cut short is finished by the next one."""
    now = now if now is not None else time.time()
    expired: list[str] = []
    freed_total = 0
    while rows := jobs.expired_due(now, _BATCH):
        for job in rows:
            freed = artifacts.delete_outputs(job.id)
            if jobs.mark_expired(job.id, now):
                if job.prefix_video and not jobs.prefix_video_in_use(job.prefix_video):
                    freed += artifacts.delete_source_video(job.prefix_video)
                expired.append(job.id)
                freed_total += freed
                metrics.storage_freed("expired", freed)
                logger.info("video expired", extra={"job_id": job.id, "freed_bytes": freed})
        if len(rows) < _BATCH:
            break
    return expired, freed_total


class Periodic:
    """Runs `work` every `interval_s` on a daemon thread until `stop()`; a failed run is logged
    and the next one retries."""

    def __init__(self, name: str, interval_s: float, work: Callable[[], object]):
        self._name = name
        self._interval_s = interval_s
        self._work = work
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                self._work()
            except Exception:
                logger.exception("the %s failed; the next run retries", self._name)


class DeadlineSweeper(Periodic):
    """`fail_overdue` every `interval_s`."""

    def __init__(self, jobs: JobStore, deadline_s: float, interval_s: float):
        super().__init__("deadline-sweeper", interval_s, lambda: fail_overdue(jobs, deadline_s))


class RetentionSweeper(Periodic):
    """`remove_expired` every `interval_s` by whichever replica holds the Redis lock, which also
    measures the artifact store for the storage gauge."""

    LOCK = "i2v:retention-sweep"

    def __init__(self, jobs: JobStore, artifacts: ArtifactStore, redis_url: str, interval_s: float):
        self._jobs = jobs
        self._artifacts = artifacts
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10)
        # Held for at most a few intervals: a replica that dies mid-sweep blocks no one long.
        self._lock_timeout_s = max(60.0, 3 * interval_s)
        super().__init__("retention-sweeper", interval_s, self.sweep)

    def sweep(self) -> bool:
        """One sweep if no other replica is sweeping; whether this one swept."""
        lock = self._redis.lock(self.LOCK, timeout=self._lock_timeout_s, blocking=False)
        if not lock.acquire():
            return False
        try:
            remove_expired(self._jobs, self._artifacts)
            metrics.storage_used(self._artifacts.usage())
        finally:
            # Held past its timeout, another replica may hold it now: not ours to release.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        return True
