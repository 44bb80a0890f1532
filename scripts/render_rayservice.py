"""Copies cluster/serve_config.yaml into cluster/rayservice.yaml's serveConfigV2, so the KubeRay
RayService deploys exactly what `serve deploy` does. Run after editing the Serve config.

    python scripts/render_rayservice.py
"""

from __future__ import annotations

import re
from pathlib import Path

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def render() -> str:
    serve_config = (CLUSTER / "serve_config.yaml").read_text()
    rayservice = (CLUSTER / "rayservice.yaml").read_text()
    block = "\n".join(f"    {line}" if line else "" for line in serve_config.splitlines())
    pattern = re.compile(r"(  serveConfigV2: \|\n)(.*?)(\n  rayClusterConfig:)", re.S)
    if not pattern.search(rayservice):
        raise SystemExit("cluster/rayservice.yaml has no serveConfigV2 block to replace")
    return pattern.sub(lambda m: m.group(1) + block + m.group(3), rayservice)


if __name__ == "__main__":
    (CLUSTER / "rayservice.yaml").write_text(render())
    print("cluster/rayservice.yaml updated")
