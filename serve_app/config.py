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
from ray.serve.schema import ServeDeploySchema

from deployments.classifier.config import ClassifierConfig
from deployments.generator.config import GeneratorConfig, GeneratorDeploymentConfig
from deployments.ingress.config import (
    AdmissionConfig,
    AuthConfig,
    EventsConfig,
    IngressConfig,
    WebhookConfig,
)
from deployments.router.config import RouterConfig
from i2v_core.config import QueueConfig, StoreConfig, TimeoutConfig, UploadLimits
from i2v_core.domain import CATEGORIES

DEPLOYMENT_NAMES = ("Ingress", "Classifier", "Router", "Generator")


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
    auth: AuthConfig = Field(default_factory=AuthConfig)
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
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
        # Every open progress stream holds one of the Ingress replica's ongoing requests.
        ongoing = self.deployments.get("Ingress", {}).get("max_ongoing_requests")
        if ongoing is not None and ongoing <= self.events.max_streams_per_replica:
            raise ValueError(
                f"events.max_streams_per_replica ({self.events.max_streams_per_replica}) must be "
                f"below the Ingress's max_ongoing_requests ({ongoing}): open streams would "
                "leave no room for other requests"
            )
        return self

    def ingress_config(self) -> IngressConfig:
        return IngressConfig(
            model_name=self.model_name,
            stores=self.stores,
            queue=self.queue,
            uploads=self.uploads,
            timeouts=self.timeouts,
            admission=self.admission,
            limits=self.router.limits,
            poll_after_ms=self.poll_after_ms,
            auth=self.auth,
            webhooks=self.webhooks,
            events=self.events,
        )

    def generator_deployment_config(self) -> GeneratorDeploymentConfig:
        return GeneratorDeploymentConfig(
            generator=self.generator,
            stores=self.stores,
            queue=self.queue,
            limits=self.router.limits,
            job_deadline_s=self.timeouts.job_deadline_s,
            warmup=self.warmup,
        )

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
