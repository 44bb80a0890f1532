"""The generator's job life without Ray: out-of-memory ladder, deadline, cancellation, batching
and an unloadable model, on the tiny weights with a real SQLite job store."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest

from deployments.generator.config import FaultInjection, GeneratorConfig, OomLadder
from deployments.generator.deployment import Generator, JobAbandoned, ReplicaUnavailable
from deployments.generator.engine import GeneratorEngine
from deployments.generator.generation import Generation
from deployments.generator.worker import JobRunner, Outcome
from i2v_core.artifacts import ArtifactStore
from i2v_core.config import StoreConfig
from i2v_core.jobs import JobStore
from i2v_testing.jobs import queued_job
from serve_app.config import AppConfig

LADDER = OomLadder(resolutions=[128, 64], size_multiple=64, min_frames=2)


@pytest.fixture(scope="module")
def engine(tiny_models):
    return GeneratorEngine(
        GeneratorConfig(model=str(tiny_models / "generator"), device="cpu", oom_ladder=LADDER)
    )


@pytest.fixture
def stores(tmp_path):
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield jobs, ArtifactStore(tmp_path / "artifacts")
    jobs.close()


def runner(engine, stores, deadline_s: float = 300, batch: int = 1) -> JobRunner:
    jobs, artifacts = stores
    return JobRunner(Generation(engine, batch, 0.2), jobs, artifacts, deadline_s)


def video_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_oom_at_first_resolution_completes_lower_and_says_so(engine, stores):
    jobs, artifacts = stores
    job_id = queued_job(jobs, artifacts)
    engine.faults = FaultInjection(oom_above_pixels=64 * 64)
    try:
        assert runner(engine, stores).run(job_id).status == "completed"
    finally:
        engine.faults = None
    job = jobs.get(job_id)
    assert (job.params["width"], job.params["height"]) == (64, 64)
    [generate] = [t for t in job.trace if t["stage"] == "generate"]
    assert generate["detail"]["step_downs"] == [
        {
            "kind": "resolution",
            "from": {"width": 128, "height": 128},
            "to": {"width": 64, "height": 64},
            "reason": "out_of_memory",
        }
    ]
    with av.open(str(artifacts.video_path(job_id))) as container:
        assert container.streams.video[0].codec_context.width == 64


def test_oom_at_every_level_fails_with_out_of_memory(engine, stores):
    jobs, artifacts = stores
    job_id = queued_job(jobs, artifacts)
    engine.faults = FaultInjection(oom_always=True)
    try:
        assert runner(engine, stores).run(job_id).status == "failed"
    finally:
        engine.faults = None
    job = jobs.get(job_id)
    assert job.error_code == "out_of_memory"
    [generate] = [t for t in job.trace if t["stage"] == "generate"]
    kinds = [step["kind"] for step in generate["detail"]["step_downs"]]
    assert kinds == ["resolution", "frames"]  # 128 → 64 px, then 4 → 2 frames, then give up
    assert not artifacts.video_path(job_id).exists()


def test_deadline_fires_on_a_slow_job(engine, stores):
    jobs, artifacts = stores
    job_id = queued_job(jobs, artifacts, num_inference_steps=200)  # 200 × ≥0.1 s if not stopped
    engine.faults = FaultInjection(slow_step_s=0.1)
    started = time.monotonic()
    try:
        assert runner(engine, stores, deadline_s=1.5).run(job_id).status == "failed"
    finally:
        engine.faults = None
    assert time.monotonic() - started < 10  # stopped at the deadline, not after 200 slow steps
    job = jobs.get(job_id)
    assert job.error_code == "deadline_exceeded"
    assert job.progress < 95


@pytest.mark.parametrize("how", ["cancelled", "deleted"])
def test_cancel_stops_the_run_within_a_step(engine, stores, how):
    """A DELETE cancels the row and removes it: either way the run stops at its next step."""
    jobs, artifacts = stores
    job_id = queued_job(jobs, artifacts, num_inference_steps=200)
    engine.faults = FaultInjection(slow_step_s=0.05)
    unet_calls: list[int] = []
    hook = engine.pipe.unet.register_forward_pre_hook(lambda *_: unet_calls.append(1))
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(status=runner(engine, stores).run(job_id))
    )
    try:
        thread.start()
        while jobs.get(job_id).progress == 0:
            time.sleep(0.02)
        jobs.fail(job_id, "cancelled", "Cancelled by a DELETE request.")
        if how == "deleted":
            jobs.delete(job_id)
        stopped_at = len(unet_calls)
        thread.join(timeout=30)
    finally:
        engine.faults = None
        hook.remove()
    assert not thread.is_alive()
    assert outcome["status"] == Outcome(
        "failed", "cancelled", "The job was cancelled while it ran."
    )
    assert len(unet_calls) <= stopped_at + 1  # at most the step under way finished
    if how == "cancelled":
        assert jobs.get(job_id).error_code == "cancelled"
    else:
        assert jobs.get(job_id) is None
    assert not artifacts.video_path(job_id).exists()


def test_compatible_jobs_arriving_together_share_one_pipeline_call(engine, stores):
    jobs, artifacts = stores
    ids = [queued_job(jobs, artifacts, seed=s) for s in (11, 12, 13, 14)]
    batched = runner(engine, stores, batch=4)
    threads = [threading.Thread(target=batched.run, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert batched.generation.batcher.runs == 1
    for job_id in ids:
        job = jobs.get(job_id)
        assert job.status == "completed", job.error_message
        [generate] = [t for t in job.trace if t["stage"] == "generate"]
        assert generate["detail"]["batch_size"] == 4
        assert video_frames(artifacts.video_path(job_id)) == 4
    # Each item equals its own unbatched run.
    alone = Generation(engine)
    request = batched._request(jobs.get(ids[2]))
    solo = alone(request, None).frames
    together = Generation(engine, 4, 0.2)
    outcomes = {}
    threads = [
        threading.Thread(
            target=lambda i=i: outcomes.update(
                {i: together(batched._request(jobs.get(i)), None).frames}
            )
        )
        for i in ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert np.abs(outcomes[ids[2]].astype(int) - solo.astype(int)).max() <= 1


def test_unloadable_model_reports_unhealthy_and_fails_jobs_after_the_attempts(
    tiny_models, tmp_path
):
    config = AppConfig(
        stores=StoreConfig(
            database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
            artifact_dir=str(tmp_path / "artifacts"),
        ),
        generator=GeneratorConfig(
            model=str(tiny_models / "generator"),
            device="cpu",
            faults=FaultInjection(fail_load=True),
        ),
    )
    replica = Generator(config.generator_deployment_config())
    with pytest.raises(RuntimeError, match="failed to load"):
        replica.check_health()
    jobs = replica.jobs
    job_id = queued_job(jobs, ArtifactStore(tmp_path / "artifacts"))
    for _ in range(config.queue.max_retries):
        with pytest.raises(ReplicaUnavailable):  # back to the queue for a healthy replica
            replica.generate_video(job_id)
        assert jobs.get(job_id).status != "failed"
    with pytest.raises(JobAbandoned, match="no_healthy_replica"):  # to the dead-letter queue
        replica.generate_video(job_id)
    job = jobs.get(job_id)
    assert job.error_code == "no_healthy_replica"
    assert "fail_load" in job.error_message
