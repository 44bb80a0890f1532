"""Config models shared by more than one deployment: where state lives, the queue, what an
upload may be, and the time limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray.serve.schema import CeleryAdapterConfig, TaskProcessorConfig


class StoreConfig(BaseModel):
    """Where state lives: the job database and the artifact folder."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///var/i2v.db"
    artifact_dir: str = "var/artifacts"
    retention_s: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="a completed video's files (MP4, thumbnail, spritesheet) are kept this long "
        "after it completes (`expires_at`), then removed; the job's row stays",
    )
    retention_sweep_s: float = Field(
        default=60.0,
        gt=0,
        description="how often the retention sweeper looks for expired videos (one ingress "
        "replica at a time)",
    )


class QueueConfig(BaseModel):
    """The generation queue: Ray Serve asynchronous inference on Redis (Celery adapter)."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "i2v_generate"
    failed_queue_name: str = Field(
        default="i2v_generate_failed",
        description="dead-letter queue: the tasks of jobs that failed because no replica could "
        "finish them (attempts exhausted, no healthy replica)",
    )
    unprocessable_queue_name: str = "i2v_generate_unprocessable"
    max_retries: int = Field(default=3, ge=0)
    visibility_timeout_s: int = Field(
        default=120,
        gt=0,
        description="a task unacknowledged for this long is delivered again: the task of a "
        "dead replica. Live replicas renew their running tasks' leases every fifth of it, so "
        "it need not exceed the longest job, but it should be well under the job deadline",
    )
    restore_interval_s: int = Field(
        default=10,
        gt=0,
        description="how often consumers look for unacknowledged tasks past the visibility "
        "timeout (kombu's default sweep is every 10th 10 s tick: up to 100 s late)",
    )

    def task_processor_config(self) -> TaskProcessorConfig:
        return TaskProcessorConfig(
            queue_name=self.queue_name,
            adapter_config=CeleryAdapterConfig(
                broker_url=self.redis_url,
                backend_url=self.redis_url,
                broker_transport_options={
                    "visibility_timeout": self.visibility_timeout_s,
                    "unacked_restore_interval": self.restore_interval_s,
                    "unacked_restore_throttle": 1,
                    # A consumer killed during a sweep keeps kombu's restore lock until it
                    # expires (default 300 s), holding back every overdue task. Restores are
                    # transactions (no double restore), so a short lock is safe.
                    "unacked_mutex_expire": max(10, 3 * self.restore_interval_s),
                },
                # A replica takes only the tasks it can start now, so the queue length (what
                # autoscaling reads) stays honest and idle replicas get the waiting work.
                app_custom_config={"worker_prefetch_multiplier": 1},
            ),
            max_retries=self.max_retries,
            failed_task_queue_name=self.failed_queue_name,
            unprocessable_task_queue_name=self.unprocessable_queue_name,
        )


class UploadLimits(BaseModel):
    """What the ingress accepts before any work is done."""

    model_config = ConfigDict(extra="forbid")

    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    min_image_side: int = Field(default=16, gt=0)
    image_formats: list[str] = Field(default_factory=lambda: ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
    max_prompt_chars: int = Field(default=2000, gt=0)
    max_session_id_chars: int = Field(default=128, gt=0)
    # Videos to extend or edit (`i2v_core/videos.py`): uploaded, or one of ours named by id.
    max_video_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_video_seconds: float = Field(default=60.0, gt=0)
    max_video_frames: int = Field(
        default=1800, gt=0, description="frames decoded at most (every frame is decoded once)"
    )
    max_video_pixels: int = Field(default=1920 * 1080, gt=0, description="width x height")
    video_containers: list[str] = Field(
        default_factory=lambda: ["mp4", "mov", "webm"],
        description="accepted containers, recognised by their first bytes: mp4, mov, webm, mkv",
    )


class TimeoutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classify_s: float = Field(default=30.0, gt=0)
    plan_s: float = Field(default=30.0, gt=0)
    job_deadline_s: float = Field(default=300.0, gt=0)
    deadline_sweep_s: float = Field(
        default=5.0,
        gt=0,
        description="how often each ingress replica fails the jobs past their deadline that no "
        "replica finished",
    )


class GenerationLimits(BaseModel):
    """What this deployment can generate. Explicit user values outside these ranges are
    rejected with a 400; values derived from the table, the plan, `seconds` or `size` are
    clamped into them."""

    model_config = ConfigDict(extra="forbid")

    min_side: int = Field(default=64, gt=0)
    max_side: int = Field(default=1280, gt=0)
    size_multiple: int = Field(
        default=64, gt=0, description="width and height are rounded to a multiple of this"
    )
    min_frames: int = Field(default=2, gt=0)
    max_frames: int = Field(default=32, gt=0)
    min_steps: int = Field(default=1, gt=0)
    max_steps: int = Field(default=100, gt=0)
    min_guidance: float = Field(default=1.0, ge=0)
    max_guidance: float = Field(default=20.0, gt=0)
    min_fps: int = Field(default=1, gt=0)
    max_fps: int = Field(default=30, gt=0)
    max_seed: int = Field(default=2**32 - 1, gt=0)

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> GenerationLimits:
        for low, high in (
            ("min_side", "max_side"),
            ("min_frames", "max_frames"),
            ("min_steps", "max_steps"),
            ("min_guidance", "max_guidance"),
            ("min_fps", "max_fps"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must not exceed {high}")
        if self.min_side < self.size_multiple:
            raise ValueError("min_side must be at least size_multiple")
        return self
