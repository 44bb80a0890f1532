"""The spritesheet: a grid of evenly spaced frames, first and last included, as JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deployments.generator.video import encode_spritesheet


def _frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame i is one flat grey level, so each tile tells which frame it shows."""
    levels = np.linspace(0, 255, count).round().astype(np.uint8)
    return np.stack([np.full((height, width, 3), level, np.uint8) for level in levels])


def _tile_levels(data: bytes, columns: int, rows: int, tile: tuple[int, int]) -> list[int]:
    sheet = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)
    tile_w, tile_h = tile
    return [
        round(sheet[r * tile_h + tile_h // 2, c * tile_w + tile_w // 2].mean())
        for r in range(rows)
        for c in range(columns)
    ]


def test_sixteen_frames_of_thirty_two_make_a_four_by_four_grid_in_order():
    frames = _frames(32)
    data = encode_spritesheet(frames, max_tiles=16, tile_width=32)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert image.size == (4 * 32, 4 * 24)  # tiles keep the frames' aspect ratio
    levels = _tile_levels(data, 4, 4, (32, 24))
    expected = [int(frames[i, 0, 0, 0]) for i in np.linspace(0, 31, 16).round().astype(int)]
    assert levels == pytest.approx(expected, abs=4)
    assert levels[0] == pytest.approx(0, abs=4) and levels[-1] == pytest.approx(255, abs=4)


def test_few_frames_give_one_tile_each_and_small_frames_are_never_enlarged():
    data = encode_spritesheet(_frames(3, height=20, width=30), max_tiles=16, tile_width=160)
    assert Image.open(io.BytesIO(data)).size == (2 * 30, 2 * 20)  # 3 tiles: a 2x2 grid


def test_bad_frames_are_refused():
    with pytest.raises(ValueError):
        encode_spritesheet(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        encode_spritesheet(_frames(4), max_tiles=0)
