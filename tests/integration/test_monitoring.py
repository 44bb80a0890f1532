"""Monitoring against the running service: a real Prometheus scrapes Ray's metrics endpoint, our
custom metrics move with the jobs we run, every dashboard and alert query evaluates, and the
replicas' JSON log lines carry the job id."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from i2v_core.metrics import SPECS
from i2v_testing.paths import EXAMPLES
from i2v_testing.prometheus import (
    DASHBOARD,
    MONITORING,
    RAY_METRICS,
    PrometheusServer,
    alert_queries,
    dashboard_queries,
    metric_names,
    scrape_config_for,
    with_grafana_variables,
    write_ray_discovery_file,
)

pytestmark = pytest.mark.serve

# Counters and histograms whose change the jobs below fix exactly.
COUNTED = {
    "completed": 'sum(ray_i2v_jobs_finished_total{status="completed"})',
    "cancelled": 'sum(ray_i2v_jobs_finished_total{status="failed", code="cancelled"})',
    "accepted": "sum(ray_i2v_jobs_accepted_total)",
    "cache_hits": "sum(ray_i2v_cache_hits_total)",
    **{
        f"{stage}_count": f'sum(ray_i2v_stage_latency_seconds_count{{stage="{stage}"}})'
        for stage in ("validate", "classify", "plan", "queue_wait", "generate", "encode", "total")
    },
    "progress_updates": "sum(ray_i2v_progress_updates_total)",
}
# Panels whose queries must return data once jobs have run.
PANELS_WITH_DATA = (
    "Jobs accepted / s by planner",
    "HTTP requests / s by route and status",
    "Cache hits / s",
    "p95 latency by stage",
    "p50 latency by stage",
    "Plan latency p95 by planner",
    "HTTP p95 latency by route",
    "Jobs queued and running",
    "Finished jobs / s by status and code",
    "Failure ratio (cancellations excluded)",
    "Healthy replicas per deployment",
)


@pytest.fixture(scope="module")
def prometheus(service, tmp_path_factory):
    """Prometheus with monitoring/prometheus.yml and alerts.yml, finding the Ray node through a
    service-discovery file in Ray's format, scraping every second."""
    import ray

    workdir = tmp_path_factory.mktemp("prometheus")
    discovery = write_ray_discovery_file(workdir / "ray_sd.json", ray.nodes())
    assert f":{service.metrics_port}" in discovery.read_text()
    server = PrometheusServer(workdir, scrape_config_for(discovery))
    server.start()
    yield server
    server.stop()


@dataclass
class Activity:
    """What the module's jobs did: counter values before and after, and two job ids."""

    before: dict[str, float]
    after: dict[str, float]
    fresh_job: str
    session_job: str
    session_id: str


def _small_job(client, seed: int, **extra):
    with (EXAMPLES / "cup.jpg").open("rb") as handle:
        return client.videos.create(
            prompt="展示这个杯子旋转",
            input_reference=handle,
            size="64x64",
            extra_body={"num_frames": 4, "num_inference_steps": 1, "seed": seed, **extra},
        )


def _wait_until_idle(service, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while service.jobs.count(("queued", "in_progress")) > 0:
        assert time.monotonic() < deadline, "jobs of earlier tests are still running"
        time.sleep(0.5)


def _export_delay_s() -> float:
    """How long a recorded value may take to reach Prometheus: Ray's report interval (a worker
    to its node's agent), once more for the agent, plus two scrapes."""
    import ray

    return 2 * ray._config.metrics_report_interval_ms() / 1000 + 2


@pytest.fixture(scope="module")
def activity(service, prometheus) -> Activity:
    """Two fresh jobs (one in a session), one identical repeat answered from the cache and one
    job cancelled at once, on a quiet service; the counters read before and after."""
    client = service.client()
    _wait_until_idle(service)
    prometheus.wait_for(
        'count(ray_serve_deployment_replica_healthy{deployment="Generator"})', lambda v: v >= 1
    )
    time.sleep(_export_delay_s())  # the last jobs of earlier tests have reached Prometheus
    before = {name: prometheus.value(expr) for name, expr in COUNTED.items()}

    seed = random.randrange(1, 2**31)
    session_id = f"monitoring-{seed}"
    first = _small_job(client, seed)
    second = _small_job(client, seed + 1, session_id=session_id)
    for job in (first, second):
        assert client.videos.poll(job.id).status == "completed"
    repeat = _small_job(client, seed)
    assert repeat.status == "completed", "an identical seeded request is served from the cache"
    # Long enough that the DELETE always finds it queued or running, never finished.
    cancelled = _small_job(client, seed + 2, num_inference_steps=50, num_frames=16)
    client.videos.delete(cancelled.id)
    _wait_until_idle(service)

    expected = {"completed": 3, "cancelled": 1, "accepted": 4, "cache_hits": 1}
    expected |= {f"{s}_count": 4 for s in ("validate", "classify", "plan")}
    expected |= {f"{s}_count": 2 for s in ("queue_wait", "generate", "encode", "total")}
    for name, delta in expected.items():
        prometheus.wait_for(
            COUNTED[name], lambda v, n=name, d=delta: v >= before[n] + d, _export_delay_s() + 30
        )
    time.sleep(2)  # one more scrape: nothing beyond the expected change arrives
    after = {name: prometheus.value(expr) for name, expr in COUNTED.items()}
    for name, delta in expected.items():
        assert after[name] - before[name] == delta, (name, before[name], after[name])
    return Activity(before, after, first.id, second.id, session_id)


def test_custom_metrics_follow_the_jobs(activity, prometheus):
    assert activity.after["progress_updates"] - activity.before["progress_updates"] >= 2
    for stage in ("classify", "plan", "generate", "encode", "total"):
        assert prometheus.value(f'sum(ray_i2v_stage_latency_seconds_sum{{stage="{stage}"}})') > 0
    # The plan stage carries the planner; the others do not.
    for series in prometheus.query("ray_i2v_stage_latency_seconds_count"):
        labels = series["metric"]
        if labels["stage"] == "plan":
            assert labels["planner"] in ("rules", "llm"), labels
        else:
            assert "planner" not in labels, labels
    # The ingress refreshes the backlog from the job store every few seconds.
    for status in ("queued", "in_progress"):
        prometheus.wait_for(f'max(ray_i2v_jobs_backlog{{status="{status}"}})', lambda v: v == 0, 30)


def test_every_exported_series_is_one_of_ours_with_its_labels(activity, prometheus):
    exported = {spec.exported: spec for spec in SPECS.values()}
    names = prometheus.api("label/__name__/values")
    ours = {n for n in names if n.startswith("ray_i2v_")}
    for name in ours:
        base = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        spec = exported.get(name) or exported.get(base)
        assert spec is not None, f"{name} is exported but not declared in i2v_core.metrics"
        for series in prometheus.query(name):
            labels = set(series["metric"]) - {"__name__", "le", "job", "instance"}
            ray_labels = {k for k in labels if k[0].isupper() or k.startswith("otel_")}
            assert labels - ray_labels <= set(spec.labels), (name, labels)
    needed = {
        "ray_i2v_stage_latency_seconds_bucket",
        "ray_i2v_jobs_accepted_total",
        "ray_i2v_jobs_finished_total",
        "ray_i2v_jobs_backlog",
        "ray_i2v_cache_hits_total",
        "ray_i2v_progress_updates_total",
    }
    assert needed <= ours, needed - ours


def test_rays_own_metrics_named_in_monitoring_are_real(activity, prometheus):
    named = set()
    queries = [
        *dashboard_queries(json.loads(DASHBOARD.read_text())),
        *alert_queries(yaml.safe_load((MONITORING / "alerts.yml").read_text())),
    ]
    for _, expr in queries:
        named |= {n for n in metric_names(expr) if n.startswith("ray_serve_")}
    assert named == RAY_METRICS
    assert named <= set(prometheus.api("label/__name__/values"))


def test_gpu_memory_series_are_absent_or_zero_without_a_gpu(activity, prometheus):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the series carry real values")
    for spec in SPECS.values():
        if spec.name.startswith("i2v_gpu_memory_"):
            assert prometheus.value(f"sum({spec.exported})") == 0


def test_dashboard_queries_evaluate_and_show_the_jobs(activity, prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    with_data = set()
    for title, expr in dashboard_queries(dashboard):
        if prometheus.query(with_grafana_variables(expr)):
            with_data.add(title)
    assert set(PANELS_WITH_DATA) <= with_data, set(PANELS_WITH_DATA) - with_data


def test_alert_rules_evaluate_without_error(activity, prometheus):
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    names = set()
    for name, expr in alert_queries(rules):
        prometheus.query(expr)  # raises on a parse or evaluation error
        names.add(name)
    # Prometheus evaluates the loaded rule file itself every second, too.
    deadline = time.monotonic() + 30
    while True:
        loaded = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        evaluated = all(not r.get("lastEvaluation", "0001").startswith("0001") for r in loaded)
        if evaluated or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {r["name"] for r in loaded} == names
    for rule in loaded:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    firing = {r["name"] for r in loaded if r["state"] == "firing"}
    assert not firing & {"I2VNoHealthyGenerator", "I2VJobFailureRateHigh"}, firing


def _log_lines(job_id: str) -> list[str]:
    import ray

    serve_logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return [
        line
        for path in sorted(serve_logs.glob("replica_*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if job_id in line
    ]


def test_a_jobs_log_lines_are_json_with_its_job_and_session_ids(activity):
    lines = _log_lines(activity.session_job)
    records = [json.loads(line) for line in lines]  # every line of the job is JSON
    messages = {r["message"] for r in records if r.get("job_id") == activity.session_job}
    assert {"job accepted", "job started", "job completed"} <= messages, messages
    for record in records:
        if record.get("job_id") == activity.session_job:
            assert record["session_id"] == activity.session_id, record
            assert record["deployment"].endswith(("Ingress", "Generator")), record
