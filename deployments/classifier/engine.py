"""The classifier engines behind one interface, chosen by the config; each runs without Ray and
imports its ML library only when it is built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from deployments.classifier.config import ClassifierConfig
from deployments.classifier.protocol import Classification

if TYPE_CHECKING:
    import torch
    from PIL import Image


class ClassifierEngine(Protocol):
    config: ClassifierConfig
    device: torch.device

    def classify(self, images: list[Image.Image]) -> list[Classification]:
        """One classification per picture, in order, in one forward pass."""
        ...


def build_engine(config: ClassifierConfig) -> ClassifierEngine:
    if config.engine == "imagenet":
        from deployments.classifier.imagenet_engine import ImageNetEngine

        return ImageNetEngine(config)
    from deployments.classifier.open_clip_engine import OpenClipEngine

    return OpenClipEngine(config)


def resolve_device(device: str) -> torch.device:
    """Turn the config's device choice into a torch device."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
