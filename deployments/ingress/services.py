"""The ingress's services wired together over one job store and artifact store: what the routes
call. `build_services` is also how tests get them without Ray."""

from __future__ import annotations

from dataclasses import dataclass

from deployments.ingress.admission import Admission
from deployments.ingress.config import IngressConfig
from deployments.ingress.conversations import ConversationService
from deployments.ingress.intake import Classify, Enqueue, JobIntake, PlanFn
from deployments.ingress.sessions import SessionStore
from deployments.ingress.videos import VideoService
from i2v_core.artifacts import ArtifactStore
from i2v_core.jobs import JobStore


@dataclass(frozen=True)
class Services:
    videos: VideoService
    conversations: ConversationService
    jobs: JobStore


def build_services(
    config: IngressConfig,
    jobs: JobStore,
    artifacts: ArtifactStore,
    classify: Classify,
    plan: PlanFn,
    enqueue: Enqueue,
) -> Services:
    sessions = SessionStore(jobs)
    admission = Admission(jobs, config.admission)
    intake = JobIntake(config, jobs, artifacts, sessions, admission, classify, plan, enqueue)
    return Services(
        videos=VideoService(config, jobs, artifacts, admission, intake),
        conversations=ConversationService(sessions, artifacts, admission, intake),
        jobs=jobs,
    )
