"""The rules planner: bilingual phrasebook, category defaults, 'slight movement' for junk."""

from __future__ import annotations

import pytest

from deployments.router.rules import DEFAULT_MOTION, plan_with_rules

CASES = [
    ("让这张图里的花慢慢绽放", "landscape", ["bloom", "slowly"]),
    ("展示这个杯子旋转", "still_life", ["rotating"]),
    ("让杯子转一圈", "still_life", ["rotating"]),
    ("make the cup spin", "still_life", ["rotating"]),
    ("rotate it 360 degrees", "still_life", ["rotating"]),
    ("让河水流动起来", "landscape", ["water flowing"]),
    ("make the waterfall flow", "landscape", ["water flowing"]),
    ("下雨了", "landscape", ["rain"]),
    ("make it rain", "landscape", ["rain"]),
    ("让他挥手", "person", ["waving"]),
    ("she waves hello", "person", ["waving"]),
    ("让这个人走路", "person", ["walking"]),
    ("the dog is walking", "animal", ["walking"]),
    ("让她微笑", "person", ["smiling"]),
    ("make him smile", "person", ["smiling"]),
    ("镜头慢慢推近", "landscape", ["zooming in", "slowly"]),
    ("zoom out slowly", "landscape", ["zooming out", "slowly"]),
    ("镜头平移", "landscape", ["panning"]),
    ("pan across the scene", "landscape", ["panning"]),
    ("风吹过树叶", "landscape", ["wind"]),
    ("a gentle breeze", "landscape", ["wind", "slowly"]),
    ("下雪", "landscape", ["snowflakes"]),
    ("让鸟飞起来", "animal", ["flying"]),
    ("烛火摇曳", "still_life", ["flames"]),
    ("咖啡冒着热气", "still_life", ["steam"]),
    ("云在天上飘", "landscape", ["clouds"]),
    ("让小狗摇尾巴", "animal", ["tail"]),
    ("快速旋转", "still_life", ["rotating", "quickly"]),
    ("spin fast", "still_life", ["rotating", "quickly"]),
    ("海浪拍打沙滩", "landscape", ["ocean waves"]),
    ("让这张风景图动起来", "landscape", ["clouds drifting"]),
]


@pytest.mark.parametrize(("instruction", "category", "words"), CASES)
def test_instruction_gives_prompt_with_motion_words(instruction, category, words):
    result = plan_with_rules(instruction, category)
    assert result.prompt.isascii(), result.prompt
    for word in words:
        assert word in result.prompt, (instruction, result.prompt)
    assert len(result.prompt.split()) <= 30


@pytest.mark.parametrize("instruction", ["", "   ", "???", "!!!", "12345", "qzx", "...."])
def test_empty_or_junk_gives_slight_movement(instruction):
    result = plan_with_rules(instruction, "person")
    assert DEFAULT_MOTION in result.prompt
    assert result.motion == DEFAULT_MOTION


@pytest.mark.parametrize(
    ("instruction", "category", "word"),
    [
        ("让它动起来", "person", "breathing"),
        ("make it move", "animal", "turning its head"),
        ("animate this", "still_life", "rotating"),
    ],
)
def test_vague_request_uses_the_category_motion(instruction, category, word):
    assert word in plan_with_rules(instruction, category).prompt


def test_deterministic():
    assert plan_with_rules("让花绽放", "landscape") == plan_with_rules("让花绽放", "landscape")


def test_landscape_word_is_not_wind():
    assert "wind" not in plan_with_rules("风景很美", "landscape").prompt
