"""Clarifying questions of the rules planner: when a conversation message is a question about
the picture rather than an instruction, propose the most plausible video and ask to confirm,
in the user's language."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_QUESTION = re.compile(r"[?？]\s*$|吗|怎么|为什么|为何|如何|是什么|什么样|哪|能不能|可不可以")
_EN_QUESTION = re.compile(
    r"\?\s*$|^(how|why|what|which|where|when|who|can|could|would|is|are|does|do)\b", re.I
)

# How the service describes a proposed motion in Chinese; others fall back to the English prompt.
ZH_DESCRIPTIONS = {
    "water_cycle": "水蒸气上升然后变成雨",
    "bloom": "花朵慢慢绽放",
    "rotate": "它旋转一圈",
    "rain": "下雨的场景",
    "snow": "雪花飘落",
    "wind": "风吹动的样子",
    "flow": "水流动起来",
    "ocean": "海浪拍打岸边",
    "clouds": "云在天上飘动",
    "fire": "火焰跳动",
    "smoke": "热气升腾",
    "walk": "走路的样子",
    "fly": "飞翔的样子",
    "smile": "微笑的样子",
}


def is_question(text: str) -> bool:
    text = text.strip()
    if not text:
        return False
    pattern = _CJK_QUESTION if _CJK.search(text) else _EN_QUESTION
    return pattern.search(text) is not None


def clarifying_question(text: str, motion_names: tuple[str, ...], motion: str) -> str:
    """ "您是想展示水蒸气上升然后变成雨吗？" for Chinese, "Do you want to show ...?" otherwise."""
    if _CJK.search(text):
        described = [ZH_DESCRIPTIONS[n] for n in motion_names if n in ZH_DESCRIPTIONS]
        if described:
            return f"您是想展示{'，'.join(described)}吗？"
        return f"您是想展示这样的画面吗：{motion}？"
    return f"Do you want to show {motion}?"
