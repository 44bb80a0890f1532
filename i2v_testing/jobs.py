"""Job rows for tests and benchmarks: plausible values, and a job queued as the ingress leaves
it."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from i2v_core.artifacts import ArtifactStore
from i2v_core.jobs import Job, JobStore, new_job_id

JOB_PARAMS = {
    "width": 64,
    "height": 64,
    "num_frames": 8,
    "num_inference_steps": 2,
    "guidance_scale": 8.0,
    "fps": 8,
    "seed": 1,
}


def make_job(**overrides: Any) -> Job:
    """A job row with plausible values (nothing stored): `overrides` replace any column."""
    values = dict(
        id=new_job_id(),
        model="i2vgen-xl",
        instruction="spin",
        prompt="An object rotating",
        negative_prompt="blurry",
        session_id=None,
        remixed_from=None,
        image_sha256="ab" * 32,
        image_name="ab" * 32 + ".png",
        category="still_life",
        category_scores={"still_life": 1.0},
        params=dict(JOB_PARAMS),
        plan={"planner": "rules"},
        timings={"plan": 0.01},
        trace=[],
    )
    values.update(overrides)
    return Job(**values)


def queued_job(jobs: JobStore, artifacts: ArtifactStore, seed: int = 1, **params: Any) -> str:
    """A job as the ingress leaves it (picture stored, parameters decided), not yet run:
    128x128, 4 frames, 2 steps unless `params` say otherwise."""
    buffer = io.BytesIO()
    Image.new("RGB", (96, 80), (30, 120, 200)).save(buffer, format="PNG")
    artifacts.put_image("cafe.png", buffer.getvalue())
    values = {"width": 128, "height": 128, "num_frames": 4, "guidance_scale": 5.0, "seed": seed}
    job = make_job(
        image_sha256="cafe",
        image_name="cafe.png",
        params={**JOB_PARAMS, **values, **params},
        plan={},
    )
    return jobs.create(job).id
