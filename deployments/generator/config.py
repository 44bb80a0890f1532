"""Settings of the video generator: which I2VGen-XL weights, on which device, in what dtype."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
