"""Jobs no replica finished fail once their deadline and the grace period have passed, by the
ingress's periodic sweep (reads never write); jobs still within their time, and finished ones,
are left alone."""

from __future__ import annotations

import time

from deployments.ingress.expiry import GRACE_S, DeadlineSweeper, fail_overdue
from i2v_core.jobs import JobStore
from i2v_testing.jobs import make_job

DEADLINE_S = 60.0


def _store(tmp_path) -> JobStore:
    return JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")


def _job(store: JobStore, age_s: float, status: str = "queued") -> str:
    job = store.create(make_job(created_at=time.time() - age_s))
    if status == "in_progress":
        store.start(job.id)
    elif status == "completed":
        store.start(job.id)
        store.complete(job.id, {}, [])
    return job.id


def test_only_active_jobs_past_deadline_and_grace_fail(tmp_path):
    store = _store(tmp_path)
    late = DEADLINE_S + GRACE_S + 5
    overdue_queued = _job(store, late)
    overdue_running = _job(store, late, "in_progress")
    overdue_done = _job(store, late, "completed")
    in_time = _job(store, DEADLINE_S)
    assert sorted(fail_overdue(store, DEADLINE_S)) == sorted([overdue_queued, overdue_running])
    for job_id in (overdue_queued, overdue_running):
        job = store.get(job_id)
        assert (job.status, job.error_code) == ("failed", "deadline_exceeded")
    assert store.get(overdue_done).status == "completed"
    assert store.get(in_time).status == "queued"
    assert fail_overdue(store, DEADLINE_S) == []  # a second sweep finds nothing to do


def test_the_sweeper_runs_in_the_background_until_stopped(tmp_path):
    store = _store(tmp_path)
    job_id = _job(store, DEADLINE_S + GRACE_S + 5)
    sweeper = DeadlineSweeper(store, DEADLINE_S, interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while store.get(job_id).status != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert store.get(job_id).error_code == "deadline_exceeded"
