"""A throwaway Prometheus server (Debian's `prometheus` binary) for tests: started on 127.0.0.1 with
its own data folder and a config derived from monitoring/prometheus.yml, and queried over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "i2v-service.json"

# Ray 2.60's own metrics that monitoring/ uses (the integration test finds each in a scrape).
RAY_METRICS = {
    "ray_serve_deployment_replica_healthy",
    "ray_serve_autoscaling_target_replicas",
    "ray_serve_replica_processing_queries",
    "ray_serve_deployment_queued_queries",
    "ray_serve_num_http_requests_total",
    "ray_serve_http_request_latency_ms_bucket",
}
_METRIC_NAME = re.compile(r"\bray_[a-z0-9_]+")

# What Grafana puts in for its built-in variables when a panel is drawn.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "15s", "$__range": "1h"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def binary(name: str) -> str:
    """The path of `prometheus` or `promtool`; `make test` installs them (system-deps)."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (make system-deps installs prometheus)")
    return path


def write_ray_discovery_file(path: Path, nodes: list[dict]) -> Path:
    """The file Ray's dashboard writes for Prometheus (`prom_metrics_service_discovery.json`): one
    target per live node's metrics export port. The test cluster runs without the dashboard."""
    targets = [
        f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
        for node in nodes
        if node.get("Alive", node.get("alive"))
    ]
    path.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": targets}]))
    return path


def scrape_config_for(discovery_file: Path, interval_s: int = 1) -> dict:
    """monitoring/prometheus.yml with the discovery file, rule file and intervals of a test."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = f"{interval_s}s"
    config["global"]["evaluation_interval"] = f"{interval_s}s"
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    [job] = config["scrape_configs"]
    job["file_sd_configs"] = [{"files": [str(discovery_file)], "refresh_interval": "1s"}]
    return config


class PrometheusServer:
    """`prometheus` on a free port of 127.0.0.1 with a data folder of its own."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = workdir
        self.config = config
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config))
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            try:
                if self._http.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus was not ready in {timeout_s} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        self._http.close()

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- HTTP API ---------------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """The `data` of a successful API answer; AssertionError with Prometheus' error else."""
        response = self._http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (or scalar as a one-element list)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str, default: float = 0.0) -> float:
        """The single number an aggregating query returns; `default` when it has no result."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} returned {len(result)} series"
        return float(result[0]["value"][1]) if result else default

    def wait_for(self, expr: str, check: Callable[[float], bool], timeout_s: float = 60) -> float:
        """Polls `value(expr)` until `check` accepts it; the last value in the failure message."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.value(expr, default=float("nan"))
            if check(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} is still {current} after {timeout_s} s")
            time.sleep(1)


# --- the PromQL in monitoring/ ------------------------------------------------------------------


def dashboard_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every target in the dashboard, rows' panels included."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]


def alert_queries(rules: dict) -> Iterator[tuple[str, str]]:
    """(alert name, expression) of every rule in an alert rules file."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule.get("record"), rule["expr"]


def metric_names(expr: str) -> set[str]:
    """The `ray_*` metric names a PromQL expression reads."""
    return set(_METRIC_NAME.findall(expr))


def with_grafana_variables(expr: str) -> str:
    """The expression as Grafana sends it, its built-in variables filled in."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown dashboard variables {leftover} in {expr}"
    return expr
