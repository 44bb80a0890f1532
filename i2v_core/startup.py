"""How long a start took, part by part: a replica's constructor (logged once as one structured
line that operators read in the replica's log and `bench/time_to_ready.py` adds up) and
`make serve`'s own start (`serve_app.runtime.start`)."""

from __future__ import annotations

import logging
import time

from i2v_core.logs import SERVE_LOGGER

logger = logging.getLogger(SERVE_LOGGER)
FIELD = "constructor_s"  # the JSON field of the line: {part: seconds}


class StartupClock:
    """`lap(part)` ends a part at each call; `describe()` lists them; `report()` logs a
    replica constructor's parts with the total."""

    def __init__(self) -> None:
        self._started = self._last = time.perf_counter()
        self.parts: dict[str, float] = {}

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.parts[part] = round(now - self._last, 3)
        self._last = now

    @property
    def total_s(self) -> float:
        return time.perf_counter() - self._started

    def describe(self) -> str:
        return ", ".join(f"{part} {seconds:.2f} s" for part, seconds in self.parts.items())

    def report(self, deployment: str) -> None:
        total = self.total_s
        logger.info(
            "%s constructed in %.2f s (%s)",
            deployment,
            total,
            self.describe(),
            # Ray Serve's JSON log lines carry these fields as they are (i2v_core/logs.py).
            extra={"ray_serve_extra_fields": {FIELD: {**self.parts, "total": round(total, 3)}}},
        )
