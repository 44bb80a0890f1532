"""Starting and stopping the application on a local Ray instance, for `make demo`, `make serve`,
benchmarks and tests. A cluster uses `serve deploy` with the same config file instead."""

from __future__ import annotations

import time

import httpx
import ray
from ray import serve

from serve_app.builder import build_app
from serve_app.config import ServeFile


def start(
    serve_file: ServeFile,
    num_cpus: int | None = None,
    ready_timeout_s: float = 300,
    timings: dict[str, float] | None = None,
) -> str:
    """Starts Ray (if needed) and the application; returns the base URL once /readyz says so.
    `timings`, when given, receives the seconds of each part: ray, serve, application (until
    Serve runs every replica: their processes, imports, constructors and warm-ups), readyz."""
    clock = time.perf_counter()
    parts = timings if timings is not None else {}

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        parts[part] = now - clock
        clock = now

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    lap("ray")
    serve.start(http_options={"host": serve_file.host, "port": serve_file.port})
    lap("serve")
    serve.run(
        build_app(serve_file.app),
        name=serve_file.name,
        route_prefix=serve_file.route_prefix,
        blocking=False,
    )
    lap("application")
    base_url = f"http://{serve_file.host}:{serve_file.port}"
    wait_ready(base_url, ready_timeout_s)
    lap("readyz")
    return base_url


def wait_ready(base_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=10)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"the service at {base_url} was not ready in {timeout_s} s: {last}")


def stop() -> None:
    serve.shutdown()
    ray.shutdown()
