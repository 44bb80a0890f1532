"""Whatever dies, every accepted job ends once: a generator replica killed mid-job, a whole GPU node
removed mid-jobs, Redis restarted with tasks queued, the ingress killed with jobs queued. None is
lost (accepted but never ended), none is duplicated (one row, one video), and the attempts column
shows the redeliveries."""

from __future__ import annotations

import time

import pytest

from tests.fault.conftest import INGRESS_CLASS, kill, wait_for

pytestmark = pytest.mark.timeout(300)


def test_generator_replica_killed_mid_job(fault_cluster):
    fc = fault_cluster
    [replica] = fc.wait_generators(1, timeout_s=90)
    ids = fc.submit_many([8, 8], seed0=3000)  # one batch of two on the only replica
    fc.wait_running(ids, at_least=2)

    kill(replica.pid)  # SIGKILL: no shutdown, no acknowledgement
    rows = fc.wait_until_final(ids, timeout_s=120)

    fc.assert_each_ended_once(ids)
    assert {row["attempts"] for row in rows.values()} == {2}, {
        i: r["attempts"] for i, r in rows.items()
    }
    [new] = fc.wait_generators(1, timeout_s=60)
    assert new.pid != replica.pid  # Serve replaced it


def test_gpu_node_removed_mid_jobs(fault_cluster):
    fc = fault_cluster
    fc.wait_generators(1, timeout_s=90)
    ids = fc.submit_many([6] * 8, seed0=4000)

    def all_four_busy():  # 7 jobs in progress, at most 2 per replica: each of the 4 has one
        replicas = fc.replicas()
        busy = fc.running_generators() == len(replicas) == 4 and fc.in_progress(ids) >= 7
        return replicas if busy else None

    replicas = fc.keep_busy(ids, steps=6, seed=4000, until=all_four_busy)
    victim = fc.gpu_nodes[0]
    on_victim = [r for r in replicas if r.node_id == victim.node_id]
    assert len(on_victim) == 2
    try:
        fc.remove_gpu_node(victim)  # raylet and every worker on it killed at once

        # Meanwhile only the surviving GPU can hold generators: two half-GPU replicas at most.
        def only_survivors():
            replicas = fc.replicas()
            return replicas if all(r.node_id != victim.node_id for r in replicas) else None

        survivors = wait_for("the dead node's replicas to be gone", only_survivors, timeout_s=60)
        assert {r.node_id for r in survivors} == fc.gpu_node_ids()
        assert len(survivors) <= 2
        rows = fc.wait_until_final(ids, timeout_s=150)
    finally:
        fc.add_gpu_node()  # back to two GPUs for the tests that follow
        fc.cluster.wait_for_nodes(timeout=60)

    fc.assert_each_ended_once(ids)
    attempts = sorted(row["attempts"] for row in rows.values())
    assert attempts[-1] >= 2, f"no job was cut off by the node's death: {attempts}"
    fc.wait_generators(1, timeout_s=90)


def test_redis_restarted_with_tasks_queued(fault_cluster):
    fc = fault_cluster
    fc.wait_generators(1, timeout_s=90)
    ids = fc.submit_many([4] * 6, seed0=5000)
    fc.wait_running(ids, at_least=1)
    waiting = fc.queue_length()
    assert waiting > 0, "the restart must find tasks waiting"

    fc.redis.stop()  # SIGTERM: the append-only file is flushed
    time.sleep(3)
    fc.redis.start()  # same port, same data directory
    survived = fc.queue_length()
    print(f"\nwaiting before the restart: {waiting}, after: {survived}")
    assert survived > 0  # the queued tasks came back from the append-only file

    rows = fc.wait_until_final(ids, timeout_s=150)
    fc.assert_each_ended_once(ids)
    print("attempts:", sorted(row["attempts"] for row in rows.values()))

    # And the queue takes new work again.
    [after] = fc.submit_many([1], seed0=5100)
    fc.wait_until_final([after], timeout_s=60)
    fc.assert_each_ended_once([after])


def test_ingress_killed_with_jobs_queued(fault_cluster):
    fc = fault_cluster
    fc.wait_generators(1, timeout_s=90)
    [ingress] = fc.replicas(INGRESS_CLASS)
    ids = fc.submit_many([4] * 6, seed0=6000)
    assert fc.queue_length() > 0

    kill(ingress.pid)
    new_ingress = wait_for(
        "a new ingress replica",
        lambda: [r for r in fc.replicas(INGRESS_CLASS) if r.pid != ingress.pid],
        timeout_s=90,
    )
    fc.wait_ready(timeout_s=90)

    fc.wait_until_final(ids, timeout_s=120)
    fc.assert_each_ended_once(ids)
    for video_id in ids:  # and the API, through the new ingress, says so
        video = fc.get(f"/v1/videos/{video_id}").json()
        assert (video["id"], video["status"], video["progress"]) == (video_id, "completed", 100)
    content = fc.get(f"/v1/videos/{ids[0]}/content")
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    assert len(new_ingress) == 1
