"""Keep the service up on 127.0.0.1 until Ctrl-C, printing its URL.

python scripts/serve.py [--config serve_app/configs/tiny.yaml]
"""

from __future__ import annotations

from i2v_core.startup import StartupClock

CLOCK = StartupClock()  # before the imports below, which are part of the start

import argparse  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from serve_app import runtime  # noqa: E402
from serve_app.config import load_serve_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="serve_app/configs/tiny.yaml")
    args = parser.parse_args()
    CLOCK.lap("imports")
    base_url = runtime.start(load_serve_file(args.config), clock=CLOCK)
    print(f"started in {CLOCK.total_s:.1f} s ({CLOCK.describe()})", flush=True)
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
