"""Serving overhead: a job end to end through the service (openai client, HTTP, classify, plan,
queue, generate, encode, store) against the same generation and encoding called directly on the
engine, interleaved pair by pair (service, engine, service, engine, ...) on the same machine with
the service up, for two jobs: the demo job and a long one (at least 5 s on the engine here).

    python bench/serving_overhead.py [--config serve_app/configs/tiny.yaml] [--pairs 5]

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
from openai import OpenAI

from deployments.generator.engine import GenerationRequest, GeneratorEngine
from deployments.generator.video import encode_mp4
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
    "long job (cup, 192x128, 16 frames, 12 steps)",
    "展示这个杯子旋转",
    {"size": "192x128", "num_frames": 16, "num_inference_steps": 12},
)


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
    client: OpenAI, image: Path, kind: JobKind, seed: int, poll_s: float
) -> tuple[float, dict]:
    started = time.perf_counter()
    with image.open("rb") as handle:
        video = client.videos.create(
            prompt=kind.instruction, input_reference=handle, extra_body={"seed": seed, **kind.extra}
        )
    while video.status in ("queued", "in_progress"):
        time.sleep(poll_s)
        video = client.videos.retrieve(video.id)
    elapsed = time.perf_counter() - started
    if video.status != "completed":
        raise RuntimeError(f"job failed: {video.error}")
    extra = video.model_extra or {}
    if any(entry["stage"] == "cache" for entry in extra.get("trace") or []):
        raise RuntimeError(f"job {video.id} came from the result cache: this run measures nothing")
    return elapsed, extra


def on_engine(engine: GeneratorEngine, image: Path, plan: dict) -> float:
    params = plan["params"]
    started = time.perf_counter()
    frames = engine.generate(
        GenerationRequest(
            image=load_rgb(image.read_bytes()),
            prompt=plan["prompt"],
            negative_prompt=plan["negative_prompt"],
            **params,
        )
    )
    encode_mp4(frames, params["fps"])
    return time.perf_counter() - started


def generator_threads(serve_file: ServeFile) -> int:
    """The torch threads of the Generator replica: its OMP_NUM_THREADS, else its num_cpus."""
    options = serve_file.app.deployments.get("Generator", {}).get("ray_actor_options", {})
    env = (options.get("runtime_env") or {}).get("env_vars") or {}
    return int(env.get("OMP_NUM_THREADS") or max(1, int(options.get("num_cpus", 1))))


def measure(
    client: OpenAI, engine: GeneratorEngine, args: argparse.Namespace, kind: JobKind, seed0: int
) -> list[Pair]:
    elapsed, extra = through_service(client, args.image, kind, seed0, args.poll_interval)
    on_engine(engine, args.image, extra["plan"])  # warm-up of both sides
    pairs = []
    for i in range(1, args.pairs + 1):
        served_s, extra = through_service(client, args.image, kind, seed0 + i, args.poll_interval)
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
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="first seed")
    parser.add_argument("--jobs", choices=("both", "demo", "long"), default="both")
    args = parser.parse_args()

    serve_file = load_serve_file(args.config)
    threads = generator_threads(serve_file)
    torch.set_num_threads(threads)
    base_url = runtime.start(serve_file)
    try:
        client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
        engine = GeneratorEngine(serve_file.app.generator)
        results = []
        kinds = {"both": (DEMO, LONG), "demo": (DEMO,), "long": (LONG,)}[args.jobs]
        for offset, kind in enumerate(kinds):
            pairs = measure(client, engine, args, kind, args.seed + 1000 * offset)
            results.append((kind, pairs))
    finally:
        runtime.stop()

    print(
        f"serving overhead, {args.pairs} interleaved pairs per job, poll every "
        f"{args.poll_interval} s, torch threads {threads} on both sides, {os.cpu_count()} cores"
    )
    for kind, pairs in results:
        report(kind, pairs)


if __name__ == "__main__":
    main()
