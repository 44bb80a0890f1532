"""Throughput at capacity: N jobs in flight through the service (all submitted at once, each
with its own seed) against the engine alone running the same jobs back to back in this process,
and in groups of the replica's `max_batch_size` (what batching can reach at best).

    python bench/throughput_at_capacity.py [--config serve_app/configs/tiny.yaml] [--jobs 16]

The service side runs from the first submission to the last job's completion, learnt from each
job's progress stream; it fails if any job ends otherwise than completed or came from the result
cache. The engine runs the prompts, parameters and seeds the service planned, with the generator
replica's torch thread count, and encodes each MP4 as the replica does. Needs Redis at the
config's REDIS_URL (`make bench` starts one).
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import torch
from serving_overhead import (
    DEMO,
    engine_request,
    generator_threads,
    through_service,
)  # bench/ is on sys.path

from deployments.generator.engine import GeneratorEngine
from deployments.generator.video import encode_mp4
from i2v_cli.client import Service
from serve_app import runtime
from serve_app.config import load_serve_file

ROOT = Path(__file__).resolve().parents[1]


def on_engine(engine: GeneratorEngine, image: Path, plans: list[dict], group: int) -> float:
    started = time.perf_counter()
    for first in range(0, len(plans), group):
        chunk = plans[first : first + group]
        results = engine.generate_batch([engine_request(image, plan) for plan in chunk])
        for plan, result in zip(chunk, results, strict=True):
            if result.error is not None:
                raise result.error
            encode_mp4(result.frames, plan["params"]["fps"])
    return time.perf_counter() - started


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of each Ray process on this machine, by title (ServeReplica:i2v:Generator,
    ProxyActor, raylet, ...), and of this process."""
    totals: dict[str, float] = collections.defaultdict(float)
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.pid == os.getpid():
            name = "this benchmark (clients)"
        elif cmdline.startswith("ray::"):
            name = cmdline.split()[0].removeprefix("ray::").removeprefix("ServeReplica:i2v:")
        elif "/ray/" in cmdline:
            name = Path(cmdline.split()[0]).name  # raylet, gcs_server, dashboard agents
        else:
            continue
        times = proc.info["cpu_times"]
        if times is not None:
            totals[name] += times.user + times.system
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    parser.add_argument("--image", default=ROOT / "examples" / "cup.jpg", type=Path)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=int(time.time()), help="first seed")
    args = parser.parse_args()
    args.wait = "events"  # what through_service reads

    serve_file = load_serve_file(args.config)
    threads = generator_threads(serve_file)
    torch.set_num_threads(threads)
    max_batch = serve_file.app.generator.max_batch_size
    base_url = runtime.start(serve_file)
    try:
        service = Service(base_url)
        engine = GeneratorEngine(serve_file.app.generator)
        _, warm = through_service(service, args.image, DEMO, args.seed, args)
        on_engine(engine, args.image, [warm["plan"]], 1)  # warm-up of both sides

        seeds = range(args.seed + 1, args.seed + 1 + args.jobs)
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            finals = list(
                pool.map(lambda s: through_service(service, args.image, DEMO, s, args)[1], seeds)
            )
        served_s = time.perf_counter() - started
        cpu_after = cpu_seconds()
        plans = [final["plan"] for final in finals]
        batch_sizes = collections.Counter(
            entry["detail"]["batch_size"]
            for final in finals
            for entry in final["trace"]
            if entry["stage"] == "generate"
        )
        single_s = on_engine(engine, args.image, plans, 1)
        batched_s = on_engine(engine, args.image, plans, max_batch)
    finally:
        runtime.stop()

    params = {k: v for k, v in plans[0]["params"].items() if k != "seed"}
    print(
        f"throughput at capacity: {args.jobs} demo jobs {params}, torch threads {threads}, "
        f"{os.cpu_count()} cores; the replica ran batches of sizes {dict(batch_sizes)}"
    )
    print("| side | seconds | jobs/s | service / side |")
    print("| --- | --- | --- | --- |")
    rate = args.jobs / served_s
    print(f"| service, {args.jobs} in flight | {served_s:.2f} | {rate:.3f} | |")
    for name, seconds in (
        ("engine, one at a time", single_s),
        (f"engine, batches of {max_batch}", batched_s),
    ):
        print(
            f"| {name} | {seconds:.2f} | {args.jobs / seconds:.3f} | **{seconds / served_s:.2f}** |"
        )
    cores = os.cpu_count() or 1
    print(f"\nCPU seconds per job, service side ({cores * served_s / args.jobs:.2f} s available):")
    used = {k: (cpu_after[k] - cpu_before.get(k, 0.0)) / args.jobs for k in cpu_after}
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        if seconds >= 0.005:
            print(f"- {name}: {seconds:.3f}")


if __name__ == "__main__":
    main()
