"""Webhooks: a job's final event (`video.completed`, `video.failed`, `video.cancelled`, carrying
the Video object) goes to the job's `webhook_url` or its project's default URL, signed per the
Standard Webhooks specification with the project's secret.

The outbox row is written in the transaction that ends the job (`i2v_core/webhooks.py`), by
whichever replica ends it; the database table is the durable queue. Every Ingress replica runs a
`WebhookSender`: it claims due deliveries (a guarded UPDATE, so no attempt is made twice at once),
POSTs the stored payload (the same bytes and `webhook-id` on every attempt), records the attempt,
and on anything but a 2xx schedules the next one (`webhooks.retry_schedule_s`) until it gives up.
A sender that dies mid-attempt leaves a claim that lapses after `lease_s`; another replica (or the
restarted one) then tries again: at least once, never lost. `WebhookService` is the API side:
checking a job's URL at acceptance, the project settings of the admin API, the deliveries list."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import redis
from standardwebhooks import Webhook

from deployments.ingress.auth import Caller
from deployments.ingress.config import WebhookConfig
from deployments.ingress.protocol import (
    ProjectWebhook,
    WebhookAttemptInfo,
    WebhookDeliveryInfo,
    WebhookDeliveryList,
)
from deployments.ingress.url_guard import RefusedURL, UrlGuard
from i2v_core import metrics
from i2v_core.domain import TERMINAL_STATUSES
from i2v_core.errors import invalid, not_found
from i2v_core.events import CHANNEL_PREFIX, JobEvent
from i2v_core.jobs import JobStore
from i2v_core.webhooks import AttemptResult, Claim, WebhookStore

logger = logging.getLogger("ray.serve")

USER_AGENT = "i2v-webhooks/1"
_MAX_ERROR_CHARS = 500


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes a delivery's payload is sent as: compact JSON, the same on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, message_id: str, body: bytes, when: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, when, body.decode()),
        "content-type": "application/json",
    }


def retry_delay(
    config: WebhookConfig, attempt: int, rng: Callable[[], float] = random.random
) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based), or None to give up."""
    schedule = config.retry_schedule_s
    if attempt > len(schedule):
        return None
    jitter = config.retry_jitter * (2 * rng() - 1)
    return schedule[attempt - 1] * (1 + jitter)


Outcome = Literal["delivered", "http_error", "network_error", "refused"]


class WebhookSender:
    """Sends the due deliveries on a daemon thread until `stop()`, with up to `max_concurrent`
    attempts in flight. It looks every `poll_s`, and at once when a job ends: with `redis_url`,
    it listens to the jobs' change events (`i2v_core/events.py`), and a job's final event is
    published after the commit that wrote its outbox row. Polling alone still finds everything
    (retries, events missed while Redis was away)."""

    def __init__(
        self,
        store: WebhookStore,
        config: WebhookConfig,
        guard: UrlGuard,
        client: httpx.Client | None = None,
        redis_url: str | None = None,
    ):
        self.store = store
        self.redis_url = redis_url
        self.config = config
        self.guard = guard
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the checked address is the peer
            headers={"user-agent": USER_AGENT},
        )
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._slots = threading.BoundedSemaphore(config.max_concurrent)
        self._pool = ThreadPoolExecutor(config.max_concurrent, thread_name_prefix="webhook")
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)

    def start(self) -> WebhookSender:
        self._thread.start()
        if self.redis_url is not None:
            threading.Thread(target=self._listen, name="webhook-wake", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.config.poll_s)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.dispatch()
            except Exception:
                logger.exception("the webhook sender failed; the next poll retries")

    def _listen(self) -> None:
        """Wakes the sender on every job's final event; reconnects after Redis errors."""
        assert self.redis_url is not None
        while not self._stopped.is_set():
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(CHANNEL_PREFIX + "*")
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and _is_final(message):
                        self._wake.set()
            except Exception as exc:
                logger.warning("webhooks: no job events from Redis (%s); polling only", exc)
                self._stopped.wait(5)
            finally:
                pubsub.close()
                client.close()

    def dispatch(self) -> int:
        """Claims as many due deliveries as there are free slots and starts their attempts;
        returns how many it started."""
        free = 0
        while self._slots.acquire(blocking=False):
            free += 1
        claims: list[Claim] = []
        try:
            claims = self.store.claim_due(time.time(), free, self.config.lease_s)
        finally:
            for _ in range(free - len(claims)):
                self._slots.release()
        for claim in claims:
            self._pool.submit(self._attempt_in_slot, claim)
        return len(claims)

    def _attempt_in_slot(self, claim: Claim) -> None:
        try:
            self.attempt(claim)
        except Exception:
            logger.exception("webhook %s: the attempt failed unexpectedly", claim.delivery.id)
        finally:
            self._slots.release()
            self._wake.set()  # a free slot: more may be due

    def send_due(self) -> int:
        """Claims the due deliveries and attempts them here, one after another (tests, tools)."""
        claims = self.store.claim_due(time.time(), self.config.max_concurrent, self.config.lease_s)
        for claim in claims:
            self.attempt(claim)
        return len(claims)

    def attempt(self, claim: Claim) -> Outcome:
        """One attempt at a claimed delivery, recorded with its consequence."""
        delivery = claim.delivery
        started = time.time()
        outcome, status_code, error = self._post(claim)
        result = AttemptResult(started, time.time() - started, status_code, error)
        final: str | None = None
        if outcome == "delivered":
            final = "delivered"
            self.store.record(claim, result, "delivered")
        elif outcome == "refused":
            final = "failed"
            self.store.record(claim, result, "failed")
        else:
            delay = retry_delay(self.config, claim.attempt)
            if delay is None:
                final = "failed"
                gave_up = AttemptResult(
                    started,
                    result.duration_s,
                    status_code,
                    f"gave up after {claim.attempt} attempts; the last: {error}",
                )
                self.store.record(claim, gave_up, "failed")
            else:
                self.store.record(claim, result, "retry", next_attempt_at=time.time() + delay)
        latency = time.time() - delivery.created_at if final == "delivered" else None
        metrics.webhook_attempt(delivery.event_type, outcome, final, latency)
        log = logger.info if outcome == "delivered" else logger.warning
        log(
            "webhook %s attempt %d: %s",
            delivery.id,
            claim.attempt,
            status_code if status_code is not None else error,
            extra={"job_id": delivery.job_id},
        )
        return outcome

    def _post(self, claim: Claim) -> tuple[Outcome, int | None, str | None]:
        delivery = claim.delivery
        secret = self.store.secret_of(delivery.project)
        if not secret:
            return "refused", None, f"project {delivery.project!r} has no webhook secret"
        try:
            target = self.guard.check(delivery.url)  # again: what a name resolves to can change
        except RefusedURL as exc:
            return "refused", None, f"refused: {exc}"
        url, host, extensions = target.pinned()
        body = body_of(delivery.payload)
        headers = {**signed_headers(secret, delivery.id, body, datetime.now(UTC)), **host}
        try:
            with self.client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as response:
                code = response.status_code  # the body is never read
        except httpx.HTTPError as exc:
            return "network_error", None, _describe(exc)
        if 200 <= code < 300:
            return "delivered", code, None
        return "http_error", code, f"HTTP {code}"


def _is_final(message: dict[str, Any]) -> bool:
    channel, data = message["channel"], message["data"]
    if isinstance(channel, bytes):
        channel = channel.decode()
    try:
        return JobEvent.from_message(channel, data).status in TERMINAL_STATUSES
    except (ValueError, KeyError, TypeError):
        return False


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


class WebhookService:
    """What the routes call: a job's URL checked at acceptance, a project's settings (admin),
    and a video's deliveries."""

    def __init__(self, config: WebhookConfig, jobs: JobStore, auth_enabled: bool):
        self.config = config
        self.jobs = jobs
        self.store = WebhookStore(jobs)
        self.guard = UrlGuard(config.allow_networks, config.max_url_chars)
        self.auth_enabled = auth_enabled

    def sender(self, redis_url: str | None = None) -> WebhookSender:
        """The background sender; with `redis_url` it also wakes when a job ends."""
        return WebhookSender(self.store, self.config, self.guard, redis_url=redis_url)

    def check_job_url(self, url: str, caller: Caller) -> str:
        """The URL a new job's event goes to, or a 400 (nothing is written)."""
        if not self.auth_enabled:
            raise invalid(
                "webhook_url needs API keys: webhooks are signed with the secret of the "
                "caller's project, and this service runs without keys.",
                "webhook_url",
                "webhooks_unavailable",
            )
        if not self.store.secret_of(caller.project):
            raise invalid(
                f"Project '{caller.project}' has no webhook signing secret yet; an admin "
                f"creates it with PUT /v1/admin/projects/{caller.project}/webhook.",
                "webhook_url",
                "webhook_secret_missing",
            )
        self._check(url, "webhook_url")
        return url

    def _check(self, url: str, param: str) -> None:
        try:
            self.guard.check(url)
        except RefusedURL as exc:
            raise invalid(
                f"The webhook URL is refused: {exc}.", param, "webhook_url_refused"
            ) from None

    def settings(self, project: str) -> ProjectWebhook:
        settings = self.store.settings(project)
        return ProjectWebhook(
            project=project,
            url=settings.url,
            has_secret=settings.has_secret,
            updated_at=settings.updated_at,
        )

    def configure(
        self, project: str, fields: dict[str, Any], rotate_secret: bool
    ) -> ProjectWebhook:
        """`fields` may hold `url` (None clears the default URL); a URL is checked first."""
        url = fields.get("url")
        if url is not None:
            self._check(url, "url")
        settings = (
            self.store.configure(project, url, rotate_secret)
            if "url" in fields
            else self.store.configure(project, rotate_secret=rotate_secret)
        )
        return ProjectWebhook(
            project=project,
            url=settings.url,
            has_secret=settings.has_secret,
            updated_at=settings.updated_at,
            secret=settings.secret,
        )

    def deliveries(self, video_id: str, project: str) -> WebhookDeliveryList:
        if self.jobs.get(video_id, project) is None:
            raise not_found(video_id)
        data = [
            WebhookDeliveryInfo(
                id=row.id,
                event_type=row.event_type,  # type: ignore[arg-type]
                url=row.url,
                status=row.status,  # type: ignore[arg-type]
                attempts=row.attempts,
                created_at=row.created_at,
                next_attempt_at=row.next_attempt_at,
                delivered_at=row.delivered_at,
                last_error=row.last_error,
                attempts_detail=[
                    WebhookAttemptInfo(
                        attempt=a.attempt,
                        started_at=a.started_at,
                        duration_s=a.duration_s,
                        status_code=a.status_code,
                        error=a.error,
                    )
                    for a in attempts
                ],
            )
            for row, attempts in self.store.deliveries_of(video_id, project)
        ]
        return WebhookDeliveryList(data=data)
