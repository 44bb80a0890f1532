"""The service's own Prometheus metrics, defined with `ray.util.metrics` so that Ray's metrics agent
on every node exports them (with Ray's `ray_` prefix) next to `ray_serve_*`. Every function is a
no-op outside a Ray worker and never raises into the request path."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

# Seconds-to-minutes work: sub-second classify/plan up to a generation near the job deadline.
LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 600, 1200]
STAGES = ("validate", "classify", "plan", "queue_wait", "generate", "encode", "total")
# A webhook from the end of its job to the receiver's 2xx: milliseconds when the first attempt
# succeeds, hours when the receiver was down.
WEBHOOK_LATENCY_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
WEBHOOK_LATENCY_BUCKETS_S += [300, 1800, 7200, 36000, 86400, 172800]
WEBHOOK_OUTCOMES = ("delivered", "http_error", "network_error", "refused")
# The router's words for an LLM failure (deployments/router/llm.py `describe_failure`).
FALLBACK_REASONS = (
    "timeout",
    "connection",
    "http_error",
    "truncated",
    "refused",
    "invalid_json",
    "missing_fields",
    "schema_mismatch",
    "invalid_output",
    "error",
)
GPU_SERIES = {
    # metric suffix -> keys of `GeneratorEngine.memory_stats()` / torch.cuda it is read from
    "allocated": ("allocated_bytes",),
    "reserved": ("reserved_bytes",),
    "peak": ("peak_reserved_bytes", "peak_allocated_bytes"),
    "device_total": ("device_total_bytes",),
    "device_used": ("device_used_bytes",),
    "budget": ("budget_bytes",),
}

_F = TypeVar("_F", bound=Callable[..., Any])
PREFIX = "ray_"  # Ray's metrics agent puts it before every custom metric's name


@dataclass(frozen=True)
class MetricSpec:
    """One custom metric: its name as defined here (Prometheus sees PREFIX + name, and
    counters get `_total`), kind, help text and labels."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    description: str
    labels: tuple[str, ...] = ()

    @property
    def exported(self) -> str:
        return PREFIX + self.name + ("_total" if self.kind == "counter" else "")


_GPU_REPLICA = ("deployment", "replica")
SPECS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "i2v_stage_latency_seconds",
            "histogram",
            "Time spent in one stage of a job, in seconds; planner is set on the plan stage.",
            ("stage", "planner"),
        ),
        MetricSpec(
            "i2v_jobs_accepted",
            "counter",
            "Jobs accepted by the ingress (queued or answered from the cache), by planner and "
            "project.",
            ("planner", "project"),
        ),
        MetricSpec(
            "i2v_requests_limited",
            "counter",
            "Requests answered 429, by reason (requests_per_minute, max_active_jobs, "
            "backlog_full) and project.",
            ("reason", "project"),
        ),
        MetricSpec(
            "i2v_jobs_finished",
            "counter",
            "Jobs that reached a final status, by status and error code (none when completed).",
            ("status", "code"),
        ),
        MetricSpec(
            "i2v_jobs_backlog",
            "gauge",
            "Jobs queued or in_progress, read from the job store every few seconds.",
            ("status",),
        ),
        MetricSpec(
            "i2v_recoveries",
            "counter",
            "Failures the service recovered from: oom_step_down, planner_fallback, "
            "retry_after_node_loss.",
            ("kind",),
        ),
        MetricSpec("i2v_cache_hits", "counter", "Jobs answered from the result cache."),
        MetricSpec(
            "i2v_webhook_attempts",
            "counter",
            "Webhook delivery attempts by event type and outcome (delivered: a 2xx; http_error: "
            "another status; network_error: no answer; refused: the URL or the project's "
            "secret was not usable).",
            ("event", "outcome"),
        ),
        MetricSpec(
            "i2v_webhook_deliveries",
            "counter",
            "Webhook deliveries that reached a final status (delivered or failed: retries "
            "exhausted or refused), by event type.",
            ("event", "status"),
        ),
        MetricSpec(
            "i2v_webhook_latency_seconds",
            "histogram",
            "From the end of a job to its webhook's 2xx, in seconds, by event type.",
            ("event",),
        ),
        MetricSpec(
            "i2v_llm_fallbacks",
            "counter",
            "Plans made by the rules planner because the LLM planner failed, by reason.",
            ("reason",),
        ),
        MetricSpec("i2v_progress_updates", "counter", "Progress writes to job rows."),
        MetricSpec(
            "i2v_storage_used_bytes",
            "gauge",
            "Bytes in the artifact store (pictures, videos, thumbnails, spritesheets), measured "
            "by the retention sweeper at each sweep.",
        ),
        MetricSpec(
            "i2v_storage_freed_bytes",
            "counter",
            "Bytes of video files removed, by reason (expired: past the retention; deleted: by "
            "a DELETE request).",
            ("reason",),
        ),
        MetricSpec(
            "i2v_videos_expired",
            "counter",
            "Completed videos whose files the retention sweeper removed.",
        ),
        *(
            MetricSpec(f"i2v_gpu_memory_{name}_bytes", "gauge", text, _GPU_REPLICA)
            for name, text in (
                ("allocated", "GPU memory allocated by tensors of one replica (torch.cuda)."),
                ("reserved", "GPU memory reserved by one replica's caching allocator."),
                ("peak", "Peak GPU memory reserved by one replica since its start."),
                ("device_total", "Total memory of the replica's GPU (NVML)."),
                ("device_used", "Memory used on the replica's GPU by all processes (NVML)."),
                ("budget", "The replica's share of its GPU: num_gpus x device total."),
            )
        ),
    )
}


class _Registry:
    """All metric objects of this process, created on first use inside a Ray worker."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        def make(name: str, **kwargs: Any) -> Any:
            spec = SPECS[name]
            kind = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[spec.kind]
            return kind(name, description=spec.description, tag_keys=spec.labels, **kwargs)

        self.stage_latency = make("i2v_stage_latency_seconds", boundaries=LATENCY_BUCKETS_S)
        self.jobs_accepted = make("i2v_jobs_accepted")
        self.requests_limited = make("i2v_requests_limited")
        self.jobs_finished = make("i2v_jobs_finished")
        self.backlog = make("i2v_jobs_backlog")
        self.recoveries = make("i2v_recoveries")
        self.cache_hits = make("i2v_cache_hits")
        self.webhook_attempts = make("i2v_webhook_attempts")
        self.webhook_deliveries = make("i2v_webhook_deliveries")
        self.webhook_latency = make(
            "i2v_webhook_latency_seconds", boundaries=WEBHOOK_LATENCY_BUCKETS_S
        )
        self.llm_fallbacks = make("i2v_llm_fallbacks")
        self.progress_updates = make("i2v_progress_updates")
        self.storage_used = make("i2v_storage_used_bytes")
        self.storage_freed = make("i2v_storage_freed_bytes")
        self.videos_expired = make("i2v_videos_expired")
        self.gpu = {name: make(f"i2v_gpu_memory_{name}_bytes") for name in GPU_SERIES}


_registry: _Registry | None = None
_registry_lock = threading.Lock()
_warned: set[str] = set()


def _metrics() -> _Registry | None:
    """The registry, or None outside a Ray worker (unit tests, scripts)."""
    global _registry
    if _registry is None:
        import ray

        if not ray.is_initialized():
            return None
        with _registry_lock:
            if _registry is None:
                _registry = _Registry()
    return _registry


def _never_raises(func: _F) -> _F:
    """Metrics must not break a request: log the first failure of each function, go on."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            if func.__name__ not in _warned:
                _warned.add(func.__name__)
                logger.warning("metrics: %s failed", func.__name__, exc_info=True)
            return None

    return wrapper  # type: ignore[return-value]


def _label(value: object, default: str = "none") -> str:
    """A label value that stays low-cardinality: short, lower-case, [a-z0-9_]."""
    text = re.sub(r"[^a-z0-9_]+", "_", str(value or "").lower()).strip("_")
    return text[:40] or default


# --- the API -------------------------------------------------------------------------------------


@_never_raises
def stage_latency(stage: str, seconds: float, planner: str | None = None) -> None:
    registry = _metrics()
    if registry is None or seconds is None or seconds < 0:
        return
    tags = {"stage": _label(stage), "planner": _label(planner, "") if stage == "plan" else ""}
    registry.stage_latency.observe(float(seconds), tags=tags)


def observe_timings(timings: Mapping[str, float] | None, planner: str | None = None) -> None:
    """Every known stage found in a job's `timings` dict."""
    for stage, seconds in (timings or {}).items():
        if stage in STAGES and isinstance(seconds, (int, float)):
            stage_latency(stage, seconds, planner)


@_never_raises
def job_accepted(
    planner: str | None, timings: Mapping[str, float] | None = None, project: str = ""
) -> None:
    """A job the ingress accepted, with its ingress-side stages (validate, classify, plan)."""
    registry = _metrics()
    if registry is None:
        return
    registry.jobs_accepted.inc(tags={"planner": _label(planner), "project": project_label(project)})
    observe_timings(timings, planner)


@_never_raises
def job_started(attempt: int) -> None:
    """A generator took a job; a second attempt means its first replica (or node) died."""
    if attempt > 1:
        recovery("retry_after_node_loss")


@_never_raises
def job_finished(status: str, code: str | None, timings: Mapping[str, float] | None = None) -> None:
    """A job reached its final status: count it and observe its generator-side stages. Call once
    per job, where the final write won."""
    registry = _metrics()
    if registry is None:
        return
    registry.jobs_finished.inc(tags={"status": _label(status), "code": _label(code)})
    observe_timings(timings)


@_never_raises
def recovery(kind: str, count: int = 1) -> None:
    registry = _metrics()
    if registry is not None and count > 0:
        registry.recoveries.inc(count, tags={"kind": _label(kind)})


@_never_raises
def key_limited(reason: str, project: str = "") -> None:
    """A request answered 429: over a key's limit or the service's backlog."""
    registry = _metrics()
    if registry is not None:
        registry.requests_limited.inc(
            tags={"reason": _label(reason), "project": project_label(project)}
        )


MAX_PROJECT_LABELS = 50
_projects_seen: set[str] = set()


def project_label(project: str) -> str:
    """A project as a label value: "open" while auth is off; the first MAX_PROJECT_LABELS
    projects a process sees by name, later ones as "other", so the series stay bounded."""
    if not project:
        return "open"
    if project in _projects_seen or len(_projects_seen) < MAX_PROJECT_LABELS:
        _projects_seen.add(project)
        return _label(project)
    return "other"


@_never_raises
def cache_hit() -> None:
    registry = _metrics()
    if registry is not None:
        registry.cache_hits.inc()


@_never_raises
def webhook_attempt(
    event: str, outcome: str, final: str | None = None, latency_s: float | None = None
) -> None:
    """One webhook attempt; `final` (delivered or failed) when it ended the delivery, with the
    latency from the job's end when delivered."""
    registry = _metrics()
    if registry is None:
        return
    tags = {"event": _label(event)}
    known = outcome if outcome in WEBHOOK_OUTCOMES else "network_error"
    registry.webhook_attempts.inc(tags={**tags, "outcome": known})
    if final is not None:
        registry.webhook_deliveries.inc(tags={**tags, "status": _label(final)})
    if final == "delivered" and latency_s is not None and latency_s >= 0:
        registry.webhook_latency.observe(float(latency_s), tags=tags)


@_never_raises
def llm_fallback(reason: str | None) -> None:
    """The LLM planner failed and the rules planner answered; also a `planner_fallback`."""
    registry = _metrics()
    if registry is None:
        return
    known = reason if reason in FALLBACK_REASONS else "error"
    registry.llm_fallbacks.inc(tags={"reason": known})
    recovery("planner_fallback")


@_never_raises
def progress_update() -> None:
    registry = _metrics()
    if registry is not None:
        registry.progress_updates.inc()


@_never_raises
def storage_used(total_bytes: int) -> None:
    registry = _metrics()
    if registry is not None:
        registry.storage_used.set(total_bytes)


@_never_raises
def storage_freed(reason: Literal["expired", "deleted"], freed_bytes: int) -> None:
    registry = _metrics()
    if registry is None:
        return
    if freed_bytes > 0:
        registry.storage_freed.inc(freed_bytes, tags={"reason": reason})
    if reason == "expired":
        registry.videos_expired.inc()


@_never_raises
def set_backlog(queued: int, running: int) -> None:
    registry = _metrics()
    if registry is None:
        return
    registry.backlog.set(queued, tags={"status": "queued"})
    registry.backlog.set(running, tags={"status": "in_progress"})


@_never_raises
def gpu_memory(deployment: str, stats: Mapping[str, int] | None = None) -> None:
    """Sets this replica's GPU memory gauges from `stats` (an engine's `memory_stats()`) merged
    over what torch.cuda and NVML report; on a machine without a GPU nothing is set."""
    registry = _metrics()
    if registry is None:
        return
    merged = {**gpu_memory_stats(), **(stats or {})}
    if not merged:
        return
    tags = {"deployment": str(deployment), "replica": _replica_id()}  # as Ray's ray_serve_* name it
    for name, keys in GPU_SERIES.items():
        value = next((merged[k] for k in keys if merged.get(k) is not None), None)
        if value is not None:
            registry.gpu[name].set(float(value), tags=tags)


# --- helpers -------------------------------------------------------------------------------------


def gpu_memory_stats() -> dict[str, int]:
    """torch.cuda's view of this process and NVML's of the device; empty without CUDA, and in a
    process that never used CUDA (a replica on the CPU of a GPU node must not open a context)."""
    try:
        import torch
    except ImportError:
        return {}
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {}
    device = torch.cuda.current_device()
    stats = {
        "allocated_bytes": torch.cuda.memory_allocated(device),
        "reserved_bytes": torch.cuda.memory_reserved(device),
        "peak_allocated_bytes": torch.cuda.max_memory_allocated(device),
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
    }
    stats.update(_nvml_stats(device))
    if "device_total_bytes" in stats:
        share = _gpu_share()
        if share:
            stats["budget_bytes"] = int(stats["device_total_bytes"] * min(1.0, share))
    return stats


@functools.cache
def _nvml() -> Any:
    """pynvml, initialised once; None where it is not installed or finds no driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def _nvml_stats(device: int) -> dict[str, int]:
    pynvml = _nvml()
    if pynvml is None:
        return {}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(_physical_index(device))
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return {"device_total_bytes": int(info.total), "device_used_bytes": int(info.used)}
    except Exception:
        return {}


def _physical_index(device: int) -> int:
    """NVML counts all GPUs of the machine; torch only those in CUDA_VISIBLE_DEVICES."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if device < len(visible) and visible[device].strip().isdigit():
        return int(visible[device])
    return device


def _gpu_share() -> float | None:
    """The fraction of a GPU Ray gave this replica (its `num_gpus`), if any."""
    try:
        import ray

        gpus = ray.get_runtime_context().get_assigned_resources().get("GPU")
        return float(gpus) if gpus else None
    except Exception:
        return None


def _replica_id() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:
        return "none"


# --- background samplers -----------------------------------------------------------------------


class _Sampler(threading.Thread):
    """Calls `sample` every `interval_s` seconds on a daemon thread until the process ends."""

    def __init__(self, name: str, sample: Callable[[], None], interval_s: float) -> None:
        super().__init__(name=name, daemon=True)
        self._sample = sample
        self._interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._sample()
            except Exception:
                logger.debug("metrics sampler %s failed", self.name, exc_info=True)
            self.stopped.wait(self._interval_s)


@_never_raises
def watch_backlog(
    count: Callable[[Iterable[str]], int], interval_s: float = 5.0
) -> _Sampler | None:
    """Refreshes the backlog gauge from the job store (`JobStore.count`) every few seconds;
    nothing outside a Ray worker."""
    if _metrics() is None:
        return None

    def sample() -> None:
        set_backlog(count(("queued",)), count(("in_progress",)))

    sampler = _Sampler("i2v-backlog-metrics", sample, interval_s)
    sampler.start()
    return sampler


@_never_raises
def watch_gpu_memory(
    deployment: str, engine: Any = None, interval_s: float = 10.0
) -> _Sampler | None:
    """Refreshes this replica's GPU memory gauges every few seconds; nothing without CUDA or
    outside a Ray worker."""
    if _metrics() is None or not (gpu_memory_stats() or _engine_stats(engine)):
        return None

    sampler = _Sampler(
        f"i2v-gpu-metrics-{deployment}",
        lambda: gpu_memory(deployment, _engine_stats(engine)),
        interval_s,
    )
    sampler.start()
    return sampler


def _engine_stats(engine: Any) -> dict[str, int]:
    memory_stats = getattr(engine, "memory_stats", None)
    if not callable(memory_stats):
        return {}
    try:
        return dict(memory_stats() or {})
    except Exception:
        return {}
