"""diffusers' I2VGen-XL pipeline with three fixes: `clip_skip` on transformers 5, an image latent
drawn from the caller's `generator` instead of the global RNG, and a list of pictures cropped each
on its own geometry instead of the first picture's."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from typing import Any

import PIL.Image
import torch
from diffusers import AutoencoderKL, I2VGenXLPipeline
from diffusers.pipelines.deprecated.i2vgen_xl.pipeline_i2vgen_xl import (
    _center_crop_wide,
    _resize_bilinear,
)

GeneratorArg = torch.Generator | list[torch.Generator] | None


class PatchedI2VGenXLPipeline(I2VGenXLPipeline):
    """`I2VGenXLPipeline` whose default `clip_skip=1` runs on transformers 5, whose output is fixed
    by `generator=` alone and in which each picture of a batch is prepared as if it were alone; it
    shows no progress bar unless `set_progress_bar_config` asks."""

    # Read by DiffusionPipeline.progress_bar; set_progress_bar_config replaces it per instance.
    _progress_bar_config: dict[str, Any] = {"disable": True}
    # The `generator` of the __call__ in progress, for prepare_image_latents.
    _call_generator: GeneratorArg = None
    # The CLIP inputs of a list of pictures in the __call__ in progress, for _encode_image.
    _call_clip_images: list[PIL.Image.Image] | None = None

    @functools.wraps(I2VGenXLPipeline.__call__)
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(super().__call__).bind(*args, **kwargs)
        self._call_generator = bound.arguments.get("generator")
        if _is_picture_list(bound.arguments.get("image")):
            self._crop_each_picture(bound)
        try:
            return super().__call__(*bound.args, **bound.kwargs)
        finally:
            self._call_generator = None
            self._call_clip_images = None

    def _crop_each_picture(self, bound: inspect.BoundArguments) -> None:
        """Upstream crops every picture of a list with the first one's scale and offsets. Here each
        is cropped alone, as upstream crops a single picture: to (width, height) for the latents
        (upstream's crop of the list then changes nothing) and to (width, width), resized to the
        CLIP input size, for the image embedding."""
        parameters = bound.signature.parameters
        width = bound.arguments.get("width", parameters["width"].default)
        height = bound.arguments.get("height", parameters["height"].default)
        if not (width and height):  # upstream's fallback to the UNet's sample size
            width = width or self.unet.config.sample_size * self.vae_scale_factor
            height = height or self.unet.config.sample_size * self.vae_scale_factor
        crop_size = self.feature_extractor.crop_size
        pictures = bound.arguments["image"]
        self._call_clip_images = [
            _resize_bilinear(
                _center_crop_wide(picture, (width, width)),
                (crop_size["width"], crop_size["height"]),
            )
            for picture in pictures
        ]
        bound.arguments["image"] = [
            _center_crop_wide(picture, (width, height)) for picture in pictures
        ]

    def _encode_image(
        self, image: Any, device: torch.device, num_videos_per_prompt: int
    ) -> torch.Tensor:
        if self._call_clip_images is not None:
            image = self._call_clip_images
        return super()._encode_image(image, device, num_videos_per_prompt)

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device,
        num_videos_per_prompt: int,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        clip_skip: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Upstream `encode_prompt`, with the `clip_skip` embeddings computed here: upstream reads
        `text_encoder.text_model`, which transformers 5 removed."""
        if clip_skip is not None:
            if prompt_embeds is None:
                texts = [prompt] if isinstance(prompt, str) else list(prompt)
                prompt_embeds = self._encode_text(texts, device, clip_skip)
            if self.do_classifier_free_guidance and negative_prompt_embeds is None:
                negatives = _negative_texts(negative_prompt, batch_size=prompt_embeds.shape[0])
                negative_prompt_embeds = self._encode_text(negatives, device, clip_skip)
        return super().encode_prompt(
            prompt,
            device,
            num_videos_per_prompt,
            negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            clip_skip=None,
        )

    def _encode_text(self, texts: list[str], device: torch.device, clip_skip: int) -> torch.Tensor:
        """Hidden states `clip_skip` layers below the last, through the final layer norm."""
        inputs = self.tokenizer(
            texts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        attention_mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            attention_mask = inputs.attention_mask.to(device)
        output = self.text_encoder(
            inputs.input_ids.to(device), attention_mask=attention_mask, output_hidden_states=True
        )
        return self.text_encoder.final_layer_norm(output.hidden_states[-(clip_skip + 1)])

    def prepare_image_latents(
        self,
        image: torch.Tensor,
        device: torch.device,
        num_frames: int,
        num_videos_per_prompt: int,
    ) -> torch.Tensor:
        """Upstream `prepare_image_latents`, with the VAE latent sampled from `generator`."""
        generator = _image_generators(self._call_generator, image.shape[0], num_videos_per_prompt)
        with _latent_sampling_from(self.vae, generator):
            return super().prepare_image_latents(image, device, num_frames, num_videos_per_prompt)


def _is_picture_list(image: object) -> bool:
    return (
        isinstance(image, list)
        and bool(image)
        and all(isinstance(item, PIL.Image.Image) for item in image)
    )


def _negative_texts(negative_prompt: str | list[str] | None, batch_size: int) -> list[str]:
    if negative_prompt is None or isinstance(negative_prompt, str):
        return [negative_prompt or ""] * batch_size
    if len(negative_prompt) != batch_size:
        raise ValueError(
            f"`negative_prompt` has {len(negative_prompt)} items but the prompt batch has"
            f" {batch_size}; pass one negative prompt per prompt, or a single string."
        )
    return [text or "" for text in negative_prompt]


def _image_generators(
    generator: GeneratorArg, num_images: int, num_videos_per_prompt: int
) -> GeneratorArg:
    """A list holds one generator per video (image-major, as upstream's noise latents use it);
    each image latent is drawn from the first generator of that image's videos."""
    if not isinstance(generator, list):
        return generator
    if len(generator) != num_images * num_videos_per_prompt:
        raise ValueError(
            f"Got {len(generator)} generators for {num_images} image(s) x"
            f" {num_videos_per_prompt} video(s) per prompt; pass one generator per video."
        )
    return generator[::num_videos_per_prompt]


@contextlib.contextmanager
def _latent_sampling_from(vae: AutoencoderKL, generator: GeneratorArg) -> Iterator[None]:
    """Within the block, `vae.encode(x).latent_dist.sample()` draws its noise from `generator`."""
    encode = vae.encode

    def encode_with_generator(*args: Any, **kwargs: Any) -> Any:
        output = encode(*args, **kwargs)
        latent_dist = output.latent_dist
        latent_dist.sample = functools.partial(latent_dist.sample, generator=generator)
        return output

    vae.encode = encode_with_generator
    try:
        yield
    finally:
        del vae.encode  # the instance attribute; the class's `encode` shows through again
