"""The ingress's services wired together over one job store and artifact store: what the routes
call. `build_services` is also how tests get them without Ray."""

from __future__ import annotations

from dataclasses import dataclass

from deployments.ingress.admission import Admission
from deployments.ingress.auth import Authenticator
from deployments.ingress.config import IngressConfig
from deployments.ingress.continuations import ContinuationService
from deployments.ingress.conversations import ConversationService
from deployments.ingress.events import EventHub
from deployments.ingress.intake import Classify, Enqueue, JobIntake, PlanFn
from deployments.ingress.limits import RequestRate
from deployments.ingress.sessions import SessionStore
from deployments.ingress.videos import VideoService
from deployments.ingress.webhooks import WebhookService
from i2v_core.artifacts import ArtifactStore
from i2v_core.jobs import JobStore
from i2v_core.keys import KeyStore


@dataclass(frozen=True)
class Services:
    videos: VideoService
    continuations: ContinuationService  # extensions and edits
    conversations: ConversationService
    jobs: JobStore
    keys: KeyStore
    auth: Authenticator
    rate: RequestRate | None  # a key's requests per minute; None while auth is off
    events: EventHub  # the progress streams (connects to Redis on the first)
    webhooks: WebhookService


def build_services(
    config: IngressConfig,
    jobs: JobStore,
    artifacts: ArtifactStore,
    classify: Classify,
    plan: PlanFn,
    enqueue: Enqueue,
    admin_secret: str | None = None,
) -> Services:
    """With `admin_secret` (the admin key), every /v1 route needs an API key and a key's
    requests per minute are counted in the queue's Redis."""
    sessions = SessionStore(jobs)
    admission = Admission(jobs, config.admission)
    intake = JobIntake(config, jobs, artifacts, sessions, admission, classify, plan, enqueue)
    keys = KeyStore(jobs)
    webhooks = WebhookService(config.webhooks, jobs, auth_enabled=admin_secret is not None)
    return Services(
        videos=VideoService(config, jobs, artifacts, admission, intake, webhooks),
        continuations=ContinuationService(config, jobs, artifacts, admission, intake),
        conversations=ConversationService(sessions, artifacts, admission, intake),
        jobs=jobs,
        keys=keys,
        auth=Authenticator(config.auth, keys, admin_secret),
        rate=RequestRate(config.queue.redis_url) if admin_secret is not None else None,
        events=EventHub(
            config.events, config.queue.redis_url, jobs, config.admission.retry_after_s
        ),
        webhooks=webhooks,
    )
