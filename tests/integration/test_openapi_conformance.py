"""The OpenAPI document describes the API, checked from outside: schemathesis reads
/openapi.json of the running tiny service and sends generated requests (valid and invalid) to
every operation with all its checks: no server error, only documented statuses, bodies and
content types as documented, schema-violating requests rejected, schema-valid ones accepted,
405 with Allow for other methods, deleted resources gone. Bounded: a fixed number of examples
per operation. (The keyed service, with auth checks too: tests/integration/test_auth.py.)"""

from __future__ import annotations

import httpx

from i2v_testing.conformance import run_schemathesis, summary


def test_schemathesis_finds_no_failure(service):
    before = {v["id"] for v in _all_videos(service)}
    try:
        result = run_schemathesis(f"{service.base_url}/openapi.json")
    finally:
        _cancel_new_jobs(service, before)
    assert result.returncode == 0, summary(result)


def _all_videos(service) -> list[dict]:
    response = httpx.get(f"{service.base_url}/v1/videos", params={"limit": 100}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def _cancel_new_jobs(service, before: set[str]) -> None:
    """Jobs the fuzzer managed to create are cancelled, so later tests find the generator free."""
    for video in _all_videos(service):
        if video["id"] not in before and video["status"] in ("queued", "in_progress"):
            httpx.delete(f"{service.base_url}/v1/videos/{video['id']}", timeout=30)
