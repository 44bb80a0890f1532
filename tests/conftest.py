"""Fixtures that build real things: the tiny weights, a Redis server, the Ray Serve application."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "serve_app" / "configs" / "tiny.yaml"
EXAMPLES = ROOT / "examples"

# The openai SDK marks its videos methods deprecated (OpenAI's hosted video API was retired);
# the same /v1/videos shape is our contract.
warnings.filterwarnings("ignore", message=".*Sora API.*")


JOB_PARAMS = {
    "width": 64,
    "height": 64,
    "num_frames": 8,
    "num_inference_steps": 2,
    "guidance_scale": 8.0,
    "fps": 8,
    "seed": 1,
}


def make_job(**overrides):
    """A job row with plausible values (nothing stored): `overrides` replace any column."""
    from i2v_core.jobs import Job, new_job_id

    values = dict(
        id=new_job_id(),
        model="i2vgen-xl",
        instruction="spin",
        prompt="An object rotating",
        negative_prompt="blurry",
        session_id=None,
        remixed_from=None,
        image_sha256="ab" * 32,
        image_name="ab" * 32 + ".png",
        category="still_life",
        category_scores={"still_life": 1.0},
        params=dict(JOB_PARAMS),
        plan={"planner": "rules"},
        timings={"plan": 0.01},
        trace=[],
    )
    values.update(overrides)
    return Job(**values)


def queued_job(jobs, artifacts, seed: int = 1, **params) -> str:
    """A job as the ingress leaves it (picture stored, parameters decided), not yet run:
    128x128, 4 frames, 2 steps unless `params` say otherwise."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (96, 80), (30, 120, 200)).save(buffer, format="PNG")
    artifacts.put_image("cafe.png", buffer.getvalue())
    values = {"width": 128, "height": 128, "num_frames": 4, "guidance_scale": 5.0, "seed": seed}
    job = make_job(
        image_sha256="cafe",
        image_name="cafe.png",
        params={**JOB_PARAMS, **values, **params},
        plan={},
    )
    return jobs.create(job).id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """The tiny weights, built by the repo's script if they are missing."""
    target = ROOT / "models" / "tiny"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_tiny_models.py"), str(target)], check=True
    )
    return target


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 with its append-only file on."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (make test installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class Service:
    """The running application and handles on its stores, for assertions."""

    def __init__(self, base_url: str, serve_file, jobs, artifacts, metrics_port: int | None = None):
        self.base_url = base_url
        self.serve_file = serve_file
        self.config = serve_file.app
        self.jobs = jobs
        self.artifacts = artifacts
        self.metrics_port = metrics_port  # Ray's Prometheus endpoint on this node

    def client(self, **kwargs):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key="test", max_retries=0, **kwargs)

    def snapshot(self) -> tuple[int, list[str]]:
        """Row count and stored files: what bad input must leave unchanged."""
        files = [str(p.relative_to(self.artifacts.root)) for p in self.artifacts.files()]
        return self.jobs.count(), files


@pytest.fixture(scope="session")
def service(tiny_models, redis_server, tmp_path_factory):
    """The whole application on Ray Serve, started once per test session."""
    import ray

    from deployments.ingress.config import AdmissionConfig
    from i2v_core.artifacts import ArtifactStore
    from i2v_core.config import StoreConfig, UploadLimits
    from i2v_core.jobs import JobStore
    from serve_app import runtime
    from serve_app.config import load_serve_file

    state = tmp_path_factory.mktemp("service")
    serve_file = load_serve_file(TINY_CONFIG)
    app = serve_file.app.model_copy(
        update={
            "stores": StoreConfig(
                database_url=f"sqlite:///{state / 'i2v.db'}", artifact_dir=str(state / "artifacts")
            ),
            "queue": serve_file.app.queue.model_copy(update={"redis_url": redis_server.url}),
            "uploads": UploadLimits(max_image_bytes=2 * 1024 * 1024, max_image_pixels=4_000_000),
            "poll_after_ms": 100,
            "admission": AdmissionConfig(max_backlog=8, retry_after_s=2),
        }
    )
    serve_file = serve_file.model_copy(update={"app": app, "port": free_port()})
    metrics_port = free_port()
    ray.init(
        address="local",  # a new instance even when another Ray cluster runs here
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
    )
    base_url = runtime.start(serve_file)
    jobs = JobStore(app.stores.database_url)
    yield Service(base_url, serve_file, jobs, ArtifactStore(app.stores.artifact_dir), metrics_port)
    jobs.close()
    runtime.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (Debian's package, installed by `make test`)."""
    from tests.support.postgres import PostgresServer

    server = PostgresServer()
    if not server.available:
        pytest.fail("PostgreSQL is not installed (make test installs it)")
    server.start()
    yield server
    server.stop()
