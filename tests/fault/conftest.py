"""Fault-tolerance and autoscaling tests on a local multi-node Ray cluster.

One machine plays a small GPU cluster: a head node with the CPU deployments (ingress, classifier,
router, Serve's controller and proxy) and two worker nodes that each declare one *virtual* GPU
(`num_gpus=1`), where half-GPU generator replicas land. The generator still runs on the CPU
(`device: cpu` in its config): Ray only does the GPU book-keeping.

These tests run in their own pytest process (`pytest tests/fault`): a Ray driver connects to one
cluster per process and the main test session already runs `ray.init` for its own service. When
they are collected together with other tests they skip themselves.

Time is bounded everywhere: every wait has a timeout, jobs are tiny (64x64, 4 frames) and made
slow on purpose with sleeps (`faults.slow_step_s`), which cost no CPU on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from i2v_testing.paths import EXAMPLES, MODELS, TINY_CONFIG
from i2v_testing.servers import RedisServer, free_port
from i2v_testing.tiny_models import ensure_tiny_models

FAULT_DIR = Path(__file__).resolve().parent
APP_NAME = "i2v"
GENERATOR_CLASS = f"ServeReplica:{APP_NAME}:Generator"
INGRESS_CLASS = f"ServeReplica:{APP_NAME}:Ingress"
CUP = (EXAMPLES / "cup.jpg").read_bytes()

# The knobs the tests rely on, in one place.
# Jobs are made long with sleeps (no CPU): a job of N steps takes N * SLOW_STEP_S plus a little
# compute. Two jobs per replica, batched when they have the same shape. Live replicas renew their
# tasks' leases, so only the tasks of killed replicas pass the visibility timeout.
SLOW_STEP_S = 1.0
VISIBILITY_TIMEOUT_S = 15  # an unacknowledged task is delivered again after this
RESTORE_INTERVAL_S = 1  # how often consumers look for such tasks
JOB_DEADLINE_S = 240  # comfortably longer than any job here, redeliveries included
MAX_ONGOING = 2  # tasks one generator replica takes from the queue at once
MAX_ATTEMPTS = 4  # queue.max_retries (3) + 1
DOWNSCALE_DELAY_S = 3  # shorter than a job: a policy blind to running jobs shows it at once
HEAD_RESOURCE = "i2v_head"
# Ours. To run the same tests with Ray's, set I2V_FAULT_POLICY to
# ray.serve.async_inference_autoscaling_policy:AsyncInferenceAutoscalingPolicy
POLICY = "deployments.generator.autoscaling:GeneratorQueuePolicy"


def pytest_collection_modifyitems(config, items):
    """Skip these tests when they were collected with others: they need their own process."""
    fault_items = [item for item in items if FAULT_DIR in Path(str(item.path)).parents]
    if fault_items and len(fault_items) != len(items):
        skip = pytest.mark.skip(reason="tests/fault runs in its own process: pytest tests/fault")
        for item in fault_items:
            item.add_marker(skip)


def wait_for(
    what: str, check: Callable[[], object], timeout_s: float, interval_s: float = 0.25
) -> object:
    """Polls `check` until it returns something truthy; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - a failing probe is retried until the deadline
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")


@dataclass
class Replica:
    actor_id: str
    name: str  # in the "serve" namespace
    node_id: str
    pid: int


@dataclass
class FaultCluster:
    """The running cluster, application and stores, with the levers the tests pull."""

    cluster: object  # ray.cluster_utils.Cluster
    redis: RedisServer
    base_url: str
    config: object  # AppConfig
    jobs: object  # JobStore
    artifacts: object  # ArtifactStore
    db_path: Path
    gpu_nodes: list = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # every job any test got accepted

    # --- traffic ------------------------------------------------------------------------------

    def submit(self, steps: int, seed: int, retries: int = 30) -> str:
        """One tiny job; returns its id once accepted (retries while the ingress is down)."""
        data = {
            "prompt": "spin slowly",
            "size": "64x64",
            "num_frames": "4",
            "num_inference_steps": str(steps),
            "seed": str(seed),
            "category": "still_life",
        }
        # Retried with one Idempotency-Key: a retry never makes a second job.
        headers = {"Idempotency-Key": f"fault-{uuid.uuid4().hex}"}
        last = None
        for _ in range(retries):
            try:
                response = httpx.post(
                    f"{self.base_url}/v1/videos",
                    data=data,
                    headers=headers,
                    files={"input_reference": ("cup.jpg", CUP, "image/jpeg")},
                    timeout=30,
                )
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if response.status_code == 200:
                    video_id = response.json()["id"]
                    self.accepted.append(video_id)
                    return video_id
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(1)
        pytest.fail(f"job not accepted after {retries} tries: {last}")

    def submit_many(self, steps: Iterable[int], seed0: int) -> list[str]:
        steps = list(steps)
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(self.submit, steps, range(seed0, seed0 + len(steps))))

    def keep_busy(
        self,
        ids: list[str],
        steps: int,
        seed: int,
        until: Callable[[], object],
        timeout_s: float = 240,
        max_jobs: int = 100,
    ) -> object:
        """Keeps a few tasks waiting in the queue (adding jobs to `ids`) until `until()` is true:
        scale-up waits on replica start-up, which takes from 10 s to a minute on a busy 2-core
        machine, and the work must outlast it."""
        deadline = time.monotonic() + timeout_s
        while True:
            reached = until()
            if reached:
                return reached
            if time.monotonic() > deadline:
                pytest.fail(f"not reached in {timeout_s:g} s with {len(ids)} jobs")
            if self.queue_length() < 2 * MAX_ONGOING and len(ids) < max_jobs:
                ids.extend(self.submit_many([steps] * MAX_ONGOING, seed0=seed + len(ids)))
            time.sleep(0.5)

    def in_progress(self, ids: Iterable[str]) -> int:
        return sum(status == "in_progress" for status in self.statuses(ids).values())

    def get(self, path: str, timeout_s: float = 60) -> httpx.Response:
        """GET through the proxy, retried while the ingress is being replaced."""

        def answer():
            response = httpx.get(f"{self.base_url}{path}", timeout=10)
            return response if response.status_code < 500 else None

        return wait_for(f"GET {path}", answer, timeout_s, 0.5)

    # --- state --------------------------------------------------------------------------------

    def queue_length(self) -> int:
        """Tasks waiting in the Redis list (taken tasks sit in kombu's `unacked` hash)."""
        import redis

        return redis.Redis.from_url(self.redis.url, socket_timeout=5).llen(
            self.config.queue.queue_name
        )

    def rows(self, ids: Iterable[str]) -> dict[str, sqlite3.Row]:
        """Job rows by id, read straight from the database file."""
        ids = list(ids)
        with sqlite3.connect(self.db_path, timeout=30) as db:
            db.row_factory = sqlite3.Row
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT id, status, attempts, error_code, error_message, progress, trace "
                f"FROM jobs WHERE id IN ({marks})",
                ids,
            ).fetchall()
        return {row["id"]: row for row in rows}

    def id_counts(self, ids: Iterable[str]) -> dict[str, int]:
        ids = list(ids)
        with sqlite3.connect(self.db_path, timeout=30) as db:
            marks = ",".join("?" * len(ids))
            counted = db.execute(
                f"SELECT id, COUNT(*) FROM jobs WHERE id IN ({marks}) GROUP BY id", ids
            ).fetchall()
        return dict(counted)

    def statuses(self, ids: Iterable[str]) -> dict[str, str]:
        return {job_id: row["status"] for job_id, row in self.rows(ids).items()}

    def wait_until_final(self, ids: list[str], timeout_s: float) -> dict[str, sqlite3.Row]:
        def all_final():
            rows = self.rows(ids)
            return (
                rows if all(r["status"] in ("completed", "failed") for r in rows.values()) else None
            )

        def unfinished():
            return {i: s for i, s in self.statuses(ids).items() if s not in ("completed", "failed")}

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = all_final()
            if rows is not None and len(rows) == len(ids):
                return rows
            time.sleep(0.5)
        pytest.fail(f"jobs not final after {timeout_s:g} s: {unfinished()}")

    def wait_running(self, ids: list[str], at_least: int, timeout_s: float = 60) -> list[str]:
        """Waits until `at_least` of `ids` are in progress and past their first step."""

        def running():
            rows = self.rows(ids).values()
            found = [r["id"] for r in rows if r["status"] == "in_progress" and r["progress"] > 0]
            return found if len(found) >= at_least else None

        return wait_for(f"{at_least} running jobs", running, timeout_s, 0.1)

    def assert_each_ended_once(self, ids: list[str], allowed_failures: tuple[str, ...] = ()):
        """None lost, none duplicated: one row per accepted id, final; one video per completed
        job, and only the files of these jobs' outcomes."""
        assert len(set(ids)) == len(ids)
        counts = self.id_counts(ids)
        assert counts == {job_id: 1 for job_id in ids}, "a job row is missing or duplicated"
        with sqlite3.connect(self.db_path, timeout=30) as db:
            [(total,)] = db.execute("SELECT COUNT(*) FROM jobs").fetchall()
        assert total == len(set(self.accepted)), "a job row nobody was told about"
        rows = self.rows(ids)
        for job_id, row in rows.items():
            if row["status"] == "failed":
                assert row["error_code"] in allowed_failures, (job_id, row["error_code"])
                assert row["error_message"], job_id
                assert not self.artifacts.video_path(job_id).exists()
            else:
                assert row["status"] == "completed", (job_id, row["status"])
                video = self.artifacts.video_path(job_id)
                assert video.exists(), f"{job_id} completed without its video"
                assert video.stat().st_size > 0
                assert self.artifacts.thumbnail_path(job_id).exists()
        videos = [p.name for p in (self.artifacts.root / "videos").glob("*.mp4")]
        for job_id in ids:
            assert videos.count(f"{job_id}.mp4") == (rows[job_id]["status"] == "completed")
        return rows

    # --- Serve and Ray ------------------------------------------------------------------------

    def replicas(self, class_name: str = GENERATOR_CLASS) -> list[Replica]:
        """Live replica actors of one deployment, from the GCS actor table (no dashboard)."""
        import ray

        actors = ray._private.state.actors()
        return [
            Replica(a["ActorID"], a["Name"], a["Address"]["NodeID"], a["Pid"])
            for a in actors.values()
            if a["ActorClassName"] == class_name and a["State"] == "ALIVE"
        ]

    def running_generators(self) -> int:
        from ray import serve

        status = serve.status().applications[APP_NAME].deployments["Generator"]
        return status.replica_states.get("RUNNING", 0)

    def generator_target(self) -> int:
        """What the autoscaler currently asks for: replicas not being stopped."""
        from ray import serve

        status = serve.status().applications[APP_NAME].deployments["Generator"]
        return sum(n for s, n in status.replica_states.items() if s not in ("STOPPING", "STOPPED"))

    def wait_generators(self, count: int, timeout_s: float) -> list[Replica]:
        """Waits until exactly `count` generator replicas run and none is starting or stopping
        (a stopping replica still holds its GPU share)."""
        from ray import serve

        def settled():
            status = serve.status().applications[APP_NAME].deployments["Generator"]
            states = {s: n for s, n in status.replica_states.items() if n}
            replicas = self.replicas()
            return replicas if states == {"RUNNING": count} and len(replicas) == count else None

        return wait_for(f"{count} running generator replicas", settled, timeout_s, 0.5)

    def wait_ready(self, timeout_s: float = 120) -> None:
        def ready():
            return httpx.get(f"{self.base_url}/readyz", timeout=10).status_code == 200

        wait_for("the service to be ready", ready, timeout_s, 0.5)

    def gpu_node_ids(self) -> set[str]:
        return {node.node_id for node in self.gpu_nodes}

    def add_gpu_node(self):
        node = self.cluster.add_node(num_cpus=1, num_gpus=1, include_dashboard=False)
        self.gpu_nodes.append(node)
        return node

    def remove_gpu_node(self, node) -> None:
        self.gpu_nodes.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """The tiny weights, built only when missing (`make test` builds them first)."""
    return ensure_tiny_models(MODELS)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def fault_app_config(base, redis_url: str, state: Path):
    """The tiny profile, turned into a small GPU cluster's: half-GPU generators autoscaled on
    the queue, short visibility timeout, slow steps."""
    from deployments.generator.config import FaultInjection
    from deployments.ingress.config import AdmissionConfig
    from i2v_core.config import StoreConfig

    generator = base.generator.model_copy(
        update={
            "device": "cpu",  # virtual GPUs: the engine must stay on the CPU
            "max_batch_size": MAX_ONGOING,
            "faults": FaultInjection(slow_step_s=SLOW_STEP_S),
        }
    )
    queue = base.queue.model_copy(
        update={
            "redis_url": redis_url,
            "visibility_timeout_s": VISIBILITY_TIMEOUT_S,
            "restore_interval_s": RESTORE_INTERVAL_S,
            "max_retries": MAX_ATTEMPTS - 1,
        }
    )
    deployments = {}
    for name, options in base.deployments.items():
        # The CPU deployments stay on the head node (a custom resource only it has), as on a
        # cluster whose GPU nodes are kept for the generator.
        actor_options = dict(options.get("ray_actor_options", {}))
        actor_options["resources"] = {HEAD_RESOURCE: 0.01}
        deployments[name] = {**options, "ray_actor_options": actor_options}
    deployments["Generator"] = {
        "logging_config": {"encoding": "JSON"},
        "max_ongoing_requests": MAX_ONGOING,
        "health_check_period_s": 2,
        "health_check_timeout_s": 30,
        "graceful_shutdown_timeout_s": 30,
        "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0.5},
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": MAX_ONGOING,
            "upscale_delay_s": 1,
            "downscale_delay_s": DOWNSCALE_DELAY_S,
            "metrics_interval_s": 1,
            "look_back_period_s": 2,
            "policy": {
                "policy_function": os.environ.get("I2V_FAULT_POLICY", POLICY),
                "policy_kwargs": {
                    "broker_url": redis_url,
                    "queue_name": base.queue.queue_name,
                    "poll_interval_s": 0.5,
                },
            },
        },
    }
    return base.model_copy(
        update={
            "stores": StoreConfig(
                database_url=f"sqlite:///{state / 'i2v.db'}", artifact_dir=str(state / "artifacts")
            ),
            "queue": queue,
            "generator": generator,
            "timeouts": base.timeouts.model_copy(update={"job_deadline_s": JOB_DEADLINE_S}),
            "admission": AdmissionConfig(max_backlog=100, retry_after_s=1),
            "poll_after_ms": 200,
            "deployments": deployments,
        }
    )


@pytest.fixture(scope="session")
def fault_cluster(tiny_models, tmp_path_factory):
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from i2v_core.artifacts import ArtifactStore
    from i2v_core.jobs import JobStore
    from serve_app.builder import build_app
    from serve_app.config import load_serve_file

    state = tmp_path_factory.mktemp("fault")
    redis = RedisServer(state / "redis")
    redis.start()
    serve_file = load_serve_file(TINY_CONFIG)
    app = fault_app_config(serve_file.app, redis.url, state)
    port = free_port()

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "num_gpus": 0,
            "resources": {HEAD_RESOURCE: 1},
            "include_dashboard": False,
        },
    )
    faults = FaultCluster(
        cluster=cluster,
        redis=redis,
        base_url=f"http://127.0.0.1:{port}",
        config=app,
        jobs=None,
        artifacts=None,
        db_path=state / "i2v.db",
    )
    try:
        for _ in range(2):
            faults.add_gpu_node()
        cluster.wait_for_nodes(timeout=60)
        ray.init(address=cluster.address, log_to_driver=False)
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(app), name=APP_NAME, route_prefix="/", blocking=False)
        faults.wait_ready(timeout_s=240)
        faults.jobs = JobStore(app.stores.database_url)
        faults.artifacts = ArtifactStore(app.stores.artifact_dir)
        yield faults
    finally:
        with contextlib.suppress(Exception):  # best effort on the way out
            serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        redis.stop()
