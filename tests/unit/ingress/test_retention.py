"""Retention: a completed video's files go once `expires_at` has passed; its row stays, reads as
expired and its content answers 410; the result cache no longer answers with it; one replica
sweeps at a time."""

from __future__ import annotations

import time

import pytest

from deployments.ingress.expiry import RetentionSweeper, remove_expired
from deployments.ingress.protocol import video_of
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.jobs import JobStore
from i2v_testing.jobs import make_job

RETENTION_S = 3600.0


@pytest.fixture
def stores(tmp_path):
    jobs = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", retention_s=RETENTION_S)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    yield jobs, artifacts
    jobs.close()


def _completed(jobs: JobStore, artifacts: ArtifactStore, **overrides) -> str:
    job = jobs.create(make_job(**overrides))
    jobs.start(job.id)
    jobs.complete(job.id, {}, [])
    artifacts.put_video(job.id, b"mp4" * 100, b"webp", b"jpeg")
    return job.id


def test_completion_sets_expires_at_from_the_retention(stores):
    jobs, artifacts = stores
    job_id = _completed(jobs, artifacts)
    job = jobs.get(job_id)
    assert job.expires_at == pytest.approx(job.completed_at + RETENTION_S)
    assert video_of(job).expires_at == int(job.expires_at)
    assert video_of(job).expired is False
    queued = jobs.create(make_job())
    assert jobs.get(queued.id).expires_at is None  # only completed videos expire


def test_expired_files_go_and_the_row_stays(stores):
    jobs, artifacts = stores
    old = _completed(jobs, artifacts, cache_key="k" * 64)
    kept = _completed(jobs, artifacts)
    later = jobs.get(old).expires_at + 1

    expired, freed = remove_expired(jobs, artifacts, now=later - RETENTION_S / 2)
    assert (expired, freed) == ([], 0)  # not yet due

    # `kept` completed later: it expires a retention after `old`.
    with jobs.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE jobs SET expires_at = ? WHERE id = ?", (later + RETENTION_S, kept)
        )
    expired, freed = remove_expired(jobs, artifacts, now=later)
    assert expired == [old]
    assert freed == len(b"mp4" * 100 + b"webp" + b"jpeg")
    assert not any(p.exists() for p in artifacts.output_paths(old))
    assert all(p.exists() for p in artifacts.output_paths(kept))

    job = jobs.get(old)
    assert job is not None and job.status == "completed"
    assert video_of(job).expired is True
    assert jobs.find_cached("k" * 64) is None  # the cache never answers with an expired video
    assert remove_expired(jobs, artifacts, now=later) == ([], 0)  # done once


def test_expired_content_answers_410(stores):
    from deployments.ingress.videos import VideoService

    jobs, artifacts = stores
    job_id = _completed(jobs, artifacts)
    service = VideoService.__new__(VideoService)  # content_path needs only the stores
    service.jobs, service.artifacts = jobs, artifacts
    assert service.content_path(job_id, "spritesheet").read_bytes() == b"jpeg"
    remove_expired(jobs, artifacts, now=time.time() + 2 * RETENTION_S)
    for variant in ("video", "thumbnail", "spritesheet"):
        with pytest.raises(APIError) as caught:
            service.content_path(job_id, variant)
        assert (caught.value.status_code, caught.value.code) == (410, "video_expired")


def test_one_replica_sweeps_at_a_time(stores, redis_server):
    jobs, artifacts = stores
    first = RetentionSweeper(jobs, artifacts, redis_server.url, interval_s=60)
    second = RetentionSweeper(jobs, artifacts, redis_server.url, interval_s=60)
    held = first._redis.lock(RetentionSweeper.LOCK, timeout=30, blocking=False)
    assert held.acquire()
    try:
        assert second.sweep() is False  # another replica is sweeping
    finally:
        held.release()
    assert second.sweep() is True
    assert first.sweep() is True  # the lock is released after each sweep


def test_an_expired_extension_frees_its_source_video_once_no_other_job_needs_it(stores):
    jobs, artifacts = stores
    artifacts.put_source_video("ab" * 32 + ".mp4", b"source" * 10)
    first = _completed(jobs, artifacts, prefix_video="ab" * 32 + ".mp4", operation="extension")
    second = _completed(jobs, artifacts, prefix_video="ab" * 32 + ".mp4", operation="extension")
    source = artifacts.source_video_path("ab" * 32 + ".mp4")
    with jobs.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE jobs SET expires_at = expires_at + 3600 WHERE id = ?", (second,)
        )
    due = jobs.get(first).expires_at + 1
    assert remove_expired(jobs, artifacts, now=due)[0] == [first]
    assert source.exists()  # `second` still begins with it
    assert remove_expired(jobs, artifacts, now=due + 3600)[0] == [second]
    assert not source.exists()
