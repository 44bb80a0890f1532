"""Progress streams at scale on the tiny service (`GET /v1/videos/{id}/events` through Ray
Serve's HTTP proxy on 127.0.0.1):

1. N streams held open at once on a few jobs: how long opening them took, and the Ingress
   replica's CPU per open stream while they idle (keep-alives only), against a baseline with
   none open.
2. The same N streams while their jobs announce progress the way the generator does
   (`JobStore.announce_progress`, one publish per denoising step, from this process at a fixed
   step rate): per-event latency from the publish (the event's `published_at`) to the client,
   p50/p99, and the replica's CPU per stream while events flow.
3. Real jobs through the generator with streams opened right after each POST: the same latency
   from the generator's own step publishes.

CPU is the replica process's user+system seconds (psutil), also the HTTP proxy's. The client
runs here too, so on a small machine all of them share its cores.

    python bench/event_streams.py [--streams 200] [--jobs 4] [--idle-s 60] [--step-s 0.5]

Starts its own Redis, stores and Ray (serialise with the other Ray users of this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from deployments.ingress.config import EventsConfig
from i2v_cli.events import EventParser
from i2v_core.config import StoreConfig
from i2v_core.events import JobEventPublisher
from i2v_core.jobs import JobStore
from i2v_testing.jobs import make_job
from i2v_testing.paths import EXAMPLES, TINY_CONFIG
from i2v_testing.servers import RedisServer, free_port
from serve_app import runtime
from serve_app.config import load_serve_file

PICTURE = (EXAMPLES / "cup.jpg").read_bytes()


@dataclass
class Streams:
    """What the clients saw: latencies (ms) by phase, first-event and end counts."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    opened: int = 0
    ended: int = 0
    errors: list[str] = field(default_factory=list)
    all_open: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0

    def record(self, phase: str, ms: float) -> None:
        self.latencies.setdefault(phase, []).append(ms)


async def follow(
    client: httpx.AsyncClient, video_id: str, streams: Streams, phase: list[str]
) -> None:
    parser = EventParser()
    try:
        async with client.stream("GET", f"/v1/videos/{video_id}/events") as response:
            if response.status_code != 200:
                streams.errors.append(f"{response.status_code} {(await response.aread())[:200]!r}")
                return
            first = True
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                received = time.time()
                if first:
                    first = False
                    streams.opened += 1
                    if streams.opened == streams.target:
                        streams.all_open.set()
                if event.event in ("status", "progress"):
                    published = event.json().get("published_at")
                    if published:
                        streams.record(phase[0], (received - published) * 1000)
        streams.ended += 1
    except httpx.HTTPError as exc:
        streams.errors.append(repr(exc))


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def find_process(marker: str) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in process.info["cmdline"] or ()):
            return process
    raise SystemExit(f"no process with {marker!r} in its command line")


def drive_probe_jobs(jobs: JobStore, ids: list[str], steps: int, step_s: float) -> None:
    """Each job runs `steps` steps at `step_s` apart, announcing progress as the generator's
    ProgressReporter does (one publish per step, a row write every few), then completes."""
    for video_id in ids:
        jobs.start(video_id)
    for step in range(1, steps + 1):
        started = time.monotonic()
        progress = int(95 * step / steps)
        for video_id in ids:
            if step % 5 == 0:
                jobs.set_progress(video_id, progress)
            else:
                jobs.announce_progress(video_id, progress)
        time.sleep(max(0.0, step_s - (time.monotonic() - started)))
    for video_id in ids:
        jobs.complete(video_id, {}, [])


def summary(values: list[float]) -> str:
    if not values:
        return "no events"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms ({len(values)} events)"


async def run(args: argparse.Namespace, base_url: str, jobs: JobStore) -> dict[str, str]:
    replica = find_process("ServeReplica:i2v:Ingress")
    proxy = find_process("ProxyActor")
    figures: dict[str, str] = {}
    limits = httpx.Limits(max_connections=args.streams + 50, max_keepalive_connections=50)
    timeout = httpx.Timeout(60.0, read=120.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        # 0. Baseline: the replica with no stream open.
        replica_0, proxy_0 = cpu_s(replica), cpu_s(proxy)
        await asyncio.sleep(args.idle_s)
        base_replica = (cpu_s(replica) - replica_0) / args.idle_s * 60
        base_proxy = (cpu_s(proxy) - proxy_0) / args.idle_s * 60

        # 1. N streams open on probe jobs (rows this process drives), idle.
        ids = [jobs.create(make_job()).id for _ in range(args.jobs)]
        streams = Streams(target=args.streams)
        phase = ["probe"]
        opening = time.perf_counter()
        tasks = [
            asyncio.create_task(follow(client, ids[n % len(ids)], streams, phase))
            for n in range(args.streams)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(streams.all_open.wait(), 120)
        open_s = time.perf_counter() - opening
        figures["streams open"] = (
            f"{streams.opened}/{args.streams} on {args.jobs} jobs, all open after {open_s:.2f} s"
            + (f"; errors: {streams.errors[:3]}" if streams.errors else "")
        )
        replica_0, proxy_0 = cpu_s(replica), cpu_s(proxy)
        await asyncio.sleep(args.idle_s)
        idle_replica = (cpu_s(replica) - replica_0) / args.idle_s * 60
        idle_proxy = (cpu_s(proxy) - proxy_0) / args.idle_s * 60
        n = max(1, streams.opened)
        figures["replica CPU, idle"] = (
            f"{base_replica:.2f} CPU-s/min with none open; {idle_replica:.2f} with {n} open: "
            f"{(idle_replica - base_replica) / n * 1000:.2f} CPU-ms per open stream per minute "
            f"(proxy {(idle_proxy - base_proxy) / n * 1000:.2f})"
        )

        # 2. The probe jobs run: a publish per step at a fixed rate.
        replica_0, proxy_0 = cpu_s(replica), cpu_s(proxy)
        started = time.perf_counter()
        await asyncio.to_thread(drive_probe_jobs, jobs, ids, args.steps, args.step_s)
        await asyncio.gather(*tasks)
        active_s = time.perf_counter() - started
        active_replica = (cpu_s(replica) - replica_0) / active_s * 60
        active_proxy = (cpu_s(proxy) - proxy_0) / active_s * 60
        events_per_s = len(streams.latencies.get("probe", [])) / active_s
        figures["latency, probe steps"] = (
            f"{summary(streams.latencies.get('probe', []))}; {events_per_s:.0f} events/s to "
            f"clients ({1 / args.step_s:.0f} steps/s on each of {args.jobs} jobs)"
        )
        figures["replica CPU, events flowing"] = (
            f"{active_replica:.2f} CPU-s/min: "
            f"{(active_replica - base_replica) / n * 1000:.1f} CPU-ms per stream per minute, "
            f"{(active_replica - base_replica) / 60 / max(events_per_s, 1e-9) * 1e6:.0f} CPU-us "
            f"per event sent (proxy {active_proxy:.2f} CPU-s/min)"
        )
        figures["streams ended with the video"] = f"{streams.ended}/{args.streams}"

        # 3. Real jobs through the generator, streams opened right after each POST.
        real = Streams(target=args.streams)
        phase[0] = "generator"
        tasks = []
        seed = int(time.time()) % 100_000
        for index in range(args.real_jobs):
            response = await client.post(
                "/v1/videos",
                data={
                    "prompt": "展示这个杯子旋转",
                    "size": "64x64",
                    "num_frames": "4",
                    "num_inference_steps": str(args.real_steps),
                    "seed": str(seed + index),
                },
                files={"input_reference": ("cup.jpg", PICTURE, "image/jpeg")},
            )
            response.raise_for_status()
            video_id = response.json()["id"]
            per_job = args.streams // args.real_jobs
            tasks += [
                asyncio.create_task(follow(client, video_id, real, phase)) for _ in range(per_job)
            ]
        await asyncio.gather(*tasks)
        figures["latency, generator steps"] = (
            f"{summary(real.latencies.get('generator', []))} on {args.real_jobs} real jobs "
            f"({args.real_steps} steps) x {args.streams // args.real_jobs} streams"
            + (f"; errors: {real.errors[:3]}" if real.errors else "")
        )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=TINY_CONFIG)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=4, help="probe jobs the streams share")
    parser.add_argument("--idle-s", type=float, default=60, help="each CPU window")
    parser.add_argument("--steps", type=int, default=50, help="steps of each probe job")
    parser.add_argument(
        "--step-s", type=float, default=0.5, help="time between probe steps (GPU-like: 0.5)"
    )
    parser.add_argument("--real-jobs", type=int, default=2)
    parser.add_argument("--real-steps", type=int, default=40)
    parser.add_argument(
        "--same-loop",
        action="store_true",
        help="run the Ingress's code on the replica's own event loop "
        "(RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        redis_server = RedisServer(state / "redis")
        redis_server.start()
        serve_file = load_serve_file(args.config)
        ongoing = max(1024, args.streams + 256)
        deployments = {**serve_file.app.deployments}
        deployments["Ingress"] = {**deployments["Ingress"], "max_ongoing_requests": ongoing}
        if args.same_loop:
            actor = dict(deployments["Ingress"].get("ray_actor_options") or {})
            env = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
            actor["runtime_env"] = {**(actor.get("runtime_env") or {}), "env_vars": env}
            deployments["Ingress"]["ray_actor_options"] = actor
        app = serve_file.app.model_copy(
            update={
                "stores": StoreConfig(
                    database_url=f"sqlite:///{state / 'i2v.db'}",
                    artifact_dir=str(state / "artifacts"),
                ),
                "queue": serve_file.app.queue.model_copy(update={"redis_url": redis_server.url}),
                "events": EventsConfig(
                    max_streams_per_key=args.streams + 10,
                    max_streams_per_replica=args.streams + 10,
                ),
                "deployments": deployments,
            }
        )
        serve_file = serve_file.model_copy(update={"app": app, "port": free_port()})
        base_url = runtime.start(serve_file, num_cpus=2)
        jobs = JobStore(app.stores.database_url, on_change=JobEventPublisher(redis_server.url))
        try:
            figures = asyncio.run(run(args, base_url, jobs))
        finally:
            jobs.close()
            runtime.stop()
            redis_server.stop()
    command = "python bench/event_streams.py " + shlex.join(argv or sys.argv[1:])
    print(f"\n{command.strip()}  ({psutil.cpu_count()} CPUs)")
    for name, value in figures.items():
        print(f"- {name}: {value}")


if __name__ == "__main__":
    main()
