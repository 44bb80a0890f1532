"""The application's configuration: one pydantic model, read from a Serve config file.

The file is a standard Ray Serve config (`serve run` / `serve deploy` read it as is): the
application's `args` are an `AppConfig`, and its `deployments` list holds Serve's own per-deployment
options (replicas, autoscaling, `num_gpus`, `max_ongoing_requests`, ...), which `build_app`
applies too, so the Python path and the CLI path deploy the same thing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray.serve.schema import CeleryAdapterConfig, ServeDeploySchema, TaskProcessorConfig

from deployments.classifier.config import ClassifierConfig
from deployments.generator.config import GeneratorConfig
from deployments.router.config import CATEGORIES, RouterConfig

DEPLOYMENT_NAMES = ("Ingress", "Classifier", "Router", "Generator")


class StoreConfig(BaseModel):
    """Where state lives: the job database and the artifact folder."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///var/i2v.db"
    artifact_dir: str = "var/artifacts"


class QueueConfig(BaseModel):
    """The generation queue: Ray Serve asynchronous inference on Redis (Celery adapter)."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "i2v_generate"
    failed_queue_name: str = Field(
        default="i2v_generate_failed",
        description="dead-letter queue: the tasks of jobs that failed because no replica could "
        "finish them (attempts exhausted, no healthy replica)",
    )
    unprocessable_queue_name: str = "i2v_generate_unprocessable"
    max_retries: int = Field(default=3, ge=0)
    visibility_timeout_s: int = Field(
        default=120,
        gt=0,
        description="a task unacknowledged for this long is delivered again: the task of a "
        "dead replica. Live replicas renew their running tasks' leases every third of it, so "
        "it need not exceed the longest job, but it should be well under the job deadline",
    )
    restore_interval_s: int = Field(
        default=10,
        gt=0,
        description="how often consumers look for unacknowledged tasks past the visibility "
        "timeout (kombu's default sweep is every 10th 10 s tick: up to 100 s late)",
    )

    def task_processor_config(self) -> TaskProcessorConfig:
        return TaskProcessorConfig(
            queue_name=self.queue_name,
            adapter_config=CeleryAdapterConfig(
                broker_url=self.redis_url,
                backend_url=self.redis_url,
                broker_transport_options={
                    "visibility_timeout": self.visibility_timeout_s,
                    "unacked_restore_interval": self.restore_interval_s,
                    "unacked_restore_throttle": 1,
                    # A consumer killed during a sweep keeps kombu's restore lock until it
                    # expires (default 300 s), holding back every overdue task. Restores are
                    # transactions (no double restore), so a short lock is safe.
                    "unacked_mutex_expire": max(10, 3 * self.restore_interval_s),
                },
                # A replica takes only the tasks it can start now, so the queue length (what
                # autoscaling reads) stays honest and idle replicas get the waiting work.
                app_custom_config={"worker_prefetch_multiplier": 1},
            ),
            max_retries=self.max_retries,
            failed_task_queue_name=self.failed_queue_name,
            unprocessable_task_queue_name=self.unprocessable_queue_name,
        )


class UploadLimits(BaseModel):
    """What the ingress accepts before any work is done."""

    model_config = ConfigDict(extra="forbid")

    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    min_image_side: int = Field(default=16, gt=0)
    image_formats: list[str] = Field(default_factory=lambda: ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
    max_prompt_chars: int = Field(default=2000, gt=0)
    max_session_id_chars: int = Field(default=128, gt=0)


class TimeoutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classify_s: float = Field(default=30.0, gt=0)
    plan_s: float = Field(default=30.0, gt=0)
    job_deadline_s: float = Field(default=300.0, gt=0)


class AdmissionConfig(BaseModel):
    """Backpressure: how much accepted-but-unfinished work the service holds before it answers
    429 at once instead of queueing more."""

    model_config = ConfigDict(extra="forbid")

    max_backlog: int = Field(default=200, gt=0, description="jobs queued or in progress")
    retry_after_s: int = Field(default=5, gt=0, description="sent as Retry-After with a 429")
    max_idempotency_key_chars: int = Field(default=255, gt=0)


class AppConfig(BaseModel):
    """Everything `build_app` needs; the `args` of the application in a Serve config file."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(
        default="i2vgen-xl", description="the `model` value the API accepts and reports"
    )
    stores: StoreConfig = Field(default_factory=StoreConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    uploads: UploadLimits = Field(default_factory=UploadLimits)
    timeouts: TimeoutConfig = Field(default_factory=TimeoutConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    warmup: bool = Field(default=True, description="run one small generation at replica start")
    poll_after_ms: int = Field(
        default=1000, gt=0, description="sent as openai-poll-after-ms while a job runs"
    )
    deployments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Serve deployment options by deployment name (from the config's "
        "`deployments` list)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        if sorted(self.classifier.categories) != sorted(CATEGORIES):
            raise ValueError(
                f"classifier categories {sorted(self.classifier.categories)} must be "
                f"exactly {sorted(CATEGORIES)}"
            )
        unknown = set(self.deployments) - set(DEPLOYMENT_NAMES)
        if unknown:
            raise ValueError(f"unknown deployments {sorted(unknown)}; known: {DEPLOYMENT_NAMES}")
        return self

    def resolved(self, base: Path | None = None) -> AppConfig:
        """A copy with environment overrides applied and local paths made absolute, so that
        replicas started in other working directories find the same files."""
        base = base or Path.cwd()
        data = self.model_dump()
        stores, queue = data["stores"], data["queue"]
        stores["database_url"] = os.environ.get("DATABASE_URL", stores["database_url"])
        stores["artifact_dir"] = os.environ.get("I2V_ARTIFACT_DIR", stores["artifact_dir"])
        queue["redis_url"] = os.environ.get("REDIS_URL", queue["redis_url"])

        stores["artifact_dir"] = str((base / stores["artifact_dir"]).resolve())
        sqlite_prefix = "sqlite:///"
        url = stores["database_url"]
        if url.startswith(sqlite_prefix) and not url.startswith(sqlite_prefix + "/"):
            path = url[len(sqlite_prefix) :]
            if path and path != ":memory:":
                stores["database_url"] = sqlite_prefix + str((base / path).resolve())
        data["generator"]["model"] = _local_path_or_id(data["generator"]["model"], base)
        classifier_model = data["classifier"]["model"]
        if classifier_model.startswith("local-dir:"):
            folder = classifier_model[len("local-dir:") :]
            data["classifier"]["model"] = "local-dir:" + str((base / folder).resolve())
        imagenet = data["classifier"]["imagenet"]
        if not imagenet["weights"].startswith("package:"):
            imagenet["weights"] = str((base / imagenet["weights"]).resolve())
        return AppConfig.model_validate(data)


def _local_path_or_id(name: str, base: Path) -> str:
    """A model named by a folder that exists here becomes an absolute path; a hub id stays."""
    candidate = base / name
    return str(candidate.resolve()) if candidate.exists() else name


class ServeFile(BaseModel):
    """A parsed Serve config file: our AppConfig plus Serve's HTTP options."""

    app: AppConfig
    name: str
    route_prefix: str
    host: str
    port: int


def load_serve_file(path: str | Path) -> ServeFile:
    """Read a Serve config file with Ray's own schema; its first application is ours."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    if not schema.applications:
        raise ValueError(f"{path} has no application")
    application = schema.applications[0]
    deployments = {}
    for deployment in application.deployments:
        options = deployment.model_dump(
            include=deployment._get_user_configured_option_names(), exclude={"name"}
        )
        deployments[deployment.name] = options
    app = AppConfig.model_validate({**(application.args or {}), "deployments": deployments})
    return ServeFile(
        app=app.resolved(),
        name=application.name,
        route_prefix=application.route_prefix or "/",
        host=schema.http_options.host,
        port=schema.http_options.port,
    )
