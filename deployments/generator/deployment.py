"""Ray Serve wrapper of the generator: a task consumer of the generation queue (Ray Serve
asynchronous inference, Celery on Redis). Tasks are acknowledged only when they end, so a task
whose replica dies is delivered again."""

from __future__ import annotations

import logging

from PIL import Image
from ray.serve.task_consumer import task_consumer, task_handler

from deployments.generator.engine import GenerationRequest, GeneratorEngine
from deployments.generator.worker import JobRunner
from serve_app.artifacts import ArtifactStore
from serve_app.config import AppConfig
from serve_app.jobs import JobStore

logger = logging.getLogger("ray.serve")

TASK_NAME = "generate_video"


class Generator:
    def __init__(self, config: AppConfig):
        self.engine = GeneratorEngine(config.generator)
        if config.warmup:
            self._warm_up(config)
        self.runner = JobRunner(
            self.engine,
            JobStore(config.stores.database_url),
            ArtifactStore(config.stores.artifact_dir),
            config.timeouts.job_deadline_s,
        )

    def _warm_up(self, config: AppConfig) -> None:
        """One small generation, so the first job does not pay for lazy initialisation and a
        broken model fails the replica at start rather than a user's job."""
        side = config.router.limits.min_side
        self.engine.generate(
            GenerationRequest(
                image=Image.new("RGB", (side, side), (128, 128, 128)),
                prompt="warm-up",
                negative_prompt="",
                width=side,
                height=side,
                num_frames=config.router.limits.min_frames,
                num_inference_steps=1,
                guidance_scale=config.router.limits.min_guidance + 1.0,
                fps=config.router.default_fps,
                seed=0,
            )
        )

    @task_handler(name=TASK_NAME)
    def generate_video(self, job_id: str) -> str:
        return self.runner.run(job_id)

    def ping(self) -> bool:
        return True


def generator_consumer(config: AppConfig) -> type:
    """The Generator class bound to this config's queue (the queue is part of the class)."""
    return task_consumer(task_processor_config=config.queue.task_processor_config())(Generator)
