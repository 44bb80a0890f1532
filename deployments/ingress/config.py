"""What the Ingress replica is bound with: the shared sections it reads plus its own admission
limits. `serve_app.config.AppConfig.ingress_config()` builds it from the application's config."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class WebhookConfig(BaseModel):
    """Webhooks (`webhooks.py`): how the ingress replicas send the outbox's events, how long they
    keep retrying, and which addresses a webhook URL may point at."""

    model_config = ConfigDict(extra="forbid")

    poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often each replica looks for due deliveries (retries, and events it "
        "missed); a job's end wakes the senders at once through the jobs' Redis events",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="an attempt's limit on connecting, sending, and waiting for the answer, "
        "each; a receiver slower than that counts as failed (the response body is not read)",
    )
    retry_schedule_s: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000],
        max_length=50,
        description="the wait before each retry after a failed attempt (the first attempt is "
        "immediate); when it runs out the delivery fails. The default follows the Standard "
        "Webhooks guidance: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 hours)",
    )
    retry_jitter: float = Field(
        default=0.1, ge=0, lt=1, description="each wait is randomised by up to this fraction"
    )
    lease_s: float = Field(
        default=60.0,
        gt=0,
        description="a claimed delivery is another replica's to send again after this long "
        "(its sender died); must exceed timeout_s",
    )
    max_concurrent: int = Field(
        default=8, gt=0, le=256, description="attempts in flight per ingress replica"
    )
    allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDR ranges a webhook URL may resolve into although they are private, "
        "loopback, link-local or otherwise not public (e.g. 10.1.2.0/24 for a receiver inside "
        "the cluster); empty: public addresses only",
    )
    max_url_chars: int = Field(default=2048, gt=0, le=8192)

    @field_validator("retry_schedule_s")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(not 0 <= step < float("inf") for step in value):
            raise ValueError("every retry wait must be a finite number of seconds >= 0")
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> WebhookConfig:
        if self.lease_s <= self.timeout_s:
            raise ValueError("webhooks.lease_s must exceed webhooks.timeout_s")
        return self


class EventsConfig(BaseModel):
    """The progress stream, `GET /v1/videos/{id}/events` (`events.py`): how many streams a key
    may hold open, how many one replica serves, and how often an idle stream proves alive."""

    model_config = ConfigDict(extra="forbid")

    max_streams_per_key: int = Field(
        default=32,
        gt=0,
        description="open streams per API key across all ingress replicas (counted in Redis); "
        "with auth off, per replica. Over it: 429 `too_many_streams`",
    )
    max_streams_per_replica: int = Field(
        default=192,
        gt=0,
        description="open streams one ingress replica serves, all callers together; each holds "
        "one of the replica's `max_ongoing_requests`, which must stay larger so that streams "
        "never crowd out the other routes",
    )
    heartbeat_s: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="an idle stream sends a `: keep-alive` comment this often (proxies close "
        "silent connections) and renews its place in the per-key count",
    )
    resync_s: float = Field(
        default=60.0,
        gt=0,
        description="a stream that heard nothing for this long reads its row once (a lost "
        "event, a Redis outage)",
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
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    poll_after_ms: int = Field(gt=0)
