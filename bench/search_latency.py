"""Search latency: `GET /v1/videos?q=`'s query (`JobStore.list` with words, through the search-terms
index) against the same filter as a plain substring scan (LIKE on the instruction and the prompt,
what the store did before the index), on one SQLite database of N jobs, in one run.

    python bench/search_latency.py [--jobs 50000] [--repeat 20]

Rows mix Chinese and English instructions with English prompts; one word in a thousand rows is
rare, so selective searches (what people type to find one result) and common ones are both
measured. Newest-first pages of 20, as the API serves them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import or_, select

from i2v_core.jobs import Job, JobStore
from i2v_testing.jobs import make_job

INSTRUCTIONS = [
    "展示这个杯子旋转",
    "让这张图里的花慢慢绽放",
    "让它动起来",
    "make the cat blink",
    "zoom in",
]
PROMPTS = [
    "A ceramic cup rotating slowly on a turntable",
    "Flowers blooming slowly in soft morning light",
    "Gentle waves rolling onto a sandy beach",
    "A cat blinking its eyes, calm atmosphere",
    "Camera slowly zooming in on the subject",
]
QUERIES = {
    "rare English word": ["zeppelin"],
    "rare Chinese word": ["麒麟"],
    "common English prefix": ["rot"],
    "common Chinese word": ["杯子"],
    "two words": ["slowly", "绽放"],
}


def fill(store: JobStore, count: int) -> None:
    rng = random.Random(7)
    for index in range(count):
        instruction, prompt = rng.choice(INSTRUCTIONS), rng.choice(PROMPTS)
        if index % 1000 == 0:
            instruction, prompt = "让麒麟飞过天空", "A zeppelin drifting across the sky"
        store.create(make_job(instruction=instruction, prompt=prompt))


def substring_scan(store: JobStore, words: list[str]) -> list[str]:
    query = select(Job.id)
    for word in words:
        query = query.where(
            or_(
                Job.instruction.icontains(word, autoescape=True),
                Job.prompt.icontains(word, autoescape=True),
            )
        )
    with store.engine.connect() as connection:
        return list(connection.scalars(query.order_by(Job.seq.desc()).limit(21)))


def median_ms(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        store = JobStore(f"sqlite:///{Path(folder) / 'jobs.db'}")
        started = time.perf_counter()
        fill(store, args.jobs)
        print(f"{args.jobs} jobs written in {time.perf_counter() - started:.1f} s")
        print("| search | results | index ms | substring scan ms | speed-up |")
        print("| --- | --- | --- | --- | --- |")
        for name, words in QUERIES.items():
            indexed = [job.id for job in store.list(None, 20, "desc", words=words)[0]]
            assert indexed == substring_scan(store, words)[:20], name  # same answer
            index_ms = median_ms(lambda w=words: store.list(None, 20, "desc", words=w), args.repeat)
            scan_ms = median_ms(lambda w=words: substring_scan(store, w), args.repeat)
            print(
                f"| {name} `{' '.join(words)}` | {len(indexed)} | {index_ms:.2f} | "
                f"{scan_ms:.2f} | {scan_ms / index_ms:.1f}× |"
            )
        store.close()


if __name__ == "__main__":
    main()
