"""Memory of each replica (RSS, MiB) with the service idle after start and after N jobs, plus the
time the ingress module takes to import in a fresh interpreter. The replicas are found by their
process titles (`ray::ServeReplica:<app>:<Deployment>`); every job has its own seed, so none is a
result-cache hit, and the run fails if a job does not complete.

    python bench/replica_memory.py [--config serve_app/configs/tiny.yaml] [--jobs 20]

Needs Redis at the config's REDIS_URL (`make redis-start` starts one).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psutil
from openai import OpenAI

from i2v_testing.paths import EXAMPLES, TINY_CONFIG
from serve_app import runtime
from serve_app.config import load_serve_file

warnings.filterwarnings("ignore", message=".*Sora API.*")
DEPLOYMENTS = ("Ingress", "Classifier", "Router", "Generator")


def replica_rss_mib(app_name: str) -> dict[str, float]:
    """RSS of each replica process, summed per deployment (one replica each in the tiny
    profile)."""
    sizes: dict[str, float] = {}
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(process.info["cmdline"] or [])
        for name in DEPLOYMENTS:
            if f"ServeReplica:{app_name}:{name}" in title and process.info["memory_info"]:
                sizes[name] = sizes.get(name, 0.0) + process.info["memory_info"].rss / 2**20
    return sizes


def import_seconds(module: str, repeats: int = 5) -> float:
    """Median wall time of `python -c "import <module>"` minus the interpreter's own start."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = statistics.median(run("pass") for _ in range(repeats))
    return statistics.median(run(f"import {module}") for _ in range(repeats)) - bare


def run_jobs(base_url: str, count: int) -> None:
    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    seed0 = int(time.time())
    pictures = [EXAMPLES / name for name in ("cup.jpg", "cat.jpg", "astronaut.jpg")]
    for i in range(count):
        with pictures[i % len(pictures)].open("rb") as handle:
            video = client.videos.create(
                prompt="展示这个杯子旋转" if i % 2 else "the cat turns its head",
                input_reference=handle,
                extra_body={"seed": seed0 + i, "size": "128x128", "num_inference_steps": 2},
            )
        video = client.videos.poll(video.id, poll_interval_ms=200)
        if video.status != "completed":
            raise SystemExit(f"job {video.id} ended {video.status}: {video.error}")
        if any(entry.get("stage") == "cache" for entry in video.model_extra["trace"]):
            raise SystemExit(f"job {video.id} was a result-cache hit: a wrong measurement")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=TINY_CONFIG)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    print(f"import deployments.ingress.api: {import_seconds('deployments.ingress.api'):.2f} s")
    serve_file = load_serve_file(args.config)
    base_url = runtime.start(serve_file)
    try:
        time.sleep(5)  # let start-up settle
        idle = replica_rss_mib(serve_file.name)
        run_jobs(base_url, args.jobs)
        time.sleep(2)
        busy = replica_rss_mib(serve_file.name)
    finally:
        runtime.stop()
    print(f"\n| replica | RSS idle (MiB) | RSS after {args.jobs} jobs (MiB) |")
    print("| --- | --- | --- |")
    for name in DEPLOYMENTS:
        print(f"| {name} | {idle.get(name, 0):.0f} | {busy.get(name, 0):.0f} |")


if __name__ == "__main__":
    main()
