"""How a job's frames are made: one request through the out-of-memory ladder, or several
compatible requests grouped into one pipeline run (falling back to the ladder one by one when the
grouped run runs out of memory)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from deployments.generator.batching import Batcher
from deployments.generator.engine import (
    GenerationRequest,
    GeneratorEngine,
    StepCallback,
    batch_key,
)
from deployments.generator.recovery import generate_with_recovery

Item = tuple[GenerationRequest, StepCallback | None]


@dataclass
class Generated:
    frames: np.ndarray
    request: GenerationRequest  # what finally ran: lower than asked after out-of-memory
    step_downs: list[dict] = field(default_factory=list)
    batch_size: int = 1


class Generation:
    """Callable as `generation(request, on_step) -> Generated`; raises what the run raised
    (an `OutOfMemory` after the whole ladder, the step callback's abort, ...)."""

    def __init__(
        self,
        engine: GeneratorEngine,
        max_batch_size: int = 1,
        wait_s: float = 0.05,
        companions_possible: Callable[[], bool] = lambda: True,
    ):
        self.engine = engine
        self.batcher = (
            Batcher(
                self._run_group,
                key=lambda item: batch_key(item[0]),
                max_size=max_batch_size,
                wait_s=wait_s,
                companions_possible=companions_possible,
            )
            if max_batch_size > 1
            else None
        )

    def __call__(self, request: GenerationRequest, on_step: StepCallback | None) -> Generated:
        if self.batcher is None:
            return self._one(request, on_step)
        outcome = self.batcher.submit((request, on_step))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _one(self, request: GenerationRequest, on_step: StepCallback | None) -> Generated:
        result = generate_with_recovery(self.engine, request, on_step)
        return Generated(result.frames, result.request, result.step_downs)

    def _run_group(self, items: Sequence[Item]) -> list[Generated | BaseException]:
        if len(items) == 1:
            return [self._outcome(*items[0])]
        requests = [request for request, _ in items]
        try:
            results = self.engine.generate_batch(requests, [on_step for _, on_step in items])
        except torch.cuda.OutOfMemoryError as exc:
            exc.__traceback__ = None  # drop the failed run's tensors before retrying
            self.engine.release_memory()
            return [self._outcome(request, on_step) for request, on_step in items]
        return [
            result.error
            if result.error is not None
            else Generated(result.frames, request, batch_size=len(items))
            for request, result in zip(requests, results, strict=True)
        ]

    def _outcome(
        self, request: GenerationRequest, on_step: StepCallback | None
    ) -> Generated | BaseException:
        try:
            return self._one(request, on_step)
        except Exception as exc:  # handed back to the job's own thread
            return exc
