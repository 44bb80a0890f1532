"""Time to ready: from `make serve` to `GET /readyz` 200, split by part.

    python bench/time_to_ready.py [--runs 3] [--command "make serve"] [--cwd .]

Each run starts from nothing (no Ray, no Serve, nothing on the port; the tiny weights and the
virtual environment are built already), runs the command in its own process group, polls
/readyz every 0.1 s and then stops the command with Ctrl-C. The parts come from three places:
`scripts/serve.py`'s "started in" line (its imports, Ray's start, Serve's start, the
application until Serve runs every replica, then until /readyz answered 200; "make" is from
the command's start to the start of that python process), Ray Serve's own
replica log lines ("Started/Finished initializing replica": each constructor) with the
replica's process start time, and each constructor's own line (`i2v_core/startup.py`: its
parts). A part a build does not report is shown as "-".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
SESSION_LOGS = Path("/tmp/ray/session_latest/logs/serve")
DEPLOYMENTS = ("Ingress", "Classifier", "Router", "Generator")
DRIVER_PARTS = ("imports", "ray", "serve", "application", "readyz")


def create_time_skew() -> float:
    """psutil's process start times rest on the boot time in whole seconds: how far they are off
    the wall clock, from a process started now."""
    before = time.time()
    probe = subprocess.Popen(["sleep", "1"])
    skew = psutil.Process(probe.pid).create_time() - before
    probe.wait()
    return skew


SKEW = create_time_skew()


def clean_slate() -> None:
    subprocess.run([str(ROOT / ".venv/bin/ray"), "stop", "--force"], capture_output=True)
    for proc in psutil.process_iter(["cmdline"]):
        if "scripts/serve.py" in " ".join(proc.info["cmdline"] or []):
            proc.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get("http://127.0.0.1:8000/readyz", timeout=0.5)
        except httpx.HTTPError:
            return
        time.sleep(0.5)
    raise RuntimeError("something still answers on 127.0.0.1:8000")


def replica_starts(created_after: float) -> dict[str, dict]:
    """Per deployment: process start -> constructor start, the constructor, and its parts."""
    found: dict[str, dict] = {}
    for path in SESSION_LOGS.glob("replica_*.log"):
        started = finished = None
        parts: dict | None = None
        pid = None
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            at = record.get("timestamp_ns", 0) / 1e9
            if record.get("message") == "Started initializing replica.":
                started, pid = at, record.get("process")
            elif record.get("message") == "Finished initializing replica.":
                finished = at
            elif "constructor_s" in record:
                parts = record["constructor_s"]
        name = path.name.split("_")[2]
        if started is None or finished is None or pid is None:
            continue
        try:
            created = psutil.Process(pid).create_time() - SKEW
        except psutil.NoSuchProcess:
            created = float("nan")
        if created < created_after:
            continue  # a replica of an earlier run
        found[name] = {
            "process_to_constructor": started - created,
            "constructor": finished - started,
            "parts": parts,
            "created": created,
            "finished": finished,
        }
    return found


def serve_script_start() -> float | None:
    """When the python process running scripts/serve.py started (wall clock), if it runs."""
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        argv = proc.info["cmdline"] or []
        if argv and "python" in Path(argv[0]).name and "scripts/serve.py" in argv[1:]:
            return proc.info["create_time"] - SKEW
    return None


def one_run(command: str, cwd: Path, env: dict) -> dict:
    clean_slate()
    lines: list[str] = []
    began_wall = time.time()
    began = time.perf_counter()
    proc = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    ready_s = None
    script_started = None
    try:
        while time.perf_counter() - began < 600:
            try:
                if httpx.get("http://127.0.0.1:8000/readyz", timeout=2).status_code == 200:
                    ready_s = time.perf_counter() - began
                    break
            except httpx.HTTPError:
                pass
            script_started = script_started or serve_script_start()
            if proc.poll() is not None:
                raise RuntimeError("the command ended before /readyz:\n" + "".join(lines[-30:]))
            time.sleep(0.1)
        if ready_s is None:
            raise RuntimeError("not ready in 600 s")
        deadline = time.monotonic() + 15
        while not any(line.startswith("started in") for line in lines):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        replicas = replica_starts(began_wall)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    driver: dict[str, float] = {}
    for line in lines:
        if line.startswith("started in"):
            driver = {
                k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) s", line.split("(", 1)[1])
            }
    if script_started is not None:
        driver["before_script"] = script_started - began_wall
    first_process = min((r["created"] for r in replicas.values()), default=float("nan"))
    return {
        "ready_s": ready_s,
        "driver": driver,
        "replicas": replicas,
        "to_first_replica_process": first_process - began_wall,
        "last_constructor_done": max((r["finished"] for r in replicas.values()), default=0)
        - began_wall,
    }


def fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--command", default="make serve")
    parser.add_argument("--cwd", type=Path, default=ROOT)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.cwd.resolve())}
    runs = [one_run(args.command, args.cwd, env) for _ in range(args.runs)]

    print(f"`{args.command}` in {args.cwd.resolve()}, {args.runs} runs, {os.cpu_count()} cores")
    print("\n| run | to /readyz s | make | " + " | ".join(DRIVER_PARTS) + " |")
    print("| --- " * (3 + len(DRIVER_PARTS)) + "|")
    for index, run in enumerate(runs, 1):
        driver = run["driver"]
        cells = [fmt(driver.get("before_script"))] + [fmt(driver.get(p)) for p in DRIVER_PARTS]
        print(f"| {index} | {run['ready_s']:.1f} | " + " | ".join(cells) + " |")
    median = statistics.median(run["ready_s"] for run in runs)
    print(f"\nmedian to /readyz: **{median:.1f} s**")

    print("\n| run | replica | process start -> constructor s | constructor s | its parts |")
    print("| --- | --- | --- | --- | --- |")
    for index, run in enumerate(runs, 1):
        for name in DEPLOYMENTS:
            replica = run["replicas"].get(name)
            if replica is None:
                print(f"| {index} | {name} | - | - | - |")
                continue
            parts = replica["parts"] or {}
            detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if k != "total") or "-"
            print(
                f"| {index} | {name} | {fmt(replica['process_to_constructor'])} | "
                f"{fmt(replica['constructor'])} | {detail} |"
            )
        print(
            f"| {index} | (all) | first replica process at {fmt(run['to_first_replica_process'])}"
            f" s, last constructor done at {fmt(run['last_constructor_done'])} s | | |"
        )


if __name__ == "__main__":
    main()
