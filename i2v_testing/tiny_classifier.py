"""Build a tiny random-weight open_clip model in the folder format `local-dir:` and `hf-hub:` load.

Usage: python scripts/tiny_classifier.py OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib

import open_clip
import torch
from open_clip.constants import (
    HF_CONFIG_NAME,
    HF_SAFE_WEIGHTS_NAME,
    OPENAI_DATASET_MEAN,
    OPENAI_DATASET_STD,
)
from safetensors.torch import save_file

# Context length and vocabulary match the CLIP BPE tokenizer that ships inside open_clip.
TINY_MODEL_CFG: dict = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 64,
        "patch_size": 16,
        "width": 32,
        "head_width": 16,
        "layers": 2,
    },
    "text_cfg": {
        "context_length": 77,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 2,
    },
}

TINY_PREPROCESS_CFG: dict = {
    "mean": list(OPENAI_DATASET_MEAN),
    "std": list(OPENAI_DATASET_STD),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def build_tiny_classifier(out_dir: pathlib.Path, seed: int = 0) -> None:
    """Write `open_clip_config.json` and `open_clip_model.safetensors` (seeded random weights)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**copy.deepcopy(TINY_MODEL_CFG))
    state_dict = {name: t.contiguous() for name, t in model.state_dict().items()}
    save_file(state_dict, str(out_dir / HF_SAFE_WEIGHTS_NAME))
    config = {"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": TINY_PREPROCESS_CFG}
    (out_dir / HF_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build_tiny_classifier(args.out_dir, seed=args.seed)
    print(f"tiny classifier written to {args.out_dir}")


if __name__ == "__main__":
    main()
