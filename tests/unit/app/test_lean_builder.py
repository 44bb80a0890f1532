"""The process that builds the application (`make serve`, `serve deploy`'s builder) loads no ML
library: each deployment imports its engine in its replica's constructor, so the driver starts
Ray seconds sooner and holds no torch (bench/RESULTS.md, time to ready)."""

from __future__ import annotations

import subprocess
import sys

ML_LIBRARIES = ("torch", "diffusers", "transformers", "langchain_core", "jieba", "open_clip")


def test_building_the_application_loads_no_ml_library():
    probe = (
        "import sys\n"
        "from serve_app.builder import build_app\n"
        "from serve_app.config import load_serve_file\n"
        "build_app(load_serve_file('serve_app/configs/tiny.yaml').app)\n"
        f"print(sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
