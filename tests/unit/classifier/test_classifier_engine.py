"""ClassifierEngine on the tiny open_clip model, loaded from its folder as real weights are."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from deployments.classifier.config import DEFAULT_CATEGORIES, ClassifierConfig
from deployments.classifier.open_clip_engine import OpenClipEngine as ClassifierEngine
from deployments.classifier.protocol import Classification
from i2v_testing.tiny_classifier import build_tiny_classifier


@pytest.fixture(scope="module")
def tiny_dir(tiny_models: pathlib.Path) -> pathlib.Path:
    return tiny_models / "classifier"


def _config(tiny_dir: pathlib.Path, **overrides) -> ClassifierConfig:
    return ClassifierConfig(model=f"local-dir:{tiny_dir}", pretrained=None, **overrides)


@pytest.fixture(scope="module")
def engine(tiny_dir: pathlib.Path) -> ClassifierEngine:
    return ClassifierEngine(_config(tiny_dir))


def _noise(seed: int, size: tuple[int, int] = (96, 80), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (size[1], size[0]) if channels is None else (size[1], size[0], channels)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def _gradient(size: tuple[int, int] = (96, 80)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    rgb = np.stack([np.tile(x, (size[1], 1))] * 3, axis=-1)
    rgb[..., 2] = 255 - rgb[..., 2]
    return Image.fromarray(rgb)


def _assert_valid(result: Classification, categories: list[str]) -> None:
    assert list(result.scores) == categories
    assert math.isclose(sum(result.scores.values()), 1.0, abs_tol=1e-5)
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    assert result.category == max(result.scores, key=result.scores.__getitem__)


def test_one_classification_per_image(engine: ClassifierEngine) -> None:
    images = [_noise(0), _noise(1), _gradient()]
    results = engine.classify(images)
    assert len(results) == len(images)
    for result in results:
        _assert_valid(result, list(DEFAULT_CATEGORIES))


def test_empty_batch(engine: ClassifierEngine) -> None:
    assert engine.classify([]) == []


def test_batch_equals_single_calls(engine: ClassifierEngine) -> None:
    images = [_noise(2), _gradient(), _noise(3, size=(200, 50))]
    batched = engine.classify(images)
    singles = [engine.classify([image])[0] for image in images]
    for b, s in zip(batched, singles, strict=True):
        assert b.category == s.category
        for name in engine.categories:
            assert b.scores[name] == pytest.approx(s.scores[name], abs=1e-5)


def test_different_images_give_different_scores(engine: ClassifierEngine) -> None:
    a, b = engine.classify([_noise(4), _gradient()])
    assert any(abs(a.scores[n] - b.scores[n]) > 1e-4 for n in engine.categories)


def test_deterministic_across_engines(tiny_dir: pathlib.Path, engine: ClassifierEngine) -> None:
    images = [_noise(5), _gradient()]
    other = ClassifierEngine(_config(tiny_dir))
    for x, y in zip(engine.classify(images), other.classify(images), strict=True):
        assert x.scores == pytest.approx(y.scores, abs=1e-6)


def test_builder_is_deterministic(tiny_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    build_tiny_classifier(tmp_path, seed=0)
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        assert (tmp_path / name).read_bytes() == (tiny_dir / name).read_bytes()


def test_custom_categories(tiny_dir: pathlib.Path) -> None:
    categories = {"cat": ["a photo of a cat"], "car": ["a red car", "a photo of a car"], "x": ["x"]}
    engine = ClassifierEngine(_config(tiny_dir, categories=categories))
    assert engine.categories == ["cat", "car", "x"]
    _assert_valid(engine.classify([_noise(6)])[0], ["cat", "car", "x"])


@pytest.mark.parametrize(
    "image",
    [
        _noise(7, mode="L"),
        _noise(8, mode="RGBA"),
        _noise(9, size=(1, 1)),
        _noise(10, size=(513, 17)),
        _noise(11, mode="L").convert("P"),
    ],
    ids=["grayscale", "rgba", "1x1", "513x17", "palette"],
)
def test_odd_images(engine: ClassifierEngine, image: Image.Image) -> None:
    _assert_valid(engine.classify([image])[0], engine.categories)


@pytest.mark.parametrize(
    "categories",
    [{}, {"person": []}, {"person": ["a photo of a person"], "animal": ["  "]}, {" ": ["x"]}],
    ids=["no-categories", "no-prompts", "blank-prompt", "blank-name"],
)
def test_config_rejects_empty_categories(categories: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError):
        ClassifierConfig(categories=categories)


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        ClassifierConfig(modle="ViT-B-32")
