"""The logic behind the Videos API, testable without HTTP: check a request, classify and plan it,
record the job, put its task in the queue, and present jobs as OpenAI Video objects."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from deployments.classifier.protocol import Classification, Label
from deployments.ingress.config import IngressConfig
from deployments.ingress.protocol import (
    ChatReply,
    SessionTurn,
    Video,
    VideoDeleted,
    VideoError,
    VideoList,
)
from deployments.ingress.requests import CreateVideoForm, ListQuery
from deployments.ingress.sessions import SessionStore, is_affirmative
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
from i2v_core.domain import ACTIVE_STATUSES, VideoStatus
from i2v_core.errors import APIError, invalid, not_found
from i2v_core.images import ValidatedImage, validate_image
from i2v_core.jobs import Job, JobStore, new_job_id

logger = logging.getLogger("ray.serve")

_DEADLINE_GRACE_S = 30.0

Classify = Callable[[bytes], Awaitable[Classification]]
PlanFn = Callable[[PlanRequest], Awaitable[Plan]]
Enqueue = Callable[[str], None]


@dataclass
class Draft:
    """One request on its way to becoming a job."""

    instruction: str
    session_id: str | None
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
    timings: dict[str, float] = field(default_factory=dict)
    trace: list[dict] = field(default_factory=list)


class VideoService:
    def __init__(
        self,
        config: IngressConfig,
        jobs: JobStore,
        artifacts: ArtifactStore,
        classify: Classify,
        plan: PlanFn,
        enqueue: Enqueue,
    ):
        self.config = config
        self.jobs = jobs
        self.sessions = SessionStore(jobs)
        self.artifacts = artifacts
        self._classify = classify
        self._plan = plan
        self._enqueue = enqueue

    # --- create ------------------------------------------------------------------------------

    async def create(self, form: CreateVideoForm, idempotency_key: str | None = None) -> Video:
        started = time.perf_counter()
        key = idempotency_key or None
        if key is not None:
            earlier = await run_in_threadpool(self.jobs.find_by_idempotency_key, key)
            if earlier is not None:
                return self.video(earlier)
        await run_in_threadpool(self._admit)
        self._check_model(form.model)
        draft = Draft(
            instruction=form.prompt.strip(),
            session_id=form.session_id,
            user=UserParams(
                num_frames=form.num_frames,
                num_inference_steps=form.num_inference_steps,
                guidance_scale=form.guidance_scale,
                fps=form.fps,
                seed=form.seed,
                seconds=form.seconds,
                size=form.size_pixels(),
            ),
            category=form.category,
            category_source="user" if form.category is not None else "classifier",
            idempotency_key=key,
        )
        upload = form.input_reference.data if form.input_reference is not None else None
        await run_in_threadpool(self._attach_picture, draft, upload, form.image_url)
        draft.timings["validate"] = time.perf_counter() - started
        plan = await self._plan_draft(draft, allow_clarify=False)
        return await self._accept(draft, plan)

    async def remix(self, video_id: str, prompt: str) -> Video:
        """A new job continuing the source video: same picture, category, size, frames and
        seed; the router revises the earlier prompt with the new instruction."""
        instruction = prompt.strip()
        source = await run_in_threadpool(self.jobs.get, video_id)
        if source is not None:
            await run_in_threadpool(self._admit)
        if source is None:
            raise not_found(video_id)
        draft = Draft(
            instruction=instruction,
            session_id=source.session_id,
            image=await run_in_threadpool(self._stored_picture, source.image_name),
            category=source.category,
            category_source="source",
            scores=source.category_scores,
            remixed_from=source.id,
            previous=GenerationParams.model_validate(source.params),
            history=[source.prompt],
        )
        plan = await self._plan_draft(draft, allow_clarify=False)
        return await self._accept(draft, plan)

    async def converse(self, session_id: str, text: str, image: bytes | None) -> ChatReply:
        """One message of a conversation: the answer is a clarifying question or a video. A
        yes-style reply to the service's question goes ahead with the plan it proposed."""
        text = text.strip()
        await run_in_threadpool(self._admit)
        pending = await run_in_threadpool(self.sessions.pending_question, session_id)
        if (
            pending is not None
            and pending.plan is not None
            and pending.image_name is not None
            and image is None
            and is_affirmative(text)
        ):
            draft = Draft(
                instruction=pending.plan["instruction"],
                session_id=session_id,
                image=await run_in_threadpool(self._stored_picture, pending.image_name),
                category=pending.category,
            )
            draft.trace.append(
                {"stage": "clarify", "decision": "confirmed", "detail": {"reply": text}}
            )
            await run_in_threadpool(self.sessions.add, session_id, "user", text)
            plan = Plan.model_validate(pending.plan["plan"])
            return ChatReply(
                session_id=session_id,
                type="video",
                video=await self._accept(draft, plan, record_turn=False),
            )

        draft = Draft(instruction=text, session_id=session_id)
        await run_in_threadpool(self._attach_picture, draft, image, None)
        plan = await self._plan_draft(draft, allow_clarify=True)
        if plan.action != "clarify":
            return ChatReply(
                session_id=session_id, type="video", video=await self._accept(draft, plan)
            )
        question = plan.question or plan.prompt
        await run_in_threadpool(self._record_question, draft, plan, question)
        return ChatReply(
            session_id=session_id, type="question", question=question, proposed_prompt=plan.prompt
        )

    def messages(self, session_id: str) -> list[SessionTurn]:
        return [
            SessionTurn(
                role=t.role,
                text=t.text,
                action=t.action,
                video_id=t.video_id,
                prompt=t.prompt,
                category=t.category,
                created_at=int(t.created_at),
            )
            for t in self.sessions.turns(session_id)
        ]

    # --- the stages of one request -----------------------------------------------------------

    def _attach_picture(self, draft: Draft, upload: bytes | None, image_url: str | None) -> None:
        """The uploaded picture, or else the session's last one with its category."""
        if upload is not None or image_url is not None or draft.session_id is None:
            draft.image = self._image_from_form(upload, image_url)
        else:
            picture = self.sessions.last_picture(draft.session_id)
            if picture is None:
                raise _no_picture()
            draft.image = self._stored_picture(picture.name)
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
            draft.history = self.sessions.prompts(draft.session_id)

    def _stored_picture(self, name: str) -> ValidatedImage:
        data = self.artifacts.image_path(name).read_bytes()
        return validate_image(data, self.config.uploads)

    async def _plan_draft(self, draft: Draft, allow_clarify: bool) -> Plan:
        image = _picture(draft)
        if draft.category is None:
            t0 = time.perf_counter()
            classification = await self._bounded(
                self._classify(image.data), self.config.timeouts.classify_s, "classifier"
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
        metrics.plan_decided(plan.trace)
        return plan

    async def _accept(self, draft: Draft, plan: Plan, record_turn: bool = True) -> Video:
        image = _picture(draft)
        job = Job(
            id=new_job_id(),
            model=self.config.model_name,
            instruction=draft.instruction,
            prompt=plan.prompt,
            negative_prompt=plan.negative_prompt,
            session_id=draft.session_id,
            remixed_from=draft.remixed_from,
            image_sha256=image.sha256,
            image_name=image.name,
            cache_key=cache_key(image.sha256, plan),
            idempotency_key=draft.idempotency_key,
            category=draft.category,
            category_scores=draft.scores,
            params=plan.params.model_dump(),
            plan=plan.model_dump(exclude={"trace"}),
            timings=draft.timings,
            trace=draft.trace,
        )
        recorded = await run_in_threadpool(self._record_and_enqueue, job, image)
        if recorded is not job:  # a concurrent retry with the same Idempotency-Key won
            return self.video(recorded)
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
        metrics.job_accepted(plan.planner, draft.timings)
        return self.video(job)

    def _record_video_turn(self, job: Job, with_user_turn: bool) -> None:
        if job.session_id is None:
            return
        if with_user_turn:
            self.sessions.add(
                job.session_id,
                "user",
                job.instruction,
                image_sha256=job.image_sha256,
                image_name=job.image_name,
                category=job.category,
            )
        self.sessions.add(
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

    def _record_question(self, draft: Draft, plan: Plan, question: str) -> None:
        image = _picture(draft)
        if draft.session_id is None:
            raise RuntimeError("a clarifying question belongs to a session")
        self.artifacts.put_image(image.name, image.data)
        self.sessions.add(
            draft.session_id,
            "user",
            draft.instruction,
            image_sha256=image.sha256,
            image_name=image.name,
            category=draft.category,
        )
        proposal = {
            "instruction": draft.instruction,
            "plan": plan.model_copy(update={"action": "generate"}).model_dump(),
        }
        self.sessions.add(
            draft.session_id,
            "assistant",
            question,
            action="clarify",
            image_sha256=image.sha256,
            image_name=image.name,
            category=draft.category,
            prompt=plan.prompt,
            plan=proposal,
        )

    def _record_and_enqueue(self, job: Job, image: ValidatedImage) -> Job:
        """A job counts as accepted only once its task is in the queue; if the queue refuses it,
        the row and any picture only it used are removed again. An identical seeded request
        that already completed is answered from the result cache without queueing."""
        try:
            if job.cache_key is not None and self._complete_from_cache(job, image):
                return job
            # Checked again here: requests admitted together may have filled the backlog
            # while they were classified and planned.
            self._admit()
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

    def _complete_from_cache(self, job: Job, image: ValidatedImage) -> bool:
        if job.cache_key is None:
            return False
        source = self.jobs.find_cached(job.cache_key)
        if source is None or not self.artifacts.copy_outputs(source.id, job.id):
            return False
        self.artifacts.put_image(image.name, image.data)
        job.timings = {**job.timings, "total": 0.0}
        job.trace = [
            *job.trace,
            {"stage": "cache", "decision": "hit", "detail": {"source_video_id": source.id}},
        ]
        self.jobs.create(job, completed=True)
        logger.info("result cache hit", extra={"job_id": job.id, "source": source.id})
        metrics.cache_hit()
        metrics.job_finished("completed", None)
        return True

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

    # --- checks ------------------------------------------------------------------------------

    def _admit(self) -> None:
        """Backpressure: over the backlog limit, answer 429 at once and write nothing."""
        limit = self.config.admission.max_backlog
        backlog = self.jobs.count(ACTIVE_STATUSES)
        if backlog >= limit:
            retry_after = self.config.admission.retry_after_s
            raise APIError(
                429,
                f"The service is at capacity ({backlog} jobs waiting or running, limit {limit}); "
                f"retry after {retry_after} s.",
                code="backlog_full",
                headers={"Retry-After": str(retry_after)},
            )

    def _check_model(self, model: str | None) -> None:
        if model not in (None, "", self.config.model_name):
            raise APIError(
                404,
                f"The model '{model}' does not exist; this service runs "
                f"'{self.config.model_name}'.",
                param="model",
                code="model_not_found",
            )

    def _image_from_form(self, upload: bytes | None, image_url: str | None) -> ValidatedImage:
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
        raise _no_picture()

    # --- reads -------------------------------------------------------------------------------

    def retrieve(self, video_id: str) -> Video:
        job = self.jobs.get(video_id)
        if job is None:
            raise not_found(video_id)
        return self.video(self._expire_if_overdue(job))

    def _expire_if_overdue(self, job: Job) -> Job:
        """A job nobody finished (no healthy replica took it, or its replica died) fails once
        its deadline and a grace period have passed; a live replica fails it itself earlier."""
        overdue_at = job.created_at + self.config.timeouts.job_deadline_s + _DEADLINE_GRACE_S
        if job.is_terminal or time.time() < overdue_at:
            return job
        message = "The job did not finish before its deadline."
        if self.jobs.fail(job.id, "deadline_exceeded", message):
            metrics.job_finished("failed", "deadline_exceeded")
            logger.warning("job expired", extra={"job_id": job.id, "session_id": job.session_id})
        return self.jobs.get(job.id) or job

    def list(self, query: ListQuery) -> VideoList:
        """A page of videos (the filters are described on `ListQuery`)."""
        earliest, latest = query.created_after, query.created_before
        if earliest is not None and latest is not None and earliest > latest:
            return VideoList(data=[], has_more=False)
        page = self.jobs.list(
            query.after,
            query.limit,
            query.order,
            session_id=query.session_id,
            status=query.status,
            category=query.category,
            words=query.words(),
            created_after=earliest,
            created_before=latest,
        )
        if page is None:
            raise APIError(
                404,
                f"No video found with id '{query.after}' to list after.",
                param="after",
                code="video_not_found",
            )
        rows, has_more = page
        jobs = [self._expire_if_overdue(job) for job in rows]
        # An overdue job failed just now no longer matches a status filter.
        data = [self.video(job) for job in jobs if query.status in (None, job.status)]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )

    def delete(self, video_id: str) -> VideoDeleted:
        """A queued or running job is cancelled: it ends failed with code `cancelled` and its
        generation stops within a denoising step. A finished job is removed with its files."""
        if self.jobs.fail(video_id, "cancelled", "Cancelled by a DELETE request."):
            metrics.job_finished("failed", "cancelled")
            logger.info("job cancelled", extra={"job_id": video_id})
            return VideoDeleted(id=video_id)
        job = self.jobs.delete(video_id)
        if job is None:
            raise not_found(video_id)
        self.artifacts.delete_outputs(video_id)
        if not self.jobs.image_in_use(job.image_sha256):
            self.artifacts.delete_image(job.image_name)
        logger.info("job deleted", extra={"job_id": video_id, "session_id": job.session_id})
        return VideoDeleted(id=video_id)

    def content_path(self, video_id: str, variant: str):
        if variant not in ("video", "thumbnail", "spritesheet"):
            raise invalid(f"Unknown variant '{variant}'; use video or thumbnail.", "variant")
        if variant == "spritesheet":
            raise invalid(
                "The spritesheet variant is not produced by this service; use video or thumbnail.",
                "variant",
                "unsupported_variant",
            )
        job = self.jobs.get(video_id)
        if job is None:
            raise not_found(video_id)
        if job.status != "completed":
            raise APIError(
                409,
                f"Video '{video_id}' is {job.status}; its content exists once it is completed.",
                param="video_id",
                code="video_not_ready",
            )
        path = (
            self.artifacts.video_path(video_id)
            if variant == "video"
            else self.artifacts.thumbnail_path(video_id)
        )
        if not path.exists():
            raise APIError(
                404,
                f"The {variant} of '{video_id}' is missing from the store.",
                param="video_id",
                code="content_missing",
            )
        return path

    def video(self, job: Job) -> Video:
        params = job.params
        error = (
            VideoError(code=job.error_code or "failed", message=job.error_message or "")
            if job.status == "failed"
            else None
        )
        return Video(
            id=job.id,
            model=job.model,
            status=cast(VideoStatus, job.status),
            progress=job.progress,
            created_at=int(job.created_at),
            completed_at=int(job.completed_at) if job.completed_at else None,
            prompt=job.instruction,
            remixed_from_video_id=job.remixed_from,
            seconds=_format_seconds(params["num_frames"] / params["fps"]),
            size=f"{params['width']}x{params['height']}",
            error=error,
            session_id=job.session_id,
            category=job.category,
            category_scores=job.category_scores or None,
            plan=job.plan,
            timings=job.timings,
            trace=job.trace,
        )


def cache_key(image_sha256: str, plan: Plan) -> str | None:
    """Identical requests share a key: same picture, prompts, parameters and seed. A request
    whose seed was not chosen by the user gets none, so it is never served from the cache."""
    if plan.param_sources.get("seed") != "user":
        return None
    material = [image_sha256, plan.prompt, plan.negative_prompt, plan.params.model_dump()]
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


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


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}" if seconds != int(seconds) else str(int(seconds))


def _picture(draft: Draft) -> ValidatedImage:
    if draft.image is None:
        raise RuntimeError("a draft is planned or accepted only with its picture attached")
    return draft.image


def _no_picture() -> APIError:
    return invalid(
        "Missing required parameter: 'input_reference' (the picture to animate).",
        "input_reference",
        "missing_required_parameter",
    )
