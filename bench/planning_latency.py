"""Planning latency: `RouterEngine.plan` called directly, for the rules planner and for the LLM
planner (real ChatOpenAI over HTTP) against the local scripted OpenAI server's instant replies.
Every measured instruction is a different text (Chinese, English, follow-ups), so no plan comes
from a cache of an identical earlier text.

    python bench/planning_latency.py [--requests 200]

The fake server runs in a thread of this process, so the LLM figures are the router's own
overhead (LangChain, the OpenAI client, HTTP on loopback, checks), not a model's.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from deployments.router.config import LLMConfig, RouterConfig
from deployments.router.engine import RouterEngine
from deployments.router.protocol import GenerationParams, PlanRequest
from i2v_testing.fake_openai import FakeOpenAIServer, Reply

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
ZH_SUBJECTS = ["杯子", "小狗", "花", "女孩", "瀑布", "汽车", "老人", "猫", "鸟", "云"]
ZH_MOTIONS = ["旋转", "摇尾巴", "慢慢绽放", "挥手", "流动起来", "开走", "微笑", "转头", "飞起来"]
EN_SUBJECTS = ["cup", "little dog", "flowers", "girl", "waterfall", "red car", "old man", "cat"]
EN_MOTIONS = ["rotates slowly", "wags its tail", "bloomed", "waves hello", "flows", "spins fast"]
FOLLOW_UPS = ["slower", "现在让它下雨", "faster please", "加点雪", "make it snow", "慢一点"]


def instructions(count: int) -> list[tuple[str, str, bool]]:
    """`count` different instructions (Chinese and English, a few follow-ups), so that no plan
    is answered from a cache of an earlier identical text."""
    out: list[tuple[str, str, bool]] = []
    for i in range(count):
        kind = i % 10
        if kind == 9:
            text, follow_up = f"{FOLLOW_UPS[i // 10 % len(FOLLOW_UPS)]} #{i}", True
        elif kind % 2:
            subject = EN_SUBJECTS[i % len(EN_SUBJECTS)]
            text = f"make the {subject} move: it {EN_MOTIONS[i // 7 % len(EN_MOTIONS)]} #{i}"
            follow_up = False
        else:
            subject = ZH_SUBJECTS[i % len(ZH_SUBJECTS)]
            text = f"让这个{subject}{ZH_MOTIONS[i // 3 % len(ZH_MOTIONS)]}{i}次"
            follow_up = False
        out.append((text, ("person", "animal", "landscape", "still_life")[i % 4], follow_up))
    assert len({text for text, _, _ in out}) == count
    return out


def requests(count: int) -> list[PlanRequest]:
    out = []
    for instruction, category, follow_up in instructions(count):
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
    for request in requests(warmup):  # other texts than the measured ones (all distinct)
        engine.plan(request.model_copy(update={"instruction": request.instruction + " warm"}))
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
