"""Backpressure: how much accepted-but-unfinished work the service holds before it answers 429 at
once instead of queueing more."""

from __future__ import annotations

from deployments.ingress.config import AdmissionConfig
from i2v_core.domain import ACTIVE_STATUSES
from i2v_core.errors import APIError
from i2v_core.jobs import JobStore


class Admission:
    def __init__(self, jobs: JobStore, config: AdmissionConfig):
        self.jobs = jobs
        self.config = config

    def admit(self) -> None:
        """Over the backlog limit (jobs queued or running), a 429 with Retry-After; nothing is
        written."""
        limit = self.config.max_backlog
        backlog = self.jobs.count(ACTIVE_STATUSES)
        if backlog >= limit:
            retry_after = self.config.retry_after_s
            raise APIError(
                429,
                f"The service is at capacity ({backlog} jobs waiting or running, limit {limit}); "
                f"retry after {retry_after} s.",
                code="backlog_full",
                headers={"Retry-After": str(retry_after)},
            )
