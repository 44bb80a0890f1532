"""The logic behind the Videos API, testable without HTTP: check a request, classify and plan it,
record the job, put its task in the queue, and present jobs as OpenAI Video objects."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.concurrency import run_in_threadpool

from deployments.classifier.engine import Classification
from deployments.router.config import CATEGORIES
from deployments.router.plan import Plan, PlanRequest, UserParams
from serve_app.artifacts import ArtifactStore
from serve_app.config import AppConfig
from serve_app.errors import APIError, invalid, not_found
from serve_app.images import ValidatedImage, validate_image
from serve_app.jobs import Job, JobStore, new_job_id
from serve_app.protocol import Video, VideoDeleted, VideoError, VideoList

logger = logging.getLogger("ray.serve")

Classify = Callable[[bytes], Awaitable[Classification]]
PlanFn = Callable[[PlanRequest], Awaitable[Plan]]
Enqueue = Callable[[str], None]


@dataclass
class CreateRequest:
    """A `POST /v1/videos` form, as text, before any checks."""

    prompt: str | None
    image: bytes | None = None
    image_url: str | None = None
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    session_id: str | None = None
    seed: str | None = None
    num_frames: str | None = None
    num_inference_steps: str | None = None
    guidance_scale: str | None = None
    fps: str | None = None
    category: str | None = None


class VideoService:
    def __init__(
        self,
        config: AppConfig,
        jobs: JobStore,
        artifacts: ArtifactStore,
        classify: Classify,
        plan: PlanFn,
        enqueue: Enqueue,
    ):
        self.config = config
        self.jobs = jobs
        self.artifacts = artifacts
        self._classify = classify
        self._plan = plan
        self._enqueue = enqueue

    # --- create ------------------------------------------------------------------------------

    async def create(self, form: CreateRequest) -> Video:
        started = time.perf_counter()
        instruction = self._check_prompt(form.prompt)
        self._check_model(form.model)
        user = self._user_params(form)
        session_id = self._check_session_id(form.session_id)
        category = self._check_category(form.category)
        image = await run_in_threadpool(self._image_from_form, form)

        timings: dict[str, float] = {"validate": time.perf_counter() - started}
        return await self._submit(instruction, image, user, category, session_id, None, [], timings)

    async def remix(self, video_id: str, prompt: str | None) -> Video:
        instruction = self._check_prompt(prompt)
        source = await run_in_threadpool(self.jobs.get, video_id)
        if source is None:
            raise not_found(video_id)
        image_bytes = await run_in_threadpool(
            self.artifacts.image_path(source.image_name).read_bytes
        )
        image = await run_in_threadpool(validate_image, image_bytes, self.config.uploads)
        params = source.params
        # The remix keeps the source's explicit shape and seed; the router revises the prompt.
        user = UserParams(
            num_frames=params["num_frames"],
            fps=params["fps"],
            seed=params["seed"],
            size=(params["width"], params["height"]),
        )
        history = [source.prompt]
        return await self._submit(
            instruction, image, user, source.category, source.session_id, source.id, history, {}
        )

    async def _submit(
        self,
        instruction: str,
        image: ValidatedImage,
        user: UserParams,
        category: str | None,
        session_id: str | None,
        remixed_from: str | None,
        history: list[str],
        timings: dict[str, float],
    ) -> Video:
        trace: list[dict] = []
        if category is None:
            t0 = time.perf_counter()
            classification = await self._bounded(
                self._classify(image.data), self.config.timeouts.classify_s, "classifier"
            )
            timings["classify"] = time.perf_counter() - t0
            category, scores = classification.category, classification.scores
            trace.append({"stage": "classify", "decision": category, "detail": {"scores": scores}})
        else:
            scores = {}
            trace.append({"stage": "classify", "decision": category, "detail": {"source": "user"}})

        t0 = time.perf_counter()
        plan = await self._bounded(
            self._plan(
                PlanRequest(
                    instruction=instruction,
                    category=category,
                    image_width=image.width,
                    image_height=image.height,
                    user=user,
                    history=history,
                )
            ),
            self.config.timeouts.plan_s,
            "router",
        )
        timings["plan"] = time.perf_counter() - t0
        trace.extend(d.model_dump() for d in plan.trace)

        job = Job(
            id=new_job_id(),
            model=self.config.model_name,
            instruction=instruction,
            prompt=plan.prompt,
            negative_prompt=plan.negative_prompt,
            session_id=session_id,
            remixed_from=remixed_from,
            image_sha256=image.sha256,
            image_name=image.name,
            category=category,
            category_scores=scores,
            params=plan.params.model_dump(),
            plan=plan.model_dump(exclude={"trace"}),
            timings=timings,
            trace=trace,
        )
        await run_in_threadpool(self._record_and_enqueue, job, image)
        logger.info(
            "job accepted",
            extra={
                "job_id": job.id,
                "session_id": session_id,
                "category": category,
                "planner": plan.planner,
            },
        )
        return self.video(job)

    def _record_and_enqueue(self, job: Job, image: ValidatedImage) -> None:
        """A job counts as accepted only once its task is in the queue; if the queue refuses it,
        the row and any picture only it used are removed again."""
        self.artifacts.put_image(image.name, image.data)
        self.jobs.create(job)
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

    def _check_prompt(self, prompt: str | None) -> str:
        if prompt is None:
            raise invalid(
                "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
            )
        limit = self.config.uploads.max_prompt_chars
        if len(prompt) > limit:
            raise invalid(
                f"The prompt is {len(prompt)} characters; the limit is {limit}.",
                "prompt",
                "string_above_max_length",
            )
        return prompt.strip()

    def _check_model(self, model: str | None) -> None:
        if model not in (None, "", self.config.model_name):
            raise APIError(
                404,
                f"The model '{model}' does not exist; this service runs "
                f"'{self.config.model_name}'.",
                param="model",
                code="model_not_found",
            )

    def _check_session_id(self, session_id: str | None) -> str | None:
        if session_id is None or session_id == "":
            return None
        limit = self.config.uploads.max_session_id_chars
        if len(session_id) > limit or not session_id.isprintable():
            raise invalid(
                f"session_id must be printable and at most {limit} characters.", "session_id"
            )
        return session_id

    @staticmethod
    def _check_category(category: str | None) -> str | None:
        if category is None or category == "":
            return None
        if category not in CATEGORIES:
            raise invalid(
                f"Unknown category '{category}'; use one of {', '.join(CATEGORIES)}.",
                "category",
            )
        return category

    def _user_params(self, form: CreateRequest) -> UserParams:
        limits = self.config.router.limits
        return UserParams(
            num_frames=_number(
                form.num_frames, "num_frames", int, limits.min_frames, limits.max_frames
            ),
            num_inference_steps=_number(
                form.num_inference_steps,
                "num_inference_steps",
                int,
                limits.min_steps,
                limits.max_steps,
            ),
            guidance_scale=_number(
                form.guidance_scale,
                "guidance_scale",
                float,
                limits.min_guidance,
                limits.max_guidance,
            ),
            fps=_number(form.fps, "fps", int, limits.min_fps, limits.max_fps),
            seed=_number(form.seed, "seed", int, 0, limits.max_seed),
            seconds=_number(form.seconds, "seconds", float, 0.1, 600.0),
            size=_size(form.size),
        )

    def _image_from_form(self, form: CreateRequest) -> ValidatedImage:
        if form.image is not None and form.image_url is not None:
            raise invalid(
                "Give input_reference either as a file or as an image_url, not both.",
                "input_reference",
            )
        if form.image is not None:
            return validate_image(form.image, self.config.uploads)
        if form.image_url is not None:
            return validate_image(
                _data_url_bytes(form.image_url), self.config.uploads, "input_reference.image_url"
            )
        raise invalid(
            "Missing required parameter: 'input_reference' (the picture to animate).",
            "input_reference",
            "missing_required_parameter",
        )

    # --- reads -------------------------------------------------------------------------------

    def retrieve(self, video_id: str) -> Video:
        job = self.jobs.get(video_id)
        if job is None:
            raise not_found(video_id)
        return self.video(job)

    def list(self, after: str | None, limit: int, order: Literal["asc", "desc"]) -> VideoList:
        page = self.jobs.list(after, limit, order)
        if page is None:
            raise invalid(
                f"No video found with id '{after}' to list after.", "after", "video_not_found"
            )
        rows, has_more = page
        data = [self.video(job) for job in rows]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )

    def delete(self, video_id: str) -> VideoDeleted:
        """Removes the job and its files; a running generation notices and stops."""
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
            status=job.status,
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


def _number(raw: str | None, name: str, kind: type, low: float, high: float):
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise invalid(
            f"{name} must be {'an integer' if kind is int else 'a number'}, got '{raw}'.", name
        ) from None
    if not low <= value <= high or value != value:  # value != value: NaN
        raise invalid(f"{name} must be between {low:g} and {high:g}, got {raw}.", name)
    return value


def _size(raw: str | None) -> tuple[int, int] | None:
    if raw is None or raw == "":
        return None
    parts = raw.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise invalid(f"size must look like 1280x720, got '{raw}'.", "size") from None
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise invalid(f"size must be between 1x1 and 8192x8192, got '{raw}'.", "size")
    return width, height


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
