"""The result cache: a seeded request identical to a completed one (same picture, prompts,
parameters and seed) completes at once with a copy of that video's files."""

from __future__ import annotations

import hashlib
import json
import logging

from deployments.router.protocol import Plan
from i2v_core import metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.images import ValidatedImage
from i2v_core.jobs import Job, JobStore

logger = logging.getLogger("ray.serve")


def cache_key(image_sha256: str, plan: Plan) -> str | None:
    """Identical requests share a key: same picture, prompts, parameters and seed. A request
    whose seed was not chosen by the user gets none, so it is never served from the cache."""
    if plan.param_sources.get("seed") != "user":
        return None
    material = [image_sha256, plan.prompt, plan.negative_prompt, plan.params.model_dump()]
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class ResultCache:
    def __init__(self, jobs: JobStore, artifacts: ArtifactStore):
        self.jobs = jobs
        self.artifacts = artifacts

    def complete(self, job: Job, image: ValidatedImage) -> bool:
        """Records `job` as completed from an earlier identical video, if there is one whose
        files could be copied; False when the job must be generated."""
        if job.cache_key is None:
            return False
        source = self.jobs.find_cached(job.cache_key, job.project)
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
