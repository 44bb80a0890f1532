"""What the Ingress replica is bound with: the shared sections it reads plus its own admission
limits. `serve_app.config.AppConfig.ingress_config()` builds it from the application's config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from i2v_core.config import GenerationLimits, QueueConfig, StoreConfig, TimeoutConfig, UploadLimits


class AdmissionConfig(BaseModel):
    """Backpressure: how much accepted-but-unfinished work the service holds before it answers
    429 at once instead of queueing more."""

    model_config = ConfigDict(extra="forbid")

    max_backlog: int = Field(default=200, gt=0, description="jobs queued or in progress")
    retry_after_s: int = Field(default=5, gt=0, description="sent as Retry-After with a 429")
    max_idempotency_key_chars: int = Field(default=255, gt=0)


class AuthConfig(BaseModel):
    """API keys. Auth is on when the environment variable `admin_key_env` holds the admin key
    when the service starts, or when `enabled` says so (the secret still comes from the
    environment: without it the ingress refuses to start). Off, the API is open (a local demo)
    and the ingress logs one warning."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="require API keys")
    admin_key_env: str = Field(
        default="I2V_ADMIN_KEY", description="the environment variable holding the admin key"
    )
    requests_per_minute: int = Field(
        default=600, gt=0, description="a key's limit on /v1 requests unless the key sets its own"
    )
    max_active_jobs: int = Field(
        default=16, gt=0, description="a key's limit on jobs queued or running, ditto"
    )


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str
    stores: StoreConfig
    queue: QueueConfig
    uploads: UploadLimits
    timeouts: TimeoutConfig
    admission: AdmissionConfig
    limits: GenerationLimits = Field(description="the ranges explicit user values must fall in")
    auth: AuthConfig = Field(default_factory=AuthConfig)
    poll_after_ms: int = Field(gt=0)
