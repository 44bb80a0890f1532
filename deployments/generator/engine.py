"""Turns one picture and a prompt into video frames with I2VGen-XL; runs without Ray, and the
Serve deployment is a thin wrapper around it."""

from __future__ import annotations

import contextlib
import math
import numbers
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from deployments.generator.config import GeneratorConfig
from deployments.generator.pipeline import PatchedI2VGenXLPipeline

StepCallback = Callable[[int, int], None]
"""Called as (steps_done, total_steps) after each denoising step; raising aborts the run."""

_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
}
_MAX_SEED = 2**64 - 1
_INT_FIELDS = ("width", "height", "num_frames", "num_inference_steps", "fps", "seed")


@dataclass(frozen=True)
class GenerationRequest:
    """One video to make; `image` may have any size and mode (it is converted to RGB)."""

    image: PIL.Image.Image
    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    fps: int
    seed: int


class GeneratorEngine:
    """Loads an I2VGen-XL pipeline (hub id or local folder) and generates one video at a time."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.device = _resolve_device(config.device)
        self.dtype = _resolve_dtype(config.dtype, self.device)
        self.pipe = PatchedI2VGenXLPipeline.from_pretrained(config.model, dtype=self.dtype)
        self.pipe.to(self.device)
        # The pipeline keeps per-call state (guidance, generator, scheduler timesteps) and the
        # step hook sits on the shared UNet, so runs on one engine take turns.
        self._lock = threading.Lock()

    def generate(
        self, request: GenerationRequest, on_step: StepCallback | None = None
    ) -> np.ndarray:
        """Frames as a uint8 array of shape (num_frames, height, width, 3)."""
        # 1. Check the request
        _check_request(
            request,
            size_multiple=self.pipe.vae_scale_factor,
            max_steps=self.pipe.scheduler.config.num_train_timesteps,
        )

        # 2. Prepare the inputs
        image = request.image.convert("RGB")
        generator = torch.Generator(device=self.device).manual_seed(request.seed)

        # 3. Denoise and decode, reporting each step
        with self._lock, _reporting_steps(self.pipe.unet, request.num_inference_steps, on_step):
            frames = self.pipe(
                prompt=request.prompt,
                image=image,
                negative_prompt=request.negative_prompt,
                width=request.width,
                height=request.height,
                num_frames=request.num_frames,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                target_fps=request.fps,
                generator=generator,
                clip_skip=self.config.clip_skip,
                decode_chunk_size=self.config.decode_chunk_size,
                output_type="np",
            ).frames[0]

        # 4. Convert to 8-bit frames
        return (frames * 255).round().clip(0, 255).astype(np.uint8)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but CUDA is not available")
    return torch.device(device)


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return _DTYPES[dtype]


def _check_request(request: GenerationRequest, size_multiple: int, max_steps: int) -> None:
    """Raise ValueError naming the first field the pipeline could not run with."""
    if not isinstance(request.image, PIL.Image.Image):
        raise ValueError(f"image must be a PIL image, got {type(request.image).__name__}")
    if min(request.image.size) < 1:
        raise ValueError(f"image must not be empty, got size {request.image.size}")
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(request, name), str):
            raise ValueError(f"{name} must be a string")
    for name in _INT_FIELDS:
        if not _is_number(getattr(request, name), numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {getattr(request, name)!r}")
    if not _is_number(request.guidance_scale, numbers.Real):
        raise ValueError(f"guidance_scale must be a number, got {request.guidance_scale!r}")
    for name in ("width", "height"):
        value = getattr(request, name)
        if value < size_multiple or value % size_multiple:
            # Only the VAE constrains the size: the UNet copes with any latent size, odd ones too.
            raise ValueError(
                f"{name} must be a positive multiple of {size_multiple} (the VAE's scale factor),"
                f" got {value}"
            )
    if request.num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {request.num_frames}")
    if not 1 <= request.num_inference_steps <= max_steps:
        raise ValueError(
            f"num_inference_steps must be between 1 and {max_steps} (the scheduler's training"
            f" steps), got {request.num_inference_steps}"
        )
    if not (math.isfinite(request.guidance_scale) and request.guidance_scale >= 1):
        raise ValueError(
            "guidance_scale must be a finite number >= 1 (1 turns classifier-free guidance off),"
            f" got {request.guidance_scale}"
        )
    if request.fps < 1:
        raise ValueError(f"fps must be at least 1, got {request.fps}")
    if not 0 <= request.seed <= _MAX_SEED:
        raise ValueError(f"seed must be between 0 and 2**64 - 1, got {request.seed}")


def _is_number(value: object, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


@contextlib.contextmanager
def _reporting_steps(
    unet: torch.nn.Module, total_steps: int, on_step: StepCallback | None
) -> Iterator[None]:
    """Call `on_step` after every UNet forward: guidance is batched into one call per step."""
    if on_step is None:
        yield
        return
    steps_done = 0

    def after_forward(module: torch.nn.Module, args: object, output: object) -> None:
        nonlocal steps_done
        steps_done += 1
        on_step(steps_done, total_steps)

    handle = unet.register_forward_hook(after_forward)
    try:
        yield
    finally:
        handle.remove()
