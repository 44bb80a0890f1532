"""Jobs nobody finished (no healthy replica took them, or their replica died and the task was
lost) fail once their deadline and a grace period have passed. A live replica fails its own job
earlier; this sweep is the backstop, run periodically by each Ingress replica (the conditional
update makes concurrent sweeps harmless), so that reads never write."""

from __future__ import annotations

import logging
import threading
import time

from i2v_core import metrics
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


class DeadlineSweeper:
    """Runs `fail_overdue` every `interval_s` on a daemon thread until `stop()`."""

    def __init__(self, jobs: JobStore, deadline_s: float, interval_s: float):
        self._jobs = jobs
        self._deadline_s = deadline_s
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deadline-sweeper", daemon=True)

    def start(self) -> DeadlineSweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                fail_overdue(self._jobs, self._deadline_s)
            except Exception:
                logger.exception("the deadline sweep failed; the next one retries")
