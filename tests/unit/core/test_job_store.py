"""The job store on a real SQLite file: forward-only transitions, paging, deletes."""

from __future__ import annotations

import pytest

from i2v_core.jobs import Base, JobStore
from i2v_testing.jobs import make_job


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same tests on a SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("postgres_server").url
    jobs = JobStore(url)
    yield jobs
    with jobs.engine.begin() as connection:  # PostgreSQL is shared by the session: empty it
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    jobs.close()


def test_lifecycle_queued_running_completed(store):
    job = store.create(make_job())
    assert store.get(job.id).status == "queued"
    started = store.start(job.id)
    assert started.status == "in_progress" and started.attempts == 1
    assert store.set_progress(job.id, 40)
    assert store.get(job.id).progress == 40
    assert store.complete(job.id, {"generate": 1.5}, [{"stage": "generate"}])
    done = store.get(job.id)
    assert (done.status, done.progress) == ("completed", 100)
    assert done.timings == {"plan": 0.01, "generate": 1.5}
    assert done.trace == [{"stage": "generate"}]


def test_final_states_never_move(store):
    job = store.create(make_job())
    store.start(job.id)
    assert store.fail(job.id, "generation_failed", "boom")
    assert not store.complete(job.id, {}, [])
    assert not store.set_progress(job.id, 50)
    assert store.start(job.id) is None
    failed = store.get(job.id)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "generation_failed",
        "boom",
    )


def test_redelivered_task_restarts_and_counts_attempts(store):
    job = store.create(make_job())
    store.start(job.id)
    again = store.start(job.id)
    assert again.attempts == 2 and again.status == "in_progress"


def test_progress_stays_below_100_until_completed(store):
    job = store.create(make_job())
    store.start(job.id)
    store.set_progress(job.id, 100)
    assert store.get(job.id).progress == 99


def test_paging_after_limit_order(store):
    ids = [store.create(make_job()).id for _ in range(5)]
    rows, more = store.list(None, 2, "asc")
    assert [r.id for r in rows] == ids[:2] and more
    rows, more = store.list(ids[1], 10, "asc")
    assert [r.id for r in rows] == ids[2:] and not more
    rows, _ = store.list(ids[3], 10, "desc")
    assert [r.id for r in rows] == ids[:3][::-1]
    assert store.list("video_missing", 10, "asc") is None


def test_delete_and_image_use(store):
    job = store.create(make_job())
    assert store.image_in_use(job.image_sha256)
    assert store.delete(job.id).id == job.id
    assert store.get(job.id) is None
    assert not store.image_in_use(job.image_sha256)
    assert store.delete(job.id) is None
    assert not store.is_active(job.id)


def test_concurrent_finishers_race_and_exactly_one_wins(store):
    from concurrent.futures import ThreadPoolExecutor

    job = store.create(make_job())
    store.start(job.id)
    attempts = [
        (lambda: store.complete(job.id, {"generate": 1.0}, []))
        if i % 2
        else (lambda i=i: store.fail(job.id, f"code_{i}", "lost the race"))
        for i in range(8)
    ]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda attempt: attempt(), attempts))
    assert results.count(True) == 1
    final = store.get(job.id)
    assert final.status in ("completed", "failed")
