"""Out-of-memory recovery and fault injection on GeneratorEngine (tiny weights from
i2v_testing/tiny_generator.py): the injected out-of-memory is the class torch raises for a
real one."""

from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from deployments.generator.config import FaultInjection, GeneratorConfig, OomLadder
from deployments.generator.engine import GenerationRequest, GeneratorEngine
from deployments.generator.recovery import (
    OutOfMemory,
    generate_with_recovery,
    is_out_of_memory,
    lower_resolution,
    next_step_down,
)
from i2v_core import metrics

# Tiers for the tiny sizes of these tests.
LADDER = OomLadder(resolutions=[48, 32, 16], size_multiple=16, min_frames=2)


def _request(**overrides) -> GenerationRequest:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    fields = dict(
        image=Image.fromarray(pixels),
        prompt="the flowers slowly open",
        negative_prompt="",
        width=64,
        height=48,
        num_frames=4,
        num_inference_steps=2,
        guidance_scale=9.0,
        fps=8,
        seed=0,
    )
    return GenerationRequest(**{**fields, **overrides})


def _resolution(before: tuple[int, int], after: tuple[int, int]) -> dict:
    return {
        "kind": "resolution",
        "from": {"width": before[0], "height": before[1]},
        "to": {"width": after[0], "height": after[1]},
        "reason": "out_of_memory",
    }


# --- recovery --------------------------------------------------------------------------------


def test_injected_oom_is_torchs_out_of_memory_error(
    engine: GeneratorEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "faults", FaultInjection(oom_always=True))
    with pytest.raises(torch.cuda.OutOfMemoryError) as caught:
        engine.generate(_request())
    assert is_out_of_memory(caught.value)


def test_oom_at_the_first_resolution_completes_lower(
    engine: GeneratorEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "faults", FaultInjection(oom_above_pixels=40 * 40))
    recoveries: list[str] = []
    monkeypatch.setattr(metrics, "recovery", recoveries.append)
    progress: list[tuple[int, int]] = []
    result = generate_with_recovery(
        engine, _request(), on_step=lambda *step: progress.append(step), ladder=LADDER
    )
    assert result.step_downs == [_resolution((64, 48), (48, 32))]
    assert recoveries == ["oom_step_down"]  # counted when it happened
    assert (result.request.width, result.request.height) == (48, 32)
    assert result.frames.shape == (4, 32, 48, 3)
    assert progress == [(1, 2), (2, 2)]  # the failed attempt raised before reporting its step


def test_oom_at_every_level_raises_with_the_whole_ladder(
    engine: GeneratorEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "faults", FaultInjection(oom_always=True))
    with pytest.raises(OutOfMemory) as caught:
        generate_with_recovery(engine, _request(), ladder=LADDER)
    assert caught.value.step_downs == [
        _resolution((64, 48), (48, 32)),
        _resolution((48, 32), (32, 16)),
        {"kind": "frames", "from": 4, "to": 2, "reason": "out_of_memory"},
    ]
    assert isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)
    assert (caught.value.request.width, caught.value.request.num_frames) == (32, 2)


def test_other_errors_are_not_retried(engine: GeneratorEngine) -> None:
    def cancel(done: int, total: int) -> None:
        raise KeyError("cancelled")

    with pytest.raises(KeyError):
        generate_with_recovery(engine, _request(), on_step=cancel, ladder=LADDER)


def test_ladder_defaults_come_from_the_engine_config(
    engine: GeneratorEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "faults", FaultInjection(oom_always=True))
    monkeypatch.setattr(engine, "config", engine.config.model_copy(update={"oom_ladder": LADDER}))
    with pytest.raises(OutOfMemory) as caught:
        generate_with_recovery(engine, _request())
    assert len(caught.value.step_downs) == 3


@pytest.mark.parametrize(
    ("size", "lower"),
    [
        ((512, 512), (448, 448)),
        ((448, 448), (384, 384)),
        ((256, 256), None),
        ((1280, 704), (960, 512)),  # first tier below the short side; aspect kept
        ((512, 768), (448, 640)),
        ((500, 300), (448, 256)),  # a short side between tiers
        ((128, 128), None),
    ],
)
def test_lower_resolution_default_tiers(
    size: tuple[int, int], lower: tuple[int, int] | None
) -> None:
    assert lower_resolution(*size, OomLadder(), size_multiple=8) == lower


def test_frames_are_halved_to_the_floor_after_the_last_tier() -> None:
    ladder = OomLadder(min_frames=8)
    request = _request(width=256, height=256, num_frames=24)
    counts = []
    while (step := next_step_down(request, ladder)) is not None:
        request, step_down = step
        counts.append((step_down["from"], step_down["to"]))
    assert counts == [(24, 12), (12, 8)]


def test_ladder_config_is_checked() -> None:
    with pytest.raises(ValidationError):
        OomLadder(resolutions=[256, 512])
    with pytest.raises(ValidationError):
        OomLadder(resolutions=[500, 256])
    assert GeneratorConfig().oom_ladder == OomLadder()


# --- other faults ----------------------------------------------------------------------------


def test_slow_step_fault_slows_every_step(
    engine: GeneratorEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lower bounds only: other work on the machine can make any run slower, never faster.
    monkeypatch.setattr(engine, "faults", FaultInjection(slow_step_s=0.4))
    reported: list[float] = []
    started = time.perf_counter()
    engine.generate(
        _request(num_frames=2, num_inference_steps=3),
        on_step=lambda done, total: reported.append(time.perf_counter()),
    )
    gaps = np.diff([started, *reported])
    assert len(gaps) == 3 and all(gap >= 0.4 for gap in gaps)


def test_oom_fault_fires_at_its_step(
    engine: GeneratorEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "faults", FaultInjection(oom_always=True, oom_at_step=2))
    steps: list[int] = []
    with pytest.raises(torch.cuda.OutOfMemoryError):
        engine.generate(_request(num_inference_steps=3), on_step=lambda d, t: steps.append(d))
    assert steps == [1]
    # A shorter run still gets its out-of-memory, at its last step.
    with pytest.raises(torch.cuda.OutOfMemoryError):
        engine.generate(_request(num_inference_steps=1))


def test_fail_load_fault_makes_the_constructor_raise(tiny_dir: pathlib.Path) -> None:
    config = GeneratorConfig(
        model=str(tiny_dir), device="cpu", faults=FaultInjection(fail_load=True)
    )
    with pytest.raises(RuntimeError, match="failed to load"):
        GeneratorEngine(config)


def test_faults_are_off_by_default(engine: GeneratorEngine) -> None:
    assert GeneratorConfig().faults is None
    frames = engine.generate(dataclasses.replace(_request(), width=96, height=64))
    assert frames.shape == (4, 64, 96, 3)
