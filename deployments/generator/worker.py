"""Runs one queued job on a generator engine: read the job row and its picture, generate with
progress, encode MP4 and thumbnail, store them, and finish the row. Runs without Ray."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from deployments.generator.engine import GenerationRequest
from deployments.generator.generation import Generation
from deployments.generator.outcome import COMPLETED, SKIPPED, Outcome
from deployments.generator.recovery import OutOfMemory
from deployments.generator.video import (
    decode_frames,
    encode_mp4,
    encode_spritesheet,
    encode_thumbnail,
    join_extension,
)
from i2v_core import metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.images import load_rgb
from i2v_core.jobs import Job, JobStore

logger = logging.getLogger("ray.serve")


class GenerationStopped(Exception):
    """Raised from the step hook to stop the GPU work of a job."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ProgressReporter:
    """Writes progress to the job row at a bounded rate and stops the run when the job is gone
    (deleted) or past its deadline."""

    jobs: JobStore
    job_id: str
    deadline: float
    min_interval_s: float = 0.5
    _last_write: float = 0.0
    _last_progress: int = -1
    _last_announced: int = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise GenerationStopped("deadline_exceeded", "The job ran past its deadline.")
        # Denoising is ~95% of the work; encoding takes the rest.
        progress = int(95 * done / total)
        due = progress != self._last_progress and now - self._last_write >= self.min_interval_s
        if not (due or done == total):
            # A cheap read every step, so a cancelled job stops within one step.
            if not self.jobs.is_active(self.job_id):
                raise GenerationStopped("cancelled", "The job was cancelled while it ran.")
            if progress != self._last_announced:
                self.jobs.announce_progress(self.job_id, progress)
                self._last_announced = progress
            return
        if not self.jobs.set_progress(self.job_id, progress):
            raise GenerationStopped("cancelled", "The job was cancelled while it ran.")
        metrics.progress_update()
        self._last_write, self._last_progress = now, progress
        self._last_announced = progress


class JobRunner:
    def __init__(
        self,
        generation: Generation,
        jobs: JobStore,
        artifacts: ArtifactStore,
        deadline_s: float,
        max_attempts: int = 4,
    ):
        self.max_attempts = max_attempts
        self.generation = generation
        self.engine = generation.engine
        self.jobs = jobs
        self.artifacts = artifacts
        self.deadline_s = deadline_s

    def run(self, job_id: str) -> Outcome:
        job = self.jobs.start(job_id)
        if job is None:
            logger.info("job not startable (cancelled or already final)", extra={"job_id": job_id})
            return SKIPPED
        log_extra = {"job_id": job_id, "session_id": job.session_id}
        logger.info("job started", extra={**log_extra, "attempt": job.attempts})
        metrics.job_started(job.attempts)
        started = time.time()
        if job.attempts > self.max_attempts:
            message = (
                f"The job was delivered {job.attempts} times without finishing "
                f"(its replica or node kept failing); giving up."
            )
            return self._fail(job_id, "retries_exhausted", message, {}, started, log_extra)
        deadline = time.monotonic() + max(0.0, job.created_at + self.deadline_s - started)
        timings = {"queue_wait": started - job.created_at}
        if time.monotonic() >= deadline:
            message = "The job waited in the queue past its deadline."
            return self._fail(job_id, "deadline_exceeded", message, timings, started, log_extra)
        detail = {
            "device": str(self.engine.device),
            "attempt": job.attempts,
            "torch_threads": torch.get_num_threads(),
        }
        try:
            prefix = self._prefix_frames(job, timings)
            t0 = time.perf_counter()
            generated = self.generation(
                self._request(job), ProgressReporter(self.jobs, job_id, deadline)
            )
            timings["generate"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ran = generated.request
            frames = generated.frames
            if prefix is not None:  # an extension: the source's frames, then the new ones
                frames = join_extension(prefix, frames)
            mp4 = encode_mp4(frames, ran.fps)
            thumbnail = encode_thumbnail(frames[0])
            self.artifacts.put_video(job_id, mp4, thumbnail, encode_spritesheet(frames))
            timings["encode"] = time.perf_counter() - t0
        except GenerationStopped as exc:
            return self._fail(job_id, exc.code, exc.message, timings, started, log_extra)
        except OutOfMemory as exc:
            detail["step_downs"] = exc.step_downs
            return self._fail(
                job_id, "out_of_memory", str(exc), timings, started, log_extra, detail
            )
        except Exception as exc:
            logger.exception("generation failed", extra=log_extra)
            return self._fail(
                job_id,
                "generation_failed",
                f"{type(exc).__name__}: {exc}",
                timings,
                started,
                log_extra,
                detail,
            )

        timings["total"] = time.time() - job.created_at
        detail.update(batch_size=generated.batch_size, step_downs=generated.step_downs)
        if prefix is not None:
            detail.update(prefix_frames=len(prefix), total_frames=len(frames))
        trace = [{"stage": "generate", "decision": "completed", "detail": detail}]
        params = {
            **job.params,
            "width": ran.width,
            "height": ran.height,
            "num_frames": ran.num_frames,
        }
        if not self.jobs.complete(job_id, timings, trace, params=params):
            final = self.jobs.get(job_id)
            if final is None or final.status != "completed":
                # Cancelled (or expired) while encoding: leave nothing behind.
                self.artifacts.delete_outputs(job_id)
            # else a redelivered copy of this task finished first; its files are the video.
            return SKIPPED
        logger.info("job completed", extra={**log_extra, "timings": timings})
        metrics.job_finished("completed", None, timings)
        return COMPLETED

    def _prefix_frames(self, job: Job, timings: dict[str, float]) -> np.ndarray | None:
        """The frames of the video an extension begins with, at the job's size (None for other
        jobs), decoded before any GPU work."""
        if job.prefix_video is None:
            return None
        path = self.artifacts.source_video_path(job.prefix_video)
        if not path.exists():
            raise GenerationStopped(
                "source_video_missing", "The video this extension begins with is missing."
            )
        t0 = time.perf_counter()
        frames = decode_frames(path, (job.params["width"], job.params["height"]))
        timings["decode_source"] = time.perf_counter() - t0
        return frames

    def _request(self, job: Job) -> GenerationRequest:
        params = job.params
        return GenerationRequest(
            image=load_rgb(self.artifacts.image_path(job.image_name).read_bytes()),
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=params["width"],
            height=params["height"],
            num_frames=params["num_frames"],
            num_inference_steps=params["num_inference_steps"],
            guidance_scale=params["guidance_scale"],
            fps=params["fps"],
            seed=params["seed"],
        )

    def _fail(self, job_id, code, message, timings, started, log_extra, detail=None) -> Outcome:
        timings["total"] = time.time() - started + timings.get("queue_wait", 0.0)
        trace = [
            {"stage": "generate", "decision": "failed", "detail": {"code": code, **(detail or {})}}
        ]
        if self.jobs.fail(job_id, code, message, timings, trace):
            metrics.job_finished("failed", code, timings)
        else:
            final = self.jobs.get(job_id)
            if final is not None and final.status == "completed":
                # A redelivered copy of this task completed the job while this run went on (this
                # run stops at its next step): the job keeps the winner's files.
                logger.info("job completed by another delivery", extra=log_extra)
                return SKIPPED
        self.artifacts.delete_outputs(job_id)
        logger.warning("job failed", extra={**log_extra, "code": code, "error": message})
        return Outcome("failed", code, message)
