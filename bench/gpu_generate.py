"""GPU benchmark of the full-size I2VGen-XL architecture with random weights: seconds per denoising
step, seconds per video and peak memory at 512x512, 16 frames, 50 steps, for batch 1 and for the
largest batch that fits in a memory budget (half the card by default).

    pip install diffusers-0.42.1-py3-none-any.whl   # next to the machine's torch and transformers
    python bench/gpu_generate.py --out bench/gpu_generate.json   # with the project installed;
                                                                 # else PYTHONPATH=. first
    python bench/gpu_generate.py --tiny-check --out /tmp/gpu_generate.json   # cpu, seconds

Speed and memory do not depend on the values of the weights, so nothing is downloaded: every part
is built from its configuration, on the device, and cast to float16 (`--dtype bfloat16` to compare).
It imports torch, transformers, diffusers, numpy, PIL and `deployments.generator.pipeline` (which
imports only those), nothing that needs ray, open_clip or langchain. The prompt embeddings are
computed by the text encoder from fixed token ids (no tokenizer needed), as the pipeline does with
`clip_skip=1`; timed with the rest of the video.

Where the full-size configurations come from (diffusers 0.42, transformers 5, open_clip 3):
- diffusers' scripts/convert_i2vgen_to_diffusers.py, which made ali-vilab/i2vgen-xl: the UNet is
  `I2VGenXLUNet(sample_size=32)`, i.e. the constructor's defaults (blocks 320/640/1280/1280, 2
  layers per block, cross-attention 1024, `attention_head_dim=64`, which diffusers reads as 64
  heads); the VAE is SD 2.1's (v2-1_512-ema-pruned.ckpt through `from_single_file`); the text and
  image encoders are laion/CLIP-ViT-H-14-laion2B-s32B-b79K's; the DDIM settings are the ones below.
- The VAE config `from_single_file` derives from SD 2.1's LDM config: ch 128 x (1, 2, 4, 4), two
  resnets per block, 4 latent channels, scaling 0.18215, and sample_size 768 (diffusers'
  single_file_utils gives 768 to a "v2" checkpoint; it only sets the tile size of VAE tiling).
- open_clip's model_configs/ViT-H-14.json: text width 1024, 16 heads, 24 layers, context 77, vocab
  49408; vision width 1280, 32 layers, head width 80 (16 heads), patch 14, image 224; embedding
  1024; MLP ratio 4 (4096 and 5120) and GELU, open_clip's defaults. The text tower keeps all 24
  layers (SD 2.x ships 23; I2VGen-XL skips the last one through `clip_skip=1` instead).
- Parameter counts printed by this script: UNet 1420.5 M, VAE 83.7 M, text 353.0 M, image 632.1 M.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import pathlib
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import diffusers
import numpy as np
import PIL.Image
import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLUNet
from diffusers.models.attention_processor import AttnProcessor2_0
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from deployments.generator.pipeline import PatchedI2VGenXLPipeline

GIB = 2**30
CONTEXT_LENGTH = 77
BOS, EOS = 49406, 49407


@dataclass(frozen=True)
class Architecture:
    """Constructor arguments of each part."""

    unet: dict[str, Any]
    vae: dict[str, Any]
    text: dict[str, Any]
    vision: dict[str, Any]


FULL = Architecture(
    unet={"sample_size": 32},
    vae={
        "block_out_channels": (128, 256, 512, 512),
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "layers_per_block": 2,
        "latent_channels": 4,
        "sample_size": 768,
        "scaling_factor": 0.18215,
    },
    text={
        "vocab_size": 49408,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "max_position_embeddings": CONTEXT_LENGTH,
        "hidden_act": "gelu",
        "projection_dim": 1024,
    },
    vision={
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
        "hidden_act": "gelu",
        "projection_dim": 1024,
    },
)

# As scripts/tiny_generator.py builds for the tests, so that --tiny-check takes seconds on a cpu.
TINY = Architecture(
    unet={
        "block_out_channels": (32, 64, 64, 64),
        "down_block_types": ("DownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D", "UpBlock3D"),
        "norm_num_groups": 16,
        "cross_attention_dim": 32,
        "attention_head_dim": 4,
    },
    vae={
        "block_out_channels": (8, 16, 32, 32),
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
    },
    text={
        "vocab_size": 49408,
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "max_position_embeddings": CONTEXT_LENGTH,
        "hidden_act": "gelu",
        "projection_dim": 32,
    },
    vision={
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "patch_size": 4,
        "image_size": 32,
        "hidden_act": "gelu",
        "projection_dim": 32,
    },
)


@dataclass
class Settings:
    device: torch.device
    dtype: torch.dtype
    width: int
    height: int
    num_frames: int
    steps: int
    probe_steps: int
    max_batch: int
    guidance_scale: float
    decode_chunk_size: int | None
    vae_slicing: bool
    memory_fraction: float | None


@dataclass
class Run:
    batch: int
    steps: int
    seconds: float
    step_seconds: list[float] = field(default_factory=list)
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "steps": self.steps,
            "seconds_per_step_median": statistics.median(self.step_seconds),
            "seconds_per_step_mean": statistics.fmean(self.step_seconds),
            "seconds_per_batch": self.seconds,
            "seconds_per_video": self.seconds / self.batch,
            "videos_per_minute": 60 * self.batch / self.seconds,
            "peak_allocated_bytes": self.peak_allocated_bytes,
            "peak_reserved_bytes": self.peak_reserved_bytes,
        }


def build_pipeline(arch: Architecture, settings: Settings) -> PatchedI2VGenXLPipeline:
    """Random weights, created directly on the device (fast even at full size), then cast."""
    with torch.device(settings.device):
        pipe = PatchedI2VGenXLPipeline(
            vae=AutoencoderKL(**arch.vae),
            text_encoder=CLIPTextModel(CLIPTextConfig(**arch.text)),
            tokenizer=None,  # prompts arrive as embeddings, see encode_prompts
            image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**arch.vision)),
            feature_extractor=_feature_extractor(arch.vision["image_size"]),
            unet=I2VGenXLUNet(**arch.unet),
            scheduler=_scheduler(),
        )
    pipe.to(settings.device, settings.dtype)
    # SDPA everywhere, as GeneratorEngine sets it.
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    if settings.vae_slicing:
        pipe.vae.enable_slicing()
    return pipe


def _feature_extractor(image_size: int) -> CLIPImageProcessor:
    return CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )


def _scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_schedule="squaredcos_cap_v2",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        clip_sample=False,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="v_prediction",
    )


def parameter_counts(pipe: PatchedI2VGenXLPipeline) -> dict[str, int]:
    parts = ("unet", "vae", "text_encoder", "image_encoder")
    return {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in parts}


class StepTimer:
    """Seconds of every UNet call, one per denoising step (guidance is batched into it)."""

    def __init__(self, unet: torch.nn.Module, device: torch.device) -> None:
        self.unet = unet
        self.device = device
        self.seconds: list[float] = []
        self._started = 0.0

    @contextmanager
    def timing(self) -> Iterator[None]:
        handles = [
            self.unet.register_forward_pre_hook(self._before),
            self.unet.register_forward_hook(self._after),
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _before(self, module: torch.nn.Module, args: object) -> None:
        _synchronize(self.device)
        self._started = time.perf_counter()

    def _after(self, module: torch.nn.Module, args: object, output: object) -> None:
        _synchronize(self.device)
        self.seconds.append(time.perf_counter() - self._started)


class Bench:
    def __init__(self, pipe: PatchedI2VGenXLPipeline, settings: Settings) -> None:
        self.pipe = pipe
        self.settings = settings

    def run(self, batch: int, steps: int) -> Run:
        """One pipeline call for `batch` videos, from prompt encoding to uint8 frames."""
        settings, device = self.settings, self.settings.device
        images = [_picture(index) for index in range(batch)]
        generators = [torch.Generator(device).manual_seed(index) for index in range(batch)]
        timer = StepTimer(self.pipe.unet, device)
        _reset_peak(device)
        _synchronize(device)
        started = time.perf_counter()
        with torch.inference_mode(), timer.timing():
            positive, negative = self.encode_prompts(batch)
            frames = self.pipe(
                prompt_embeds=positive,
                negative_prompt_embeds=negative,
                image=images,
                width=settings.width,
                height=settings.height,
                num_frames=settings.num_frames,
                num_inference_steps=steps,
                guidance_scale=settings.guidance_scale,
                target_fps=16,
                generator=generators,
                decode_chunk_size=settings.decode_chunk_size,
                output_type="np",
            ).frames
            (frames * 255).round().clip(0, 255).astype(np.uint8)
        _synchronize(device)
        seconds = time.perf_counter() - started
        peaks = _peaks(device)
        return Run(batch, steps, seconds, timer.seconds, *peaks)

    def encode_prompts(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What the pipeline computes with `clip_skip=1`: the penultimate hidden states through
        the final layer norm, for `batch` prompts and as many negative prompts."""
        encoder = self.pipe.text_encoder
        ids = torch.full((2 * batch, CONTEXT_LENGTH), EOS, device=self.settings.device)
        ids[:, 0] = BOS
        ids[:, 1:20] = torch.arange(1000, 1019, device=self.settings.device)
        hidden = encoder(ids, output_hidden_states=True).hidden_states[-2]
        # transformers 5 dropped CLIPTextModel.text_model; 4.x still has it.
        final_layer_norm = getattr(encoder, "text_model", encoder).final_layer_norm
        embeddings = final_layer_norm(hidden)
        return embeddings[:batch], embeddings[batch:]


def _picture(seed: int) -> PIL.Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peaks(device: torch.device) -> tuple[int | None, int | None]:
    if device.type != "cuda":
        return None, None
    return torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def try_run(bench: Bench, batch: int, steps: int) -> Run | None:
    """The run, or None when it runs out of memory."""
    try:
        return bench.run(batch, steps)
    except torch.cuda.OutOfMemoryError as exc:
        exc.__traceback__ = None  # its frames hold the failed run's tensors
        return None
    finally:
        _free(bench.settings.device)


def search_batches(bench: Bench) -> tuple[int, list[dict[str, Any]]]:
    """Batch sizes 1, 2, 4, ... with a few steps each (memory does not grow with the step count)
    until one runs out of memory or reaches max_batch; the largest that fitted and the probes."""
    settings = bench.settings
    largest, probes = 0, []
    batch = 1
    while batch <= settings.max_batch:
        run = try_run(bench, batch, settings.probe_steps)
        probes.append(
            {
                "batch": batch,
                "fits": run is not None,
                "peak_allocated_bytes": run.peak_allocated_bytes if run else None,
                "peak_reserved_bytes": run.peak_reserved_bytes if run else None,
            }
        )
        if run is None:
            break
        largest, batch = batch, batch * 2
    return largest, probes


def measure(bench: Bench) -> dict[str, Any]:
    settings = bench.settings
    largest, probes = search_batches(bench)
    if largest == 0:
        raise SystemExit("batch 1 does not fit in the memory budget")
    runs = []
    for batch in sorted({1, largest}):
        run = try_run(bench, batch, settings.steps)
        # The full run may fragment memory more than the probe did: step down if it must.
        while run is None and batch > 1:
            batch //= 2
            run = try_run(bench, batch, settings.steps)
        if run is None:
            raise SystemExit(f"batch {batch} ran out of memory over {settings.steps} steps")
        runs.append(run.summary())
    return {"largest_batch": largest, "batch_search": probes, "runs": runs}


def environment(pipe: PatchedI2VGenXLPipeline, settings: Settings) -> dict[str, Any]:
    device = settings.device
    info: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "attention": sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()}),
        "parameters": parameter_counts(pipe),
        "settings": {
            key: str(value).removeprefix("torch.")
            if isinstance(value, torch.device | torch.dtype)
            else value
            for key, value in dataclasses.asdict(settings).items()
        },
    }
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        info["total_memory_bytes"] = total
        if settings.memory_fraction is not None:
            info["memory_budget_bytes"] = int(total * settings.memory_fraction)
    return info


def markdown(result: dict[str, Any]) -> str:
    env, settings = result["environment"], result["environment"]["settings"]
    budget = env.get("memory_budget_bytes")
    lines = [
        f"I2VGen-XL, random weights, {settings['dtype']}, on {env['device']}"
        f" (torch {env['torch']}, diffusers {env['diffusers']});"
        f" {settings['width']}x{settings['height']}, {settings['num_frames']} frames,"
        f" guidance {settings['guidance_scale']}, decode_chunk_size"
        f" {settings['decode_chunk_size']}; memory budget"
        f" {_gib(budget)} GiB; largest batch that fits: {result['largest_batch']}",
        "",
        "| batch | steps | s / step (median) | s / batch | s / video | videos / min"
        " | peak allocated (GiB) | peak reserved (GiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['batch']} | {run['steps']} | {run['seconds_per_step_median']:.3f}"
            f" | {run['seconds_per_batch']:.2f} | {run['seconds_per_video']:.2f}"
            f" | {run['videos_per_minute']:.2f} | {_gib(run['peak_allocated_bytes'])}"
            f" | {_gib(run['peak_reserved_bytes'])} |"
        )
    return "\n".join(lines)


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.1f}"


def parse_settings(argv: list[str] | None) -> tuple[Architecture, Settings, pathlib.Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="JSON results file")
    parser.add_argument(
        "--tiny-check", action="store_true", help="tiny model on cpu: checks the script"
    )
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--probe-steps", type=int, default=2, help="steps of a batch-size probe")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--guidance-scale", type=float, default=9.0)
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    parser.add_argument("--memory-fraction", type=float, default=0.5)
    parser.add_argument(
        "--decode-chunk-size",
        type=int,
        default=None,
        help="frames the VAE decodes at once (default: all, as GeneratorConfig's default)",
    )
    parser.add_argument("--vae-slicing", action="store_true")
    args = parser.parse_args(argv)

    if args.tiny_check:
        settings = Settings(
            device=torch.device("cpu"),
            dtype=torch.float32,
            width=64,
            height=48,
            num_frames=4,
            steps=2,
            probe_steps=1,
            max_batch=2,
            guidance_scale=args.guidance_scale,
            decode_chunk_size=args.decode_chunk_size,
            vae_slicing=args.vae_slicing,
            memory_fraction=None,
        )
        return TINY, settings, args.out
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --tiny-check")
    settings = Settings(
        device=torch.device("cuda", torch.cuda.current_device()),
        dtype=getattr(torch, args.dtype),
        width=args.width,
        height=args.height,
        num_frames=args.frames,
        steps=args.steps,
        probe_steps=args.probe_steps,
        max_batch=args.max_batch,
        guidance_scale=args.guidance_scale,
        decode_chunk_size=args.decode_chunk_size,
        vae_slicing=args.vae_slicing,
        memory_fraction=args.memory_fraction,
    )
    return FULL, settings, args.out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    arch, settings, out = parse_settings(argv)
    diffusers.utils.logging.set_verbosity_error()  # deprecation and dtype-cast notices
    if settings.device.type == "cuda" and settings.memory_fraction is not None:
        # Before anything is allocated, as GeneratorEngine does for a replica's budget.
        torch.cuda.set_per_process_memory_fraction(settings.memory_fraction, settings.device)
    pipe = build_pipeline(arch, settings)
    result = {"environment": environment(pipe, settings), **measure(Bench(pipe, settings))}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
