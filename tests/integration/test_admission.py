"""Backpressure and idempotent retries on POST /v1/videos."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from i2v_testing.paths import EXAMPLES

CUP = (EXAMPLES / "cup.jpg").read_bytes()


def post(service, headers=None, **fields) -> httpx.Response:
    data = {
        "prompt": "spin",
        "size": "64x64",
        "num_frames": "8",
        "num_inference_steps": "50",
        **fields,
    }
    return httpx.post(
        f"{service.base_url}/v1/videos",
        data=data,
        headers=headers or {},
        files={"input_reference": ("cup.jpg", CUP, "image/jpeg")},
        timeout=60,
    )


def test_over_the_backlog_limit_answers_429_and_writes_nothing(service):
    limit = service.config.admission.max_backlog
    accepted, rejected = [], []
    for i in range(limit + 6):
        before = service.snapshot()
        response = post(service, seed=str(50_000 + i))
        if response.status_code == 429:
            rejected.append(response)
            assert service.snapshot() == before  # no row, no file
        else:
            assert response.status_code == 200, response.text
            accepted.append(response.json()["id"])
    assert len(accepted) <= limit and len(rejected) >= 6
    for response in rejected:
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "backlog_full")
        assert response.headers["retry-after"] == "2"
    # Reads stay fast and correct while saturated; then every accepted job ends.
    assert httpx.get(f"{service.base_url}/v1/videos?limit=5").status_code == 200
    client = service.client()
    for video_id in accepted:
        client.videos.delete(video_id)  # cancel, so later tests find a free generator
        with pytest.raises(openai.NotFoundError):
            client.videos.retrieve(video_id)


def test_same_idempotency_key_returns_the_same_job(service):
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    rows = service.jobs.count()
    first = post(service, headers=key, num_inference_steps="1", seed="777")
    second = post(service, headers=key, num_inference_steps="1", seed="777")
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert service.jobs.count() == rows + 1
    service.client().videos.poll(first.json()["id"])


def test_concurrent_retries_with_one_key_make_one_job(service):
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    rows = service.jobs.count()
    with ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(lambda _: post(service, headers=key, num_inference_steps="1"), range(4))
        )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    assert service.jobs.count() == rows + 1
    service.client().videos.poll(responses[0].json()["id"])
