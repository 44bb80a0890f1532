"""Turns pictures and prompts into video frames with I2VGen-XL, one video or a batch of same-shaped
videos per pipeline run; runs without Ray, and the Serve deployment is a thin wrapper around it."""

from __future__ import annotations

import contextlib
import gc
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from deployments.generator.config import FaultInjection, GeneratorConfig
from deployments.generator.pipeline import PatchedI2VGenXLPipeline
from deployments.generator.torch_thread import TorchThread

StepCallback = Callable[[int, int], None]
"""Called as (steps_done, total_steps) after each denoising step; raising aborts the run."""

BatchKey = tuple[int, int, int, int, float, int]
"""What requests must share to run in one batch: see `batch_key`."""

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


@dataclass
class BatchItemResult:
    """One item of a batch: its frames, or the exception that aborted it."""

    frames: np.ndarray | None
    error: BaseException | None = None


def batch_key(request: GenerationRequest) -> BatchKey:
    """Requests with equal keys can share one pipeline run: their latents have one shape and the
    run has one schedule, guidance scale and fps conditioning."""
    return (
        request.width,
        request.height,
        request.num_frames,
        request.num_inference_steps,
        request.guidance_scale,
        request.fps,
    )


class GeneratorEngine:
    """Loads an I2VGen-XL pipeline (hub id or local folder) and generates one run at a time."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        # Read at every run, so a chaos drill may replace it on a live engine.
        self.faults: FaultInjection | None = config.faults
        if self.faults is not None and self.faults.fail_load:
            raise RuntimeError("the generator model failed to load (injected fault: fail_load)")
        self.device = _resolve_device(config.device)
        self.dtype = _resolve_dtype(config.dtype, self.device)
        if self.device.type == "cuda" and config.memory_fraction is not None:
            # Before loading, so that the weights count against the budget too.
            torch.cuda.set_per_process_memory_fraction(float(config.memory_fraction), self.device)
        # Whichever thread calls the engine, its torch work runs here (see torch_thread.py).
        self.torch_thread = TorchThread("generator-torch")
        self.pipe = self.torch_thread.run(self._load, config)
        # The pipeline keeps per-call state (guidance, generator, scheduler timesteps) and the
        # step hook sits on the shared UNet, so runs on one engine take turns.
        self._lock = threading.Lock()

    def _load(self, config: GeneratorConfig) -> PatchedI2VGenXLPipeline:
        pipe = PatchedI2VGenXLPipeline.from_pretrained(config.model, dtype=self.dtype)
        pipe.to(self.device)
        _use_sdpa_attention(pipe)
        if config.vae_slicing:
            pipe.vae.enable_slicing()
        if config.vae_tiling:
            pipe.vae.enable_tiling()
        return pipe

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this (the VAE's scale factor)."""
        return self.pipe.vae_scale_factor

    def generate(
        self, request: GenerationRequest, on_step: StepCallback | None = None
    ) -> np.ndarray:
        """Frames as a uint8 array of shape (num_frames, height, width, 3)."""
        [result] = self.generate_batch([request], [on_step])
        if result.error is not None:
            raise result.error
        return result.frames

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        on_steps: Sequence[StepCallback | None] | None = None,
    ) -> list[BatchItemResult]:
        """One pipeline run for requests sharing one `batch_key`, each with its own picture,
        prompts, seed and progress callback; the frames of an item do not depend on the others.

        An item whose callback raises is aborted: its result keeps the exception and its callback
        is not called again, while the run goes on for the others; once every item is aborted the
        run stops. A failure of the run itself (out of memory, say) is raised.
        """
        # 1. Check the batch
        callbacks = self._check_batch(requests, on_steps)

        # 2. One step hook for the run: faults first, then each item's progress
        first = requests[0]
        hook = _StepHook(
            callbacks, first.num_inference_steps, self.faults, first.width * first.height
        )

        # 3. Denoise and decode
        with self._lock, _forward_hook(self.pipe.unet, hook):
            try:
                frames = self.torch_thread.run(self._run, requests)
            except _AllItemsAborted:
                return [BatchItemResult(frames=None, error=error) for error in hook.errors]

        # 4. 8-bit frames for the items still running
        return [
            BatchItemResult(frames=None if error is not None else _to_uint8(item), error=error)
            for item, error in zip(frames, hook.errors, strict=True)
        ]

    def memory_stats(self) -> dict[str, int]:
        """Bytes of GPU memory allocated and reserved by this process, now and at peak (since the
        start or `reset_peak_memory`); empty on cpu."""
        if self.device.type != "cuda":
            return {}
        return {
            "allocated_bytes": torch.cuda.memory_allocated(self.device),
            "reserved_bytes": torch.cuda.memory_reserved(self.device),
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(self.device),
        }

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def release_memory(self) -> None:
        """Collect garbage and, on cuda, give cached blocks back, as after an out-of-memory."""
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _check_batch(
        self,
        requests: Sequence[GenerationRequest],
        on_steps: Sequence[StepCallback | None] | None,
    ) -> list[StepCallback | None]:
        if not requests:
            raise ValueError("a batch needs at least one request")
        if on_steps is None:
            on_steps = [None] * len(requests)
        if len(on_steps) != len(requests):
            raise ValueError(f"on_steps has {len(on_steps)} callbacks for {len(requests)} requests")
        max_steps = self.pipe.scheduler.config.num_train_timesteps
        for request in requests:
            _check_request(request, size_multiple=self.size_multiple, max_steps=max_steps)
        keys = [batch_key(request) for request in requests]
        for index, key in enumerate(keys):
            if key != keys[0]:
                raise ValueError(
                    "requests in one batch must share (width, height, num_frames,"
                    f" num_inference_steps, guidance_scale, fps): item 0 has {keys[0]},"
                    f" item {index} has {key}"
                )
        return list(on_steps)

    def _run(self, requests: Sequence[GenerationRequest]) -> np.ndarray:
        """Float frames in [0, 1] shaped (batch, num_frames, height, width, 3)."""
        first = requests[0]
        return self.pipe(
            prompt=[request.prompt for request in requests],
            image=[request.image.convert("RGB") for request in requests],
            negative_prompt=[request.negative_prompt for request in requests],
            width=first.width,
            height=first.height,
            num_frames=first.num_frames,
            num_inference_steps=first.num_inference_steps,
            guidance_scale=first.guidance_scale,
            target_fps=first.fps,
            generator=[
                torch.Generator(device=self.device).manual_seed(request.seed)
                for request in requests
            ],
            clip_skip=self.config.clip_skip,
            decode_chunk_size=self.config.decode_chunk_size,
            output_type="np",
        ).frames


class _AllItemsAborted(Exception):
    """Raised from the step hook to stop a run in which no item is left."""


class _StepHook:
    """Forward hook of the UNet for one run. It fires once per denoising step (guidance is batched
    into one UNet call), injects the configured faults, then reports the step to each live item."""

    def __init__(
        self,
        callbacks: list[StepCallback | None],
        total_steps: int,
        faults: FaultInjection | None,
        pixels: int,
    ) -> None:
        self.callbacks = callbacks
        self.total_steps = total_steps
        self.faults = faults
        self.pixels = pixels
        self.errors: list[BaseException | None] = [None] * len(callbacks)
        self.steps_done = 0

    def __call__(self, module: torch.nn.Module, args: object, output: object) -> None:
        self.steps_done += 1
        if self.faults is not None:
            _inject_step_faults(self.faults, self.steps_done, self.total_steps, self.pixels)
        for index, callback in enumerate(self.callbacks):
            if callback is None or self.errors[index] is not None:
                continue
            try:
                callback(self.steps_done, self.total_steps)
            except Exception as exc:
                self.errors[index] = exc
        if all(error is not None for error in self.errors):
            raise _AllItemsAborted


def _inject_step_faults(
    faults: FaultInjection, steps_done: int, total_steps: int, pixels: int
) -> None:
    if faults.slow_step_s:
        time.sleep(faults.slow_step_s)
    oom_here = faults.oom_always or (
        faults.oom_above_pixels is not None and pixels > faults.oom_above_pixels
    )
    if oom_here and steps_done == min(faults.oom_at_step, total_steps):
        # The class torch raises for a real CUDA out-of-memory; it can be built without CUDA.
        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory at denoising step {steps_done} ({pixels} pixels per frame;"
            " injected fault)"
        )


@contextlib.contextmanager
def _forward_hook(module: torch.nn.Module, hook: _StepHook) -> Iterator[None]:
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _use_sdpa_attention(pipe: PatchedI2VGenXLPipeline) -> None:
    """PyTorch's scaled_dot_product_attention in every diffusers attention layer. It is diffusers'
    default, set here so that the choice is explicit (`set_default_attn_processor` would pick the
    slower, memory-hungrier `AttnProcessor`); the CLIP encoders use transformers' sdpa default."""
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return (frames * 255).round().clip(0, 255).astype(np.uint8)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but CUDA is not available")
    # With an index: the memory budget and statistics name one device.
    return torch.device("cuda", torch.cuda.current_device())


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
