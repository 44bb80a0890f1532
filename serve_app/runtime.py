"""Starting and stopping the application on a local Ray instance, for `make demo`, `make serve`,
benchmarks and tests. A cluster uses `serve deploy` with the same config file instead."""

from __future__ import annotations

import time

import httpx
import ray
from ray import serve

from i2v_core.startup import StartupClock
from serve_app.builder import build_app
from serve_app.config import ServeFile


def start(
    serve_file: ServeFile,
    num_cpus: int | None = None,
    ready_timeout_s: float = 300,
    clock: StartupClock | None = None,
) -> str:
    """Starts Ray (if needed) and the application; returns the base URL once /readyz says so.
    `clock`, when given, gets a lap for each part: ray, serve, application (until Serve runs
    every replica: their processes, imports, constructors and warm-ups), readyz."""
    clock = clock or StartupClock()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    clock.lap("ray")
    serve.start(http_options={"host": serve_file.host, "port": serve_file.port})
    clock.lap("serve")
    serve.run(
        build_app(serve_file.app),
        name=serve_file.name,
        route_prefix=serve_file.route_prefix,
        blocking=False,
    )
    clock.lap("application")
    base_url = f"http://{serve_file.host}:{serve_file.port}"
    wait_ready(base_url, ready_timeout_s)
    clock.lap("readyz")
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
