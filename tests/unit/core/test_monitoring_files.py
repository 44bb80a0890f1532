"""The files in monitoring/ and the metrics API without Ray: promtool accepts the config and the
rules, the dashboard has the shape Grafana loads, every metric they name exists, and the metric
and log helpers behave outside a Ray worker."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest
import yaml

from i2v_core import logs, metrics
from i2v_testing.prometheus import (
    DASHBOARD,
    MONITORING,
    RAY_METRICS,
    alert_queries,
    binary,
    dashboard_queries,
    metric_names,
)

ROOT = MONITORING.parent
GRAFANA = MONITORING / "grafana"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    try:
        promtool = binary("promtool")
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=ROOT)


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _alerts() -> dict:
    return yaml.safe_load((MONITORING / "alerts.yml").read_text())


def _exported_series() -> set[str]:
    names = set()
    for spec in metrics.SPECS.values():
        if spec.kind == "histogram":
            names |= {f"{spec.exported}_{suffix}" for suffix in ("bucket", "sum", "count")}
        else:
            names.add(spec.exported)
    return names


# --- promtool ------------------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config():
    result = _promtool("check", "config", "monitoring/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules():
    result = _promtool("check", "rules", "monitoring/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_finds_ray_nodes_through_rays_discovery_file():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]
    assert config["rule_files"] == ["alerts.yml"]


# --- the dashboard and provisioning --------------------------------------------------------------


def test_dashboard_has_the_shape_grafana_loads():
    dashboard = _dashboard()
    assert dashboard["uid"] == "i2v-service" and len(dashboard["uid"]) <= 40
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"]


def test_dashboard_panels_do_not_overlap():
    taken: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        grid = panel["gridPos"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_covers_every_area():
    rows = {p["title"] for p in _dashboard()["panels"] if p["type"] == "row"}
    assert rows == {
        "Traffic",
        "Latency by stage",
        "Backlog",
        "Failures and recoveries",
        "GPU memory per replica",
        "Autoscaling",
        "Webhooks and storage",
    }


def test_grafana_provisioning_loads_the_dashboard_from_the_mounted_folder():
    datasources = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert datasources["apiVersion"] == 1 and source["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "dashboards" / "i2v.yml").read_text())
    [provider] = providers["providers"]
    assert providers["apiVersion"] == 1 and provider["type"] == "file"
    # monitoring/grafana is mounted at /etc/grafana/provisioning.
    mounted = provider["options"]["path"].removeprefix("/etc/grafana/provisioning/")
    assert (GRAFANA / mounted / DASHBOARD.name).is_file()


# --- metric names --------------------------------------------------------------------------------


def test_every_metric_in_the_dashboard_and_rules_exists():
    ours = _exported_series()
    queries = [*dashboard_queries(_dashboard()), *alert_queries(_alerts())]
    for where, expr in queries:
        for name in metric_names(expr):
            assert name in ours or name in RAY_METRICS, f"{where}: unknown metric {name}"


def test_readme_lists_every_exported_metric_with_type_and_labels():
    readme = (MONITORING / "README.md").read_text()
    for spec in metrics.SPECS.values():
        [row] = [line for line in readme.splitlines() if line.startswith(f"| `{spec.exported}`")]
        assert f"| {spec.kind} |" in row, spec.name
        for label in spec.labels:
            assert f"`{label}`" in row, (spec.name, label)


def test_alerts_cover_what_the_service_must_watch():
    names = {name for name, _ in alert_queries(_alerts())}
    assert {
        "I2VBacklogGrowing",
        "I2VJobFailureRateHigh",
        "I2VTotalLatencyP95High",
        "I2VOomStepDowns",
        "I2VNoHealthyGenerator",
        "I2VGpuMemoryNearBudget",
    } <= names


@pytest.mark.parametrize("path", ["serve_app/configs/tiny.yaml", "cluster/serve_config.yaml"])
def test_every_deployment_logs_json(path):
    config = yaml.safe_load((ROOT / path).read_text())
    for deployment in config["applications"][0]["deployments"]:
        assert deployment["logging_config"]["encoding"] == "JSON", deployment["name"]


# --- the metrics API outside a Ray worker --------------------------------------------------------


@pytest.fixture
def outside_ray(monkeypatch):
    """This process as a unit test sees it, even when the session also runs a Ray cluster."""
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(metrics, "_registry", None)


def test_metrics_calls_are_no_ops_without_ray(outside_ray):
    metrics.stage_latency("plan", 0.1, planner="rules")
    metrics.job_accepted("rules", {"validate": 0.01, "plan": 0.2})
    metrics.job_started(2)
    metrics.job_finished("failed", "generation_failed", {"total": 3.0})
    metrics.recovery("oom_step_down")
    metrics.cache_hit()
    metrics.llm_fallback("timeout")
    metrics.progress_update()
    metrics.set_backlog(1, 2)
    metrics.gpu_memory("Generator", {"allocated_bytes": 1})
    assert metrics._registry is None


def test_metrics_never_raise_into_the_caller(outside_ray):
    metrics.job_finished("completed", None, timings={"total": "not a number"})
    assert metrics.watch_gpu_memory("Generator", engine=object()) is None  # no CUDA here


def test_labels_stay_short_and_plain():
    assert metrics._label("Deadline Exceeded!") == "deadline_exceeded"
    assert metrics._label(None) == "none"
    assert len(metrics._label("x" * 500)) == 40


# --- the job id in Serve's JSON log lines --------------------------------------------------------


def test_job_id_survives_serves_json_formatter():
    from ray._common.formatters import JSONFormatter
    from ray.serve._private.logging_utils import ServeLogAttributeRemovalFilter

    logger = logging.getLogger("test.i2v.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logs.keep_job_ids(logger.name)
    logs.keep_job_ids(logger.name)  # once is enough
    assert sum(isinstance(f, logs.JobFieldsFilter) for f in logger.filters) == 1
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.setFormatter(JSONFormatter())
    handler.addFilter(ServeLogAttributeRemovalFilter())  # what Serve's file handler does
    logger.addHandler(handler)
    try:
        logger.info("job started", extra={"job_id": "video_1", "session_id": "s-1"})
    finally:
        logger.removeHandler(handler)
    [line] = lines
    record = json.loads(line)
    assert record["job_id"] == "video_1" and record["session_id"] == "s-1"
    assert record["message"] == "job started"
