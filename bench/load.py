"""Load test harness: drives a running service on 127.0.0.1 with a bounded number of create
requests at a set arrival rate for a bounded time, follows every accepted job to its end, and
reports accepted / rejected (429) / errors, p50/p99 latency of POST and of GET status, the backlog
over time, and lost jobs (accepted but never ended), which must be 0.

    python bench/load.py --rate 4 --duration 20                 # against http://127.0.0.1:8000
    python bench/load.py --start --capacity --levels 1 2 10     # start the tiny service, measure
                                                                  # capacity, then 1x, 2x, 10x
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PICTURE = (ROOT / "examples" / "cup.jpg").read_bytes()
JOB_FIELDS = {
    "prompt": "展示这个杯子旋转",
    "size": "64x64",
    "num_frames": "8",
    "num_inference_steps": "4",
}
FINAL = ("completed", "failed")


@dataclass
class Run:
    rate: float
    post_latency: list[float] = field(default_factory=list)
    get_latency: list[float] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # id -> last status seen
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    backlog: list[tuple[float, int]] = field(default_factory=list)
    failed_codes: dict[str, int] = field(default_factory=dict)
    arrivals_done: bool = False

    def report(self, elapsed: float) -> dict:
        statuses = list(self.accepted.values())
        lost = [i for i, s in self.accepted.items() if s not in FINAL]
        submitted = len(self.accepted) + self.rejected + len(self.errors)
        return {
            "rate_per_s": round(self.rate, 2),
            "submitted": submitted,
            "accepted": len(self.accepted),
            "rejected_429": self.rejected,
            "rejected_share": round(self.rejected / submitted, 3) if submitted else 0.0,
            "errors": len(self.errors),
            "completed": statuses.count("completed"),
            "failed": statuses.count("failed"),
            "failed_codes": self.failed_codes,
            "lost": len(lost),
            "post_p50_ms": _ms(self.post_latency, 50),
            "post_p99_ms": _ms(self.post_latency, 99),
            "get_p50_ms": _ms(self.get_latency, 50),
            "get_p99_ms": _ms(self.get_latency, 99),
            "max_backlog": max((b for _, b in self.backlog), default=0),
            "backlog_every_2s": [b for t, b in self.backlog if int(t) % 2 == 0][:60],
            "seconds": round(elapsed, 1),
        }


def _ms(values: list[float], percentile: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[percentile - 1] * 1000, 1)


async def _post(client: httpx.AsyncClient, run: Run, seed: int) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/videos",
            data={**JOB_FIELDS, "seed": str(seed)},
            files={"input_reference": ("cup.jpg", PICTURE, "image/jpeg")},
        )
    except httpx.HTTPError as exc:
        run.errors.append(repr(exc))
        return
    run.post_latency.append(time.perf_counter() - started)
    if response.status_code == 429:
        run.rejected += 1
    elif response.status_code == 200:
        run.accepted[response.json()["id"]] = response.json()["status"]
    else:
        run.errors.append(f"{response.status_code}: {response.text[:200]}")


async def _follow(client: httpx.AsyncClient, run: Run, stop_at: float) -> None:
    """Polls every unfinished accepted job until all have ended or the drain time is over."""
    while time.monotonic() < stop_at:
        pending = [i for i, s in run.accepted.items() if s not in FINAL]
        for video_id in pending:
            started = time.perf_counter()
            try:
                response = await client.get(f"/v1/videos/{video_id}")
            except httpx.HTTPError as exc:
                run.errors.append(repr(exc))
                continue
            run.get_latency.append(time.perf_counter() - started)
            body = response.json()
            run.accepted[video_id] = body["status"]
            if body["status"] == "failed":
                code = (body.get("error") or {}).get("code", "unknown")
                run.failed_codes[code] = run.failed_codes.get(code, 0) + 1
        await asyncio.sleep(0.5)
        if run.arrivals_done and all(s in FINAL for s in run.accepted.values()):
            return


async def drive(
    base_url: str,
    rate: float,
    duration_s: float,
    max_requests: int,
    drain_s: float,
    first_seed: int,
) -> dict:
    run = Run(rate=rate)
    started = time.monotonic()
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def sample_backlog() -> None:
            while not (run.arrivals_done and all(s in FINAL for s in run.accepted.values())):
                backlog = sum(1 for s in run.accepted.values() if s not in FINAL)
                run.backlog.append((time.monotonic() - started, backlog))
                await asyncio.sleep(1)

        follower = asyncio.create_task(_follow(client, run, started + duration_s + drain_s))
        sampler = asyncio.create_task(sample_backlog())
        posts = []
        count = min(max_requests, int(rate * duration_s))
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            posts.append(asyncio.create_task(_post(client, run, first_seed + i)))
        await asyncio.gather(*posts)
        run.arrivals_done = True
        await follower
        sampler.cancel()
    return run.report(time.monotonic() - started)


async def measure_capacity(base_url: str, jobs: int, first_seed: int) -> float:
    """Jobs per second the service completes when it is kept busy: submit a burst and time it."""
    run = Run(rate=0, arrivals_done=True)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        await asyncio.gather(*(_post(client, run, first_seed + i) for i in range(jobs)))
        await _follow(client, run, started + 600)
    done = sum(1 for s in run.accepted.values() if s == "completed")
    return done / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--start",
        action="store_true",
        help="start the service from --config first (needs Redis at REDIS_URL)",
    )
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second")
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="measure capacity first and run --levels multiples of it",
    )
    parser.add_argument("--levels", type=float, nargs="+", default=[1, 2, 10])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals")
    parser.add_argument("--max-requests", type=int, default=400)
    parser.add_argument("--drain", type=float, default=240.0, help="seconds to wait for the end")
    parser.add_argument("--out", type=Path, help="write the reports as JSON here")
    args = parser.parse_args()

    if args.start:
        from serve_app import runtime
        from serve_app.config import load_serve_file

        serve_file = load_serve_file(args.config)
        args.base_url = runtime.start(serve_file)
    seed = int(time.time())  # fresh seeds: no result-cache hits
    reports = []
    try:
        if args.capacity:
            capacity = asyncio.run(measure_capacity(args.base_url, 24, seed))
            seed += 1000
            print(f"capacity: {capacity:.2f} jobs/s", flush=True)
            rates = [capacity * level for level in args.levels]
        else:
            capacity, rates = None, [args.rate]
        for rate in rates:
            report = asyncio.run(
                drive(args.base_url, rate, args.duration, args.max_requests, args.drain, seed)
            )
            seed += args.max_requests + 1
            report["capacity_jobs_per_s"] = round(capacity, 2) if capacity else None
            reports.append(report)
            print(json.dumps(report), flush=True)
    finally:
        if args.start:
            runtime.stop()
    if args.out:
        args.out.write_text(json.dumps(reports, indent=2))
    if any(r["lost"] for r in reports):
        raise SystemExit("lost jobs: accepted but never ended")


if __name__ == "__main__":
    main()
