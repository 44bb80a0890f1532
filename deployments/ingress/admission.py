"""Backpressure: how much accepted-but-unfinished work the service holds, in all and per API
key, before it answers 429 at once instead of queueing more."""

from __future__ import annotations

from deployments.ingress.auth import OPEN, Caller
from deployments.ingress.config import AdmissionConfig
from i2v_core import metrics
from i2v_core.domain import ACTIVE_STATUSES
from i2v_core.errors import too_many_requests
from i2v_core.jobs import JobStore


class Admission:
    def __init__(self, jobs: JobStore, config: AdmissionConfig):
        self.jobs = jobs
        self.config = config

    def admit(self, caller: Caller = OPEN) -> None:
        """Over the backlog limit (jobs queued or running), or over the caller's key's limit on
        its own active jobs: a 429 with Retry-After; nothing is written."""
        retry_after = self.config.retry_after_s
        limit = self.config.max_backlog
        backlog = self.jobs.count(ACTIVE_STATUSES)
        if backlog >= limit:
            metrics.key_limited("backlog_full", caller.project)
            raise too_many_requests(
                f"The service is at capacity ({backlog} jobs waiting or running, limit {limit}); "
                f"retry after {retry_after} s.",
                "backlog_full",
                retry_after,
            )
        if caller.key_id is None or caller.max_active_jobs is None:
            return
        active = self.jobs.count(ACTIVE_STATUSES, key_id=caller.key_id)
        if active >= caller.max_active_jobs:
            metrics.key_limited("max_active_jobs", caller.project)
            raise too_many_requests(
                f"This key has {active} jobs queued or running, its limit; nothing was created. "
                f"Retry after {retry_after} s.",
                "too_many_active_jobs",
                retry_after,
            )
