"""Real photos with known subjects, from packages (nothing downloaded, nothing copied here):
scikit-image's data (public domain / CC0, skimage/data/README.txt), the examples/ folder
(examples/LICENSE.md) and KDE's wallpapers from Debian's plasma-workspace-wallpapers (GPL-2+,
read in place; `scripts/system_deps.sh --test` installs the package)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
WALLPAPERS = Path("/usr/share/wallpapers")


@dataclass(frozen=True)
class Photo:
    name: str
    load: Callable[[], Image.Image]
    category: str  # what a person calls it
    label: str | None = None  # an ImageNet label that must be among the top three


def _example(name: str) -> Callable[[], Image.Image]:
    return lambda: Image.open(REPO / "examples" / name)


def _skimage(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        import skimage.data

        return Image.fromarray(getattr(skimage.data, name)())

    return load


def _wallpaper(name: str) -> Callable[[], Image.Image]:
    return lambda: Image.open(WALLPAPERS / name / "contents" / "images" / "2560x1600.jpg")


PHOTOS = [
    Photo("examples/cup.jpg", _example("cup.jpg"), "still_life", "espresso"),
    Photo("examples/cat.jpg", _example("cat.jpg"), "animal", "tabby cat"),
    Photo("examples/astronaut.jpg", _example("astronaut.jpg"), "person"),
    Photo("skimage coffee", _skimage("coffee"), "still_life", "espresso"),
    Photo("skimage chelsea", _skimage("chelsea"), "animal", "tiger cat"),
    Photo("skimage astronaut", _skimage("astronaut"), "person"),
    Photo("skimage camera (grey)", _skimage("camera"), "person"),
    Photo("skimage rocket", _skimage("rocket"), "still_life", "missile"),
    Photo("KDE EveningGlow (lake, boats)", _wallpaper("EveningGlow"), "landscape"),
    Photo("KDE DarkestHour (misty lake)", _wallpaper("DarkestHour"), "landscape", "lakeside"),
    Photo("KDE summer_1am (lake at dusk)", _wallpaper("summer_1am"), "landscape", "sandbar"),
    Photo("KDE Path (forest path)", _wallpaper("Path"), "landscape"),
    Photo("KDE ColdRipple (pier in fog)", _wallpaper("ColdRipple"), "landscape", "pier"),
]
