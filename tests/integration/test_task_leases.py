"""A running task keeps its lease on a real Redis through kombu's own transport: past the
visibility timeout only the tasks nobody renews (their replica died) are delivered again."""

from __future__ import annotations

import time

import pytest
from kombu import Connection
from kombu.transport.redis import Channel

from deployments.generator.leases import TaskLeases

VISIBILITY_TIMEOUT_S = 1


def waiting(queue) -> int:
    """Tasks in the queue ready for delivery (kombu keeps them in a Redis list)."""
    return queue.channel.client.llen(queue.queue.name)


@pytest.fixture
def broker_url(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/15"  # apart from the test service's queue
    yield url
    with Connection(url) as connection:
        connection.default_channel.client.flushdb()


def test_only_tasks_without_a_renewed_lease_come_back(broker_url):
    options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    leases = TaskLeases(broker_url, visibility_timeout_s=3600)  # renewed here by hand
    with Connection(broker_url, transport_options=options) as connection:
        queue = connection.SimpleQueue("lease-test")
        queue.put({"job": "running"}, headers={"id": "task-running"})
        queue.put({"job": "orphaned"}, headers={"id": "task-orphaned"})
        running, orphaned = queue.get(timeout=5), queue.get(timeout=5)
        assert waiting(queue) == 0  # both delivered, neither acknowledged
        qos = queue.channel.qos

        with leases.held("task-running"):
            time.sleep(VISIBILITY_TIMEOUT_S + 0.5)
            assert leases.renew() == 1
            qos.restore_visible(interval=1)

            assert waiting(queue) == 1  # the orphaned task is back, the running one is not
            assert queue.get(timeout=5).payload == orphaned.payload
            running.ack()
            assert leases.renew() == 0  # acknowledged: nothing left to renew ...
            index = queue.channel.client.zrange(Channel.unacked_index_key, 0, -1)
            assert running.delivery_tag.encode() not in index  # ... and nothing re-added
        queue.close()
    leases.close()


def test_the_renewal_thread_keeps_a_long_task_from_coming_back(broker_url):
    options = {"visibility_timeout": 3}
    leases = TaskLeases(broker_url, visibility_timeout_s=3)  # renews every second
    with Connection(broker_url, transport_options=options) as connection:
        queue = connection.SimpleQueue("lease-thread-test")
        queue.put({"job": "long"}, headers={"id": "task-long"})
        message = queue.get(timeout=5)
        with leases.held("task-long"):
            for _ in range(5):  # well past the visibility timeout in all
                time.sleep(1.5)
                queue.channel.qos.restore_visible(interval=1)
                assert waiting(queue) == 0
        message.ack()
        queue.close()
    leases.close()
