"""The webhook outbox: when a job ends, the event for its webhook (the job's own URL, else its
project's default) is written as a `WebhookDelivery` row in the same transaction that ends the
job, so no ended job misses its event and no event exists for a job that did not end. The
deliveries are then sent, signed and retried, by the ingress (`deployments/ingress/webhooks.py`)."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from i2v_core.jobs import Job, JobStore, Project, WebhookAttempt, WebhookDelivery, _rowcount

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


# --- the queue the ingress sends from ------------------------------------------------------------

SECRET_PREFIX = "whsec_"
_UNSET: Any = object()


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Claim:
    """A delivery this sender may attempt now: the row as claimed and the lease it holds (the
    `claimed_until` it wrote, which also identifies the claim)."""

    delivery: WebhookDelivery
    lease: float

    @property
    def attempt(self) -> int:
        return self.delivery.attempts + 1


@dataclass(frozen=True)
class AttemptResult:
    started_at: float
    duration_s: float
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class ProjectSettings:
    project: str
    url: str | None
    has_secret: bool
    updated_at: float | None
    secret: str | None = None  # only when this call created or rotated it


class WebhookStore:
    """Project webhook settings and the delivery queue, in the job database. Deliveries are
    claimed with a guarded UPDATE (pending, due, and not claimed by a live lease), so any number
    of senders share the queue without sending one attempt twice; a sender that dies leaves its
    claim to expire."""

    def __init__(self, jobs: JobStore):
        self._session = jobs._session

    # --- project settings ------------------------------------------------------------------

    def settings(self, project: str) -> ProjectSettings:
        with self._session() as session:
            row = session.get(Project, project)
        if row is None:
            return ProjectSettings(project, None, False, None)
        return ProjectSettings(project, row.webhook_url, bool(row.webhook_secret), row.updated_at)

    def secret_of(self, project: str) -> str | None:
        with self._session() as session:
            return session.scalar(select(Project.webhook_secret).where(Project.project == project))

    def configure(
        self, project: str, url: str | None = _UNSET, rotate_secret: bool = False
    ) -> ProjectSettings:
        """Sets the project's default URL (None clears it; left out, it stays) and creates its
        secret when it has none or `rotate_secret`; the answer carries a new secret only."""
        for attempt in range(2):
            try:
                return self._configure(project, url, rotate_secret)
            except IntegrityError:  # another writer created the row first: update it
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _configure(self, project: str, url: str | None, rotate_secret: bool) -> ProjectSettings:
        created: str | None = None
        with self._session.begin() as session:
            row = session.get(Project, project, with_for_update=True)
            if row is None:
                row = Project(project=project, webhook_url=None, webhook_secret=None)
                session.add(row)
            if url is not _UNSET:
                row.webhook_url = url
            if rotate_secret or not row.webhook_secret:
                created = row.webhook_secret = new_secret()
            row.updated_at = time.time()
            session.flush()
            return ProjectSettings(project, row.webhook_url, True, row.updated_at, created)

    # --- the queue -------------------------------------------------------------------------

    def claim_due(self, now: float, limit: int, lease_s: float) -> list[Claim]:
        """Up to `limit` due deliveries, each claimed for `lease_s` by this caller alone."""
        if limit <= 0:
            return []
        claimable = (
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until <= now),
        )
        with self._session() as session:
            seqs = list(
                session.scalars(
                    select(WebhookDelivery.seq)
                    .where(*claimable)
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                )
            )
        claims = []
        lease = now + lease_s
        for seq in seqs:
            with self._session.begin() as session:
                won = session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.seq == seq, *claimable)
                    .values(claimed_until=lease)
                )
                if _rowcount(won) == 1:
                    row = session.scalars(
                        select(WebhookDelivery).where(WebhookDelivery.seq == seq)
                    ).one()
                    claims.append(Claim(row, lease))
        return claims

    def record(
        self,
        claim: Claim,
        result: AttemptResult,
        outcome: Literal["delivered", "retry", "failed"],
        next_attempt_at: float | None = None,
    ) -> bool:
        """Writes the attempt and its consequence; False when the claim had lapsed and another
        sender has the delivery (the attempt is recorded all the same). A 2xx counts even then:
        the receiver has the event."""
        delivery = claim.delivery
        now = time.time()
        values: dict[str, Any] = {"attempts": WebhookDelivery.attempts + 1, "claimed_until": None}
        if outcome == "delivered":
            values.update(status="delivered", delivered_at=now, next_attempt_at=None)
        elif outcome == "failed":
            values.update(status="failed", next_attempt_at=None, last_error=result.error)
        else:
            values.update(next_attempt_at=next_attempt_at, last_error=result.error)
        guard = [WebhookDelivery.seq == delivery.seq, WebhookDelivery.status == "pending"]
        if outcome != "delivered":
            guard.append(WebhookDelivery.claimed_until == claim.lease)
        with self._session.begin() as session:
            updated = _rowcount(
                session.execute(update(WebhookDelivery).where(*guard).values(**values))
            )
            session.add(
                WebhookAttempt(
                    delivery_seq=delivery.seq,
                    attempt=claim.attempt,
                    started_at=result.started_at,
                    duration_s=result.duration_s,
                    status_code=result.status_code,
                    error=result.error,
                )
            )
        return updated == 1

    def deliveries_of(
        self, job_id: str, project: str
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        """The job's deliveries, oldest first, each with its attempts in order."""
        with self._session() as session:
            rows = list(
                session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.job_id == job_id, WebhookDelivery.project == project)
                    .order_by(WebhookDelivery.seq)
                )
            )
            attempts: dict[int, list[WebhookAttempt]] = {row.seq: [] for row in rows}
            if rows:
                for attempt in session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_seq.in_(list(attempts)))
                    .order_by(
                        WebhookAttempt.delivery_seq, WebhookAttempt.attempt, WebhookAttempt.seq
                    )
                ):
                    attempts[attempt.delivery_seq].append(attempt)
        return [(row, attempts[row.seq]) for row in rows]
