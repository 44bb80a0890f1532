"""The Video object, OpenAI's field for field plus our extension fields, and the job store every
deployment writes through: the API answers with the Video, the progress stream ends with it and
each webhook event carries it, so it lives below the deployments."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from i2v_core.config import QueueConfig, StoreConfig
from i2v_core.domain import VideoStatus
from i2v_core.events import JobEventPublisher
from i2v_core.jobs import Job, JobStore
from i2v_core.webhooks import WebhookOutbox


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    """OpenAI's Video object plus extension fields."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: VideoStatus
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    prompt: str | None = None
    remixed_from_video_id: str | None = None
    seconds: str
    size: str
    error: VideoError | None = None
    # Extensions.
    session_id: str | None = None
    category: str | None = None
    category_scores: dict[str, float] | None = None
    plan: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    trace: list[dict[str, Any]] | None = None
    expired: bool = Field(
        default=False,
        description="the files are gone: kept until `expires_at`, then removed (the row stays)",
    )
    operation: Literal["extension", "edit"] | None = Field(
        default=None,
        description="how the video was made from another one (POST /v1/videos/extensions or "
        "/v1/videos/edits); null for a video made from a picture",
    )
    source_video_id: str | None = Field(
        default=None,
        description="the video of yours it extends or edits (null for an uploaded video)",
    )


def video_of(job: Job) -> Video:
    """A job row as the Video object (the API's answers, the progress stream's final event and
    the webhooks' payload all use it)."""
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
        expires_at=int(job.expires_at) if job.expires_at else None,
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
        expired=job.expired_at is not None,
        operation=cast(Literal["extension", "edit"] | None, job.operation),
        source_video_id=job.source_video_id,
    )


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}" if seconds != int(seconds) else str(int(seconds))


def video_payload(job: Job) -> dict[str, Any]:
    """The Video object as JSON data: what a webhook event carries."""
    return video_of(job).model_dump(mode="json")


def job_store(stores: StoreConfig, queue: QueueConfig) -> JobStore:
    """The job store every deployment writes through: completed videos expire after the
    retention, a job's end writes its webhook event (the Video object) in the same transaction,
    and every change of status or progress is published for the event streams."""
    return JobStore(
        stores.database_url,
        retention_s=stores.retention_s,
        on_final=WebhookOutbox(video_payload),
        on_change=JobEventPublisher(queue.redis_url),
    )
