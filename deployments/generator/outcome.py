"""What one delivery of a generation task did; light, so that the Serve wrapper can name it without
importing the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Outcome:
    """What one delivery of a job's task did: completed or failed the job (with the error code
    and message written to its row), or skipped it (already final, or finished by another
    delivery)."""

    status: Literal["completed", "failed", "skipped"]
    code: str | None = None
    message: str | None = None


COMPLETED = Outcome("completed")
SKIPPED = Outcome("skipped")
