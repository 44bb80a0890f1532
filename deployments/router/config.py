"""Configuration of the router: the category parameter table, the generation limits and the
planner's own settings."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, model_validator

from i2v_core.config import GenerationLimits
from i2v_core.domain import CATEGORIES


class CategoryProfile(BaseModel):
    """Generation settings that suit one kind of picture (ARCHITECTURE.md's starting table)."""

    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(gt=0, description="length of the shorter side of the video, pixels")
    num_frames: int = Field(gt=0)
    num_inference_steps: int = Field(gt=0)
    guidance_scale: float = Field(gt=0)


def default_category_table() -> dict[str, CategoryProfile]:
    return {
        "person": CategoryProfile(
            resolution=512, num_frames=16, num_inference_steps=60, guidance_scale=10.0
        ),
        "animal": CategoryProfile(
            resolution=512, num_frames=16, num_inference_steps=55, guidance_scale=9.5
        ),
        "landscape": CategoryProfile(
            resolution=512, num_frames=24, num_inference_steps=50, guidance_scale=9.0
        ),
        "still_life": CategoryProfile(
            resolution=512, num_frames=8, num_inference_steps=40, guidance_scale=8.0
        ),
    }


class LLMConfig(BaseModel):
    """The LLM planner's endpoint: any OpenAI-compatible chat server (OpenAI, vLLM, Ollama)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    base_url: str | None = Field(default=None, description="None: env OPENAI_BASE_URL")
    api_key: str | None = Field(
        default=None, repr=False, description="None: env OPENAI_API_KEY, else a dummy key"
    )
    timeout_s: float = Field(default=10.0, gt=0, description="per HTTP attempt")
    max_retries: int = Field(default=1, ge=0)
    temperature: float = Field(default=0.2, ge=0, le=2)

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def resolved_api_key(self) -> str:
        # Local servers (vLLM, Ollama) accept any key, but the client insists on one.
        return self.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"


class RouterConfig(BaseModel):
    """Everything the router needs to turn an instruction into a plan."""

    model_config = ConfigDict(extra="forbid")

    categories: dict[str, CategoryProfile] = Field(default_factory=default_category_table)
    limits: GenerationLimits = Field(default_factory=GenerationLimits)
    default_fps: int = Field(default=8, gt=0)
    negative_prompt: str = (
        "distorted, blurry, low quality, flickering, watermark, text, static, jpeg artifacts"
    )
    min_label_score: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="the picture's label names the prompt's subject from this score up",
    )
    llm: LLMConfig | None = Field(
        default=None, description="the LLM planner; None: the rules planner alone"
    )

    @model_validator(mode="after")
    def _table_covers_every_category(self) -> RouterConfig:
        missing = [c for c in CATEGORIES if c not in self.categories]
        if missing:
            raise ValueError(f"the category table lacks {missing}")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {list(CATEGORIES)}")
        return self
