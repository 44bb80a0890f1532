"""At-least-once delivery: a task can be delivered a second time while its first run goes on (its
lease lapsed: Redis or the replica stalled). The job must still end once, with one video: the
guarded transitions pick one winner and the loser leaves the winner's files alone. On a healthy
replica a job longer than the visibility timeout keeps its lease and is delivered once."""

from __future__ import annotations

import json
import threading
import time

import av
import pytest

from deployments.generator.config import FaultInjection, GeneratorConfig
from deployments.generator.engine import GeneratorEngine
from deployments.generator.generation import Generation
from deployments.generator.worker import JobRunner
from i2v_core.artifacts import ArtifactStore
from i2v_core.jobs import JobStore
from i2v_testing.jobs import queued_job
from tests.fault.conftest import SLOW_STEP_S, VISIBILITY_TIMEOUT_S


def frames_in(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def engine(tiny_models):
    return GeneratorEngine(
        GeneratorConfig(
            model=str(tiny_models / "generator"),
            device="cpu",
            faults=FaultInjection(slow_step_s=0.2),
        )
    )


def test_the_losing_run_keeps_the_winners_video(engine, tmp_path):
    """Without Ray: two deliveries of one task on one replica. The first run wins; the second,
    started while the first ran, aborts at its first step and must not delete the video."""
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    runner = JobRunner(Generation(engine), jobs, artifacts, deadline_s=120)
    job_id = queued_job(jobs, artifacts, seed=7, width=64, height=64, num_inference_steps=8)
    outcomes: dict[str, str] = {}

    first = threading.Thread(target=lambda: outcomes.update(first=runner.run(job_id)))
    first.start()
    deadline = time.monotonic() + 60
    while (jobs.get(job_id).progress or 0) == 0:
        assert time.monotonic() < deadline, "the first run never made progress"
        time.sleep(0.05)
    second = threading.Thread(target=lambda: outcomes.update(second=runner.run(job_id)))
    second.start()  # the redelivered task: restarts the in-progress job, waits for the engine
    first.join(timeout=120)
    second.join(timeout=120)

    assert {k: v.status for k, v in outcomes.items()} == {"first": "completed", "second": "skipped"}
    job = jobs.get(job_id)
    assert (job.status, job.attempts, job.error_code) == ("completed", 2, None)
    assert artifacts.video_path(job_id).exists(), "the losing run deleted the winner's video"
    assert artifacts.thumbnail_path(job_id).exists()
    assert frames_in(artifacts.video_path(job_id)) == 4
    jobs.close()


def test_a_job_delivered_past_the_attempt_limit_fails_with_a_reason(engine, tmp_path):
    """Without Ray: each delivery counts an attempt when it starts the job; a job whose runs kept
    dying (two attempts already, limit two) fails `retries_exhausted` on the next delivery."""
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    runner = JobRunner(Generation(engine), jobs, artifacts, deadline_s=120, max_attempts=2)
    job_id = queued_job(jobs, artifacts, seed=7, width=64, height=64)
    for _ in range(2):
        assert jobs.start(job_id) is not None  # a delivery whose replica then died

    assert runner.run(job_id).status == "failed"
    job = jobs.get(job_id)
    assert (job.status, job.attempts, job.error_code) == ("failed", 3, "retries_exhausted")
    assert "3 times" in job.error_message
    assert not artifacts.video_path(job_id).exists()
    assert runner.run(job_id).status == "skipped"  # a later delivery finds it final
    assert jobs.get(job_id).attempts == 3
    jobs.close()


@pytest.mark.timeout(240)
def test_job_longer_than_the_visibility_timeout_keeps_its_lease_and_runs_once(fault_cluster):
    fc = fault_cluster
    fc.wait_generators(1, timeout_s=90)
    steps = 20
    assert steps * SLOW_STEP_S > VISIBILITY_TIMEOUT_S + 3  # it would come back without a lease
    [job_id] = fc.submit_many([steps], seed0=2000)

    rows = fc.wait_until_final([job_id], timeout_s=150)
    row = rows[job_id]
    assert row["status"] == "completed", dict(row)
    assert row["attempts"] == 1  # its replica renewed the lease: never handed to another
    fc.assert_each_ended_once([job_id])
    assert frames_in(fc.artifacts.video_path(job_id)) == 4
    content = fc.get(f"/v1/videos/{job_id}/content")
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    assert content.content == fc.artifacts.video_path(job_id).read_bytes()
    completed = [e for e in json.loads(row["trace"]) if e["decision"] == "completed"]
    assert len(completed) == 1
