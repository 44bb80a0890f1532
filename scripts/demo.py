"""The demo: start the service on 127.0.0.1, send a sample picture with an instruction through the
HTTP API (the official `openai` client), wait for the job, save the MP4, print the decision trace,
and stop the service.

    python scripts/demo.py [--config serve_app/configs/tiny.yaml] [--image examples/cup.jpg]
                           [--instruction 展示这个杯子旋转] [--out out/demo]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from openai import OpenAI

from serve_app import runtime
from serve_app.config import load_serve_file

warnings.filterwarnings("ignore", message=".*Sora API.*", category=DeprecationWarning)


def run_job(client: OpenAI, image: Path, instruction: str, out_dir: Path) -> int:
    submitted = time.perf_counter()
    with image.open("rb") as handle:
        video = client.videos.create(prompt=instruction, input_reference=handle)
    print(f"accepted {video.id}: status={video.status}")
    last_progress = -1
    while video.status in ("queued", "in_progress"):
        time.sleep(0.25)
        video = client.videos.retrieve(video.id)
        if video.progress != last_progress:
            print(f"  {video.status:<11} {video.progress:3d}%")
            last_progress = video.progress
    elapsed = time.perf_counter() - submitted
    if video.status != "completed":
        print(f"job {video.id} failed: {video.error}")
        return 1

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{video.id}.mp4"
    client.videos.download_content(video.id).write_to_file(target)

    extra = video.model_extra or {}
    plan = extra.get("plan") or {}
    print("\n=== decision trace ===")
    print(f"instruction : {instruction}")
    scores = extra.get("category_scores") or {}
    print(
        f"category    : {extra.get('category')}  scores: "
        + ", ".join(f"{k}={v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
    )
    trace = {entry["stage"]: entry for entry in extra.get("trace") or []}
    labels = (trace.get("classify") or {}).get("detail", {}).get("labels") or []
    if labels:
        print("labels      : " + ", ".join(f"{lb['name']} {lb['score']:.2f}" for lb in labels[:3]))
    decision = (trace.get("category") or {}).get("detail") or {}
    if decision:
        named = decision.get("instruction") or {}
        print(
            f"decided by  : {decision.get('decided_by')}  (picture: "
            f"{decision.get('picture', {}).get('category')}; instruction names: "
            f"{named.get('subject') or 'nothing'})"
        )
    print(f"subject     : {plan.get('subject')}")
    print(f"planner     : {plan.get('planner')}")
    print(f"prompt      : {plan.get('prompt')}")
    print(f"negative    : {plan.get('negative_prompt')}")
    print(f"parameters  : {json.dumps(plan.get('params'))}")
    print(f"sources     : {json.dumps(plan.get('param_sources'))}")
    timings = extra.get("timings") or {}
    print("timings (s) : " + ", ".join(f"{k}={v:.3f}" for k, v in timings.items()))
    print(f"end to end  : {elapsed:.2f} s (submit to completed, as the client saw it)")
    print(f"\nvideo ({video.size}, {video.seconds} s) written to {target.resolve().parent}/")
    print(f"  {target.name}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    parser.add_argument("--image", default="examples/cup.jpg", type=Path)
    parser.add_argument("--instruction", default="展示这个杯子旋转")
    parser.add_argument("--out", default="out/demo", type=Path)
    args = parser.parse_args()

    serve_file = load_serve_file(args.config)
    print("starting the service (Ray Serve on 127.0.0.1) ...")
    base_url = runtime.start(serve_file)
    print(f"service ready at {base_url}")
    try:
        client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
        return run_job(client, args.image, args.instruction, args.out)
    finally:
        print("stopping the service ...")
        runtime.stop()


if __name__ == "__main__":
    sys.exit(main())
