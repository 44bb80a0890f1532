"""The Videos API's logic, testable without HTTP: create and remix (through `JobIntake`),
retrieve, list, delete and content. Reads never write. Every call acts for a caller and sees
only the caller's project: another project's video is "not found", exactly as a missing one."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from deployments.ingress.admission import Admission
from deployments.ingress.auth import OPEN, OPEN_PROJECT, Caller
from deployments.ingress.config import IngressConfig
from deployments.ingress.intake import Draft, JobIntake
from deployments.ingress.protocol import ContentVariant, Video, VideoDeleted, VideoList, video_of
from deployments.ingress.requests import CreateVideoForm, ListQuery
from deployments.ingress.webhooks import WebhookService
from deployments.router.protocol import GenerationParams, UserParams
from i2v_core import metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError, not_found
from i2v_core.jobs import JobStore, scoped_idempotency_key

logger = logging.getLogger("ray.serve")


class VideoService:
    def __init__(
        self,
        config: IngressConfig,
        jobs: JobStore,
        artifacts: ArtifactStore,
        admission: Admission,
        intake: JobIntake,
        webhooks: WebhookService | None = None,
    ):
        self.config = config
        self.jobs = jobs
        self.artifacts = artifacts
        self.admission = admission
        self.intake = intake
        self.webhooks = webhooks or WebhookService(config.webhooks, jobs, auth_enabled=False)

    async def create(
        self, form: CreateVideoForm, caller: Caller = OPEN, idempotency_key: str | None = None
    ) -> Video:
        started = time.perf_counter()
        key = idempotency_key or None
        if key is not None:
            stored_key = scoped_idempotency_key(caller.project, key)
            earlier = await run_in_threadpool(self.jobs.find_by_idempotency_key, stored_key)
            if earlier is not None:
                return video_of(earlier)
        if form.webhook_url is not None:
            await run_in_threadpool(self.webhooks.check_job_url, form.webhook_url, caller)
        await run_in_threadpool(self.admission.admit, caller)
        self.intake.check_model(form.model)
        draft = Draft(
            instruction=form.prompt.strip(),
            session_id=form.session_id,
            caller=caller,
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
            webhook_url=form.webhook_url,
        )
        upload = form.input_reference.data if form.input_reference is not None else None
        await run_in_threadpool(self.intake.attach_picture, draft, upload, form.image_url)
        draft.timings["validate"] = time.perf_counter() - started
        plan = await self.intake.plan(draft, allow_clarify=False)
        return video_of(await self.intake.accept(draft, plan))

    async def remix(self, video_id: str, prompt: str, caller: Caller = OPEN) -> Video:
        """A new job continuing the source video: same picture, category, size, frames and
        seed; the router revises the earlier prompt with the new instruction."""
        instruction = prompt.strip()
        source = await run_in_threadpool(self.jobs.get, video_id, caller.project)
        if source is None:
            raise not_found(video_id)
        await run_in_threadpool(self.admission.admit, caller)
        draft = Draft(
            instruction=instruction,
            session_id=source.session_id,
            caller=caller,
            image=await run_in_threadpool(self.intake.stored_picture, source.image_name),
            category=source.category,
            category_source="source",
            scores=source.category_scores,
            remixed_from=source.id,
            previous=GenerationParams.model_validate(source.params),
            history=[source.prompt],
        )
        plan = await self.intake.plan(draft, allow_clarify=False)
        return video_of(await self.intake.accept(draft, plan))

    def retrieve(self, video_id: str, project: str = OPEN_PROJECT) -> Video:
        job = self.jobs.get(video_id, project)
        if job is None:
            raise not_found(video_id)
        return video_of(job)

    def list(self, query: ListQuery, project: str = OPEN_PROJECT) -> VideoList:
        """A page of videos (the filters are described on `ListQuery`)."""
        earliest, latest = query.created_after, query.created_before
        if earliest is not None and latest is not None and earliest > latest:
            return VideoList(data=[], has_more=False)
        page = self.jobs.list(
            query.after,
            query.limit,
            query.order,
            project=project,
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
        data = [video_of(job) for job in rows]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )

    def delete(self, video_id: str, project: str = OPEN_PROJECT) -> VideoDeleted:
        """The video is gone afterwards, as OpenAI's API promises: its row and files are
        removed. A queued or running job is cancelled first (counted as failed with code
        `cancelled`); its generation stops within a denoising step, as it finds its row gone."""
        if self.jobs.get(video_id, project) is None:
            raise not_found(video_id)
        cancelled = self.jobs.fail(video_id, "cancelled", "Cancelled by a DELETE request.")
        if cancelled:
            metrics.job_finished("failed", "cancelled")
        job = self.jobs.delete(video_id, project)
        if job is None:
            raise not_found(video_id)
        metrics.storage_freed("deleted", self.artifacts.delete_outputs(video_id))
        if not self.jobs.image_in_use(job.image_sha256):
            self.artifacts.delete_image(job.image_name)
        if job.prefix_video and not self.jobs.prefix_video_in_use(job.prefix_video):
            self.artifacts.delete_source_video(job.prefix_video)
        logger.info(
            "job cancelled and deleted" if cancelled else "job deleted",
            extra={"job_id": video_id, "session_id": job.session_id},
        )
        return VideoDeleted(id=video_id)

    def content_path(
        self, video_id: str, variant: ContentVariant, project: str = OPEN_PROJECT
    ) -> Path:
        job = self.jobs.get(video_id, project)
        if job is None:
            raise not_found(video_id)
        if job.status != "completed":
            raise APIError(
                409,
                f"Video '{video_id}' is {job.status}; its content exists once it is completed.",
                param="video_id",
                code="video_not_ready",
            )
        if job.expired_at is not None:
            raise APIError(
                410,
                f"Video '{video_id}' expired at {int(job.expires_at or job.expired_at)} (unix "
                "time) and its files were removed; the video's record remains.",
                param="video_id",
                code="video_expired",
            )
        path = {
            "video": self.artifacts.video_path,
            "thumbnail": self.artifacts.thumbnail_path,
            "spritesheet": self.artifacts.spritesheet_path,
        }[variant](video_id)
        if not path.exists():
            raise APIError(
                404,
                f"The {variant} of '{video_id}' is missing from the store.",
                param="video_id",
                code="content_missing",
            )
        return path
