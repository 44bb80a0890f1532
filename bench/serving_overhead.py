"""Serving overhead: the demo job end to end through the service (openai client, HTTP, classify,
plan, queue, generate, encode, store) versus the same generation called directly on the engine
(same weights, parameters and seed, same machine, one run of this script).

    python bench/serving_overhead.py [--config serve_app/configs/tiny.yaml] [--repeats 3]

Needs Redis at the config's REDIS_URL (`make bench` starts one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployments.generator.engine import GenerationRequest, GeneratorEngine  # noqa: E402
from deployments.generator.video import encode_mp4  # noqa: E402
from serve_app import runtime  # noqa: E402
from serve_app.config import load_serve_file  # noqa: E402
from serve_app.images import load_rgb  # noqa: E402

warnings.filterwarnings("ignore", message=".*Sora API.*")


def through_service(
    client: OpenAI, image: Path, instruction: str, seed: int, poll_s: float
) -> tuple[float, dict]:
    started = time.perf_counter()
    with image.open("rb") as handle:
        video = client.videos.create(
            prompt=instruction, input_reference=handle, extra_body={"seed": seed}
        )
    while video.status in ("queued", "in_progress"):
        time.sleep(poll_s)
        video = client.videos.retrieve(video.id)
    elapsed = time.perf_counter() - started
    if video.status != "completed":
        raise RuntimeError(f"job failed: {video.error}")
    return elapsed, video.model_extra


def direct(engine: GeneratorEngine, image: Path, plan: dict) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    parser.add_argument("--image", default=ROOT / "examples" / "cup.jpg", type=Path)
    parser.add_argument("--instruction", default="展示这个杯子旋转")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between polls")
    args = parser.parse_args()

    serve_file = load_serve_file(args.config)
    base_url = runtime.start(serve_file)
    try:
        client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
        through_service(
            client, args.image, args.instruction, args.seed, args.poll_interval
        )  # warm every path
        served = []
        for _ in range(args.repeats):
            elapsed, extra = through_service(
                client, args.image, args.instruction, args.seed, args.poll_interval
            )
            served.append(elapsed)
        plan, timings = extra["plan"], extra["timings"]
    finally:
        runtime.stop()

    # The engine alone, after the service is down so nothing competes for the two cores.
    engine = GeneratorEngine(serve_file.app.generator)
    direct(engine, args.image, plan)  # warm-up, as the replica's constructor does
    engine_runs = [direct(engine, args.image, plan) for _ in range(args.repeats)]

    served_median = statistics.median(served)
    engine_median = statistics.median(engine_runs)
    print(f"parameters: {plan['params']}")
    print(f"generation: {extra['trace'][-1]['detail']}")
    print(
        "service stages of the last job (s): "
        + ", ".join(f"{k}={v:.3f}" for k, v in timings.items())
    )
    print(
        "through the service, submit to completed (s): "
        + ", ".join(f"{t:.2f}" for t in served)
        + f"  median {served_median:.2f}"
    )
    print(
        "engine.generate + encode_mp4 directly (s):    "
        + ", ".join(f"{t:.2f}" for t in engine_runs)
        + f"  median {engine_median:.2f}"
    )
    print(f"serving overhead ratio (service / engine): {served_median / engine_median:.2f}")
    print(f"serving overhead (s): {served_median - engine_median:.2f}")


if __name__ == "__main__":
    main()
