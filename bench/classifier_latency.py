"""Classifier latency and accuracy: the ImageNet engine called directly, then through the
Classifier deployment on Ray Serve at 1 and 32 requests in flight (dynamic batching on), the
replica's memory, and the confusion table of the category over the labelled photos.

    python bench/classifier_latency.py [--requests 100]

Direct calls use one torch thread, as the replica does (Ray sets OMP_NUM_THREADS to its
num_cpus, 0.2 in the tiny profile, rounded up to 1).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import statistics
import time
from collections import Counter

import psutil
import ray
import torch
from PIL import Image
from ray import serve

from deployments.classifier.config import ClassifierConfig
from deployments.classifier.deployment import Classifier
from deployments.classifier.imagenet_engine import ImageNetEngine
from deployments.classifier.protocol import Picture
from i2v_core.domain import CATEGORIES
from i2v_core.images import load_rgb, preview_of
from i2v_testing.photos import PHOTOS

CONFIG = ClassifierConfig(engine="imagenet", device="cpu", max_batch_size=8)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]  # nearest rank


def jpeg_bytes() -> list[bytes]:
    """Each labelled photo as the ingress hands it over: JPEG bytes, long side at most 1280."""
    out = []
    for photo in PHOTOS:
        image = photo.load().convert("RGB")
        image.thumbnail((1280, 1280))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def row(label: str, timings_ms: list[float], wall_s: float | None = None) -> str:
    rate = f"{len(timings_ms) / wall_s:.1f}" if wall_s else "-"
    return f"| {label} | {statistics.median(timings_ms):.1f} | {p99(timings_ms):.1f} | {rate} |"


def direct(images: list[bytes], count: int) -> tuple[list[float], Counter]:
    torch.set_num_threads(1)
    engine = ImageNetEngine(CONFIG)
    engine.classify([decoded(images[0])])  # warm-up
    confusion: Counter = Counter()
    for photo, data in zip(PHOTOS, images, strict=True):
        (result,) = engine.classify([decoded(data)])
        confusion[(photo.category, result.category)] += 1
    timings = []
    for i in range(count):
        started = time.perf_counter()
        engine.classify([decoded(images[i % len(images)])])
        timings.append((time.perf_counter() - started) * 1000)
    return timings, confusion


def decoded(data: bytes) -> Image.Image:
    """What the ingress hands the classifier: decoded once, upright, shrunk to the preview."""
    return preview_of(load_rgb(data))


async def served(handle, images: list[bytes], count: int, in_flight: int) -> tuple[list, float]:
    pictures = [Picture.from_image(decoded(data)) for data in images]
    semaphore = asyncio.Semaphore(in_flight)
    timings: list[float] = []

    async def one(i: int) -> None:
        async with semaphore:
            started = time.perf_counter()
            await handle.classify.remote(pictures[i % len(pictures)])
            timings.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return timings, time.perf_counter() - started


def replica_rss_mb() -> float:
    """The Classifier replica's resident memory (Ray titles the process
    `ray::ServeReplica:APP:Classifier`)."""
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if "ServeReplica" in title and "Classifier" in title:
            return process.memory_info().rss / 2**20
    raise RuntimeError("no Classifier replica process found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    images = jpeg_bytes()
    direct_ms, confusion = direct(images, args.requests)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    app = serve.deployment(Classifier, ray_actor_options={"num_cpus": 0.2}).bind(CONFIG)
    handle = serve.run(app, name="classifier-bench", route_prefix=None)
    idle_rss = replica_rss_mb()
    asyncio.run(served(handle, images, 16, 8))  # warm-up
    one_ms, one_s = asyncio.run(served(handle, images, args.requests, 1))
    many_ms, many_s = asyncio.run(served(handle, images, args.requests * 2, 32))
    busy_rss = replica_rss_mb()
    serve.shutdown()
    ray.shutdown()

    print(f"classifier latency, ImageNet engine (EfficientNet-Lite0 + MTCNN), {len(PHOTOS)} photos")
    print("\n| path | median ms | p99 ms | pictures/s |\n| --- | --- | --- | --- |")
    print(row("engine.classify, 1 picture, 1 thread", direct_ms))
    print(row("Classifier deployment, 1 in flight", one_ms, one_s))
    print(row("Classifier deployment, 32 in flight (batches of up to 8)", many_ms, many_s))
    print(f"\nreplica RSS: {idle_rss:.0f} MiB after start, {busy_rss:.0f} MiB after the runs")
    print("\nconfusion (rows: what a person calls it; columns: the classifier's category)\n")
    print("| | " + " | ".join(CATEGORIES) + " |\n|---" * (len(CATEGORIES) + 1) + "|")
    for truth in CATEGORIES:
        cells = " | ".join(str(confusion[(truth, guess)]) for guess in CATEGORIES)
        print(f"| {truth} | {cells} |")
    right = sum(n for (truth, guess), n in confusion.items() if truth == guess)
    print(f"\n{right} of {sum(confusion.values())} photos right")


if __name__ == "__main__":
    main()
