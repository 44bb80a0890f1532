"""Builds the `tiny` profile's weights offline with a fixed seed, in the real formats: a diffusers
I2VGen-XL folder and an open_clip local-dir folder. Skips a model whose folder is complete.

    python scripts/build_tiny_models.py [OUT_DIR]   # default: models/tiny
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_classifier import build_tiny_classifier  # noqa: E402
from tiny_generator import build_tiny_generator  # noqa: E402

COMPLETE_MARKER = ".complete"


def build_once(target: Path, build, seed: int) -> bool:
    """Build into a temp folder and rename, so an interrupted build never looks complete."""
    if (target / COMPLETE_MARKER).exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(staging, seed=seed)
        (staging / COMPLETE_MARKER).write_text("built by scripts/build_tiny_models.py\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="models/tiny", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, build in (("generator", build_tiny_generator), ("classifier", build_tiny_classifier)):
        target = args.out_dir / name
        built = build_once(target, build, args.seed)
        print(f"{'built' if built else 'kept'} {target}")


if __name__ == "__main__":
    main()
