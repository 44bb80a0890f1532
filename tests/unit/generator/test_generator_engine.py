"""GeneratorEngine, its patched I2VGen-XL pipeline and the video encoders, on the tiny model built
by i2v_testing/tiny_generator.py and loaded from its folder exactly as real weights are."""

from __future__ import annotations

import dataclasses
import io
import math
import pathlib
import threading

import av
import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image
from pydantic import ValidationError

from deployments.generator.config import GeneratorConfig
from deployments.generator.engine import GenerationRequest, GeneratorEngine
from deployments.generator.torch_thread import TorchThread
from deployments.generator.video import encode_mp4, encode_thumbnail

CPU = torch.device("cpu")


def _picture(width: int = 96, height: int = 64, mode: str = "RGB", seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _request(**overrides) -> GenerationRequest:
    fields = dict(
        image=_picture(),
        prompt="the flowers slowly open",
        negative_prompt="blurry, static",
        width=64,
        height=48,
        num_frames=4,
        num_inference_steps=2,
        guidance_scale=9.0,
        fps=8,
        seed=0,
    )
    return GenerationRequest(**{**fields, **overrides})


# --- engine ---------------------------------------------------------------------------------


def test_engine_resolves_cpu_float32(engine: GeneratorEngine) -> None:
    assert engine.device == CPU
    assert engine.dtype == torch.float32


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        GeneratorConfig(model="x", steps=3)


def test_attention_is_pytorch_sdpa(engine: GeneratorEngine) -> None:
    for model in (engine.pipe.unet, engine.pipe.vae):
        processors = model.attn_processors.values()
        assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors)
    for encoder in (engine.pipe.text_encoder, engine.pipe.image_encoder):
        assert encoder.config._attn_implementation == "sdpa"


def test_memory_stats_are_empty_on_cpu(engine: GeneratorEngine) -> None:
    assert engine.memory_stats() == {}
    engine.reset_peak_memory()
    engine.release_memory()


def test_memory_options_load_and_run_on_cpu(tiny_dir: pathlib.Path) -> None:
    # memory_fraction is ignored on cpu; VAE slicing and tiling are switched on the VAE itself
    # (the I2VGen-XL pipeline has no enable_vae_slicing).
    config = GeneratorConfig(
        model=str(tiny_dir), device="cpu", memory_fraction=0.5, vae_slicing=True, vae_tiling=True
    )
    engine = GeneratorEngine(config)
    assert engine.pipe.vae.use_slicing and engine.pipe.vae.use_tiling
    assert engine.generate(_request(num_frames=2)).shape == (2, 48, 64, 3)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_memory_fraction_must_be_a_share(fraction: float) -> None:
    with pytest.raises(ValidationError):
        GeneratorConfig(memory_fraction=fraction)


def test_frames_have_requested_shape_and_dtype(engine: GeneratorEngine) -> None:
    request = _request(image=_picture(50, 70, mode="RGBA"), width=72, height=40, num_frames=3)
    frames = engine.generate(request)
    assert frames.shape == (3, 40, 72, 3)
    assert frames.dtype == np.uint8


def test_seed_alone_decides_the_frames(engine: GeneratorEngine) -> None:
    # Different global RNG states around each run: only `seed` may matter.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        first = engine.generate(_request(seed=7))
        torch.manual_seed(2)
        again = engine.generate(_request(seed=7))
        other = engine.generate(_request(seed=8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_batched_generators_match_single_runs(engine: GeneratorEngine) -> None:
    # One generator per image, each image latent drawn from its own: batching changes nothing.
    # (Pictures of different sizes: test_generator_batching.py.)
    pipe = engine.pipe
    images, prompts = [_picture(seed=1), _picture(seed=2)], ["a cat turns", "rain falls"]
    common = dict(width=48, height=32, num_frames=3, num_inference_steps=2, output_type="np")
    batched = pipe(
        prompt=prompts,
        image=images,
        generator=[torch.Generator().manual_seed(seed) for seed in (3, 4)],
        **common,
    ).frames
    for index, seed in enumerate((3, 4)):
        single = pipe(
            prompt=prompts[index],
            image=images[index],
            generator=torch.Generator().manual_seed(seed),
            **common,
        ).frames[0]
        np.testing.assert_allclose(batched[index], single, atol=1e-4)


def test_on_step_counts_every_step(engine: GeneratorEngine) -> None:
    calls: list[tuple[int, int]] = []
    engine.generate(
        _request(num_inference_steps=3), on_step=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_raising_from_on_step_aborts_and_leaves_no_hook(engine: GeneratorEngine) -> None:
    class Cancelled(Exception):
        pass

    calls: list[int] = []

    def cancel_at_second_step(done: int, total: int) -> None:
        calls.append(done)
        if done >= 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        engine.generate(_request(num_inference_steps=4), on_step=cancel_at_second_step)
    assert calls == [1, 2]

    # A hook left behind would raise Cancelled again here.
    after: list[tuple[int, int]] = []
    frames = engine.generate(_request(), on_step=lambda done, total: after.append((done, total)))
    assert after == [(1, 2), (2, 2)]
    assert frames.shape == (4, 48, 64, 3)


def test_every_run_uses_the_engines_one_torch_thread(engine: GeneratorEngine) -> None:
    """Two OpenMP teams on two cores make libgomp sleep between kernels (torch_thread.py): runs
    called from any thread must denoise on the engine's own thread, with the same frames."""
    denoised_on: dict[str, set[int]] = {}
    frames: dict[str, np.ndarray] = {}

    def run(caller: str) -> None:
        threads = denoised_on.setdefault(caller, set())
        frames[caller] = engine.generate(
            _request(), on_step=lambda done, total: threads.add(threading.get_ident())
        )

    callers = [threading.Thread(target=run, args=(f"caller {i}",)) for i in range(3)]
    for caller in callers:
        caller.start()
    run("main")
    for caller in callers:
        caller.join()
    assert len(frames) == 4
    assert denoised_on == {name: {engine.torch_thread.ident} for name in frames}
    assert engine.torch_thread.ident not in {c.ident for c in callers} | {threading.get_ident()}
    for name in frames:
        np.testing.assert_array_equal(frames[name], frames["main"])


def test_torch_thread_runs_nested_calls_and_raises_what_the_call_raised() -> None:
    torch_thread = TorchThread("test")
    assert torch_thread.run(lambda: torch_thread.run(threading.get_ident)) == torch_thread.ident
    with pytest.raises(ZeroDivisionError):
        torch_thread.run(lambda: 1 / 0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image": np.zeros((8, 8, 3))}, "image"),
        ({"width": 60}, "width"),
        ({"width": 64.0}, "width"),
        ({"height": 0}, "height"),
        ({"num_frames": 0}, "num_frames"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 1001}, "num_inference_steps"),
        ({"guidance_scale": math.nan}, "guidance_scale"),
        ({"guidance_scale": 0.5}, "guidance_scale"),
        ({"guidance_scale": "9"}, "guidance_scale"),
        ({"fps": 0}, "fps"),
        ({"seed": -1}, "seed"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_invalid_requests_raise_value_error(
    engine: GeneratorEngine, overrides: dict, field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field} "):
        engine.generate(_request(**overrides))


# --- pipeline fixes -------------------------------------------------------------------------


def _token_ids(pipe, text: str) -> torch.Tensor:
    tokenizer = pipe.tokenizer
    return tokenizer(
        [text],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def test_encode_prompt_with_clip_skip_uses_the_penultimate_layer(engine: GeneratorEngine) -> None:
    pipe, text_encoder = engine.pipe, engine.pipe.text_encoder
    pipe._guidance_scale = 9.0  # set by __call__ in real use; turns the negative prompt on

    def penultimate(text: str) -> torch.Tensor:
        hidden = text_encoder(_token_ids(pipe, text), output_hidden_states=True).hidden_states[-2]
        return text_encoder.final_layer_norm(hidden)

    with torch.no_grad():
        positive, negative = pipe.encode_prompt("a cat", CPU, 1, "blurry", clip_skip=1)
        torch.testing.assert_close(positive, penultimate("a cat"))
        torch.testing.assert_close(negative, penultimate("blurry"))

        _, empty_negative = pipe.encode_prompt("a cat", CPU, 1, None, clip_skip=1)
        torch.testing.assert_close(empty_negative, penultimate(""))

        last, _ = pipe.encode_prompt("a cat", CPU, 1, None, clip_skip=None)
        torch.testing.assert_close(last, text_encoder(_token_ids(pipe, "a cat"))[0])
        assert not torch.allclose(last, positive)

        repeated, _ = pipe.encode_prompt("a cat", CPU, 2, None, clip_skip=1)
        assert repeated.shape == (2, *positive.shape[1:])


def test_tiny_tokenizer_matches_open_clip(engine: GeneratorEngine) -> None:
    open_clip_tokenizer = SimpleTokenizer()
    eot = open_clip_tokenizer.eot_token_id
    sentences = [
        "Make the cup rotate slowly, camera static!",
        "Don't stop: 42 cats & dogs' café",
        "让这张图里的花慢慢绽放",
        "展示这个杯子旋转",
    ]
    for sentence in sentences:
        ours = engine.pipe.tokenizer(sentence).input_ids
        theirs = open_clip_tokenizer([sentence])[0].tolist()
        assert ours == theirs[: theirs.index(eot) + 1], sentence


# --- video ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected_size"),
    [((5, 48, 64, 3), (64, 48)), ((3, 33, 47, 3), (48, 34))],  # odd sizes are padded to even
)
def test_encode_mp4_decodes_back(shape: tuple[int, ...], expected_size: tuple[int, int]) -> None:
    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with av.open(io.BytesIO(encode_mp4(frames, fps=12))) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 12
    assert len(decoded) == shape[0]
    assert (decoded[0].shape[1], decoded[0].shape[0]) == expected_size


def test_encode_thumbnail_is_webp() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    image = Image.open(io.BytesIO(encode_thumbnail(frame)))
    assert image.format == "WEBP"
    assert image.size == (56, 40)


def test_encoders_reject_wrong_arrays() -> None:
    with pytest.raises(ValueError):
        encode_mp4(np.zeros((2, 8, 8, 3), dtype=np.float32), fps=8)
    with pytest.raises(ValueError):
        encode_thumbnail(np.zeros((2, 8, 8, 3), dtype=np.uint8))


def test_request_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _request().seed = 1  # type: ignore[misc]
