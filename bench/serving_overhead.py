"""Serving overhead: a job end to end through the service (openai client, HTTP, classify, plan,
queue, generate, encode, store) against the same generation and encoding called directly on the
engine, interleaved pair by pair (service, engine, service, engine, ...) on the same machine with
the service up, for two jobs: the demo job and a long one (at least 5 s on the engine here).

    python bench/serving_overhead.py [--config serve_app/configs/tiny.yaml] [--pairs 5]
        [--wait events|poll] [--poll-interval 0.1]

A served job ends when its client learns that it completed: by default it follows the job's
progress stream (`GET /v1/videos/{id}/events`, as `i2v create` does); `--wait poll` polls
`GET /v1/videos/{id}` every `--poll-interval` seconds instead (the cost of that polling lands in
the ratio, which is what it is there to show).

What it guards against measuring: every served job has its own seed, so none is answered from the
result cache, and the run fails if any job's trace has a `cache` stage; the engine runs the
parameters, prompt and seed the service planned for the job it is paired with; both sides use the
generator replica's torch thread count. Needs Redis at the config's REDIS_URL (`make bench`
starts one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from deployments.generator.engine import GenerationRequest, GeneratorEngine
from deployments.generator.video import encode_mp4
from i2v_cli.client import Service
from i2v_core.images import load_rgb
from serve_app import runtime
from serve_app.config import ServeFile, load_serve_file

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", message=".*Sora API.*")


@dataclass(frozen=True)
class JobKind:
    name: str
    instruction: str
    extra: dict  # extension form fields besides the seed


DEMO = JobKind(
    "demo job (cup, 展示这个杯子旋转, the tiny profile's still-life row)", "展示这个杯子旋转", {}
)
LONG = JobKind(
    "long job (cup, 256x192, 16 frames, 16 steps)",
    "展示这个杯子旋转",
    {"size": "256x192", "num_frames": 16, "num_inference_steps": 16},
)
LONG_ENOUGH_S = 5.0  # on the engine, so that the service's fixed costs do not decide the ratio


@dataclass
class Pair:
    served_s: float
    engine_s: float
    stages: dict
    params: dict

    @property
    def ratio(self) -> float:
        return self.served_s / self.engine_s


def through_service(
    service: Service, image: Path, kind: JobKind, seed: int, args: argparse.Namespace
) -> tuple[float, dict]:
    started = time.perf_counter()
    with image.open("rb") as handle:
        video = service.openai.videos.create(
            prompt=kind.instruction, input_reference=handle, extra_body={"seed": seed, **kind.extra}
        )
    if args.wait == "events":
        final = service.follow(video.id)
        if final is None:
            raise RuntimeError(
                f"the progress stream of {video.id} broke: this run measures nothing"
            )
    else:
        while video.status in ("queued", "in_progress"):
            time.sleep(args.poll_interval)
            video = service.openai.videos.retrieve(video.id)
        final = video.model_dump()
    elapsed = time.perf_counter() - started
    if final["status"] != "completed":
        raise RuntimeError(f"job failed: {final.get('error')}")
    if any(entry["stage"] == "cache" for entry in final.get("trace") or []):
        raise RuntimeError(f"job {video.id} came from the result cache: this run measures nothing")
    return elapsed, final


def engine_request(image: Path, plan: dict) -> GenerationRequest:
    """The request the service's plan describes, for the engine alone."""
    return GenerationRequest(
        image=load_rgb(image.read_bytes()),
        prompt=plan["prompt"],
        negative_prompt=plan["negative_prompt"],
        **plan["params"],
    )


def on_engine(engine: GeneratorEngine, image: Path, plan: dict) -> float:
    started = time.perf_counter()
    frames = engine.generate(engine_request(image, plan))
    encode_mp4(frames, plan["params"]["fps"])
    return time.perf_counter() - started


def generator_threads(serve_file: ServeFile) -> int:
    """The torch threads of the Generator replica: its OMP_NUM_THREADS, else its num_cpus."""
    options = serve_file.app.deployments.get("Generator", {}).get("ray_actor_options", {})
    env = (options.get("runtime_env") or {}).get("env_vars") or {}
    return int(env.get("OMP_NUM_THREADS") or max(1, int(options.get("num_cpus", 1))))


def measure(
    service: Service, engine: GeneratorEngine, args: argparse.Namespace, kind: JobKind, seed0: int
) -> list[Pair]:
    elapsed, extra = through_service(service, args.image, kind, seed0, args)
    on_engine(engine, args.image, extra["plan"])  # warm-up of both sides
    pairs = []
    for i in range(1, args.pairs + 1):
        served_s, extra = through_service(service, args.image, kind, seed0 + i, args)
        engine_s = on_engine(engine, args.image, extra["plan"])
        pairs.append(Pair(served_s, engine_s, extra["timings"], extra["plan"]["params"]))
    return pairs


def report(kind: JobKind, pairs: list[Pair]) -> None:
    params = {k: v for k, v in pairs[-1].params.items() if k != "seed"}
    print(f"\n{kind.name}: {params}")
    print("| pair | service s | engine s | ratio | queue_wait | generate | encode |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, p in enumerate(pairs, 1):
        stages = " | ".join(
            f"{p.stages.get(k, 0):.2f}" for k in ("queue_wait", "generate", "encode")
        )
        print(f"| {i} | {p.served_s:.2f} | {p.engine_s:.2f} | {p.ratio:.3f} | {stages} |")
    print(
        f"median: service {statistics.median(p.served_s for p in pairs):.2f} s, engine "
        f"{statistics.median(p.engine_s for p in pairs):.2f} s, "
        f"**ratio {statistics.median(p.ratio for p in pairs):.3f}** (median of the pairs' ratios)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    parser.add_argument("--image", default=ROOT / "examples" / "cup.jpg", type=Path)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--wait", choices=("events", "poll"), default="events")
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="seconds between polls (--wait poll)"
    )
    parser.add_argument("--seed", type=int, default=int(time.time()), help="first seed")
    parser.add_argument("--jobs", choices=("both", "demo", "long"), default="both")
    args = parser.parse_args()

    serve_file = load_serve_file(args.config)
    threads = generator_threads(serve_file)
    torch.set_num_threads(threads)
    base_url = runtime.start(serve_file)
    try:
        service = Service(base_url)
        engine = GeneratorEngine(serve_file.app.generator)
        results = []
        kinds = {"both": (DEMO, LONG), "demo": (DEMO,), "long": (LONG,)}[args.jobs]
        for offset, kind in enumerate(kinds):
            pairs = measure(service, engine, args, kind, args.seed + 1000 * offset)
            results.append((kind, pairs))
    finally:
        runtime.stop()

    waiting = (
        "following the progress stream"
        if args.wait == "events"
        else f"polling every {args.poll_interval} s"
    )
    print(
        f"serving overhead, {args.pairs} interleaved pairs per job, the client {waiting}, "
        f"torch threads {threads} on both sides, {os.cpu_count()} cores"
    )
    for kind, pairs in results:
        report(kind, pairs)
    long_engine_s = [
        statistics.median(p.engine_s for p in pairs) for k, pairs in results if k is LONG
    ]
    if long_engine_s and long_engine_s[0] < LONG_ENOUGH_S:
        print(
            f"\nwarning: the long job took {long_engine_s[0]:.2f} s on the engine, under "
            f"{LONG_ENOUGH_S} s: on this machine its ratio still weighs the fixed costs heavily"
        )


if __name__ == "__main__":
    main()
