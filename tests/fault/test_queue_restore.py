"""How an unacknowledged task comes back, with the queue settings of serve_app.config and a real
Redis (no Ray): after the visibility timeout, at the next sweep, and not five minutes late when a
consumer died holding kombu's restore lock (found by test_gpu_node_removed_mid_jobs)."""

from __future__ import annotations

import time

import redis as redis_py
from ray.serve.task_consumer import instantiate_adapter_from_config

from i2v_core.config import QueueConfig
from i2v_testing.servers import RedisServer


def test_overdue_task_comes_back_even_when_a_dead_consumer_holds_the_restore_lock(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    config = QueueConfig(
        redis_url=server.url,
        queue_name="restore_test",
        visibility_timeout_s=1,
        restore_interval_s=1,
    )
    adapter = instantiate_adapter_from_config(config.task_processor_config())
    client = redis_py.Redis.from_url(server.url)
    adapter.enqueue_task_sync("generate_video", args=["video_x"])

    # A consumer takes the task (acks late) and dies: it never acknowledges, never closes.
    dead = adapter._app.connection_for_read()
    taken = dead.SimpleQueue(config.queue_name).get(block=True, timeout=5)
    assert taken.payload
    assert (client.llen(config.queue_name), client.hlen("unacked")) == (0, 1)

    # A live consumer, with the same transport options.
    live = adapter._app.connection_for_read()
    channel = live.default_channel
    assert (channel.visibility_timeout, channel.unacked_restore_throttle) == (1, 1)
    lock_s = channel.unacked_mutex_expire
    assert lock_s <= 10, "a dead consumer's restore lock would hold tasks back for minutes"

    def sweep() -> int:
        channel.qos.restore_visible(
            num=channel.unacked_restore_limit, interval=channel.unacked_restore_throttle
        )
        return client.llen(config.queue_name)

    # The dead consumer was killed in the middle of a sweep: kombu's lock stays until it expires.
    client.set(channel.unacked_mutex_key, "dead-consumer", ex=lock_s)
    time.sleep(config.visibility_timeout_s + 1)
    assert sweep() == 0  # overdue, but the lock holds it back
    started = time.monotonic()
    while sweep() == 0:
        assert time.monotonic() - started < lock_s + 5, "the task never came back"
        time.sleep(config.restore_interval_s)
    assert client.hlen("unacked") == 0  # back in the list, once
    assert client.llen(config.queue_name) == 1

    live.release()
    dead.release()
    server.stop()
