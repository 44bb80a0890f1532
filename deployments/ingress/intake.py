"""The stages every new job goes through, whichever route it came by (create, remix, a
conversation): attach the picture, classify and plan, then record the job and queue its task."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from deployments.classifier.protocol import Classification, Label, Picture
from deployments.ingress.admission import Admission
from deployments.ingress.auth import OPEN, Caller
from deployments.ingress.cache import ResultCache, cache_key
from deployments.ingress.config import IngressConfig
from deployments.ingress.sessions import SessionStore
from deployments.router.protocol import (
    CategorySource,
    GenerationParams,
    Plan,
    PlanRequest,
    UserParams,
)
from deployments.router.protocol import Label as PlanLabel
from i2v_core import metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError, invalid
from i2v_core.images import ValidatedImage, validate_image
from i2v_core.jobs import Job, JobStore, new_job_id, scoped_idempotency_key

logger = logging.getLogger("ray.serve")

Classify = Callable[[Picture], Awaitable[Classification]]
PlanFn = Callable[[PlanRequest], Awaitable[Plan]]
Enqueue = Callable[[str], None]


@dataclass
class Draft:
    """One request on its way to becoming a job, on behalf of `caller` (its project owns it)."""

    instruction: str
    session_id: str | None
    caller: Caller = OPEN
    image: ValidatedImage | None = None
    user: UserParams = field(default_factory=UserParams)
    category: str | None = None
    category_source: CategorySource = "classifier"
    scores: dict[str, float] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    remixed_from: str | None = None
    previous: GenerationParams | None = None
    history: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    webhook_url: str | None = None  # checked already (`WebhookService.check_job_url`)
    timings: dict[str, float] = field(default_factory=dict)
    trace: list[dict] = field(default_factory=list)
    # Extensions and edits (`continuations.py`): which, the video of ours it starts from, and
    # the stored source video the result begins with (extensions only).
    operation: str | None = None
    source_video_id: str | None = None
    prefix_video: str | None = None


class JobIntake:
    def __init__(
        self,
        config: IngressConfig,
        jobs: JobStore,
        artifacts: ArtifactStore,
        sessions: SessionStore,
        admission: Admission,
        classify: Classify,
        plan: PlanFn,
        enqueue: Enqueue,
    ):
        self.config = config
        self.jobs = jobs
        self.artifacts = artifacts
        self.sessions = sessions
        self.admission = admission
        self.cache = ResultCache(jobs, artifacts)
        self._classify = classify
        self._plan = plan
        self._enqueue = enqueue

    def check_model(self, model: str | None) -> None:
        """The `model` a request names must be this service's (or absent)."""
        if model not in (None, "", self.config.model_name):
            raise APIError(
                404,
                f"The model '{model}' does not exist; this service runs "
                f"'{self.config.model_name}'.",
                param="model",
                code="model_not_found",
            )

    def attach_picture(self, draft: Draft, upload: bytes | None, image_url: str | None) -> None:
        """The uploaded picture, or else the session's last one with its category."""
        if upload is not None or image_url is not None or draft.session_id is None:
            draft.image = self.picture_from_form(upload, image_url)
        else:
            picture = self.sessions.last_picture(draft.caller.project, draft.session_id)
            if picture is None:
                raise no_picture()
            draft.image = self.stored_picture(picture.name)
            if draft.category is None and picture.category is not None:
                draft.category, draft.category_source = picture.category, "session"
            draft.trace.append(
                {
                    "stage": "picture",
                    "decision": "session",
                    "detail": {"image_sha256": picture.sha256},
                }
            )
        if draft.session_id is not None:
            draft.history = self.sessions.prompts(draft.caller.project, draft.session_id)

    def stored_picture(self, name: str) -> ValidatedImage:
        data = self.artifacts.image_path(name).read_bytes()
        return validate_image(data, self.config.uploads)

    def picture_from_form(self, upload: bytes | None, image_url: str | None) -> ValidatedImage:
        if upload is not None and image_url is not None:
            raise invalid(
                "Give input_reference either as a file or as an image_url, not both.",
                "input_reference",
            )
        if upload is not None:
            return validate_image(upload, self.config.uploads)
        if image_url is not None:
            return validate_image(
                _data_url_bytes(image_url), self.config.uploads, "input_reference.image_url"
            )
        raise no_picture()

    async def plan(self, draft: Draft, allow_clarify: bool) -> Plan:
        """Classifies the picture (unless the category is known) and asks the router for a plan;
        the draft gathers timings and trace."""
        image = picture_of(draft)
        if draft.category is None:
            t0 = time.perf_counter()
            classification = await self._bounded(
                self._classify(Picture.from_image(image.preview)),
                self.config.timeouts.classify_s,
                "classifier",
            )
            draft.timings["classify"] = time.perf_counter() - t0
            draft.category, draft.scores = classification.category, classification.scores
            draft.labels = classification.labels
            draft.trace.append(
                {
                    "stage": "classify",
                    "decision": draft.category,
                    "detail": {
                        "scores": draft.scores,
                        "labels": [label.model_dump() for label in draft.labels],
                        **classification.evidence,
                    },
                }
            )
        elif not draft.scores:
            draft.trace.append(
                {"stage": "classify", "decision": draft.category, "detail": {"source": "given"}}
            )
        t0 = time.perf_counter()
        request = PlanRequest(
            instruction=draft.instruction,
            category=draft.category,
            category_source=draft.category_source,
            labels=[PlanLabel.model_validate(label.model_dump()) for label in draft.labels],
            image_width=image.width,
            image_height=image.height,
            user=draft.user,
            history=draft.history,
            previous=draft.previous,
            allow_clarify=allow_clarify,
        )
        plan = await self._bounded(self._plan(request), self.config.timeouts.plan_s, "router")
        draft.timings["plan"] = time.perf_counter() - t0
        draft.category = plan.category or draft.category
        draft.trace.extend(d.model_dump() for d in plan.trace)
        return plan

    async def accept(self, draft: Draft, plan: Plan, record_turn: bool = True) -> Job:
        """The job row, its picture and its queue task (or a completed row from the result
        cache); the session's turns when the draft belongs to one."""
        image = picture_of(draft)
        job = Job(
            id=new_job_id(),
            model=self.config.model_name,
            instruction=draft.instruction,
            prompt=plan.prompt,
            negative_prompt=plan.negative_prompt,
            project=draft.caller.project,
            key_id=draft.caller.key_id,
            session_id=draft.session_id,
            remixed_from=draft.remixed_from,
            image_sha256=image.sha256,
            image_name=image.name,
            # An extension's result begins with its source video, which the key does not cover.
            cache_key=cache_key(image.sha256, plan) if draft.prefix_video is None else None,
            idempotency_key=(
                scoped_idempotency_key(draft.caller.project, draft.idempotency_key)
                if draft.idempotency_key is not None
                else None
            ),
            category=draft.category,
            category_scores=draft.scores,
            params=plan.params.model_dump(),
            plan=plan.model_dump(exclude={"trace"}),
            timings=draft.timings,
            trace=draft.trace,
            operation=draft.operation,
            source_video_id=draft.source_video_id,
            prefix_video=draft.prefix_video,
            webhook_url=draft.webhook_url,
        )
        recorded = await run_in_threadpool(self._record_and_enqueue, job, image, draft.caller)
        if recorded is not job:  # a concurrent retry with the same Idempotency-Key won
            return recorded
        if draft.session_id is not None:
            await run_in_threadpool(self._record_video_turn, job, record_turn)
        logger.info(
            "job accepted",
            extra={
                "job_id": job.id,
                "session_id": draft.session_id,
                "category": job.category,
                "planner": plan.planner,
            },
        )
        metrics.job_accepted(plan.planner, draft.timings, draft.caller.project)
        return job

    def _record_video_turn(self, job: Job, with_user_turn: bool) -> None:
        if job.session_id is None:
            return
        if with_user_turn:
            self.sessions.add(
                job.project,
                job.session_id,
                "user",
                job.instruction,
                image_sha256=job.image_sha256,
                image_name=job.image_name,
                category=job.category,
            )
        self.sessions.add(
            job.project,
            job.session_id,
            "assistant",
            job.prompt,
            action="generate",
            image_sha256=job.image_sha256,
            image_name=job.image_name,
            category=job.category,
            prompt=job.prompt,
            plan=job.plan,
            video_id=job.id,
        )

    def _record_and_enqueue(self, job: Job, image: ValidatedImage, caller: Caller) -> Job:
        """A job counts as accepted only once its task is in the queue; if the queue refuses it,
        the row and any picture only it used are removed again. An identical seeded request
        that already completed is answered from the result cache without queueing."""
        try:
            if job.cache_key is not None and self.cache.complete(job, image):
                return job
            # Checked again here: requests admitted together may have filled the backlog
            # while they were classified and planned.
            self.admission.admit(caller)
            self.artifacts.put_image(image.name, image.data)
            self.jobs.create(job)
        except IntegrityError:
            earlier = self.jobs.find_by_idempotency_key(job.idempotency_key or "")
            if earlier is None:
                raise
            return earlier
        try:
            self._enqueue(job.id)
        except Exception as exc:
            self.jobs.delete(job.id)
            if not self.jobs.image_in_use(image.sha256):
                self.artifacts.delete_image(image.name)
            logger.exception("enqueue failed for %s", job.id)
            raise APIError(
                503,
                "The generation queue is unavailable; nothing was created. Try again later.",
                code="queue_unavailable",
                headers={"Retry-After": "5"},
            ) from exc
        return job

    @staticmethod
    async def _bounded(call: Awaitable, timeout_s: float, what: str):
        try:
            return await asyncio.wait_for(call, timeout_s)
        except asyncio.TimeoutError as exc:
            raise APIError(
                503,
                f"The {what} did not answer within {timeout_s:g} s; nothing was created.",
                code=f"{what}_timeout",
                headers={"Retry-After": "5"},
            ) from exc


def _data_url_bytes(url: str) -> bytes:
    if not url.startswith("data:"):
        raise invalid(
            "Only data: URLs (base64) are accepted for input_reference.image_url; "
            "upload the file instead.",
            "input_reference.image_url",
            "unsupported_image_url",
        )
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise invalid("The image data URL must be base64-encoded.", "input_reference.image_url")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "The image data URL is not valid base64.", "input_reference.image_url", "invalid_image"
        ) from None


def picture_of(draft: Draft) -> ValidatedImage:
    if draft.image is None:
        raise RuntimeError("a draft is planned or accepted only with its picture attached")
    return draft.image


def no_picture() -> APIError:
    return invalid(
        "Missing required parameter: 'input_reference' (the picture to animate).",
        "input_reference",
        "missing_required_parameter",
    )
