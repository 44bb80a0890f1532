"""Ray Serve wrapper around the classifier engine the config names: batches the decoded
pictures the ingress sends (`protocol.Picture`) dynamically."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ray import serve

from deployments.classifier.config import ClassifierConfig
from deployments.classifier.engine import build_engine
from deployments.classifier.protocol import Classification, Picture
from i2v_core import metrics
from i2v_core.startup import StartupClock

if TYPE_CHECKING:
    from PIL import Image


class Classifier:
    """One replica: an engine loaded at start, a batched `classify` of decoded pictures."""

    def __init__(self, config: ClassifierConfig) -> None:
        # The engine imports torch when it is built, here in the replica: the process that
        # builds the application imports this module only to bind it.
        clock = StartupClock()
        import torch

        self._accelerator_error = torch.AcceleratorError
        clock.lap("imports")
        self._engine = build_engine(config)
        clock.lap("load")
        self._device_error: BaseException | None = None
        # The batch queue belongs to the decorated function, so these apply process-wide;
        # a Serve replica holds one instance, so that is this replica's setting.
        self._classify_batch.set_max_batch_size(config.max_batch_size)
        self._classify_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        metrics.watch_gpu_memory("Classifier", self._engine)
        clock.report("Classifier")

    async def classify(self, picture: Picture) -> Classification:
        """One picture, decoded and upright (the ingress decoded it once: `Picture`)."""
        return await self._classify_batch(picture.to_image())

    @serve.batch
    async def _classify_batch(self, images: list[Image.Image]) -> list[Classification]:
        try:
            return await asyncio.to_thread(self._engine.classify, images)
        except self._accelerator_error as exc:
            # A device-side error poisons the CUDA context: only a new replica recovers.
            self._device_error = exc
            raise

    def check_health(self) -> None:
        if self._device_error is not None:
            raise RuntimeError(f"accelerator failed: {self._device_error}")
