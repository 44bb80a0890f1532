"""Settings of the zero-shot picture classifier: which open_clip model, and what to tell apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_CATEGORIES: dict[str, list[str]] = {
    "person": [
        "a photo of a person",
        "a portrait of a man",
        "a portrait of a woman",
        "a photo of a child",
        "a selfie of a person",
        "a group of people",
    ],
    "animal": [
        "a photo of an animal",
        "a photo of a dog",
        "a photo of a cat",
        "a photo of a bird",
        "a photo of a flower",
        "a close-up of a plant",
    ],
    "landscape": [
        "a landscape photo",
        "a photo of mountains",
        "a photo of the sea",
        "a photo of a forest",
        "a sky with clouds",
        "a waterfall in nature",
    ],
    "still_life": [
        "a still life photo",
        "a photo of a building",
        "a cup on a table",
        "a photo of an object",
        "a product photo",
        "a photo of a car",
    ],
}


class ClassifierConfig(BaseModel):
    """Model source, device, zero-shot prompts per category and Serve batching knobs."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="ViT-B-32",
        description="open_clip model name, 'hf-hub:org/repo' or 'local-dir:/path'.",
    )
    pretrained: str | None = Field(
        default="laion2b_s34b_b79k",
        description="Pretrained tag or checkpoint file; ignored when `model` has a schema.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    categories: dict[str, list[str]] = Field(
        default_factory=lambda: {name: list(ps) for name, ps in DEFAULT_CATEGORIES.items()},
        description="Category name -> zero-shot prompts; its text embedding is their mean.",
    )
    max_batch_size: int = Field(default=8, ge=1)
    batch_wait_timeout_s: float = Field(default=0.02, ge=0.0)

    @field_validator("categories")
    @classmethod
    def _check_categories(cls, categories: dict[str, list[str]]) -> dict[str, list[str]]:
        if not categories:
            raise ValueError("categories must name at least one category")
        for name, prompts in categories.items():
            if not name.strip():
                raise ValueError("category names must not be blank")
            if not prompts or any(not p.strip() for p in prompts):
                raise ValueError(f"category {name!r} needs at least one non-blank prompt")
        return categories
