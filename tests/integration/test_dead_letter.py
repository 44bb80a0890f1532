"""A job whose task kept dying fails with a reason and its task lands in the dead-letter queue,
through the running service's generator replica and the real Redis queue."""

from __future__ import annotations

import base64
import json
import time

import redis
from ray.serve.task_consumer import instantiate_adapter_from_config

from deployments.generator.protocol import TASK_NAME
from i2v_testing.jobs import queued_job


def dead_letters(client: redis.Redis, queue_name: str) -> list[list]:
    """The task arguments of every message in a kombu queue on Redis."""
    letters = []
    for raw in client.lrange(queue_name, 0, -1):
        body = json.loads(raw)["body"]
        args, _kwargs, _embed = json.loads(base64.b64decode(body))
        letters.append(args)
    return letters


def test_a_job_past_its_attempts_fails_and_its_task_is_dead_lettered(service):
    queue = service.config.queue
    client = redis.Redis.from_url(queue.redis_url)
    job_id = queued_job(service.jobs, service.artifacts, width=64, height=64)
    for _ in range(queue.max_retries + 1):
        assert service.jobs.start(job_id) is not None  # deliveries whose replicas then died

    instantiate_adapter_from_config(queue.task_processor_config()).enqueue_task_sync(
        TASK_NAME, args=[job_id]
    )

    deadline = time.monotonic() + 120  # behind whatever earlier tests left queued
    while not (letters := dead_letters(client, queue.failed_queue_name)):
        assert time.monotonic() < deadline, "the task never reached the dead-letter queue"
        time.sleep(0.2)
    job = service.jobs.get(job_id)
    assert (job.status, job.error_code) == ("failed", "retries_exhausted")
    assert f"{queue.max_retries + 2} times" in job.error_message
    [(task_id, error, args, *_rest)] = letters
    assert job_id in args and "retries_exhausted" in error
    assert not service.artifacts.video_path(job_id).exists()

    time.sleep(3)  # Celery's retry backoff starts at 1 s: a retried task would show by now
    assert service.jobs.get(job_id).attempts == queue.max_retries + 2
    assert len(dead_letters(client, queue.failed_queue_name)) == 1
    client.delete(queue.failed_queue_name)
