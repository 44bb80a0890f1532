"""What the classifier answers, as types other packages may import (no ML library here)."""

from __future__ import annotations

from typing import Any

from PIL import Image
from pydantic import BaseModel, Field


class Picture(BaseModel):
    """A decoded, upright RGB picture as raw pixels: what the ingress decoded once, sent to the
    classifier so that it does not decode again."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    rgb: bytes

    @classmethod
    def from_image(cls, image: Image.Image) -> Picture:
        rgb = image.convert("RGB")
        return cls(width=rgb.width, height=rgb.height, rgb=rgb.tobytes())

    def to_image(self) -> Image.Image:
        return Image.frombytes("RGB", (self.width, self.height), self.rgb)


class Label(BaseModel):
    """One thing the classifier sees in the picture ("espresso", "tabby cat") and its category."""

    name: str
    score: float = Field(ge=0.0, le=1.0)
    category: str


class Classification(BaseModel):
    """The category picked for one picture, the scores of all categories, the top labels and
    the evidence behind them (faces found, the engine that decided)."""

    category: str
    scores: dict[str, float]
    labels: list[Label] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)

    def top_label(self, min_score: float = 0.0) -> Label | None:
        """The best label of the picked category, when it is at least `min_score`."""
        return next(
            (lb for lb in self.labels if lb.category == self.category and lb.score >= min_score),
            None,
        )
