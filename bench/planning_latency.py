"""Planning latency: `RouterEngine.plan` called directly, for the rules planner and for the LLM
planner (real ChatOpenAI over HTTP) against the local scripted OpenAI server's instant replies.

    python bench/planning_latency.py [--requests 200]

The fake server runs in a thread of this process, so the LLM figures are the router's own
overhead (LangChain, the OpenAI client, HTTP on loopback, checks), not a model's.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployments.router.config import LLMConfig, RouterConfig  # noqa: E402
from deployments.router.engine import RouterEngine  # noqa: E402
from deployments.router.plan import GenerationParams, PlanRequest  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer, Reply  # noqa: E402

REPLY = {
    "action": "generate",
    "prompt": "A ceramic cup rotating slowly clockwise on a turntable, soft studio light",
    "negative_prompt": "shaky camera",
    "motion": "rotating slowly clockwise",
    "overrides": {
        "num_frames": None,
        "num_inference_steps": None,
        "guidance_scale": None,
        "fps": 6,
    },
    "question": None,
}
PREVIOUS = GenerationParams(
    width=512, height=512, num_frames=16, num_inference_steps=40, guidance_scale=8.0, fps=8, seed=7
)
EARLIER = "An object, rotating on a turntable, camera orbiting around it, clean studio lighting"
INSTRUCTIONS = [
    ("让这张图里的花慢慢绽放", "landscape", False),
    ("展示这个杯子旋转", "still_life", False),
    ("make the dog wag its tail", "animal", False),
    ("让她微笑", "person", False),
    ("make it move", "landscape", False),
    ("asdf ???", "person", False),
    ("slower", "still_life", True),
    ("现在让它下雨", "still_life", True),
]


def requests(count: int) -> list[PlanRequest]:
    out = []
    for i in range(count):
        instruction, category, follow_up = INSTRUCTIONS[i % len(INSTRUCTIONS)]
        out.append(
            PlanRequest(
                instruction=instruction,
                category=category,
                image_width=640,
                image_height=480,
                history=[EARLIER] if follow_up else [],
                previous=PREVIOUS if follow_up else None,
            )
        )
    return out


def measure(engine: RouterEngine, batch: list[PlanRequest], warmup: int = 10) -> list[float]:
    for request in batch[:warmup]:
        engine.plan(request)
    engine.fallbacks.clear()
    timings = []
    for request in batch:
        started = time.perf_counter()
        engine.plan(request)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]  # nearest rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    batch = requests(args.requests)
    rows: list[tuple[str, list[float], RouterEngine]] = []

    rules = RouterEngine(RouterConfig(), rng=random.Random(0))
    rows.append(("rules", measure(rules, batch), rules))
    with FakeOpenAIServer() as server:
        config = RouterConfig(
            llm=LLMConfig(model="bench", base_url=server.url, api_key="bench", max_retries=0)
        )
        for label, reply in (
            ("llm (structured reply)", Reply.structured(REPLY)),
            ("llm -> rules (invalid JSON)", Reply.text("{not json")),
        ):
            server.script([reply])
            engine = RouterEngine(config, rng=random.Random(0))
            rows.append((label, measure(engine, batch), engine))

    print(f"planning latency, RouterEngine.plan, {args.requests} requests each (ms)\n")
    print("| planner | median | p99 | mean | fallbacks |")
    print("| --- | --- | --- | --- | --- |")
    for label, timings, engine in rows:
        fallbacks = sum(engine.fallbacks.values())
        print(
            f"| {label} | {statistics.median(timings):.3f} | {p99(timings):.3f} "
            f"| {statistics.fmean(timings):.3f} | {fallbacks} |"
        )


if __name__ == "__main__":
    main()
