"""Settings of the video generator: which I2VGen-XL weights, on which device, in what dtype, within
what memory budget, how it steps down after running out of memory, and which faults it injects."""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from i2v_core.config import GenerationLimits, QueueConfig, StoreConfig


class OomLadder(BaseModel):
    """What to lower, in order, when a generation runs out of GPU memory: the resolution, tier by
    tier (short side, aspect ratio kept), then the number of frames, halved down to a floor."""

    model_config = ConfigDict(extra="forbid")

    resolutions: list[int] = Field(
        default=[512, 448, 384, 320, 256],
        description="Short-side tiers in pixels, strictly decreasing; a retry uses the first tier"
        " below the current short side.",
    )
    size_multiple: int = Field(
        default=64, gt=0, description="Both sides of a stepped-down size are multiples of this."
    )
    min_frames: int = Field(
        default=8, gt=0, description="Frames are halved after the last resolution, not below this."
    )

    @model_validator(mode="after")
    def _check_tiers(self) -> OomLadder:
        if any(a <= b for a, b in itertools.pairwise(self.resolutions)):
            raise ValueError("resolutions must be strictly decreasing")
        if any(tier <= 0 or tier % self.size_multiple for tier in self.resolutions):
            raise ValueError("every resolution must be a positive multiple of size_multiple")
        return self


class FaultInjection(BaseModel):
    """Failures the engine causes on purpose, for tests and chaos drills. They are raised where
    real ones would be (the constructor, the per-step hook), with the same exception types."""

    model_config = ConfigDict(extra="forbid")

    oom_above_pixels: int | None = Field(
        default=None,
        ge=0,
        description="Raise CUDA out-of-memory in runs whose width * height exceeds this.",
    )
    oom_always: bool = Field(default=False, description="Every run raises out-of-memory.")
    oom_at_step: int = Field(
        default=1,
        ge=1,
        description="The denoising step that raises it (the last step of shorter runs).",
    )
    slow_step_s: float = Field(
        default=0.0, ge=0, description="Extra seconds slept after every denoising step."
    )
    fail_load: bool = Field(default=False, description="The engine's constructor raises.")


class GeneratorConfig(BaseModel):
    """Model source and numeric settings for `GeneratorEngine`."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="ali-vilab/i2vgen-xl",
        description="Hub id or local folder of a diffusers I2VGen-XL pipeline (same loading code).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="'auto' picks cuda when available, else cpu."
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto", description="'auto' is float16 on cuda and float32 on cpu."
    )
    clip_skip: int | None = Field(
        default=1,
        ge=0,
        description="CLIP text layers skipped for the prompt embedding; I2VGen-XL used 1.",
    )
    decode_chunk_size: int | None = Field(
        default=None,
        ge=1,
        description="Frames the VAE decodes at once; None decodes all frames together.",
    )
    vae_slicing: bool = Field(
        default=False, description="The VAE encodes and decodes one image at a time."
    )
    vae_tiling: bool = Field(
        default=False,
        description="The VAE works in overlapping tiles: less memory for large frames, and faint"
        " seams are possible.",
    )
    memory_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Cap on this process's share of the GPU's memory (CUDA caching allocator), so"
        " replicas sharing a GPU cannot starve each other; ignored on cpu.",
    )
    max_batch_size: int = Field(
        default=1,
        ge=1,
        description="Compatible jobs (same size, frames, steps, guidance, fps) that arrive"
        " together run in one pipeline call, up to this many; keep it at most the deployment's"
        " max_ongoing_requests, which is how many jobs a replica takes from the queue at once.",
    )
    batch_wait_s: float = Field(
        default=0.05,
        ge=0,
        description="How long the first job of a batch waits for company, while the replica "
        "holds other jobs (a job alone starts at once).",
    )
    oom_ladder: OomLadder = Field(default_factory=OomLadder)
    faults: FaultInjection | None = Field(
        default=None, description="Failures to inject; None (the default) injects nothing."
    )


class GeneratorDeploymentConfig(BaseModel):
    """What a Generator replica is bound with: its model settings plus the shared sections it
    reads. `serve_app.config.AppConfig.generator_deployment_config()` builds it."""

    model_config = ConfigDict(extra="forbid")

    generator: GeneratorConfig
    stores: StoreConfig
    queue: QueueConfig
    limits: GenerationLimits
    job_deadline_s: float = Field(gt=0)
    warmup: bool = Field(description="run one small generation at replica start")
