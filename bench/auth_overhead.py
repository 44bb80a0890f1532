"""What API keys cost and what they protect, on the tiny service:

1. The cost of authentication per request: `GET /v1/videos/{id}` on the open ingress and on a
   keyed one (bearer key: a digest lookup in the database and a moving-window hit in Redis),
   interleaved pair by pair, median and p99 of each and the ratio. Each answer is checked (200,
   the right id), so an error path cannot pass for a fast one.
2. Two keys at 10x the service's capacity, one of them over its limits: what each key got
   (accepted, 429 by code, completed, failed, never ended).

    python bench/auth_overhead.py [--pairs 300] [--seconds 20]

Needs Redis at the config's REDIS_URL (`make redis-start` starts one).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import httpx

from i2v_testing.keyed import deploy_keyed_ingress, new_key, remove_keyed_ingress
from i2v_testing.paths import EXAMPLES, TINY_CONFIG
from serve_app import runtime
from serve_app.config import load_serve_file

warnings.filterwarnings("ignore", message=".*Sora API.*")
PICTURE = (EXAMPLES / "cup.jpg").read_bytes()
JOB = {"prompt": "展示这个杯子旋转", "size": "64x64", "num_frames": "8", "num_inference_steps": "2"}
FINAL = ("completed", "failed")


def create(client: httpx.Client, base: str, headers: dict, seed: int) -> httpx.Response:
    return client.post(
        f"{base}/v1/videos",
        data={**JOB, "seed": str(seed)},
        files={"input_reference": ("cup.jpg", PICTURE, "image/jpeg")},
        headers=headers,
        timeout=120,
    )


def wait_final(client: httpx.Client, base: str, headers: dict, video_id: str) -> dict:
    """Polls until the job ends; a 429 (the key's request rate, which polling spends too) waits
    its Retry-After."""
    while True:
        response = client.get(f"{base}/v1/videos/{video_id}", headers=headers, timeout=30)
        if response.status_code == 429:
            time.sleep(int(response.headers.get("retry-after", "1")))
            continue
        response.raise_for_status()
        video = response.json()
        if video["status"] in FINAL:
            return video
        time.sleep(0.2)


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def auth_cost(open_url: str, keyed_url: str, key: str, pairs: int) -> None:
    seed = int(time.time())
    with httpx.Client() as client:
        bearer = {"Authorization": f"Bearer {key}"}
        open_id = create(client, open_url, {}, seed).json()["id"]
        keyed_id = create(client, keyed_url, bearer, seed + 1).json()["id"]
        wait_final(client, open_url, {}, open_id)
        wait_final(client, keyed_url, bearer, keyed_id)
        sides = {"auth off": (open_url, {}, open_id), "auth on": (keyed_url, bearer, keyed_id)}
        timings: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(pairs):
            for name, (base, headers, video_id) in sides.items():
                started = time.perf_counter()
                response = client.get(f"{base}/v1/videos/{video_id}", headers=headers)
                elapsed = time.perf_counter() - started
                if response.status_code != 200 or response.json()["id"] != video_id:
                    raise SystemExit(f"{name}: {response.status_code} {response.text[:200]}")
                timings[name].append(elapsed * 1000)
    print(f"\nGET /v1/videos/{{id}}, {pairs} interleaved pairs")
    print("| side | median ms | p99 ms |\n| --- | --- | --- |")
    for name, values in timings.items():
        print(f"| {name} | {statistics.median(values):.1f} | {p99(values):.1f} |")
    ratio = statistics.median(timings["auth on"]) / statistics.median(timings["auth off"])
    print(f"median ratio auth on / off: {ratio:.2f}")


def capacity_jobs_per_s(keyed_url: str, key: str) -> float:
    bearer = {"Authorization": f"Bearer {key}"}
    seed = int(time.time()) + 10_000
    with httpx.Client() as client:
        started = time.perf_counter()
        for i in range(3):
            response = create(client, keyed_url, bearer, seed + i)
            wait_final(client, keyed_url, bearer, response.json()["id"])
        return 3 / (time.perf_counter() - started)


def drive(keyed_url: str, key: str, rate: float, seconds: float, seed0: int, out: dict) -> None:
    bearer = {"Authorization": f"Bearer {key}"}
    got: Counter = Counter()
    accepted: list[str] = []
    with httpx.Client() as client:
        started = time.monotonic()
        i = 0
        while time.monotonic() < started + seconds:
            time.sleep(max(0.0, started + i / rate - time.monotonic()))  # open-loop arrivals
            response = create(client, keyed_url, bearer, seed0 + i)
            i += 1
            if response.status_code == 200:
                got["accepted"] += 1
                accepted.append(response.json()["id"])
            else:
                got[f"{response.status_code} {response.json()['error']['code']}"] += 1
        ends = Counter(wait_final(client, keyed_url, bearer, v)["status"] for v in accepted)
    got.update(ends)
    got["never ended"] = len(accepted) - sum(ends.values())
    out[key] = got


def two_keys_at_ten_times_capacity(keyed_url: str, admin: str, seconds: float) -> None:
    capacity = capacity_jobs_per_s(keyed_url, new_key(keyed_url, admin)["key"])
    rate = 10 * capacity / 2  # each key sends half of 10x capacity
    keys = {
        "A (600/min, 16 active)": new_key(keyed_url, admin, requests_per_minute=600)["key"],
        "B (20/min, 1 active)": new_key(
            keyed_url, admin, requests_per_minute=20, max_active_jobs=1
        )["key"],
    }
    results: dict = {}
    threads = [
        threading.Thread(
            target=drive, args=(keyed_url, key, rate, seconds, 50_000 * (n + 1), results)
        )
        for n, key in enumerate(keys.values())
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"\nTwo keys, {seconds:g} s at 10x capacity ({capacity:.2f} jobs/s measured; "
        f"{rate:.2f} creates/s from each key)"
    )
    for name, key in keys.items():
        print(f"- key {name}: {dict(sorted(results[key].items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=TINY_CONFIG)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    serve_file = load_serve_file(args.config)
    open_url = runtime.start(serve_file)
    admin = f"sk-admin-{secrets.token_urlsafe(24)}"
    try:
        keyed_url = deploy_keyed_ingress(serve_file.app, serve_file.name, open_url, admin)
        key = new_key(keyed_url, admin, requests_per_minute=1_000_000)["key"]
        auth_cost(open_url, keyed_url, key, args.pairs)
        two_keys_at_ten_times_capacity(keyed_url, admin, args.seconds)
        remove_keyed_ingress()
    finally:
        runtime.stop()


if __name__ == "__main__":
    main()
