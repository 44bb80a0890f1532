"""The parameter engine: table per category, user override, seconds/size mapping, clamping."""

from __future__ import annotations

import random

import pytest

from deployments.router.config import RouterConfig, default_category_table
from deployments.router.params import resolve_params
from deployments.router.protocol import UserParams
from i2v_core.config import GenerationLimits

CONFIG = RouterConfig()


def resolve(category="person", image=(800, 600), user=None, overrides=None, config=CONFIG):
    return resolve_params(
        config, category, image, user or UserParams(), overrides, rng=random.Random(0)
    )


@pytest.mark.parametrize("category", ["person", "animal", "landscape", "still_life"])
def test_table_values_per_category(category):
    row = default_category_table()[category]
    params, sources = resolve(category)
    assert (params.num_frames, params.num_inference_steps, params.guidance_scale) == (
        row.num_frames,
        row.num_inference_steps,
        row.guidance_scale,
    )
    assert min(params.width, params.height) == row.resolution
    assert sources["num_frames"] == sources["num_inference_steps"] == "table"


def test_landscape_picture_keeps_its_aspect_ratio():
    params, _ = resolve("landscape", image=(1600, 900))
    assert params.height == 512
    assert params.width == 896  # 512 * 16/9 = 910, nearest multiple of 64
    portrait, _ = resolve("landscape", image=(900, 1600))
    assert (portrait.width, portrait.height) == (512, 896)


def test_user_values_win_over_table_and_plan():
    user = UserParams(num_frames=12, num_inference_steps=7, guidance_scale=3.5, fps=12, seed=42)
    params, sources = resolve(user=user, overrides={"num_frames": 30, "guidance_scale": 12.0})
    assert (
        params.num_frames,
        params.num_inference_steps,
        params.guidance_scale,
        params.fps,
        params.seed,
    ) == (12, 7, 3.5, 12, 42)
    assert all(
        sources[k] == "user"
        for k in ("num_frames", "num_inference_steps", "guidance_scale", "fps", "seed")
    )


def test_plan_overrides_win_over_table():
    params, sources = resolve(overrides={"num_inference_steps": 25})
    assert params.num_inference_steps == 25
    assert sources["num_inference_steps"] == "plan"


def test_seconds_map_to_frames_at_fps():
    params, sources = resolve(user=UserParams(seconds=2, fps=10))
    assert params.num_frames == 20
    assert sources["num_frames"] == "seconds"
    assert params.seconds == 2


def test_seconds_beyond_the_frame_limit_are_clamped():
    params, sources = resolve(user=UserParams(seconds=12))  # 96 frames at 8 fps
    assert params.num_frames == CONFIG.limits.max_frames
    assert sources["num_frames"] == "seconds,clamped"


def test_size_is_used_and_clamped_keeping_aspect():
    params, sources = resolve(user=UserParams(size=(640, 384)))
    assert (params.width, params.height) == (640, 384)
    assert sources["width"] == "size"
    big, big_sources = resolve(user=UserParams(size=(1792, 1024)))
    assert (big.width, big.height) == (1280, 704)  # scaled to max_side 1280, multiples of 64
    assert big_sources["width"] == "size,clamped"


def test_table_values_are_clamped_to_tighter_limits():
    config = RouterConfig(limits=GenerationLimits(max_side=256, max_steps=10, max_frames=8))
    params, sources = resolve("landscape", config=config)
    assert params.num_inference_steps == 10 and sources["num_inference_steps"] == "table,clamped"
    assert params.num_frames == 8 and sources["num_frames"] == "table,clamped"
    assert max(params.width, params.height) <= 256
    assert params.width % 64 == 0 and params.height % 64 == 0


def test_random_seed_is_recorded_as_random():
    params, sources = resolve()
    assert sources["seed"] == "random"
    assert 0 <= params.seed <= CONFIG.limits.max_seed


def test_extreme_aspect_ratio_stays_within_limits():
    params, _ = resolve(image=(5000, 100))
    assert CONFIG.limits.min_side <= params.height <= params.width <= CONFIG.limits.max_side


def test_previous_video_settings_carry_over_below_plan_and_user():
    previous, _ = resolve(user=UserParams(size=(320, 192), num_frames=12, fps=10, seed=5))
    params, sources = resolve_params(
        CONFIG,
        "person",
        (800, 600),
        UserParams(num_inference_steps=9),
        {"fps": 6},
        previous=previous,
    )
    assert (params.width, params.height, params.num_frames, params.seed) == (320, 192, 12, 5)
    assert params.fps == 6 and sources["fps"] == "plan"
    assert params.num_inference_steps == 9 and sources["num_inference_steps"] == "user"
    assert sources["width"] == sources["seed"] == sources["num_frames"] == "previous"


def test_plan_cannot_override_size_or_seed():
    params, sources = resolve(user=UserParams(seed=1), overrides={"seed": 99, "width": 1024})
    assert params.seed == 1 and sources["width"] == "table"
