"""Videos made from other videos: extensions and edits (`POST /v1/videos/extensions`, `/edits`).

The video comes as an uploaded file or as `video[id]`, a completed video of the caller's; either
way it is checked and decoded once (`i2v_core/videos.py`) before anything is written.

- An **extension** starts from the video's last frame and generates `seconds` more at the video's
  size and frame rate; the generator drops the new segment's first frame (it repeats the last
  one) and writes one MP4 of the video followed by the new frames. The video is kept as the job's
  source video (`ArtifactStore.source_video_path`, a hard link for one of ours) so that deleting
  or expiring it later does not break the queued job.
- An **edit** generates a new video from the video's first frame; it edits no pixels.

For a video of ours, the router plans the instruction as a continuation of its prompt (as a
remix does: same category, size, steps, guidance and seed); an uploaded video gets a fresh plan
at its own size (fitted to the limits) and frame rate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from deployments.ingress.admission import Admission
from deployments.ingress.auth import OPEN, Caller
from deployments.ingress.config import IngressConfig
from deployments.ingress.intake import Draft, JobIntake
from deployments.ingress.protocol import Video, video_of
from deployments.ingress.requests import EditVideoForm, ExtendVideoForm, VideoSourceForm
from deployments.router.protocol import GenerationParams, UserParams
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError, invalid
from i2v_core.images import ValidatedImage
from i2v_core.jobs import Job, JobStore
from i2v_core.videos import ValidatedVideo, picture_of_frame, validate_video

logger = logging.getLogger("ray.serve")

ID_PARAM = "video[id]"


@dataclass(frozen=True)
class Source:
    """The video a request starts from, and its job when it is one of ours."""

    video: ValidatedVideo
    job: Job | None

    def trace(self, frame: str, **detail: object) -> dict:
        """The decision trace's line: which video, and which of its frames starts the job."""
        return {
            "stage": "source",
            "decision": "video" if self.job is not None else "upload",
            "detail": {
                "source_video_id": self.job.id if self.job is not None else None,
                "video": self.video.summary(),
                "frame": frame,
                **detail,
            },
        }


class ContinuationService:
    def __init__(
        self,
        config: IngressConfig,
        jobs: JobStore,
        artifacts: ArtifactStore,
        admission: Admission,
        intake: JobIntake,
    ):
        self.config = config
        self.jobs = jobs
        self.artifacts = artifacts
        self.admission = admission
        self.intake = intake

    async def extend(self, form: ExtendVideoForm, caller: Caller = OPEN) -> Video:
        """A job whose result is the video followed by `seconds` generated from its last frame."""
        started = time.perf_counter()
        source = await self._source(form, caller)
        limits, video, ours = self.config.limits, source.video, source.job
        if ours is not None:
            previous: GenerationParams | None = GenerationParams.model_validate(ours.params)
            fps = ours.params["fps"]
        else:
            previous = None
            fps = _clamp(round(video.fps), limits.min_fps, limits.max_fps)
        # One frame more than `seconds` asks for: the first generated frame repeats the last one.
        frames = _clamp(round(form.seconds * fps) + 1, limits.min_frames, limits.max_frames)
        image = await run_in_threadpool(picture_of_frame, video.last_frame)
        draft = self._draft(form, caller, source, image)
        draft.previous = previous
        # Frame rate and size are the video's: the new frames continue it in one MP4.
        draft.user = UserParams(
            num_frames=frames,
            fps=fps,
            size=None if ours is not None else (video.width, video.height),
            seed=form.seed,
            num_inference_steps=form.num_inference_steps,
            guidance_scale=form.guidance_scale,
        )
        draft.operation = "extension"
        draft.prefix_video = video.name
        segment = {"seconds": form.seconds, "num_frames": frames, "new_frames": frames - 1}
        draft.trace.append(source.trace("last", segment=segment))
        draft.timings["validate"] = time.perf_counter() - started
        plan = await self.intake.plan(draft, allow_clarify=False)
        await run_in_threadpool(self._keep_source_video, source)
        try:
            job = await self.intake.accept(draft, plan)
        except BaseException:
            await run_in_threadpool(self._drop_source_video, video.name)
            raise
        logger.info(
            "extension accepted",
            extra={"job_id": job.id, "source_video_id": draft.source_video_id},
        )
        return video_of(job)

    async def edit(self, form: EditVideoForm, caller: Caller = OPEN) -> Video:
        """A new video generated from the video's first frame, the instruction revising the
        video's prompt when it is ours."""
        started = time.perf_counter()
        source = await self._source(form, caller)
        video, ours = source.video, source.job
        image = await run_in_threadpool(picture_of_frame, video.first_frame)
        draft = self._draft(form, caller, source, image)
        user = UserParams(
            seed=form.seed,
            num_inference_steps=form.num_inference_steps,
            guidance_scale=form.guidance_scale,
        )
        if ours is not None:
            draft.previous = GenerationParams.model_validate(ours.params)
        else:  # the upload's size and length, fitted to the limits
            user = user.model_copy(
                update={"size": (video.width, video.height), "seconds": video.seconds}
            )
        draft.user = user
        draft.operation = "edit"
        draft.trace.append(source.trace("first"))
        draft.timings["validate"] = time.perf_counter() - started
        plan = await self.intake.plan(draft, allow_clarify=False)
        job = await self.intake.accept(draft, plan)
        logger.info(
            "edit accepted", extra={"job_id": job.id, "source_video_id": draft.source_video_id}
        )
        return video_of(job)

    # --- the source video ---------------------------------------------------------------------

    async def _source(self, form: VideoSourceForm, caller: Caller) -> Source:
        self.intake.check_model(form.model)
        if form.video is not None and form.video_id is not None:
            raise invalid("Give the video either as a file or as video[id], not both.", "video")
        if form.video is None and form.video_id is None:
            raise invalid(
                "Missing required parameter: 'video' (upload the video, or name a completed "
                "video of yours with video[id]).",
                "video",
                "missing_required_parameter",
            )
        await run_in_threadpool(self.admission.admit, caller)
        if form.video is not None:
            upload = form.video.data
            video = await run_in_threadpool(validate_video, upload, self.config.uploads)
            return Source(video, None)
        return await run_in_threadpool(self._our_video, form.video_id or "", caller)

    def _our_video(self, video_id: str, caller: Caller) -> Source:
        job = self.jobs.get(video_id, caller.project)
        if job is None:
            raise APIError(
                404, f"No video found with id '{video_id}'.", param=ID_PARAM, code="video_not_found"
            )
        if job.status != "completed":
            raise APIError(
                409,
                f"Video '{video_id}' is {job.status}; only a completed video can be extended or "
                "edited.",
                param=ID_PARAM,
                code="video_not_ready",
            )
        if job.expired_at is not None:
            raise APIError(
                410,
                f"Video '{video_id}' expired and its files were removed.",
                param=ID_PARAM,
                code="video_expired",
            )
        try:
            data = self.artifacts.video_path(job.id).read_bytes()
        except FileNotFoundError:
            raise APIError(
                404,
                f"The video of '{video_id}' is missing from the store.",
                param=ID_PARAM,
                code="content_missing",
            ) from None
        return Source(validate_video(data, self.config.uploads, ID_PARAM), job)

    @staticmethod
    def _draft(
        form: VideoSourceForm, caller: Caller, source: Source, image: ValidatedImage
    ) -> Draft:
        """The draft both operations share: a frame as the picture, the category (the user's,
        else the source's, else the classifier's) and, for one of ours, its prompt as history."""
        ours = source.job
        draft = Draft(
            instruction=form.prompt.strip(),
            session_id=ours.session_id if ours is not None else None,
            caller=caller,
            image=image,
            source_video_id=ours.id if ours is not None else None,
        )
        if form.category is not None:
            draft.category, draft.category_source = form.category, "user"
        elif ours is not None:
            draft.category, draft.category_source = ours.category, "source"
            draft.scores = ours.category_scores
        if ours is not None:
            draft.history = [ours.prompt]
        return draft

    def _keep_source_video(self, source: Source) -> None:
        """Stores the video the result begins with (ours: a hard link to its MP4)."""
        name = source.video.name
        if source.job is None or not self.artifacts.link_source_video(source.job.id, name):
            self.artifacts.put_source_video(name, source.video.data)

    def _drop_source_video(self, name: str) -> None:
        if not self.jobs.prefix_video_in_use(name):
            self.artifacts.delete_source_video(name)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
