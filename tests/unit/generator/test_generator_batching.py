"""Batched generation on GeneratorEngine (tiny weights, i2v_testing/tiny_generator.py): one
pipeline run per batch, items independent of each other, per-item progress and abort."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from deployments.generator.engine import (
    BatchItemResult,
    GenerationRequest,
    GeneratorEngine,
    batch_key,
)


class Cancelled(Exception):
    pass


@pytest.fixture
def unet_batches(engine: GeneratorEngine):
    """The batch size of every UNet call (the latent batch, doubled by guidance)."""
    sizes: list[int] = []
    handle = engine.pipe.unet.register_forward_pre_hook(
        lambda module, args: sizes.append(args[0].shape[0])
    )
    yield sizes
    handle.remove()


def _picture(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _requests() -> list[GenerationRequest]:
    """Three compatible requests whose pictures differ in size and aspect ratio."""
    common = dict(
        width=64,
        height=48,
        num_frames=3,
        num_inference_steps=2,
        guidance_scale=9.0,
        fps=8,
    )
    return [
        GenerationRequest(_picture(96, 64, 1), "a cat turns its head", "blurry", seed=11, **common),
        GenerationRequest(_picture(40, 90, 2), "rain falls", "static", seed=12, **common),
        GenerationRequest(_picture(64, 64, 3), "waves roll in", "", seed=13, **common),
    ]


def _assert_close(batched: np.ndarray, single: np.ndarray) -> None:
    # uint8 frames: float differences of batched kernels may flip a rounding by one level.
    assert batched.shape == single.shape
    assert np.abs(batched.astype(int) - single.astype(int)).max() <= 1


def test_batched_frames_equal_unbatched(engine: GeneratorEngine) -> None:
    requests = _requests()
    results = engine.generate_batch(requests)
    assert [result.error for result in results] == [None] * 3
    for request, result in zip(requests, results, strict=True):
        _assert_close(result.frames, engine.generate(request))
    assert not np.array_equal(results[0].frames, results[1].frames)


def test_generate_equals_upstream_single_picture_call(engine: GeneratorEngine) -> None:
    # Per-picture cropping of a list keeps a one-item batch exactly as upstream treats one picture.
    request = _requests()[1]
    frames = engine.generate(request)
    upstream = engine.pipe(
        prompt=request.prompt,
        image=request.image,
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        num_frames=request.num_frames,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        target_fps=request.fps,
        generator=torch.Generator().manual_seed(request.seed),
        clip_skip=engine.config.clip_skip,
        decode_chunk_size=engine.config.decode_chunk_size,
        output_type="np",
    ).frames[0]
    np.testing.assert_array_equal(frames, (upstream * 255).round().clip(0, 255).astype(np.uint8))


def test_compatible_requests_share_one_pipeline_run(
    engine: GeneratorEngine, unet_batches: list[int]
) -> None:
    engine.generate_batch(_requests())
    assert unet_batches == [6, 6]  # 2 steps, 3 items x 2 (classifier-free guidance)


def test_each_item_reports_its_own_progress(engine: GeneratorEngine) -> None:
    calls: dict[int, list[tuple[int, int]]] = {0: [], 2: []}
    engine.generate_batch(
        _requests(),
        on_steps=[
            lambda done, total: calls[0].append((done, total)),
            None,
            lambda done, total: calls[2].append((done, total)),
        ],
    )
    assert calls == {0: [(1, 2), (2, 2)], 2: [(1, 2), (2, 2)]}


def test_mixed_batch_keys_are_rejected(engine: GeneratorEngine) -> None:
    requests = _requests()
    requests[2] = dataclasses.replace(requests[2], num_frames=4)
    assert batch_key(requests[0]) != batch_key(requests[2])
    with pytest.raises(ValueError, match="must share"):
        engine.generate_batch(requests)


def test_bad_batches_are_rejected(engine: GeneratorEngine) -> None:
    with pytest.raises(ValueError, match="at least one"):
        engine.generate_batch([])
    with pytest.raises(ValueError, match="callbacks"):
        engine.generate_batch(_requests(), on_steps=[None])
    with pytest.raises(ValueError, match="^width "):
        engine.generate_batch([dataclasses.replace(_requests()[0], width=60)])


def test_an_aborted_item_leaves_the_others_running(
    engine: GeneratorEngine, unet_batches: list[int]
) -> None:
    requests = [dataclasses.replace(r, num_inference_steps=3) for r in _requests()]
    calls: list[int] = []
    error = Cancelled("deleted")

    def cancel_at_second_step(done: int, total: int) -> None:
        calls.append(done)
        if done == 2:
            raise error

    results = engine.generate_batch(requests, on_steps=[None, cancel_at_second_step, None])
    assert calls == [1, 2]  # not called again once aborted
    assert results[1] == BatchItemResult(frames=None, error=error)
    assert len(unet_batches) == 3  # the run went on for the others
    for index in (0, 2):
        assert results[index].error is None
        _assert_close(results[index].frames, engine.generate(requests[index]))


def test_run_stops_when_every_item_is_aborted(
    engine: GeneratorEngine, unet_batches: list[int]
) -> None:
    requests = [dataclasses.replace(r, num_inference_steps=4) for r in _requests()[:2]]

    def cancel_at(step: int):
        def on_step(done: int, total: int) -> None:
            if done == step:
                raise Cancelled(step)

        return on_step

    results = engine.generate_batch(requests, on_steps=[cancel_at(1), cancel_at(2)])
    assert len(unet_batches) == 2
    assert [result.frames for result in results] == [None, None]
    assert [result.error.args for result in results] == [(1,), (2,)]
