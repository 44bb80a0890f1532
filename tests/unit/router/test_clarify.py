"""Clarifying questions and yes-style replies of the conversation endpoint."""

from __future__ import annotations

import pytest

from deployments.ingress.sessions import is_affirmative
from deployments.router.clarify import clarifying_question, is_question
from deployments.router.config import RouterConfig
from deployments.router.engine import RouterEngine
from deployments.router.protocol import PlanRequest


@pytest.mark.parametrize(
    "text",
    [
        "这张图里的水是怎么循环的?",
        "这是什么？",
        "能不能让它动起来",
        "How does the water move?",
        "why is the sky blue",
        "can you make it rain?",
    ],
)
def test_questions_are_recognised(text):
    assert is_question(text)


@pytest.mark.parametrize("text", ["让花绽放", "make it rain", "展示这个杯子旋转", "", "slower"])
def test_instructions_are_not_questions(text):
    assert not is_question(text)


def test_classroom_question_gets_a_chinese_confirmation_and_a_water_cycle_plan():
    engine = RouterEngine(RouterConfig())
    request = dict(
        instruction="这张图里的水是怎么循环的?",
        category="landscape",
        image_width=640,
        image_height=480,
    )
    asked = engine.plan(PlanRequest(**request, allow_clarify=True))
    assert asked.action == "clarify"
    assert asked.question == "您是想展示水蒸气上升然后变成雨吗？"
    assert "water evaporating" in asked.prompt and "clouds" in asked.prompt
    # On /v1/videos the router never asks: the same words give the most plausible video.
    told = engine.plan(PlanRequest(**request))
    assert told.action == "generate" and told.question is None and told.prompt == asked.prompt


def test_english_question_is_asked_in_english():
    question = clarifying_question("how do the waves move?", ("ocean",), "ocean waves rolling")
    assert question == "Do you want to show ocean waves rolling?"


@pytest.mark.parametrize(
    "text",
    ["对", "对的", "是的！", "好", "嗯嗯", "yes", "Yes, please", "OK", "sure", "对，就是这样"],
)
def test_yes_style_replies(text):
    assert is_affirmative(text)


@pytest.mark.parametrize(
    "text", ["不对", "不是", "no", "yes but make it snow instead please", "让它下雪", ""]
)
def test_other_replies_are_not_yes(text):
    assert not is_affirmative(text)
