"""Where the repository's files are, for tests and benchmarks run from a checkout."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "serve_app" / "configs" / "tiny.yaml"
EXAMPLES = ROOT / "examples"
MODELS = ROOT / "models" / "tiny"
