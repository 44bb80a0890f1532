"""A job row as OpenAI's Video object (plus our extension fields)."""

from __future__ import annotations

from typing import cast

from deployments.ingress.protocol import Video, VideoError
from i2v_core.domain import VideoStatus
from i2v_core.jobs import Job


def video_of(job: Job) -> Video:
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


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}" if seconds != int(seconds) else str(int(seconds))
