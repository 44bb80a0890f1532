"""Webhook delivery latency after completion, on the tiny service: N small jobs, each naming a
receiver on 127.0.0.1 (which verifies every signature with the Standard Webhooks library and
answers 200 at once). Latency = the receiver's arrival time minus the job's end (the delivery's
`created_at`: the outbox row is written in the transaction that ends the job). Printed as
p50 / p90 / p99 / max over the N jobs, next to the server's own `delivered_at - created_at`
(arrival plus recording the attempt). Both ingresses (the open one and a keyed one beside it)
run a sender over the same outbox, as two replicas would.

    python bench/webhook_latency.py [--jobs 40] [--concurrency 4] [--poll-s 0.5]

Needs Redis at the config's REDIS_URL (`make redis-start` starts one); DATABASE_URL and
I2V_ARTIFACT_DIR may point the run at throwaway stores.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from i2v_testing.keyed import deploy_keyed_ingress, new_key, remove_keyed_ingress
from i2v_testing.paths import EXAMPLES, TINY_CONFIG
from i2v_testing.servers import free_port
from i2v_testing.webhooks import WebhookReceiver
from serve_app import runtime
from serve_app.config import load_serve_file

PICTURE = (EXAMPLES / "cup.jpg").read_bytes()
JOB = {"prompt": "展示这个杯子旋转", "size": "64x64", "num_frames": "4", "num_inference_steps": "2"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run_job(base: str, key: str, hook: str, seed: int) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=120) as client:
        created = client.post(
            f"{base}/v1/videos",
            data={**JOB, "seed": str(seed), "webhook_url": hook},
            files={"input_reference": ("cup.jpg", PICTURE, "image/jpeg")},
            headers=headers,
        )
        if created.status_code != 200:
            raise RuntimeError(f"create: {created.status_code} {created.text}")
        video_id = created.json()["id"]
        while client.get(f"{base}/v1/videos/{video_id}", headers=headers).json()["status"] in (
            "queued",
            "in_progress",
        ):
            time.sleep(0.2)
    return video_id


def measure(base: str, admin: str, jobs: int, concurrency: int) -> None:
    project = f"bench-{secrets.token_hex(4)}"
    settings = httpx.put(
        f"{base}/v1/admin/projects/{project}/webhook",
        json={},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    ).json()
    unlimited = {"max_active_jobs": 64, "requests_per_minute": 1_000_000}
    key = new_key(base, admin, project=project, **unlimited)["key"]
    with WebhookReceiver(settings["secret"]) as receiver:
        ids: list[str] = []
        first_seed = int(time.time()) % 1_000_000 * 1000  # unseen: no result-cache answers
        seeds = iter(range(first_seed, first_seed + jobs))
        lock = threading.Lock()
        errors: list[Exception] = []

        def worker() -> None:
            while True:
                with lock:
                    seed = next(seeds, None)
                if seed is None:
                    return
                try:
                    video_id = run_job(base, key, receiver.url(), seed)
                except Exception as exc:
                    errors.append(exc)
                    return
                with lock:
                    ids.append(video_id)

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise SystemExit(f"{len(errors)} jobs failed; the first: {errors[0]}")
        receiver.wait_until(lambda: len(receiver.accepted()) >= jobs, 60, "every event")
        elapsed = time.monotonic() - started

        arrival, server = [], []
        for video_id in ids:
            [delivery] = httpx.get(
                f"{base}/v1/videos/{video_id}/webhook_deliveries",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ).json()["data"]
            [request] = receiver.requests_for(video_id)
            assert request.accepted and request.webhook_id == delivery["id"], request
            arrival.append((request.at - delivery["created_at"]) * 1000)
            server.append((delivery["delivered_at"] - delivery["created_at"]) * 1000)
        bad = [r for r in receiver.received if r.event is None]
        print(f"\n{jobs} jobs in {elapsed:.1f} s, {concurrency} at a time", end="; ")
        print(f"signatures that failed to verify: {len(bad)}")
        print("| latency after completion | p50 ms | p90 ms | p99 ms | max ms |")
        print("| --- | --- | --- | --- | --- |")
        for name, values in (
            ("receiver arrival - job end", arrival),
            ("delivered_at - job end (server)", server),
        ):
            print(
                f"| {name} | {statistics.median(values):.0f} | {percentile(values, 0.9):.0f} | "
                f"{percentile(values, 0.99):.0f} | {max(values):.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=TINY_CONFIG)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll-s", type=float, default=None, help="webhooks.poll_s override")
    args = parser.parse_args()
    print("$ python " + shlex.join(["bench/webhook_latency.py", *sys.argv[1:]]))
    serve_file = load_serve_file(args.config)
    webhooks = serve_file.app.webhooks.model_copy(
        update={
            "allow_networks": ["127.0.0.1/32"],
            **({"poll_s": args.poll_s} if args.poll_s else {}),
        }
    )
    app = serve_file.app.model_copy(update={"webhooks": webhooks})
    serve_file = serve_file.model_copy(update={"app": app, "port": free_port()})
    print(f"webhooks.poll_s = {webhooks.poll_s}")
    open_url = runtime.start(serve_file)
    admin = f"sk-admin-{secrets.token_urlsafe(24)}"
    try:
        keyed_url = deploy_keyed_ingress(serve_file.app, serve_file.name, open_url, admin)
        measure(keyed_url, admin, args.jobs, args.concurrency)
        remove_keyed_ingress()
    finally:
        runtime.stop()


if __name__ == "__main__":
    main()
