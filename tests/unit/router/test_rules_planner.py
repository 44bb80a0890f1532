"""The rules planner: bilingual phrasebook, category defaults, 'slight movement' for junk."""

from __future__ import annotations

import pytest

from deployments.router.protocol import GenerationParams
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


@pytest.mark.parametrize("instruction", ["asdf ???", "qwerty", "zzzz", "asdf jkl", "啊啊啊啊"])
def test_keyboard_mash_is_junk(instruction):
    assert plan_with_rules(instruction, "landscape").motion == DEFAULT_MOTION


@pytest.mark.parametrize(
    "instruction", ["make it move", "让它动起来", "the giraffe eats leaves", "sparkle", "slower"]
)
def test_vague_but_meaningful_is_not_junk(instruction):
    assert plan_with_rules(instruction, "animal").motion != DEFAULT_MOTION


def test_motion_asked_away_is_not_added():
    assert "rain" not in plan_with_rules("不要下雨", "landscape").prompt
    result = plan_with_rules("make it rain, not snow", "landscape")
    assert "rain falling" in result.prompt and "snow" not in result.prompt
    assert "rotating" in plan_with_rules("不停地旋转", "still_life").prompt


# Follow-ups: with a session history, revise the last prompt.

PREVIOUS = GenerationParams(
    width=512, height=512, num_frames=16, num_inference_steps=40, guidance_scale=8.0, fps=8, seed=7
)
CLOUDS = plan_with_rules("让这张风景图动起来", "landscape").prompt
BLOOM = plan_with_rules("让花慢慢绽放", "landscape").prompt
QUICK_CUP = "A white cup spinning quickly on a wooden table, soft studio lighting"


def follow_up(instruction, earlier=CLOUDS, previous=PREVIOUS, base=None):
    return plan_with_rules(instruction, "landscape", [earlier], previous, base)


@pytest.mark.parametrize("instruction", ["slower", "慢一点", "再慢一些", "slow it down a bit"])
def test_slower_revises_speed_words_and_lowers_fps(instruction):
    result = follow_up(instruction)
    assert result.revised and "slower" in result.reason
    assert result.overrides == {"fps": 5}  # 8 fps down by a third
    assert "moving slowly" in result.prompt and "clouds drifting" in result.prompt


def test_slower_replaces_fast_words_in_place():
    result = follow_up("slower", earlier=QUICK_CUP)
    assert result.prompt == "A white cup spinning on a wooden table, soft studio lighting"
    assert follow_up("再慢一些", earlier=result.prompt).prompt.count("slowly") == 1


def test_slower_at_low_fps_adds_frames_instead():
    low = PREVIOUS.model_copy(update={"fps": 4})
    assert follow_up("slower", previous=low).overrides == {"num_frames": 24}


@pytest.mark.parametrize("instruction", ["faster", "快一点", "speed it up"])
def test_faster_raises_fps_and_removes_slow_words(instruction):
    result = follow_up(instruction, earlier=BLOOM)
    assert result.overrides == {"fps": 12}
    assert "slowly" not in result.prompt and "flowers blooming" in result.prompt


def test_overrides_are_relative_to_base_without_a_previous_video():
    assert follow_up("slower", previous=None).overrides == {}
    base = PREVIOUS.model_copy(update={"fps": 12})
    assert follow_up("slower", previous=None, base=base).overrides == {"fps": 8}


@pytest.mark.parametrize("instruction", ["now make it rain", "现在让它下雨", "also add rain"])
def test_new_motion_is_added_to_the_earlier_ones(instruction):
    result = follow_up(instruction, previous=None)
    assert result.revised and "+rain" in result.reason
    assert result.prompt.startswith("A natural landscape, clouds drifting, leaves swaying")
    assert "rain falling" in result.prompt and result.prompt.endswith("high quality")
    assert result.prompt.index("leaves swaying") < result.prompt.index("rain falling")
    assert result.overrides == {}


def test_remix_revises_even_without_a_follow_up_word():
    assert "clouds drifting" in follow_up("make it rain").prompt
    fresh = follow_up("make it rain", previous=None)
    assert not fresh.revised and "clouds" not in fresh.prompt


def test_motion_asked_away_is_removed():
    rainy = follow_up("now make it rain").prompt
    result = follow_up("stop the rain", earlier=rainy)
    assert "rain" not in result.prompt and "clouds drifting" in result.prompt


@pytest.mark.parametrize(("instruction", "words"), [("more", "stronger"), ("less", "subtle")])
def test_more_or_less_movement(instruction, words):
    result = follow_up(instruction)
    assert words in result.prompt and "clouds drifting" in result.prompt
    assert result.overrides == {}


def test_revisions_stay_short_ascii_and_deterministic():
    prompt = CLOUDS
    for instruction in ("now make it rain", "also snow", "现在加上风", "slower", "more"):
        prompt = follow_up(instruction, earlier=prompt).prompt
        assert prompt.isascii() and len(prompt.split()) <= 40, prompt
    assert follow_up("now make it rain") == follow_up("now make it rain")


def test_junk_follow_up_still_gives_slight_movement():
    assert follow_up("asdf ???").motion == DEFAULT_MOTION


# English keywords match on lemmas (lemminflect): inflected verbs ask for their motions.


@pytest.mark.parametrize(
    ("instruction", "words"),
    [
        ("the camera pans slowly to the right", ["panning", "slowly"]),
        ("the camera panned left", ["panning"]),
        ("panning across the valley", ["panning"]),
        ("it rotates", ["rotating"]),
        ("it rotated twice", ["rotating"]),
        ("the wheel is spinning", ["rotating"]),
        ("the top spins", ["rotating"]),
        ("the roses bloomed", ["blooming"]),
        ("the petals are blooming", ["blooming"]),
        ("she waved at me", ["waving"]),
        ("the river flows", ["water flowing"]),
        ("a bird flew away", ["flying"]),
        ("the camera zooms in", ["zooming in"]),
        ("zooming in on the cup", ["zooming in"]),
        ("the girl turned around", ["rotating"]),
        ("the candle burned", ["flames"]),
        ("it's raining", ["rain falling"]),
        ("the cat turns its head", ["turning its head"]),
        ("the wind blows", ["wind blowing"]),
        ("they danced", ["dancing"]),
    ],
)
def test_inflected_english_verbs_match_their_motions(instruction, words):
    result = plan_with_rules(instruction, "landscape")
    for word in words:
        assert word in result.prompt, (instruction, result.prompt)


@pytest.mark.parametrize(
    ("instruction", "absent"),
    [
        ("the ocean waves roll in", "waving"),  # waves of the sea, no waving hand
        ("a winding road at dusk", "wind blowing"),
        ("no more spinning", "turntable"),
        ("stop the raining", "rain falling"),
    ],
)
def test_lemma_matching_keeps_nouns_and_negation_apart(instruction, absent):
    assert absent not in plan_with_rules(instruction, "landscape").prompt


def test_the_prompt_says_where_its_subject_came_from():
    named = plan_with_rules("让这只狗摇尾巴", "animal")
    assert (named.subject, named.subject_source) == ("A dog", "instruction")
    picture = plan_with_rules("make it move", "animal", subject="A tabby cat")
    assert (picture.subject, picture.subject_source) == ("A tabby cat", "picture")
    generic = plan_with_rules("make it move", "animal")
    assert (generic.subject, generic.subject_source) == ("An animal", "category")
