"""Fixtures that build real things: the tiny weights, a Redis server, the Ray Serve application."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from i2v_testing.paths import MODELS, TINY_CONFIG
from i2v_testing.servers import RedisServer, free_port
from i2v_testing.tiny_models import ensure_tiny_models

# The openai SDK marks its videos methods deprecated (OpenAI's hosted video API was retired);
# the same /v1/videos shape is our contract.
warnings.filterwarnings("ignore", message=".*Sora API.*")


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """The tiny weights, built if they are missing (`make test` builds them first)."""
    return ensure_tiny_models(MODELS)


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

    from deployments.ingress.config import AdmissionConfig, WebhookConfig
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
                database_url=f"sqlite:///{state / 'i2v.db'}",
                artifact_dir=str(state / "artifacts"),
                retention_sweep_s=1.0,
            ),
            "queue": serve_file.app.queue.model_copy(update={"redis_url": redis_server.url}),
            "uploads": UploadLimits(max_image_bytes=2 * 1024 * 1024, max_image_pixels=4_000_000),
            "poll_after_ms": 100,
            "admission": AdmissionConfig(max_backlog=8, retry_after_s=2),
            # Webhook receivers of the tests listen on 127.0.0.1; retries come fast.
            "webhooks": WebhookConfig(
                poll_s=0.2,
                retry_schedule_s=[0.5] * 20,
                retry_jitter=0,
                timeout_s=5,
                lease_s=10,  # a claim of a killed sender lapses soon
                allow_networks=["127.0.0.1/32"],
            ),
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
    from i2v_testing.postgres import PostgresServer

    server = PostgresServer()
    if not server.available:
        pytest.fail("PostgreSQL is not installed (make test installs it)")
    server.start()
    yield server
    server.stop()
