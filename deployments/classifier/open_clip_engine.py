"""Zero-shot picture classification with open_clip (production: real CLIP weights by hub id or
folder), usable without Ray."""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from deployments.classifier.config import ClassifierConfig
from deployments.classifier.engine import resolve_device
from deployments.classifier.protocol import Classification


class OpenClipEngine:
    """Loads an open_clip model once and classifies batches of PIL images."""

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            config.model, pretrained=config.pretrained, device=self.device
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(config.model)
        self.categories: list[str] = list(config.categories)
        self.text_embeddings = self._embed_categories(config.categories)

    @torch.inference_mode()
    def _embed_categories(self, categories: dict[str, list[str]]) -> torch.Tensor:
        """One unit vector per category: the renormalized mean of its prompts' embeddings."""
        rows = []
        for prompts in categories.values():
            tokens = self.tokenizer(prompts).to(self.device)
            embeddings = self.model.encode_text(tokens, normalize=True)
            rows.append(F.normalize(embeddings.mean(dim=0), dim=-1))
        return torch.stack(rows)

    @torch.inference_mode()
    def classify(self, images: list[Image.Image]) -> list[Classification]:
        """Classify all images in one forward pass."""
        if not images:
            return []
        pixels = torch.stack([self.preprocess(image.convert("RGB")) for image in images])
        features = self.model.encode_image(pixels.to(self.device), normalize=True)
        # logit_bias (SigLIP models) shifts every category equally, so softmax ignores it.
        logits = self.model.logit_scale.exp() * features @ self.text_embeddings.T
        probabilities = logits.float().softmax(dim=-1).cpu().tolist()
        return [self._to_classification(row) for row in probabilities]

    def _to_classification(self, probabilities: list[float]) -> Classification:
        scores = dict(zip(self.categories, probabilities, strict=True))
        return Classification(category=max(scores, key=scores.__getitem__), scores=scores)
