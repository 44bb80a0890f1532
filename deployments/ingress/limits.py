"""A key's requests per minute, enforced alike by every ingress replica: a moving window kept in
Redis by the `limits` library. Over it, a 429 with Retry-After before anything is written (the
key's limit on active jobs is in `admission.py`)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from deployments.ingress.auth import Caller
from i2v_core import metrics
from i2v_core.errors import too_many_requests


class RequestRate:
    def __init__(self, redis_url: str):
        self._window = MovingWindowRateLimiter(
            RedisStorage(redis_url, key_prefix="i2v_limits", wrap_exceptions=True)
        )

    def count_request(self, caller: Caller) -> None:
        if caller.key_id is None or caller.requests_per_minute is None:
            return
        item = RateLimitItemPerMinute(caller.requests_per_minute)
        if self._window.hit(item, "requests", caller.key_id):
            return
        reset_at = self._window.get_window_stats(item, "requests", caller.key_id).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        metrics.key_limited("requests_per_minute", caller.project)
        raise too_many_requests(
            f"Rate limit reached for this key: {caller.requests_per_minute} requests per "
            f"minute. Retry after {retry_after} s.",
            "rate_limit_exceeded",
            retry_after,
        )
