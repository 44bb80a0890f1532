"""The ingress process loads no ML library: it knows the other deployments only through their
protocol modules (types and names), so an Ingress replica stays small."""

from __future__ import annotations

import subprocess
import sys

ML_LIBRARIES = ("torch", "diffusers", "transformers", "open_clip", "facenet_pytorch", "jieba")


def test_importing_the_ingress_loads_no_ml_library():
    probe = (
        "import sys, deployments.ingress.api; "
        f"print(sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout
