"""The Ingress deployment: holds the handles of the other deployments, the queue and the job
store, and serves the FastAPI app of `routes.py`, built from its config at replica start (so the
OpenAPI document states this deployment's limits)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

from fastapi import FastAPI
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from ray.serve.task_consumer import instantiate_adapter_from_config
from starlette.concurrency import run_in_threadpool

from deployments.classifier.protocol import Classification, Picture
from deployments.generator.protocol import TASK_NAME
from deployments.ingress.auth import admin_secret_from_env
from deployments.ingress.config import IngressConfig
from deployments.ingress.expiry import DeadlineSweeper, RetentionSweeper
from deployments.ingress.routes import build_api
from deployments.ingress.services import build_services
from deployments.router.protocol import Plan, PlanRequest
from i2v_core import logs, metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import too_many_requests
from i2v_core.startup import StartupClock
from i2v_core.video_object import job_store


@serve.ingress()
class Ingress:
    def __init__(
        self,
        config: IngressConfig,
        classifier: DeploymentHandle,
        router: DeploymentHandle,
        generator: DeploymentHandle,
    ):
        clock = StartupClock()
        self.config = config
        self._classifier = classifier
        self._router = router
        self._generator = generator
        self._queue = instantiate_adapter_from_config(config.queue.task_processor_config())
        jobs = job_store(config.stores, config.queue)
        artifacts = ArtifactStore(config.stores.artifact_dir)
        self.services = build_services(
            config,
            jobs,
            artifacts,
            classify=self._classify,
            plan=self._plan,
            enqueue=self._enqueue,
            admin_secret=admin_secret_from_env(config.auth),
        )
        logs.keep_job_ids()
        metrics.watch_backlog(jobs.count)
        self._sweeper = DeadlineSweeper(
            jobs, config.timeouts.job_deadline_s, config.timeouts.deadline_sweep_s
        ).start()
        # Sends the webhook outbox (every replica; claims keep them from sending one twice).
        self._webhooks = self.services.webhooks.sender(config.queue.redis_url).start()
        self._retention = RetentionSweeper(
            jobs, artifacts, config.queue.redis_url, config.stores.retention_sweep_s
        ).start()
        clock.lap("stores_and_threads")
        clock.report("Ingress")

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self.config, self.services, self._readiness)

    async def _classify(self, picture: Picture) -> Classification:
        with self._overload_is_429("classifier"):
            return await self._classifier.classify.remote(picture)

    async def _plan(self, request: PlanRequest) -> Plan:
        with self._overload_is_429("router"):
            return await self._router.plan.remote(request)

    @contextmanager
    def _overload_is_429(self, what: str):
        """A deployment's `max_queued_requests` reached: the client hears 429, never a 500."""
        try:
            yield
        except BackPressureError as exc:
            raise too_many_requests(
                f"The {what} is overloaded; nothing was created. Retry later.",
                f"{what}_overloaded",
                self.config.admission.retry_after_s,
            ) from exc

    def _enqueue(self, job_id: str) -> None:
        self._queue.enqueue_task_sync(TASK_NAME, args=[job_id])

    async def _readiness(self) -> dict[str, bool]:
        checks = {
            "classifier": self._classifier.check_health.remote(),
            "router": self._router.check_health.remote(),
            "generator": self._generator.ping.remote(),
        }
        results: dict[str, bool] = {}
        for name, call in checks.items():
            try:
                await asyncio.wait_for(call, 5.0)
                results[name] = True
            except Exception:
                results[name] = False
        results["database"] = await run_in_threadpool(self._database_ok)
        return results

    def _database_ok(self) -> bool:
        try:
            self.services.jobs.count()
            return True
        except Exception:
            return False
