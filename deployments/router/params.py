"""The parameter engine: category table, OpenAI `seconds`/`size`, plan overrides and explicit
user values merged (user wins), then clamped to the configured limits. Pure functions."""

from __future__ import annotations

import random

from deployments.router.config import RouterConfig
from deployments.router.protocol import GenerationParams, UserParams
from i2v_core.config import GenerationLimits

# Plan overrides the router may set (size and seed stay the user's or the previous video's).
OVERRIDABLE = ("num_frames", "num_inference_steps", "guidance_scale", "fps")


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _round_to_multiple(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def fit_size(width: float, height: float, limits: GenerationLimits) -> tuple[int, int, bool]:
    """Scale (width, height) into the limits keeping the aspect ratio as well as the size
    multiple allows; returns (width, height, changed_beyond_rounding)."""
    scale = 1.0
    long_side, short_side = max(width, height), min(width, height)
    if long_side * scale > limits.max_side:
        scale = limits.max_side / long_side
    if short_side * scale < limits.min_side:
        scale = limits.min_side / short_side
    clamped = scale != 1.0
    w = _round_to_multiple(width * scale, limits.size_multiple)
    h = _round_to_multiple(height * scale, limits.size_multiple)
    low = _round_to_multiple(limits.min_side, limits.size_multiple)
    high = (limits.max_side // limits.size_multiple) * limits.size_multiple
    w2, h2 = int(_clamp(w, low, high)), int(_clamp(h, low, high))
    return w2, h2, clamped or (w2, h2) != (w, h)


def size_for_resolution(
    resolution: int, image_width: int, image_height: int
) -> tuple[float, float]:
    """The video size whose shorter side is `resolution`, with the picture's aspect ratio."""
    if image_width >= image_height:
        return resolution * image_width / image_height, float(resolution)
    return float(resolution), resolution * image_height / image_width


def resolve_params(
    config: RouterConfig,
    category: str,
    image_size: tuple[int, int],
    user: UserParams,
    plan_overrides: dict[str, float] | None = None,
    rng: random.Random | None = None,
    previous: GenerationParams | None = None,
) -> tuple[GenerationParams, dict[str, str]]:
    """Merge table < seconds/size < previous video < plan < user, clamp, and say where each
    value came from. `previous` is the video a remix or follow-up continues."""
    limits = config.limits
    profile = config.categories[category]
    overrides = {k: v for k, v in (plan_overrides or {}).items() if k in OVERRIDABLE}
    sources: dict[str, str] = {}

    def pick(name: str, table_value: float, derived: tuple[str, float | None] = ("", None)):
        user_value = getattr(user, name)
        if user_value is not None:
            sources[name] = "user"
            return user_value
        if name in overrides:
            sources[name] = "plan"
            return overrides[name]
        if previous is not None:
            sources[name] = "previous"
            return getattr(previous, name)
        if derived[1] is not None:
            sources[name] = derived[0]
            return derived[1]
        sources[name] = "table" if name != "fps" else "default"
        return table_value

    def settle(name: str, raw: float, low: float, high: float, integer: bool = True) -> float:
        wanted = round(raw) if integer else float(raw)
        value = _clamp(wanted, low, high)
        if value != wanted:
            sources[name] += ",clamped"
        return int(value) if integer else float(value)

    fps = settle("fps", pick("fps", config.default_fps), limits.min_fps, limits.max_fps)
    seconds_frames = user.seconds * fps if user.seconds is not None else None
    num_frames = settle(
        "num_frames",
        pick("num_frames", profile.num_frames, ("seconds", seconds_frames)),
        limits.min_frames,
        limits.max_frames,
    )
    steps = settle(
        "num_inference_steps",
        pick("num_inference_steps", profile.num_inference_steps),
        limits.min_steps,
        limits.max_steps,
    )
    guidance = settle(
        "guidance_scale",
        pick("guidance_scale", profile.guidance_scale),
        limits.min_guidance,
        limits.max_guidance,
        integer=False,
    )

    if user.size is not None:
        raw_w, raw_h = user.size
        size_source = "size"
    elif previous is not None:
        raw_w, raw_h = previous.width, previous.height
        size_source = "previous"
    else:
        raw_w, raw_h = size_for_resolution(profile.resolution, *image_size)
        size_source = "table"
    width, height, size_clamped = fit_size(raw_w, raw_h, limits)
    sources["width"] = sources["height"] = size_source + (",clamped" if size_clamped else "")

    if user.seed is not None:
        seed = user.seed
        sources["seed"] = "user"
    elif previous is not None:
        seed = previous.seed
        sources["seed"] = "previous"
    else:
        seed = (rng or random.SystemRandom()).randint(0, limits.max_seed)
        sources["seed"] = "random"

    params = GenerationParams(
        width=width,
        height=height,
        num_frames=num_frames,
        num_inference_steps=steps,
        guidance_scale=guidance,
        fps=fps,
        seed=seed,
    )
    return params, sources
