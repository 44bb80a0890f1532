"""Keep the service up on 127.0.0.1 until Ctrl-C, printing its URL.

python scripts/serve.py [--config serve_app/configs/tiny.yaml]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the imports below, which are part of the start

import argparse  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from serve_app import runtime  # noqa: E402
from serve_app.config import load_serve_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    args = parser.parse_args()
    timings = {"imports": time.perf_counter() - STARTED}
    base_url = runtime.start(load_serve_file(args.config), timings=timings)
    total = time.perf_counter() - STARTED
    parts = ", ".join(f"{part} {seconds:.1f} s" for part, seconds in timings.items())
    print(f"started in {total:.1f} s ({parts})", flush=True)
    print(
        f"service ready at {base_url}  (OpenAI base_url: {base_url}/v1; Ctrl-C stops)", flush=True
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    print("stopping ...", flush=True)
    runtime.stop()


if __name__ == "__main__":
    main()
