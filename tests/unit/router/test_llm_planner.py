"""The LLM planner: the real ChatOpenAI client against a scripted OpenAI-compatible server over
HTTP; every failure ends in a rules plan that says why; follow-ups revise the last prompt."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from deployments.router.config import LLMConfig, RouterConfig
from deployments.router.deployment import Router
from deployments.router.engine import RouterEngine
from deployments.router.protocol import GenerationParams, PlanRequest
from deployments.router.rules import plan_with_rules
from i2v_core import metrics
from i2v_testing.fake_openai import FakeOpenAIServer, Reply

GOOD = {
    "action": "generate",
    "prompt": "A ceramic cup rotating slowly clockwise on a turntable, soft studio light",
    "negative_prompt": "shaky camera",
    "motion": "rotating slowly clockwise",
    "overrides": {"num_frames": 12, "num_inference_steps": None, "guidance_scale": None, "fps": 6},
    "question": None,
}
CLARIFY = {
    **GOOD,
    "action": "clarify",
    "prompt": "A ceramic cup slowly rotating, soft studio light",
    "overrides": {},
    "question": "要杯子自己旋转，还是镜头绕着杯子转？",
}
PREVIOUS = GenerationParams(
    width=512, height=512, num_frames=16, num_inference_steps=40, guidance_scale=8.0, fps=8, seed=7
)
EARLIER = "An object, rotating on a turntable, camera orbiting around it, clean studio lighting"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def make_engine(base_url: str, **llm: object) -> RouterEngine:
    settings = {"model": "test-model", "api_key": "test-key", "timeout_s": 0.5, "max_retries": 0}
    config = RouterConfig(llm=LLMConfig(base_url=base_url, **{**settings, **llm}))
    return RouterEngine(config, rng=random.Random(0))


def stage(plan, name: str):
    """The plan's decision of one stage (category, plan, params)."""
    return next(d for d in plan.trace if d.stage == name)


def request(instruction: str = "展示这个杯子旋转", **fields: object) -> PlanRequest:
    values = {"category": "still_life", "image_width": 640, "image_height": 480, **fields}
    return PlanRequest(instruction=instruction, **values)


def test_good_reply_gives_an_llm_plan_with_its_overrides(server):
    server.script([Reply.structured(GOOD)])
    engine = make_engine(server.url)
    plan = engine.plan(request())
    assert plan.planner == "llm" and plan.action == "generate"
    assert plan.prompt == GOOD["prompt"]
    assert plan.motion == GOOD["motion"]
    assert plan.negative_prompt.startswith(engine.config.negative_prompt)
    assert plan.negative_prompt.endswith("shaky camera")
    assert plan.overrides == {"num_frames": 12, "fps": 6}
    assert (plan.params.num_frames, plan.params.fps) == (12, 6)
    assert plan.param_sources["fps"] == plan.param_sources["num_frames"] == "plan"
    assert plan.param_sources["num_inference_steps"] == "table"
    decision = stage(plan, "plan")
    assert (decision.stage, decision.decision) == ("plan", "llm")
    assert decision.detail["model"] == "test-model" and decision.detail["plan_ms"] > 0
    assert "fallback" not in decision.detail
    assert stage(plan, "params").detail["sources"] == plan.param_sources
    assert not engine.fallbacks
    assert len(server.requests) == 1


def test_what_chatopenai_sends(server):
    server.script([Reply.structured(GOOD)])
    history = ["A natural landscape, clouds drifting", "A natural landscape, rain falling"]
    make_engine(server.url).plan(
        request("现在让它下雨", category="landscape", history=history, previous=PREVIOUS)
    )
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test-key"
    body = sent.body
    assert body["model"] == "test-model" and body["temperature"] == 0.2
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]
    assert schema["name"] == "VideoPlan" and schema["strict"] is True
    assert set(schema["schema"]["required"]) >= {"action", "prompt", "motion", "question"}
    assert [m["role"] for m in sent.messages] == ["system", "user"]
    assert "I2VGen-XL" in sent.message_text("system")
    user = sent.message_text("user")
    for text in ("现在让它下雨", "landscape", *history, "fps=8", "num_frames=16"):
        assert text in user, text
    assert user.index(history[0]) < user.index(history[1])
    assert "always answer generate" in user


@pytest.mark.parametrize(
    ("reply", "reason", "exception"),
    [
        (Reply.text('{"action": "generate", "prompt": '), "invalid_json", "ValidationError"),
        (Reply.text("Sure! A cup that spins."), "invalid_json", "ValidationError"),
        (Reply.structured({"action": "generate"}), "missing_fields", "ValidationError"),
        (Reply.structured({**GOOD, "action": "dance"}), "schema_mismatch", "ValidationError"),
        (Reply.structured(GOOD).after(3), "timeout", "OpenAITimeoutError"),
        (Reply.error(500), "http_error", "OpenAIAPIError"),
        (Reply.error(404, "model not found"), "http_error", "OpenAIModelNotFoundError"),
        (Reply.structured({**GOOD, "prompt": "  "}), "invalid_output", "InvalidPlanOutput"),
        (
            Reply.structured({**GOOD, "prompt": "一个杯子旋转"}),
            "invalid_output",
            "InvalidPlanOutput",
        ),
        (
            Reply.structured({**GOOD, "prompt": "spin " * 130}),
            "invalid_output",
            "InvalidPlanOutput",
        ),
    ],
)
def test_failures_fall_back_to_the_rules_and_say_why(server, reply, reason, exception):
    server.script([reply])
    engine = make_engine(server.url)
    plan = engine.plan(request())
    assert plan.planner == "rules" and plan.action == "generate"
    assert plan.prompt == plan_with_rules("展示这个杯子旋转", "still_life").prompt
    assert plan.params.num_frames == 8  # a valid plan: the table's still-life row
    fallback = stage(plan, "plan").detail["fallback"]
    assert (stage(plan, "plan").decision, fallback["reason"]) == ("rules", reason)
    assert fallback["exception"] == exception and fallback["message"]
    assert engine.fallbacks == {reason: 1}


def test_connection_refused_falls_back():
    engine = make_engine(FakeOpenAIServer.closed_url())
    plan = engine.plan(request("make it rain", category="landscape"))
    assert plan.planner == "rules" and "rain falling" in plan.prompt
    fallback = stage(plan, "plan").detail["fallback"]
    assert (fallback["reason"], fallback["exception"]) == ("connection", "OpenAIConnectionError")
    assert engine.fallbacks["connection"] == 1


def test_a_500_is_retried_then_falls_back(server):
    server.script([Reply.error(500)])
    plan = make_engine(server.url, max_retries=1).plan(request())
    assert plan.planner == "rules"
    assert len(server.requests) == 2


def test_a_retry_can_rescue_the_llm_plan(server):
    server.script([Reply.error(503, "overloaded"), Reply.structured(GOOD)])
    plan = make_engine(server.url, max_retries=1).plan(request())
    assert plan.planner == "llm" and len(server.requests) == 2


def test_fallbacks_are_counted_by_reason(server):
    engine = make_engine(server.url)
    for reply in (Reply.error(500), Reply.text("{"), Reply.error(502), Reply.structured(GOOD)):
        server.script([reply])
        engine.plan(request())
    assert engine.fallbacks == {"http_error": 2, "invalid_json": 1}


def test_clarify_on_videos_generates_from_the_best_guess(server):
    server.script([Reply.structured(CLARIFY)])
    plan = make_engine(server.url).plan(request(allow_clarify=False))
    assert (plan.planner, plan.action, plan.question) == ("llm", "generate", None)
    assert plan.prompt == CLARIFY["prompt"]
    assert "cannot ask" in stage(plan, "plan").detail["reason"]


def test_clarify_when_allowed_asks_the_question(server):
    server.script([Reply.structured(CLARIFY)])
    plan = make_engine(server.url).plan(request(allow_clarify=True))
    assert (plan.planner, plan.action) == ("llm", "clarify")
    assert plan.question == CLARIFY["question"]
    assert plan.prompt == CLARIFY["prompt"]  # the best guess, should the caller go ahead
    assert "Asking a clarifying question: allowed" in server.requests[0].message_text("user")


def test_long_prompt_is_cut_at_a_comma(server):
    clauses = ["A ceramic cup rotating slowly on a turntable"] + ["soft warm studio light"] * 12
    server.script([Reply.structured({**GOOD, "prompt": ", ".join(clauses)})])
    plan = make_engine(server.url).plan(request())
    assert plan.planner == "llm" and stage(plan, "plan").detail["truncated"] is True
    assert len(plan.prompt.split()) <= 40
    assert plan.prompt.startswith(clauses[0]) and not plan.prompt.endswith(",")


def test_typographic_punctuation_is_folded_to_ascii(server):
    server.script([Reply.structured({**GOOD, "prompt": "A caf\u00e9 cup\u2019s steam rising"})])
    plan = make_engine(server.url).plan(request())
    assert plan.planner == "llm" and plan.prompt == "A cafe cup's steam rising"


def test_nonsense_overrides_are_dropped(server):
    overrides = {"num_frames": -4, "num_inference_steps": None, "guidance_scale": 0, "fps": 10}
    server.script([Reply.structured({**GOOD, "overrides": overrides})])
    plan = make_engine(server.url).plan(request())
    assert plan.overrides == {"fps": 10}
    assert stage(plan, "plan").detail["dropped_overrides"] == ["num_frames", "guidance_scale"]


def test_async_path_and_the_serve_wrapper(server):
    engine = make_engine(server.url)
    router = Router(RouterConfig(llm=engine.config.llm))

    # One event loop, as in a replica: the async OpenAI client belongs to its loop.
    async def scenario() -> tuple[str, str, str]:
        server.script([Reply.structured(GOOD)])
        good = await engine.aplan(request())
        server.script([Reply.structured(GOOD).after(3)])
        slow = await engine.aplan(request())
        server.script([Reply.structured(GOOD)])
        served = await router.plan(request())
        return good.planner, slow.planner, served.prompt

    assert asyncio.run(scenario()) == ("llm", "rules", GOOD["prompt"])
    assert engine.fallbacks == {"timeout": 1}


def test_one_structured_log_line_and_one_metric_event_per_fallback(server, caplog, monkeypatch):
    counted: list[str | None] = []
    monkeypatch.setattr(metrics, "llm_fallback", counted.append)
    server.script([Reply.error(500)])
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        make_engine(server.url).plan(request())
    (record,) = [r for r in caplog.records if r.name == "ray.serve"]
    assert (record.planner, record.fallback_reason) == ("rules", "http_error")
    assert counted == ["http_error"]  # counted where the router decided, from its closed set
    assert record.prompt and record.plan_ms > 0 and record.param_sources["fps"] == "default"


def test_rules_planner_runs_alone_without_llm_config():
    engine = RouterEngine(RouterConfig(), rng=random.Random(0))
    plan = engine.plan(request())
    assert plan.planner == "rules" and "fallback" not in stage(plan, "plan").detail
    assert "rotating" in plan.prompt and not engine.fallbacks


def test_llm_config_falls_back_to_the_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://llm.internal:8000/v1")
    config = LLMConfig(model="qwen")
    assert config.resolved_base_url() == "http://llm.internal:8000/v1"
    assert config.resolved_api_key() == "not-needed"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert config.resolved_api_key() == "sk-env"
    assert LLMConfig(model="qwen", api_key="sk-own").resolved_api_key() == "sk-own"
    assert "sk-own" not in repr(LLMConfig(model="qwen", api_key="sk-own"))
    loaded = RouterConfig.model_validate({"llm": {"model": "qwen", "timeout_s": 5}})
    assert loaded.llm.timeout_s == 5 and loaded.llm.max_retries == 1


# Follow-ups planned by the rules (no LLM configured), continuing a previous video.


def rules_engine() -> RouterEngine:
    return RouterEngine(RouterConfig(), rng=random.Random(0))


@pytest.mark.parametrize("instruction", ["slower", "慢一点", "再慢一些"])
def test_slower_lowers_fps_relative_to_the_previous_video(instruction):
    plan = rules_engine().plan(request(instruction, history=[EARLIER], previous=PREVIOUS))
    assert plan.params.fps < PREVIOUS.fps and plan.param_sources["fps"] == "plan"
    assert plan.params.num_frames == PREVIOUS.num_frames and plan.params.seed == PREVIOUS.seed
    assert "slowly" in plan.prompt and "rotating on a turntable" in plan.prompt


def test_faster_raises_fps_and_drops_slow_words():
    earlier = "A natural landscape, flowers slowly blooming, petals unfolding, golden light"
    plan = rules_engine().plan(
        request("faster", category="landscape", history=[earlier], previous=PREVIOUS)
    )
    assert plan.params.fps > PREVIOUS.fps
    assert "slowly" not in plan.prompt and "flowers blooming" in plan.prompt


def test_now_make_it_rain_keeps_the_earlier_motion():
    plan = rules_engine().plan(request("now make it rain", history=[EARLIER], previous=PREVIOUS))
    assert "rotating on a turntable" in plan.prompt and "rain falling" in plan.prompt
    assert plan.prompt.index("rotating") < plan.prompt.index("rain")
    assert plan.params.fps == PREVIOUS.fps and plan.param_sources["fps"] == "previous"
    assert "+rain" in stage(plan, "plan").detail["reason"]
