"""The webhook outbox: when a job ends, the event for its webhook (the job's own URL, else its
project's default) is written as a `WebhookDelivery` row in the same transaction that ends the
job, so no ended job misses its event and no event exists for a job that did not end. The
deliveries are then sent, signed and retried, by the ingress (`deployments/ingress/webhooks.py`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from i2v_core.jobs import Job, Project, WebhookDelivery

EVENT_TYPES = ("video.completed", "video.failed", "video.cancelled")


def event_type_of(job: Job) -> str:
    if job.status == "completed":
        return "video.completed"
    return "video.cancelled" if job.error_code == "cancelled" else "video.failed"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class WebhookOutbox:
    """The `on_final` hook of a `JobStore`. `render` turns the final row into the event's data
    (the Video object), at the moment the job ends."""

    def __init__(self, render: Callable[[Job], dict[str, Any]]):
        self.render = render

    def __call__(self, session: Session, job: Job) -> None:
        url = job.webhook_url or session.scalar(
            select(Project.webhook_url).where(Project.project == job.project)
        )
        if not url:
            return
        now = time.time()
        event_type = event_type_of(job)
        session.add(
            WebhookDelivery(
                id=new_message_id(),
                job_id=job.id,
                project=job.project,
                event_type=event_type,
                url=url,
                payload={
                    "type": event_type,
                    "timestamp": datetime.fromtimestamp(now, UTC)
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "data": self.render(job),
                },
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
