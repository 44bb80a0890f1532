"""The generator's autoscaling policy against a real Redis holding real Celery messages, next to
Ray's AsyncInferenceAutoscalingPolicy: Ray's counts only the waiting tasks, ours the running ones
too. No Ray cluster needed."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from ray.serve.task_consumer import instantiate_adapter_from_config

from deployments.generator.autoscaling import GeneratorQueuePolicy
from deployments.generator.protocol import TASK_NAME
from i2v_core.config import QueueConfig
from i2v_testing.servers import RedisServer


def context(replicas: int, target: float = 2, requests: float = 0.0):
    config = SimpleNamespace(get_target_ongoing_requests=lambda: target)
    return SimpleNamespace(
        current_num_replicas=replicas, total_num_requests=requests, config=config
    )


@pytest.fixture
def queue(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    config = QueueConfig(redis_url=redis.url, queue_name="policy_test")
    adapter = instantiate_adapter_from_config(config.task_processor_config())
    yield redis, config, adapter
    redis.stop()


def enqueue(adapter, n: int) -> None:
    for i in range(n):
        adapter.enqueue_task_sync(TASK_NAME, args=[f"video_{i}"])


def take_without_ack(adapter, queue_name: str, n: int):
    """What a consumer does with acks late: the messages leave the list for kombu's `unacked`
    hash until acknowledged."""
    connection = adapter._app.connection_for_read()
    simple = connection.SimpleQueue(queue_name)
    messages = [simple.get(block=True, timeout=5) for _ in range(n)]
    return connection, simple, messages


def rays_policy_decision(redis_url: str, queue_name: str, ctx) -> float:
    from ray.serve.async_inference_autoscaling_policy import AsyncInferenceAutoscalingPolicy

    policy = AsyncInferenceAutoscalingPolicy(redis_url, queue_name, poll_interval_s=0)

    async def decide():
        policy(ctx)  # starts one poll of the queue
        await asyncio.sleep(0.2)
        return policy(ctx)[0]

    return asyncio.run(decide())


def poll_until(policy, waiting: int, running: int) -> None:
    deadline = time.monotonic() + 5
    while (policy.waiting, policy.running) != (waiting, running):
        assert time.monotonic() < deadline, (policy.waiting, policy.running, policy.last_error)
        policy(context(1))
        time.sleep(0.05)


def test_running_tasks_keep_their_replicas(queue):
    redis, config, adapter = queue
    ours = GeneratorQueuePolicy(redis.url, config.queue_name, poll_interval_s=0)

    enqueue(adapter, 5)
    poll_until(ours, waiting=5, running=0)
    assert ours(context(replicas=1))[0] == 3  # ceil(5 / 2)

    # Four tasks taken by replicas (running), one waiting: both count.
    connection, simple, messages = take_without_ack(adapter, config.queue_name, 4)
    poll_until(ours, waiting=1, running=4)
    desired, state = ours(context(replicas=3))
    assert (desired, state["waiting"], state["running"]) == (3, 1, 4)

    # All five running, none waiting: ours keeps 3 replicas; Ray's sees no work at all.
    messages.append(simple.get(block=True, timeout=5))
    poll_until(ours, waiting=0, running=5)
    assert ours(context(replicas=3))[0] == 3
    assert rays_policy_decision(redis.url, config.queue_name, context(replicas=3)) == 0

    # Another queue's unacknowledged messages are not ours.
    other = QueueConfig(redis_url=redis.url, queue_name="someone_else")
    other_adapter = instantiate_adapter_from_config(other.task_processor_config())
    enqueue(other_adapter, 2)
    other_connection, _, _ = take_without_ack(other_adapter, other.queue_name, 2)
    poll_until(ours, waiting=0, running=5)

    # Done: acknowledged messages leave the hash and the policy asks for nothing.
    for message in messages:
        message.ack()
    poll_until(ours, waiting=0, running=0)
    assert ours(context(replicas=3))[0] == 0  # Serve clamps this to min_replicas
    assert ours(context(replicas=0))[0] == 0
    enqueue(adapter, 1)
    poll_until(ours, waiting=1, running=0)
    assert ours(context(replicas=0))[0] == 1  # from zero: one replica for any work
    simple.close()
    connection.release()
    other_connection.release()


def test_redis_down_keeps_the_last_counts_and_never_blocks(queue):
    redis, config, adapter = queue
    enqueue(adapter, 3)
    ours = GeneratorQueuePolicy(redis.url, config.queue_name, poll_interval_s=0)
    poll_until(ours, waiting=3, running=0)

    redis.stop()
    started = time.monotonic()
    for _ in range(20):
        desired, state = ours(context(replicas=1))
        time.sleep(0.05)
    assert time.monotonic() - started < 3  # polls run beside the controller loop
    deadline = time.monotonic() + 10
    while ours.last_error is None:
        assert time.monotonic() < deadline
        ours(context(replicas=1))
        time.sleep(0.1)
    desired, state = ours(context(replicas=1))
    assert desired == 2 and state["waiting"] == 3 and "error" in state

    redis.start()  # same port, same append-only file: the tasks are still there
    deadline = time.monotonic() + 10
    while ours.last_error is not None:
        assert time.monotonic() < deadline, ours.last_error
        ours(context(replicas=1))
        time.sleep(0.1)
    assert (ours.waiting, ours.running) == (3, 0)
