"""Conversations over HTTP: the classroom scenario (question → clarifying question → "对" →
video), follow-ups that reuse the picture, and remix as a continued modification."""

from __future__ import annotations

import time

import httpx

from i2v_core.jobs import SessionTurn
from i2v_testing.paths import EXAMPLES


def turns_of(service, session_id: str) -> list[SessionTurn]:
    with service.jobs._session() as db:
        return (
            db.query(SessionTurn).filter_by(session_id=session_id).order_by(SessionTurn.seq).all()
        )


def new_session() -> str:
    return f"class-{time.monotonic_ns()}"


def test_classroom_clarify_confirm_generate(service):
    session = new_session()
    url = f"{service.base_url}/v1/sessions/{session}/messages"
    before_jobs = service.jobs.count()
    with (EXAMPLES / "cat.jpg").open("rb") as picture:
        asked = httpx.post(
            url,
            data={"text": "这张图里的水是怎么循环的?"},
            files={"input_reference": ("water.jpg", picture, "image/jpeg")},
            timeout=60,
        )
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert body["type"] == "question"
    assert body["question"] == "您是想展示水蒸气上升然后变成雨吗？"
    assert body["video"] is None
    assert service.jobs.count() == before_jobs  # a question creates no job

    confirmed = httpx.post(url, json={"text": "对"}, timeout=60)
    assert confirmed.status_code == 200, confirmed.text
    reply = confirmed.json()
    assert reply["type"] == "video"
    video = reply["video"]
    assert "water evaporating from the ocean and forming clouds" in video["plan"]["prompt"]
    assert video["prompt"] == "这张图里的水是怎么循环的?"
    assert any(t["stage"] == "clarify" and t["decision"] == "confirmed" for t in video["trace"])
    done = service.client().videos.poll(video["id"])
    assert done.status == "completed", done.error

    turns = turns_of(service, session)
    assert [(t.role, t.action) for t in turns] == [
        ("user", None),
        ("assistant", "clarify"),
        ("user", None),
        ("assistant", "generate"),
    ]
    assert turns[1].text == body["question"]
    assert turns[2].text == "对"
    assert turns[3].video_id == video["id"]
    job = service.jobs.get(video["id"])
    assert (job.session_id, job.image_sha256) == (session, turns[0].image_sha256)

    listed = httpx.get(url).json()
    assert [m["role"] for m in listed["data"]] == ["user", "assistant", "user", "assistant"]


def test_conversation_instruction_goes_straight_to_a_video(service):
    session = new_session()
    url = f"{service.base_url}/v1/sessions/{session}/messages"
    with (EXAMPLES / "cup.jpg").open("rb") as picture:
        reply = httpx.post(
            url,
            data={"text": "展示这个杯子旋转"},
            files={"input_reference": ("cup.jpg", picture, "image/jpeg")},
            timeout=60,
        ).json()
    assert reply["type"] == "video"
    assert "rotating" in reply["video"]["plan"]["prompt"]
    # A follow-up with no picture continues from the session's picture and earlier prompt.
    follow = httpx.post(url, json={"text": "慢一点"}, timeout=60).json()
    assert follow["type"] == "video"
    assert "rotating" in follow["video"]["plan"]["prompt"]
    assert "slow" in follow["video"]["plan"]["prompt"]


def test_videos_endpoint_never_asks(service):
    with (EXAMPLES / "cat.jpg").open("rb") as picture:
        video = service.client().videos.create(
            prompt="这张图里的水是怎么循环的?",
            input_reference=picture,
            size="64x64",
            extra_body={"num_frames": 4, "num_inference_steps": 1},
        )
    assert video.status == "queued"
    assert video.model_extra["plan"]["action"] == "generate"


def test_remix_slower_revises_the_earlier_prompt_and_lowers_fps(service):
    client = service.client()
    with (EXAMPLES / "cup.jpg").open("rb") as picture:
        source = client.videos.create_and_poll(
            prompt="展示这个杯子快速旋转",
            input_reference=picture,
            size="64x64",
            extra_body={"num_frames": 8, "num_inference_steps": 1, "fps": 12, "seed": 77},
        )
    remix = client.videos.poll(client.videos.remix(source.id, prompt="slower").id)
    assert remix.status == "completed", remix.error
    before, after = source.model_extra["plan"], remix.model_extra["plan"]
    assert "rotating" in after["prompt"]
    assert "quickly" not in after["prompt"]
    assert after["params"]["fps"] < before["params"]["fps"]
    assert after["params"]["seed"] == before["params"]["seed"]
    assert (after["params"]["width"], after["params"]["height"]) == (64, 64)
    assert remix.remixed_from_video_id == source.id
    assert service.jobs.get(remix.id).image_sha256 == service.jobs.get(source.id).image_sha256


def test_message_without_text_or_picture_is_400(service):
    session = new_session()
    url = f"{service.base_url}/v1/sessions/{session}/messages"
    before = service.snapshot()
    missing_text = httpx.post(url, json={})
    assert missing_text.status_code == 400
    assert missing_text.json()["error"]["param"] == "text"
    no_picture = httpx.post(url, json={"text": "让它动起来"})
    assert no_picture.status_code == 400
    assert no_picture.json()["error"]["param"] == "input_reference"
    assert service.snapshot() == before
