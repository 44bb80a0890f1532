"""Build a tiny random-weight I2VGen-XL pipeline folder, offline, in the format of the real one.

Usage: python scripts/tiny_generator.py OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import gzip
import pathlib

import torch
from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLPipeline, I2VGenXLUNet
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

WIDTH = 32  # CLIP width = image projection size = UNet cross_attention_dim, as 1024 in the real one
CONTEXT_LENGTH = 77
CLIP_IMAGE_SIZE = 32


def build_tiny_generator(out_dir: pathlib.Path, seed: int = 0) -> None:
    """Write a `save_pretrained` I2VGen-XL folder (safetensors) with seeded random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = I2VGenXLPipeline(
            vae=_vae(),
            text_encoder=_text_encoder(),
            tokenizer=clip_tokenizer(),
            image_encoder=_image_encoder(),
            feature_extractor=_feature_extractor(),
            unet=_unet(),
            scheduler=_scheduler(),
        )
    pipe.save_pretrained(pathlib.Path(out_dir), safe_serialization=True)


def clip_tokenizer() -> CLIPTokenizer:
    """The CLIP BPE tokenizer from the vocabulary bundled with open_clip; its ids equal open_clip's
    (padding aside: it pads with <|endoftext|> as OpenAI's CLIP tokenizer does, open_clip with 0).

    Passing `vocab=`/`merges=` objects: on transformers 5, `vocab_file=`/`merges_file=` are
    silently ignored and give a 2-token vocabulary."""
    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)


def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    # Same construction as open_clip's SimpleTokenizer and OpenAI's vocab.json.
    with gzip.open(default_bpe(), "rt", encoding="utf-8") as bpe_file:
        lines = bpe_file.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_symbols = list(bytes_to_unicode().values())
    tokens = [
        *byte_symbols,
        *(symbol + "</w>" for symbol in byte_symbols),
        *("".join(merge) for merge in merges),
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    return {token: i for i, token in enumerate(tokens)}, merges


def _text_encoder() -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=WIDTH,
        intermediate_size=4 * WIDTH,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        hidden_act="gelu",
        projection_dim=WIDTH,
        pad_token_id=49407,
        bos_token_id=49406,
        eos_token_id=49407,
    )
    return CLIPTextModel(config)


def _image_encoder() -> CLIPVisionModelWithProjection:
    config = CLIPVisionConfig(
        hidden_size=WIDTH,
        intermediate_size=4 * WIDTH,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=4,
        hidden_act="gelu",
        projection_dim=WIDTH,
    )
    return CLIPVisionModelWithProjection(config)


def _feature_extractor() -> CLIPImageProcessor:
    # The pipeline resizes to crop_size itself, so it must equal the vision model's image_size.
    return CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE},
        crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
    )


def _unet() -> I2VGenXLUNet:
    # Attention blocks (spatial, cross and temporal) only at the third level, at 1/4 of the latent
    # size, and in the middle block, where they are cheap; the real model has them in three levels.
    return I2VGenXLUNet(
        block_out_channels=(32, 64, 64, 64),
        down_block_types=("DownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D", "UpBlock3D"),
        layers_per_block=2,
        norm_num_groups=16,
        cross_attention_dim=WIDTH,
        attention_head_dim=4,  # the number of heads, despite the name
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
    )


def _scheduler() -> DDIMScheduler:
    # As ali-vilab/i2vgen-xl's scheduler_config.json: v-prediction, zero terminal SNR, "leading".
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.0001,
        beta_end=0.02,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="leading",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build_tiny_generator(args.out_dir, seed=args.seed)
    print(f"tiny generator written to {args.out_dir}")


if __name__ == "__main__":
    main()
