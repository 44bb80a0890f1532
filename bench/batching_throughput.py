"""Batching throughput: N compatible jobs as one `generate_batch` run versus N `generate` calls, the
same requests and engine, in one run of this script (tiny weights on cpu unless --model says).

    python bench/batching_throughput.py [--model models/tiny/generator] [--jobs 8] [--repeats 1]

Without --model it builds the tiny weights into a temporary folder with scripts/tiny_generator.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from deployments.generator.config import GeneratorConfig
from deployments.generator.engine import GenerationRequest, GeneratorEngine

PROMPTS = [
    "the flowers slowly open",
    "the cup rotates on the table",
    "waves roll onto the beach",
    "a cat turns its head",
    "clouds drift over the hills",
    "rain falls on the street",
    "leaves sway in the wind",
    "the candle flame flickers",
]


def requests(
    count: int, width: int, height: int, frames: int, steps: int
) -> list[GenerationRequest]:
    """Compatible requests with their own picture (sizes vary), prompt and seed."""
    rng = np.random.default_rng(0)
    result = []
    for index in range(count):
        size = (int(rng.integers(160, 400)), int(rng.integers(120, 300)))
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        result.append(
            GenerationRequest(
                image=Image.fromarray(pixels),
                prompt=PROMPTS[index % len(PROMPTS)],
                negative_prompt="blurry, static",
                width=width,
                height=height,
                num_frames=frames,
                num_inference_steps=steps,
                guidance_scale=9.0,
                fps=8,
                seed=1000 + index,
            )
        )
    return result


@dataclasses.dataclass
class Timing:
    wall_s: float
    cpu_s: float  # this process's CPU time, all threads: less sensitive to other load


def timed(function) -> tuple[Timing, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=pathlib.Path, help="pipeline folder (default: build tiny)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds; medians")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or _build_tiny(pathlib.Path(scratch))
        engine = GeneratorEngine(GeneratorConfig(model=str(model), device=args.device))
        jobs = requests(args.jobs, args.width, args.height, args.frames, args.steps)
        # Warm-up at the batch shape and the single shape: lazy initialisation is not measured.
        engine.generate_batch([dataclasses.replace(job, num_inference_steps=1) for job in jobs])
        engine.generate(dataclasses.replace(jobs[0], num_inference_steps=1))

        one_by_one, batched = [], []
        for _ in range(args.repeats):
            timing, singles = timed(lambda: [engine.generate(job) for job in jobs])
            one_by_one.append(timing)
            timing, results = timed(lambda: engine.generate_batch(jobs))
            batched.append(timing)

    differences = [
        int(np.abs(single.astype(int) - result.frames.astype(int)).max())
        for single, result in zip(singles, results, strict=True)
    ]
    print(
        f"{args.jobs} jobs of {args.width}x{args.height}, {args.frames} frames,"
        f" {args.steps} steps on {engine.device} ({torch.get_num_threads()} torch threads),"
        f" {args.repeats} round(s)"
    )
    for label, kind in (("wall", "wall_s"), ("cpu", "cpu_s")):
        sequential = [getattr(timing, kind) for timing in one_by_one]
        batch = [getattr(timing, kind) for timing in batched]
        print(f"{label} time, one by one ({args.jobs} generate calls): {_summary(sequential)}")
        print(f"{label} time, batched (one generate_batch): {_summary(batch)}")
        # The fastest round is the one least disturbed by other work on the machine.
        print(
            f"{label} throughput ratio, batched / one by one: best rounds"
            f" {min(sequential) / min(batch):.2f}x, medians"
            f" {statistics.median(sequential) / statistics.median(batch):.2f}x"
        )
    print(f"largest frame difference, batched vs one by one: {max(differences)} (uint8 levels)")


def _summary(values: list[float]) -> str:
    rounds = ", ".join(f"{value:.2f}" for value in values)
    return f"best {min(values):.2f} s, median {statistics.median(values):.2f} s ({rounds})"


def _build_tiny(folder: pathlib.Path) -> pathlib.Path:
    from i2v_testing.tiny_generator import build_tiny_generator

    build_tiny_generator(folder, seed=0)
    return folder


if __name__ == "__main__":
    main()
