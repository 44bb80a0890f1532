"""Ray Serve wrapper of the generator: a task consumer of the generation queue (Ray Serve
asynchronous inference, Celery on Redis). Tasks are acknowledged only when they end, so a task
whose replica dies is delivered again; a replica renews the lease of the tasks it runs, so a
live one never loses its task to another (`leases.py`)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ray.serve.task_consumer import task_consumer, task_handler

from deployments.generator.config import GeneratorDeploymentConfig
from deployments.generator.leases import TaskLeases, current_task_id
from deployments.generator.outcome import SKIPPED, Outcome
from deployments.generator.protocol import TASK_NAME
from i2v_core import logs, metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.startup import StartupClock
from i2v_core.video_object import job_store

if TYPE_CHECKING:
    from deployments.generator.engine import GeneratorEngine
    from deployments.generator.worker import JobRunner

logger = logging.getLogger("ray.serve")


class ReplicaUnavailable(RuntimeError):
    """Raised from the task handler of a replica whose model did not load: the task goes back to
    the queue (Celery retries it with backoff) for a healthy replica to take."""


class JobAbandoned(RuntimeError):
    """Raised from the task handler once its job failed for good because no replica could finish
    it (attempts ran out, or no healthy replica took it). Celery does not retry it, and Ray's
    adapter moves the task to the dead-letter queue (`queue.failed_queue_name`) for operators."""


ABANDONED_CODES = frozenset({"retries_exhausted", "no_healthy_replica"})


class Generator:
    """Loads the model and warms it up in the constructor. A replica whose model fails to load
    stays up only to report unhealthy (Ray then replaces it) and never runs a job; a job that
    finds no healthy replica in its delivery attempts fails with `no_healthy_replica`."""

    def __init__(self, config: GeneratorDeploymentConfig):
        clock = StartupClock()
        logs.keep_job_ids()
        self.config = config
        self._in_flight = 0
        self._in_flight_changed = threading.Condition()
        self.jobs = job_store(config.stores, config.queue)
        self.leases = TaskLeases(config.queue.redis_url, config.queue.visibility_timeout_s)
        self.load_error: str | None = None
        self.runner: JobRunner | None = None
        clock.lap("stores")
        try:
            # Imported here, in the replica: the process that builds the application (`make
            # serve`, `serve deploy`) imports this module only to bind it, without torch.
            from deployments.generator.engine import GeneratorEngine
            from deployments.generator.generation import Generation
            from deployments.generator.worker import JobRunner

            clock.lap("imports")
            engine = GeneratorEngine(config.generator)
            clock.lap("load")
            if config.warmup:
                self._warm_up(engine, config)
                clock.lap("warm_up")
        except Exception as exc:
            logger.exception("the generator model failed to load")
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        generation = Generation(
            engine,
            config.generator.max_batch_size,
            config.generator.batch_wait_s,
            # A job alone in the replica starts at once instead of waiting batch_wait_s for a
            # companion; jobs that arrive while it runs form the next batch.
            companions_possible=lambda: self._in_flight > 1,
        )
        self.runner = JobRunner(
            generation,
            self.jobs,
            ArtifactStore(config.stores.artifact_dir),
            config.job_deadline_s,
            max_attempts=config.queue.max_retries + 1,
        )
        metrics.watch_gpu_memory("Generator", engine)
        clock.lap("rest")
        clock.report("Generator")

    @staticmethod
    def _warm_up(engine: GeneratorEngine, config: GeneratorDeploymentConfig) -> None:
        """One small generation, so the first job does not pay for lazy initialisation and a
        broken model fails the replica at start rather than a user's job."""
        from PIL import Image

        from deployments.generator.engine import GenerationRequest

        side = config.limits.min_side
        engine.generate(
            GenerationRequest(
                image=Image.new("RGB", (side, side), (128, 128, 128)),
                prompt="warm-up",
                negative_prompt="",
                width=side,
                height=side,
                num_frames=config.limits.min_frames,
                num_inference_steps=1,
                guidance_scale=config.limits.min_guidance + 1.0,
                fps=config.limits.min_fps,
                seed=0,
            )
        )

    @task_handler(name=TASK_NAME)
    def generate_video(self, job_id: str) -> str:
        with self._in_flight_changed:
            self._in_flight += 1
        try:
            if self.runner is not None:
                with self.leases.held(current_task_id()):
                    outcome = self.runner.run(job_id)
            else:
                outcome = self._refuse(job_id)
        finally:
            with self._in_flight_changed:
                self._in_flight -= 1
                self._in_flight_changed.notify_all()
        if outcome.status == "failed" and outcome.code in ABANDONED_CODES:
            raise JobAbandoned(f"job {job_id}: {outcome.code}: {outcome.message}")
        return outcome.status

    def __del__(self):
        """Serve stops this replica (scale-down, redeploy): Ray's task-consumer wrapper has told
        the Celery worker to take no more tasks, but waits only 10 s for the running ones before
        the replica exits and its jobs die (to come back after the visibility timeout). Wait for
        them to end; no job runs past its deadline, and Serve kills the replica anyway after the
        deployment's graceful_shutdown_timeout_s, which should exceed the longest job."""
        in_flight_changed = getattr(self, "_in_flight_changed", None)
        if in_flight_changed is None:
            return
        with in_flight_changed:
            if self._in_flight:
                logger.info("waiting for %d running jobs before stopping", self._in_flight)
            in_flight_changed.wait_for(
                lambda: self._in_flight == 0, timeout=self.config.job_deadline_s
            )
        self.leases.close()

    def _refuse(self, job_id: str) -> Outcome:
        """Count the delivery; give the task back to the queue, or fail the job once every
        attempt found an unhealthy replica. Never another job's video, never a silent loss."""
        job = self.jobs.start(job_id)
        if job is None:
            return SKIPPED
        if job.attempts > self.config.queue.max_retries:
            message = (
                f"No healthy generator replica took the job in {job.attempts} attempts "
                f"(last error: {self.load_error})."
            )
            if self.jobs.fail(job_id, "no_healthy_replica", message):
                metrics.job_finished("failed", "no_healthy_replica")
            return Outcome("failed", "no_healthy_replica", message)
        raise ReplicaUnavailable(self.load_error)

    def check_health(self) -> None:
        if self.load_error is not None:
            raise RuntimeError(f"the generator model failed to load: {self.load_error}")

    def ping(self) -> bool:
        self.check_health()
        return True


def generator_consumer(config: GeneratorDeploymentConfig) -> type:
    """The Generator class bound to this config's queue (the queue is part of the class)."""
    processor = config.queue.task_processor_config()
    processor.adapter_config.task_custom_config = {"dont_autoretry_for": (JobAbandoned,)}
    return task_consumer(task_processor_config=processor)(Generator)
