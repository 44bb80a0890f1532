"""Out-of-memory recovery: a generation that runs out of GPU memory is retried at the next lower
resolution, then with fewer frames, until it fits or the ladder ends. The same code runs on cpu."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deployments.generator.config import OomLadder
from deployments.generator.engine import GenerationRequest, GeneratorEngine, StepCallback
from i2v_core import metrics

logger = logging.getLogger(__name__)

StepDown = dict[str, Any]
"""{"kind": "resolution" | "frames", "from": ..., "to": ..., "reason": "out_of_memory"}; sizes
are {"width", "height"} dicts, frame counts integers."""


class OutOfMemory(Exception):
    """Every rung of the ladder ran out of memory; `step_downs` lists the ones tried and `request`
    is the last request attempted."""

    def __init__(self, request: GenerationRequest, step_downs: list[StepDown]) -> None:
        super().__init__(
            f"out of memory at {request.width}x{request.height}, {request.num_frames} frames,"
            f" after {len(step_downs)} step-down(s); nothing lower is left to try"
        )
        self.request = request
        self.step_downs = step_downs


@dataclass
class RecoveryResult:
    frames: np.ndarray
    request: GenerationRequest
    """The request that finally ran (the original one when nothing was lowered)."""
    step_downs: list[StepDown]


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError)


def generate_with_recovery(
    engine: GeneratorEngine,
    request: GenerationRequest,
    on_step: StepCallback | None = None,
    ladder: OomLadder | None = None,
) -> RecoveryResult:
    """`engine.generate`, stepping down after each out-of-memory error (progress restarts from
    step 1 on a retry). Raises `OutOfMemory` once the ladder is exhausted; other errors pass."""
    ladder = ladder or engine.config.oom_ladder
    step_downs: list[StepDown] = []
    while True:
        try:
            frames = engine.generate(request, on_step=on_step)
            return RecoveryResult(frames=frames, request=request, step_downs=step_downs)
        except torch.cuda.OutOfMemoryError as exc:
            # The traceback holds the failed run's frames, and with them its tensors.
            exc.__traceback__ = None
            error = exc
        engine.release_memory()
        lower = next_step_down(request, ladder, engine.size_multiple)
        if lower is None:
            raise OutOfMemory(request, step_downs) from error
        request, step_down = lower
        step_downs.append(step_down)
        metrics.recovery("oom_step_down")
        logger.warning("out of memory, retrying lower: %s", step_down)


def next_step_down(
    request: GenerationRequest, ladder: OomLadder, size_multiple: int = 1
) -> tuple[GenerationRequest, StepDown] | None:
    """The next rung below `request`: a lower resolution while a tier is left, else half the
    frames (not below `ladder.min_frames`); None at the bottom. Sizes are multiples of both
    `ladder.size_multiple` and `size_multiple` (the engine's)."""
    size = lower_resolution(request.width, request.height, ladder, size_multiple)
    if size is not None:
        width, height = size
        return dataclasses.replace(request, width=width, height=height), {
            "kind": "resolution",
            "from": {"width": request.width, "height": request.height},
            "to": {"width": width, "height": height},
            "reason": "out_of_memory",
        }
    if request.num_frames > ladder.min_frames:
        frames = max(ladder.min_frames, request.num_frames // 2)
        return dataclasses.replace(request, num_frames=frames), {
            "kind": "frames",
            "from": request.num_frames,
            "to": frames,
            "reason": "out_of_memory",
        }
    return None


def lower_resolution(
    width: int, height: int, ladder: OomLadder, size_multiple: int = 1
) -> tuple[int, int] | None:
    """(width, height) scaled down to the first tier below the short side that gives fewer pixels,
    the aspect ratio kept as closely as the multiple allows; None when no tier is left."""
    multiple = math.lcm(ladder.size_multiple, size_multiple)
    short, long = min(width, height), max(width, height)
    for tier in ladder.resolutions:
        new_short = tier // multiple * multiple
        if not 0 < new_short < short:
            continue
        new_long = max(new_short, round(long * new_short / short / multiple) * multiple)
        if new_short * new_long >= width * height:
            continue
        return (new_long, new_short) if width >= height else (new_short, new_long)
    return None
