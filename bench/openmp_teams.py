"""Why the generator engine keeps all torch work on one thread: the same runs in a process with
one OpenMP team (the shipped engine) and in one where a second thread has also started parallel
torch work (as the replica's constructor thread did when it warmed the model up), each side in a
fresh process, interleaved (one, two, one, two, ...).

    python bench/openmp_teams.py [--config serve_app/configs/tiny.yaml] [--pairs 3] [--runs 3]

PyTorch's CPU kernels run on GNU OpenMP, which keeps a team of workers per thread that starts
parallel work; once the process holds more OpenMP threads than cores, libgomp stops spinning
between parallel regions and its workers sleep (deployments/generator/torch_thread.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = {"width": 192, "height": 128, "num_frames": 16, "num_inference_steps": 12}


def child(config: str, teams: int, runs: int) -> None:
    import torch
    from PIL import Image

    from deployments.generator.engine import GenerationRequest, GeneratorEngine
    from serve_app.config import load_serve_file

    torch.set_num_threads(2)
    engine = GeneratorEngine(load_serve_file(config).app.generator)
    image = Image.open(ROOT / "examples" / "cup.jpg")

    def run(seed: int) -> float:
        request = GenerationRequest(
            image=image,
            prompt="a cup rotating",
            negative_prompt="",
            guidance_scale=8.0,
            fps=8,
            seed=seed,
            **SIZE,
        )
        started = time.perf_counter()
        engine.generate(request)
        return time.perf_counter() - started

    run(0)  # warm-up
    if teams == 2:
        torch.randn(4_000_000).exp().sum()  # parallel work on this thread: a second team
    before = os.times()
    seconds = [run(seed) for seed in range(1, runs + 1)]
    after = os.times()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "system_s_per_run": (after.system - before.system) / runs,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="generations per process")
    parser.add_argument("--child", type=int, choices=(1, 2), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.config, args.child, args.runs)
        return

    def side(teams: int) -> dict:
        command = [sys.executable, __file__, "--config", args.config, "--runs", str(args.runs)]
        out = subprocess.run(
            [*command, "--child", str(teams)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    results: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.pairs):
        for teams in (1, 2):
            results[teams].append(side(teams))
    print(
        f"{SIZE}, torch threads 2, {os.cpu_count()} cores, {args.pairs} processes per side, "
        f"{args.runs} runs each"
    )
    print("| OpenMP teams | median s per run | system CPU s per run |")
    print("| --- | --- | --- |")
    medians = {}
    for teams, rows in results.items():
        seconds = [s for row in rows for s in row["seconds"]]
        medians[teams] = statistics.median(seconds)
        system = statistics.median(row["system_s_per_run"] for row in rows)
        print(f"| {teams} | {medians[teams]:.2f} | {system:.2f} |")
    print(f"ratio two teams / one team: **{medians[2] / medians[1]:.2f}**")


if __name__ == "__main__":
    main()
