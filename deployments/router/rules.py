"""The deterministic rules planner: a bilingual phrasebook of motions and speeds that turns a
Chinese or English instruction into a concise English video prompt, or revises the session's
last prompt for a follow-up ("slower", "now make it rain")."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from lemminflect import getAllLemmas

from deployments.router.protocol import GenerationParams
from deployments.router.subjects import find_subject, subject_phrase


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
        ("绽放", "开花", "盛开", "花开", "开放", "绽开", "bloom", "blossom", "flower open"),
        "flowers slowly blooming, petals unfolding",
    ),
    Motion(
        "rotate",
        (
            "旋转",
            "转动",
            "转一圈",
            "转圈",
            "转起来",
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
        "water_cycle",
        (
            "水循环",
            "循环",
            "蒸发",
            "水蒸气",
            "water cycle",
            "evaporate",
            "evaporating",
            "evaporation",
        ),
        "water evaporating from the ocean and forming clouds, vapor rising then falling as rain",
    ),
    Motion(
        "rain",
        ("下雨", "雨", "rain", "raining", "drizzle"),
        "rain falling, raindrops splashing, wet reflections",
    ),
    Motion("snow", ("下雪", "雪", "snow", "snowing", "snowflake"), "snowflakes gently falling"),
    Motion(
        "wind",
        ("风", "吹", "wind", "breeze", "windy", "blow", "blowing"),
        "wind blowing, leaves and hair swaying in the breeze",
    ),
    Motion(
        "flow",
        ("流动", "流淌", "水流", "河流", "瀑布", "flow", "flowing", "stream", "waterfall", "river"),
        "water flowing smoothly, ripples moving downstream",
    ),
    Motion(
        "wave",
        ("挥手", "招手", "wave", "waves hello", "waves at", "waves to", "waves goodbye", "waving"),
        "waving a hand in greeting",
    ),
    Motion(
        "ocean",
        ("海浪", "波浪", "浪花", "ocean", "sea waves", "waves crash", "surf"),
        "ocean waves rolling onto the shore, foam spreading",
    ),
    Motion(
        "walk",
        # Not a bare 走: "让车开走" is a car driving off, not walking.
        ("走路", "行走", "散步", "走动", "走过", "走来", "走向", "walk", "walking", "stroll"),
        "walking forward with natural steps",
    ),
    Motion(
        "run",
        ("奔跑", "跑", "奔驰", "run", "running", "sprint", "gallop"),
        "running energetically",
    ),
    Motion(
        "travel",
        ("开走", "开过", "行驶", "驶过", "驶", "航行", "骑", "drive", "sail", "ride", "cruise"),
        "moving steadily forward along its way",
    ),
    Motion("swim", ("游泳", "游动", "游", "swim"), "swimming gracefully through the water"),
    Motion("jump", ("跳跃", "跳起", "蹦", "jump", "leap", "hop"), "jumping up energetically"),
    Motion("nod", ("点头", "点点头", "nod"), "nodding gently"),
    Motion("turn_around", ("转身", "turn round"), "turning around to face the camera"),
    Motion("stretch", ("伸懒腰", "懒腰", "伸展", "stretch"), "stretching lazily"),
    Motion("rest", ("睡觉", "熟睡", "呼吸", "sleep", "breathe"), "breathing slowly while resting"),
    Motion(
        "fall",
        ("飘落", "落下", "掉落", "凋落", "falling leaves", "fall"),
        "falling gently through the air",
    ),
    Motion(
        "flutter",
        ("扇动", "扑腾", "flutter", "flap"),
        "wings fluttering lightly",
    ),
    Motion(
        "fly", ("飞翔", "飞", "fly", "flying", "soar"), "flying through the air, wings flapping"
    ),
    Motion("smile", ("微笑", "笑", "smile", "smiling", "laugh"), "smiling warmly, eyes softening"),
    Motion("blink", ("眨眼", "blink", "blinking"), "blinking naturally"),
    Motion("dance", ("跳舞", "舞蹈", "dance", "dancing"), "dancing rhythmically"),
    Motion(
        "zoom_in",
        ("推近", "放大", "拉近", "zoom in", "zoom into", "push in", "close up"),
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
        ("火焰", "燃烧", "火", "fire", "flame", "burn", "burning", "candle"),
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
        (
            "转头",
            "回头",
            "扭头",
            "turn head",
            "turn its head",
            "turn his head",
            "turn her head",
            "look around",
        ),
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

# Relative requests, checked before the absolute speed words ("慢一点" is slower, not "慢").
SLOWER_WORDS = (
    "slower",
    "more slowly",
    "slow down",
    "slow it down",
    "less fast",
    "慢一点",
    "慢一些",
    "慢点",
    "慢些",
    "更慢",
    "再慢",
    "放慢",
    "减速",
    "慢下来",
)
FASTER_WORDS = (
    "faster",
    "more quickly",
    "quicker",
    "speed up",
    "speed it up",
    "less slow",
    "快一点",
    "快一些",
    "快点",
    "快些",
    "更快",
    "再快",
    "加快",
    "加速",
)
MORE_WORDS = ("more", "stronger", "bigger", "more dynamic", "更多", "更明显", "更强", "大一点")
LESS_WORDS = (
    "less",
    "subtler",
    "smaller",
    "calmer",
    "更少",
    "少一点",
    "小一点",
    "弱一点",
    "轻一点",
)
INTENSITY_PHRASES = {
    "more": "stronger, more pronounced movement",
    "less": "subtle, gentle movement",
}

# Words that mark an instruction as a change to the earlier video rather than a new request.
FOLLOW_UP_WORDS = (
    "now",
    "also",
    "too",
    "as well",
    "add",
    "again",
    "instead",
    "still",
    "keep",
    "even",
    "现在",
    "也",
    "再",
    "还",
    "加上",
    "加点",
    "同时",
    "然后",
    "继续",
    "改成",
    "换成",
    "变成",
)
_NEGATION = re.compile(r"\b(?:no|not|stop|without|don't|dont|remove|never)\b[a-z' ]{0,14}$")
_CJK_NEGATION = re.compile(r"不要|(?<![特分区告级识])别|停止|停掉|去掉|不再|没有")

# A small built-in vocabulary of common English function and motion words: an instruction
# with none of them, no phrasebook word and fewer than two word-like tokens is junk.
_VOCABULARY_WORDS = """
    a an the this that these those it its it's he she they him her them his their my our your
    i me we you is are be was were been being am do does did make makes made let lets get
    have has had can could would should will please just very really so more less most
    and or but with without of in on at to from into onto over under up down out off
    around across through along toward towards away back forward left right here there
    now then also too again still some all both each every any no not
    move moves moving movement motion animate animated animation alive life live
    go goes going come comes coming turn turns turning look looks looking show shows showing
    shake shaking jump jumping swing swinging sway swaying bounce bouncing nod nodding roll
    rolling fall falling rise rising grow growing melt melting open opening close closing
    sit sitting stand standing swim swimming eat eating drink drinking sing singing talk
    talking play playing sparkle sparkling shimmer shimmering glow glowing twinkle twinkling
    flutter fluttering ripple rippling crawl crawling climb climbing hop hopping drive driving
    sail sailing tilt tilting orbit orbiting wiggle wiggling breathe breathing shine shining
    camera video scene picture image photo shot clip view background sky water tree trees
    leaves flower flowers cat dog bird fish man woman person people girl boy car cup
    slowly slow quickly quick fast gently gentle smoothly smooth softly bit little lot
"""
VOCABULARY = frozenset(_VOCABULARY_WORDS.split())
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SPEED_WORD = re.compile(
    r"\b(very |extremely )?(slowly|quickly|rapidly|swiftly|slow|fast|quick|rapid)\b", re.I
)
_STYLE_WORD = re.compile(
    r"\b(lighting|light|atmosphere|quality|cinematic|mood|4k|hd|detailed|realistic)\b"
)

SPEED_ADVERBS = {-2: "very slowly", -1: "slowly", 1: "quickly", 2: "very quickly"}
SPEED_ADJECTIVES = {-2: "very slow", -1: "slow", 1: "fast", 2: "very fast"}
MAX_REVISED_WORDS = 40
MIN_SMOOTH_FPS = 4  # below this a "slower" video turns choppy: add frames instead
MAX_REASONABLE_FPS = 24


SubjectSource = Literal["instruction", "picture", "category", "earlier"]


@dataclass(frozen=True)
class RulesResult:
    """`subject` is the prompt's head phrase; `subject_source` says where it came from: the
    instruction ("让这只狗摇尾巴"), the picture (the caller's `subject`), the category's
    generic words, or the earlier prompt that a follow-up revises."""

    prompt: str
    motion: str
    motion_names: tuple[str, ...]
    speed: str | None
    reason: str
    overrides: dict[str, float] = field(default_factory=dict)
    revised: bool = False
    subject: str = ""
    subject_source: SubjectSource = "category"


# English keywords match on lemmas: "pans", "panned" and "panning" all ask for "pan", "zooms in"
# for "zoom in". Forms whose lemma would mostly mislead are left out: "ocean waves" are no
# waving hand, a "winding road" no wind.
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MISLEADING_LEMMAS = {"waves": "wave", "winding": "wind", "wound": "wind"}


@functools.lru_cache(maxsize=8192)
def word_lemmas(word: str) -> frozenset[str]:
    """The word and every lemma lemminflect gives it, any part of speech ("flew" -> fly)."""
    lemmas = {word}
    for forms in getAllLemmas(word).values():
        lemmas.update(forms)
    lemmas.discard(_MISLEADING_LEMMAS.get(word, ""))
    return frozenset(lemmas)


@functools.lru_cache(maxsize=512)
def _lemmatised(lowered: str) -> tuple[tuple[tuple[int, frozenset[str]], ...], frozenset[str]]:
    """Each word of the text with its start and its lemmas, and all of them together
    (once per text: cached)."""
    words = tuple((m.start(), word_lemmas(m.group())) for m in _WORD.finditer(lowered))
    return words, frozenset().union(*(lemmas for _, lemmas in words))


@functools.cache
def _keyword_words(keyword: str) -> tuple[tuple[str, str], ...]:
    """Each word of an English keyword as written and as the lemma it matches: an inflected
    verb becomes its lemma ("rotating" -> rotate), other words stay ("lighting", "smaller").
    Empty for a Chinese keyword."""
    if _CJK.search(keyword):
        return ()
    words = []
    for word in keyword.split():
        readings = getAllLemmas(word)
        own = any(word in forms for forms in readings.values())
        verbs = readings.get("VERB", ())
        words.append((word, word if own or not verbs else verbs[0]))
    return tuple(words)


def _find(text: str, keyword: str) -> list[int]:
    """Where the keyword occurs in the lower-case text: substrings for Chinese, lemma
    sequences for English."""
    wanted = _keyword_words(keyword)
    if not wanted:
        return [m.start() for m in re.finditer(re.escape(keyword), text)] if keyword in text else []
    words, present = _lemmatised(text)
    if not any(form in present for form in wanted[0]):
        return []
    return [
        words[i][0]
        for i in range(len(words) - len(wanted) + 1)
        if all(
            written in lemmas or lemma in lemmas
            for (written, lemma), (_, lemmas) in zip(
                wanted, words[i : i + len(wanted)], strict=True
            )
        )
    ]


def _contains(text: str, keyword: str) -> bool:
    return bool(_find(text, keyword))


def _contains_exact(text: str, keyword: str) -> bool:
    """The keyword as written, for our own English prompts ("clouds drifting" is no "drift")."""
    if _CJK.search(keyword):
        return keyword in text
    return re.search(rf"(?<![a-z]){re.escape(keyword)}(?![a-z])", text) is not None


def _contains_any(text: str, keywords: tuple[str, ...]) -> bool:
    return any(_contains(text, k) for k in keywords)


def _looks_like_word(token: str) -> bool:
    """Pronounceable and not a keyboard run: has a vowel, no letter three times in a row, no
    four consonants in a row."""
    if len(token) < 3 or not re.search(r"[aeiouy]", token):
        return False
    if re.search(r"(.)\1\1", token) or re.search(r"[^aeiouy]{4}", token):
        return False
    return not any(token in row or token in row[::-1] for row in _KEYBOARD_ROWS)


def _is_meaningful(text: str) -> bool:
    lowered = text.lower()
    cjk = _CJK.findall(lowered)
    if cjk:
        return len(set(cjk)) > 1 or len(cjk) == 1  # "啊啊啊啊" is noise
    if find_motions(lowered) or _contains_any(lowered, _VAGUE_WORDS):
        return True
    if find_speed(lowered) or find_intensity(lowered) or find_negated_motions(lowered):
        return True
    tokens = _LATIN_TOKEN.findall(lowered)
    if any(token in VOCABULARY for token in tokens):
        return True
    return sum(_looks_like_word(token) for token in tokens) >= 2


# Compounds whose characters would otherwise read as motions (风景 is "landscape", not wind).
_CJK_COMPOUNDS = ("风景", "风格", "风光", "雪白", "火车", "烟囱", "风车")


def _keyword_negated(lowered: str, keyword: str) -> bool:
    """Whether the keyword is asked away: "stop the rain", "no more snow", "不要下雨"."""
    for start in _find(lowered, keyword):
        before = lowered[:start]
        if _CJK.search(keyword):
            if _CJK_NEGATION.search(before[-5:]):
                return True
        elif _NEGATION.search(before[-24:]):
            return True
    return False


@functools.lru_cache(maxsize=256)
def _motion_matches(lowered: str) -> tuple[tuple[Motion, bool], ...]:
    """Every phrasebook motion the text names, with whether it is negated (cached: one plan asks
    for the same text's motions several times)."""
    for compound in _CJK_COMPOUNDS:
        lowered = lowered.replace(compound, " ")
    found: list[tuple[Motion, bool]] = []
    for motion in MOTIONS:
        keywords = [k.lower() for k in motion.keywords if _contains(lowered, k.lower())]
        if keywords:
            negated = all(_keyword_negated(lowered, k) for k in keywords)
            found.append((motion, negated))
    return tuple(found)


def find_motions(text: str) -> list[Motion]:
    return [motion for motion, negated in _motion_matches(text.lower()) if not negated]


def find_negated_motions(text: str) -> list[Motion]:
    return [motion for motion, negated in _motion_matches(text.lower()) if negated]


def find_speed_change(text: str) -> int:
    """-1 for "slower", +1 for "faster", 0 when the text asks for neither."""
    lowered = text.lower()
    if _contains_any(lowered, SLOWER_WORDS):
        return -1
    if _contains_any(lowered, FASTER_WORDS):
        return 1
    return 0


def find_speed(text: str) -> str | None:
    change = find_speed_change(text)
    if change:
        return SPEED_ADVERBS[change]
    lowered = text.lower()
    for keywords, speed in SPEEDS:
        if any(_contains(lowered, k) for k in keywords):
            return speed
    return None


def find_intensity(text: str) -> str | None:
    """Whether the text asks for "more" or "less" movement (speed and negation phrases such
    as "more slowly" and "no more rain" set aside)."""
    lowered = text.lower()
    for phrase in SLOWER_WORDS + FASTER_WORDS + ("no more", "not more"):
        lowered = lowered.replace(phrase, " ")
    if _contains_any(lowered, MORE_WORDS):
        return "more"
    if _contains_any(lowered, LESS_WORDS):
        return "less"
    return None


def is_follow_up(text: str) -> bool:
    """Whether the instruction changes an earlier video rather than asking for a new one."""
    lowered = text.lower()
    return bool(
        find_speed_change(lowered)
        or find_intensity(lowered)
        or find_negated_motions(lowered)
        or _contains_any(lowered, FOLLOW_UP_WORDS)
    )


def plan_with_rules(
    instruction: str,
    category: str,
    history: Sequence[str] = (),
    previous: GenerationParams | None = None,
    base: GenerationParams | None = None,
    subject: str | None = None,
) -> RulesResult:
    """Deterministic: the same arguments always give the same prompt.

    With a session `history`, a follow-up (a remix, i.e. `previous` is set, or an instruction
    such as "slower" / "now make it rain") revises the last prompt; speed changes come with
    parameter overrides relative to `previous`, else to `base` (the settings this request
    would otherwise get). An empty or meaningless instruction always gives "slight movement".

    A fresh prompt starts with the subject the instruction names ("让这只狗摇尾巴" -> "A dog"),
    else `subject` (the caller's head phrase for the picture, e.g. "A tabby cat"), else the
    category's generic words ("An animal").
    """
    text = instruction.strip()
    if not text or not _is_meaningful(text):
        return _fresh(text, category, subject, junk=True)
    earlier = history[-1].strip() if history else ""
    if earlier.isascii() and earlier and (previous is not None or is_follow_up(text)):
        return revise_prompt(earlier, text, previous or base)
    return _fresh(text, category, subject)


def _picture_subject(subject: str | None) -> str | None:
    """The caller's head phrase as one clause of English ("A tabby cat"), or None."""
    words = (subject or "").replace(",", " ").split()
    phrase = " ".join(words)
    if not phrase or not phrase.isascii():
        return None
    return phrase[:1].upper() + phrase[1:]


def _head(text: str, category: str, subject: str | None, junk: bool) -> tuple[str, str]:
    """The prompt's head phrase and where it came from (the category stays the caller's: it
    decides whether a subject named in the instruction overrides the picture's)."""
    found = None if junk else find_subject(text)
    if found is not None:
        return subject_phrase(found), "instruction"
    picture = _picture_subject(subject)
    if picture is not None:
        return picture, "picture"
    return CATEGORY_SUBJECTS.get(category, "The scene"), "category"


def _fresh(text: str, category: str, subject: str | None = None, junk: bool = False) -> RulesResult:
    head, source = _head(text, category, subject, junk)
    atmosphere = CATEGORY_ATMOSPHERE.get(category, "natural lighting")
    speed = find_speed(text)
    motions = [] if junk else find_motions(text)[:2]
    if junk:
        motion, names, reason = DEFAULT_MOTION, (), "empty or meaningless instruction"
    elif motions:
        motion = ", ".join(m.phrase for m in motions)
        names = tuple(m.name for m in motions)
        reason = "phrasebook match: " + ", ".join(names)
    elif _contains_any(text.lower(), _VAGUE_WORDS):
        motion, names, reason = CATEGORY_MOTIONS[category], (), "vague request: category motion"
    else:
        motion, names = CATEGORY_MOTIONS[category], ()
        reason = "no known motion words: category motion"

    speed_words = f", moving {speed}" if speed and speed not in motion else ""
    prompt = f"{head}, {motion}{speed_words}, {atmosphere}, smooth motion, high quality"
    return RulesResult(
        prompt=prompt,
        motion=motion,
        motion_names=names,
        speed=speed,
        reason=reason,
        subject=head,
        subject_source=source,
    )


# Clauses of the phrasebook's own motions: never mistaken for style words ("light shifting").
_MOTION_CLAUSES = frozenset(
    clause.strip().lower()
    for phrase in (
        *(m.phrase for m in MOTIONS),
        *CATEGORY_MOTIONS.values(),
        *INTENSITY_PHRASES.values(),
        DEFAULT_MOTION,
    )
    for clause in phrase.split(",")
)


def _is_style(clause: str) -> bool:
    lowered = clause.lower()
    if lowered in _MOTION_CLAUSES:
        return False
    return lowered in ("smooth motion", "high quality") or bool(_STYLE_WORD.search(lowered))


def _speed_level(text: str) -> int:
    match = _SPEED_WORD.search(text)
    if match is None:
        return 0
    level = -1 if match.group(2).lower().startswith("slow") else 1
    return level * 2 if match.group(1) else level


def _restyle_speed(clause: str, level: int) -> str:
    """The clause with its speed words set to `level` (removed for 0)."""

    def swap(match: re.Match[str]) -> str:
        if level == 0:
            return ""
        table = SPEED_ADVERBS if match.group(2).lower().endswith("ly") else SPEED_ADJECTIVES
        return table[level]

    return re.sub(r"\s+", " ", _SPEED_WORD.sub(swap, clause)).strip()


def _mentions(prompt: str, motion: Motion) -> bool:
    lowered = prompt.lower()
    clauses = [c.strip() for c in motion.phrase.split(",")]
    words = [k for k in motion.keywords if not _CJK.search(k) and len(k) >= 3]
    return any(c in lowered for c in clauses) or any(_contains_exact(lowered, w) for w in words)


def _speed_overrides(change: int, ref: GenerationParams | None) -> dict[str, float]:
    """Slower: fps down by a third (more frames once fps is already low); faster: fps up by
    half, within reason. Empty without settings to be relative to."""
    if ref is None or change == 0:
        return {}
    if change < 0:
        fps = max(MIN_SMOOTH_FPS, round(ref.fps * 2 / 3))
        if fps < ref.fps:
            return {"fps": fps}
        return {"num_frames": round(ref.num_frames * 1.5)}
    fps = min(MAX_REASONABLE_FPS, round(ref.fps * 1.5))
    return {"fps": fps} if fps > ref.fps else {}


def _fit(clauses: list[str], limit: int) -> list[str]:
    """Drop style clauses from the end, then the oldest motions, until the prompt fits."""
    clauses = list(clauses)
    while sum(len(c.split()) for c in clauses) > limit and len(clauses) > 2:
        styles = [i for i, c in enumerate(clauses) if i > 0 and _is_style(c)]
        clauses.pop(styles[-1] if styles else 1)
    return clauses


def revise_prompt(earlier: str, text: str, ref: GenerationParams | None = None) -> RulesResult:
    """The earlier prompt changed as the follow-up asks: motions added (or removed when asked
    away), speed words replaced, intensity adjusted; overrides relative to `ref`."""
    clauses = [c.strip() for c in earlier.split(",") if c.strip()]
    changes: list[str] = []

    removed = [m for m in find_negated_motions(text) if _mentions(earlier, m)]
    for motion in removed:
        clauses = [clauses[0]] + [c for c in clauses[1:] if not _mentions(c, motion)]
        changes.append(f"-{motion.name}")

    added = [m for m in find_motions(text) if not _mentions(earlier, m)][:2]
    intensity = find_intensity(text)
    new_clauses = [c.strip() for m in added for c in m.phrase.split(",")]
    changes += [f"+{m.name}" for m in added]
    if intensity:
        opposite = {c.strip() for p in INTENSITY_PHRASES.values() for c in p.split(",")}
        clauses = [c for c in clauses if c.lower() not in opposite]
        new_clauses += [c.strip() for c in INTENSITY_PHRASES[intensity].split(",")]
        changes.append(f"{intensity} movement")

    old_level = level = _speed_level(earlier)
    change = find_speed_change(text)
    absolute = find_speed(text) if not change else None
    if change:
        level = max(-2, min(2, old_level + change))
    elif absolute and added:
        # "then zoom out slowly": the speed belongs to the new motion, not the whole video.
        if not any(_SPEED_WORD.search(c) for c in new_clauses):
            new_clauses.append(f"moving {absolute}")
    elif absolute:
        level = -1 if "slow" in absolute else 1
        change = (level > old_level) - (level < old_level)
    if change:
        changes.append("slower" if change < 0 else "faster")
        restyled = [_restyle_speed(c, level) for c in clauses]
        clauses = [c for c in restyled if c and c.lower() != "moving"]
        if level and not any(_SPEED_WORD.search(c) for c in clauses + new_clauses):
            new_clauses.append(f"moving {SPEED_ADVERBS[level]}")

    at = next((i for i, c in enumerate(clauses) if i > 0 and _is_style(c)), len(clauses))
    clauses = _fit(clauses[:at] + new_clauses + clauses[at:], MAX_REVISED_WORDS)
    tail = next((i for i, c in enumerate(clauses) if i > 0 and _is_style(c)), len(clauses))
    motion = ", ".join(clauses[1:tail]) or clauses[0]
    names = tuple(m.name for m in MOTIONS if _mentions(motion, m))
    reason = "follow-up revision of the last prompt: " + (
        ", ".join(changes) if changes else "no recognised change, earlier prompt kept"
    )
    return RulesResult(
        prompt=", ".join(clauses),
        motion=motion,
        motion_names=names,
        speed=SPEED_ADVERBS.get(level),
        reason=reason,
        overrides=_speed_overrides(change, ref),
        revised=True,
        subject=clauses[0],
        subject_source="earlier",
    )
