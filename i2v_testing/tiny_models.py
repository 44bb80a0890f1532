"""Builds the `tiny` profile's weights offline with a fixed seed, in the real formats: a diffusers
I2VGen-XL folder and an open_clip local-dir folder. Skips a model whose folder is complete.

    python -m i2v_testing.tiny_models [OUT_DIR]   # default: models/tiny
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

COMPLETE_MARKER = ".complete"
PARTS = ("generator", "classifier")


def builders() -> dict[str, Callable[..., object]]:
    # Imported here: the builders load torch, diffusers and open_clip.
    from i2v_testing.tiny_classifier import build_tiny_classifier
    from i2v_testing.tiny_generator import build_tiny_generator

    return {"generator": build_tiny_generator, "classifier": build_tiny_classifier}


def build_once(target: Path, build: Callable[..., object], seed: int) -> bool:
    """Build into a temp folder and rename, so an interrupted build never looks complete."""
    if (target / COMPLETE_MARKER).exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(staging, seed=seed)
        (staging / COMPLETE_MARKER).write_text("built by i2v_testing.tiny_models\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def ensure_tiny_models(out_dir: Path, seed: int = 0) -> Path:
    """The tiny weights under `out_dir`, built only when missing (imports nothing heavy when they
    are there)."""
    if not all((out_dir / part / COMPLETE_MARKER).exists() for part in PARTS):
        for name, build in builders().items():
            build_once(out_dir / name, build, seed)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="models/tiny", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, build in builders().items():
        target = args.out_dir / name
        built = build_once(target, build, args.seed)
        print(f"{'built' if built else 'kept'} {target}")


if __name__ == "__main__":
    main()
