"""The deterministic rules planner: a bilingual phrasebook of motions and speeds that turns a
Chinese or English instruction into a concise English video prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Motion:
    """One entry of the phrasebook: the words that ask for it and the English it becomes."""

    name: str
    keywords: tuple[str, ...]
    phrase: str


# Order matters: the first entries are the more specific ones.
MOTIONS: tuple[Motion, ...] = (
    Motion(
        "bloom",
        ("绽放", "开花", "盛开", "花开", "bloom", "blossom", "flower open"),
        "flowers slowly blooming, petals unfolding",
    ),
    Motion(
        "rotate",
        (
            "旋转",
            "转动",
            "转一圈",
            "转圈",
            "360",
            "rotate",
            "rotating",
            "spin",
            "turn around",
            "turntable",
        ),
        "rotating on a turntable, camera orbiting around it",
    ),
    Motion(
        "rain",
        ("下雨", "雨", "rain", "raining", "drizzle"),
        "rain falling, raindrops splashing, wet reflections",
    ),
    Motion("snow", ("下雪", "雪", "snow", "snowing", "snowflake"), "snowflakes gently falling"),
    Motion(
        "wind",
        ("风", "吹", "wind", "breeze", "windy", "blowing"),
        "wind blowing, leaves and hair swaying in the breeze",
    ),
    Motion(
        "flow",
        ("流动", "流淌", "水流", "河流", "瀑布", "flow", "flowing", "stream", "waterfall", "river"),
        "water flowing smoothly, ripples moving downstream",
    ),
    Motion(
        "wave",
        ("挥手", "招手", "wave", "waves hello", "waves at", "waving"),
        "waving a hand in greeting",
    ),
    Motion(
        "ocean",
        ("海浪", "波浪", "浪花", "ocean", "sea waves", "waves crash", "surf"),
        "ocean waves rolling onto the shore, foam spreading",
    ),
    Motion(
        "walk",
        ("走路", "行走", "散步", "走", "walk", "walking", "stroll"),
        "walking forward with natural steps",
    ),
    Motion("run", ("奔跑", "跑", "run", "running", "sprint"), "running energetically"),
    Motion(
        "fly", ("飞翔", "飞", "fly", "flying", "soar"), "flying through the air, wings flapping"
    ),
    Motion("smile", ("微笑", "笑", "smile", "smiling", "laugh"), "smiling warmly, eyes softening"),
    Motion("blink", ("眨眼", "blink", "blinking"), "blinking naturally"),
    Motion("dance", ("跳舞", "舞蹈", "dance", "dancing"), "dancing rhythmically"),
    Motion(
        "zoom_in",
        ("推近", "放大", "拉近", "zoom in", "push in", "close up"),
        "camera slowly zooming in",
    ),
    Motion(
        "zoom_out",
        ("拉远", "缩小", "zoom out", "pull back", "pull out"),
        "camera slowly zooming out",
    ),
    Motion(
        "pan",
        ("平移", "摇镜", "横移", "pan", "panning", "tracking shot"),
        "camera panning smoothly from left to right",
    ),
    Motion("clouds", ("云", "cloud", "clouds", "sky moving"), "clouds drifting across the sky"),
    Motion(
        "fire",
        ("火焰", "燃烧", "火", "fire", "flame", "burning", "candle"),
        "flames flickering and dancing",
    ),
    Motion(
        "smoke",
        ("烟", "蒸汽", "冒气", "热气", "smoke", "steam", "steaming"),
        "steam rising and curling upward",
    ),
    Motion(
        "light",
        ("灯光", "光影", "日落", "日出", "sunset", "sunrise", "light changing", "lighting"),
        "light shifting gradually, shadows moving",
    ),
    Motion("tail", ("摇尾巴", "尾巴", "wag", "tail"), "wagging its tail happily"),
    Motion(
        "head_turn",
        ("转头", "回头", "扭头", "turn head", "look around", "looks around"),
        "turning its head to look around",
    ),
    Motion("float", ("漂浮", "飘", "float", "floating", "drift"), "floating and drifting gently"),
)

SPEEDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("非常慢", "很慢", "缓缓", "慢慢", "缓慢", "慢", "slowly", "slow", "gently", "gentle"),
        "slowly",
    ),
    (("非常快", "很快", "快速", "迅速", "快", "quickly", "fast", "rapid", "quick"), "quickly"),
)

# What a vague but meaningful request ("让它动起来", "make it move") means for each category.
CATEGORY_MOTIONS: dict[str, str] = {
    "person": "subtle natural movement, breathing and blinking, hair moving slightly",
    "animal": "moving naturally, turning its head and shifting its body",
    "landscape": "clouds drifting, leaves swaying, water shimmering in the light",
    "still_life": "slowly rotating, soft light shifting across its surface",
}

CATEGORY_SUBJECTS: dict[str, str] = {
    "person": "A person",
    "animal": "An animal",
    "landscape": "A natural landscape",
    "still_life": "An object",
}

CATEGORY_ATMOSPHERE: dict[str, str] = {
    "person": "cinematic soft lighting",
    "animal": "natural daylight",
    "landscape": "serene atmosphere, golden light",
    "still_life": "clean studio lighting",
}

DEFAULT_MOTION = "slight movement"

_VAGUE_WORDS = (
    "动起来",
    "动一下",
    "动一动",
    "让它动",
    "活起来",
    "动态",
    "move",
    "moving",
    "animate",
    "come alive",
    "come to life",
    "motion",
)

# A word counts as meaningful when it has a CJK character or a vowel-bearing Latin word.
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[a-zA-Z]*[aeiouyAEIOUY][a-zA-Z]*")


@dataclass(frozen=True)
class RulesResult:
    prompt: str
    motion: str
    motion_names: tuple[str, ...]
    speed: str | None
    reason: str


def _contains(text: str, keyword: str) -> bool:
    if _CJK.search(keyword):
        return keyword in text
    return re.search(rf"(?<![a-z]){re.escape(keyword)}(?![a-z])", text) is not None


def _is_meaningful(text: str) -> bool:
    if _CJK.search(text):
        return True
    words = _LATIN_WORD.findall(text)
    return any(len(word) >= 2 for word in words)


# Compounds whose characters would otherwise read as motions (风景 is "landscape", not wind).
_CJK_COMPOUNDS = ("风景", "风格", "风光", "雪白", "火车", "烟囱")


def find_motions(text: str) -> list[Motion]:
    lowered = text.lower()
    for compound in _CJK_COMPOUNDS:
        lowered = lowered.replace(compound, " ")
    found: list[Motion] = []
    for motion in MOTIONS:
        if any(_contains(lowered, k.lower()) for k in motion.keywords):
            found.append(motion)
    return found


def find_speed(text: str) -> str | None:
    lowered = text.lower()
    for keywords, speed in SPEEDS:
        if any(_contains(lowered, k) for k in keywords):
            return speed
    return None


def plan_with_rules(instruction: str, category: str) -> RulesResult:
    """Deterministic: the same instruction and category always give the same prompt."""
    text = instruction.strip()
    subject = CATEGORY_SUBJECTS.get(category, "The scene")
    atmosphere = CATEGORY_ATMOSPHERE.get(category, "natural lighting")
    speed = find_speed(text)

    if not text or not _is_meaningful(text):
        motion, names, reason = DEFAULT_MOTION, (), "empty or meaningless instruction"
    else:
        motions = find_motions(text)[:2]
        if motions:
            motion = ", ".join(m.phrase for m in motions)
            names = tuple(m.name for m in motions)
            reason = "phrasebook match: " + ", ".join(names)
        elif any(_contains(text.lower(), w) for w in _VAGUE_WORDS):
            motion, names, reason = CATEGORY_MOTIONS[category], (), "vague request: category motion"
        else:
            motion, names = CATEGORY_MOTIONS[category], ()
            reason = "no known motion words: category motion"

    speed_words = f", moving {speed}" if speed and speed not in motion else ""
    prompt = f"{subject}, {motion}{speed_words}, {atmosphere}, smooth motion, high quality"
    return RulesResult(prompt=prompt, motion=motion, motion_names=names, speed=speed, reason=reason)
