"""The planners as LangChain runnables: the LLM planner (prompt | ChatOpenAI structured output |
checks) with the deterministic rules planner as its fallback, joined by `with_fallbacks`."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
import pydantic
from langchain_core.exceptions import ModelRefusalError
from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from deployments.router.clarify import clarifying_question, is_question
from deployments.router.config import LLMConfig
from deployments.router.params import OVERRIDABLE
from deployments.router.protocol import GenerationParams, PlanRequest
from deployments.router.rules import plan_with_rules
from deployments.router.understanding import Understanding

MAX_PROMPT_WORDS = 40  # longer prompts are cut at a clause boundary; 3x longer ones rejected
ERROR_KEY = "error"  # where with_fallbacks hands the LLM's exception to the rules planner


@dataclass(frozen=True)
class Fallback:
    """Why the LLM planner's answer was not used."""

    reason: str  # timeout | connection | http_error | invalid_json | missing_fields | ...
    exception: str
    message: str


@dataclass(frozen=True)
class PlanDraft:
    """What a planner decided, before the parameters are resolved."""

    planner: Literal["llm", "rules"]
    prompt: str
    motion: str
    reason: str
    action: Literal["generate", "clarify"] = "generate"
    question: str | None = None
    negative_prompt: str | None = None  # extra terms; the engine adds the configured ones
    overrides: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    fallback: Fallback | None = None
    subject: str | None = None  # the prompt's subject phrase, where the planner knows it


class ParamOverrides(BaseModel):
    """Generation settings the instruction asks to change; null leaves a setting as it is."""

    num_frames: int | None = Field(default=None, description="video length in frames")
    num_inference_steps: int | None = Field(default=None, description="denoising steps")
    guidance_scale: float | None = Field(default=None, description="prompt adherence")
    fps: int | None = Field(default=None, description="playback frames per second")


class VideoPlan(BaseModel):
    """The structured answer the LLM must give (sent as a strict JSON schema)."""

    action: Literal["generate", "clarify"] = Field(
        description="generate, or clarify only when the instruction is truly ambiguous"
    )
    prompt: str = Field(
        description="English video prompt, at most 20 words: subject, action, direction, "
        "speed, atmosphere. Always filled; when asking, your best guess"
    )
    negative_prompt: str = Field(
        description="a few comma-separated English words to avoid, or an empty string"
    )
    motion: str = Field(description="the motion alone, in a few English words")
    overrides: ParamOverrides = Field(description="only what the instruction asks to change")
    question: str | None = Field(
        description="for clarify: one short question in the user's language; otherwise null"
    )


class InvalidPlanOutput(ValueError):
    """The reply parsed but is not a usable plan (empty, non-English or rambling prompt)."""


SYSTEM_PROMPT = """\
You are a careful prompt engineer for I2VGen-XL, an image-to-video diffusion model. A user \
uploaded one picture and wrote an instruction, in Chinese or English, saying how the picture \
should move. You write the English text prompt the model is given.

The prompt:
- English only, one line, at most 20 words, short comma-separated phrases.
- The subject in a few words (the one given below: what the instruction names, else what the \
picture shows), then the action with its direction and speed, then the \
atmosphere (light, mood). Example: "A ceramic cup rotating slowly clockwise on a turntable, \
soft studio light, calm atmosphere".
- Only motion the picture can plausibly show: no new subjects, no text, no scene cuts.
- No explanations, no quotes, no words in other languages.
- For an empty or meaningless instruction the motion is "slight movement".

Follow-ups: the session's earlier prompts are listed oldest first. When the instruction \
continues them ("slower", "faster", "more", "less", "now make it rain", "慢一点", \
"现在让它下雨"), revise the LAST earlier prompt: keep its subject and motions and change only \
what is asked (replace the speed words; add a new motion to the earlier ones). Otherwise write \
a fresh prompt.

Overrides: the settings the video would use are given. Set an override only when the \
instruction asks for it: "slower" lowers fps by about a third (not below 4), "faster" raises \
it by about half (not above 24), a longer or shorter video changes num_frames. Leave every \
other override null.

negative_prompt: a few English words for what this video must avoid, or "".
motion: the motion alone, in a few English words.
action: "generate"; "clarify" only when the instruction is truly ambiguous and asking is \
allowed. Even when you ask, fill prompt with your best guess. question: for clarify, one short \
question in the user's language; otherwise null."""

USER_TEMPLATE = """\
Instruction: {instruction}
Picture category: {category}
What the picture shows (classifier labels, best first): {labels}
Subject: {subject}
Earlier prompts of this session, oldest first:
{history}
{settings_label}: {settings}
Asking a clarifying question: {clarify}"""

PROMPT = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", USER_TEMPLATE)])


def planner_input(
    request: PlanRequest,
    base: GenerationParams | None = None,
    understanding: Understanding | None = None,
) -> dict[str, Any]:
    """The chain's input: the request, the settings it would get without overrides and what the
    request is about (subject and category)."""
    return {"request": request, "base": base, "understanding": understanding}


def _subject_text(understanding: Understanding | None) -> str:
    if understanding is None or understanding.head is None:
        return "not named; describe what the picture shows"
    if understanding.subject is not None:
        return f"{understanding.head} (named in the instruction)"
    return f"{understanding.head} (what the picture shows)"


def _settings_text(params: GenerationParams | None) -> str:
    if params is None:
        return "unknown"
    return ", ".join(f"{name}={getattr(params, name)}" for name in OVERRIDABLE)


def prompt_variables(inputs: dict[str, Any]) -> dict[str, str]:
    request: PlanRequest = inputs["request"]
    history = "\n".join(f"{i}. {p}" for i, p in enumerate(request.history, 1)) or "(none)"
    continued = request.previous is not None
    understanding: Understanding | None = inputs.get("understanding")
    labels = ", ".join(f"{lb.name} ({lb.score:.2f})" for lb in request.labels[:5]) or "none"
    return {
        "instruction": request.instruction.strip() or "(empty)",
        "category": understanding.category if understanding else request.category,
        "labels": labels,
        "subject": _subject_text(understanding),
        "history": history,
        "settings_label": "Settings of the video being continued"
        if continued
        else "Settings this video would use",
        "settings": _settings_text(request.previous or inputs.get("base")),
        "clarify": "allowed"
        if request.allow_clarify
        else "not possible for this request; always answer generate",
    }


_PUNCTUATION = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


def to_ascii(text: str) -> str:
    """Typographic punctuation and accents folded to ASCII; stray symbols dropped. Raises
    InvalidPlanOutput when letters of another script remain (not English)."""
    folded = unicodedata.normalize("NFKD", text.translate(_PUNCTUATION))
    kept = []
    for ch in folded:
        if ch.isascii():
            kept.append(ch)
        elif unicodedata.category(ch).startswith("L"):
            raise InvalidPlanOutput(f"prompt is not English: {text[:60]!r}")
    return " ".join("".join(kept).split())


def clean_prompt(text: str, limit: int = MAX_PROMPT_WORDS) -> tuple[str, bool]:
    """The prompt as ASCII English within `limit` words, and whether it was cut.

    A prompt over the limit is cut politely at a comma (subject and motion come first, so
    trailing style words go); one over three times the limit is the model ignoring its
    instructions and is rejected, as are empty or non-English ones."""
    prompt = to_ascii(text).strip(" \"'").rstrip(".")
    if not re.search(r"[A-Za-z]{2,}", prompt):
        raise InvalidPlanOutput("empty prompt")
    words = prompt.split()
    if len(words) > 3 * limit:
        raise InvalidPlanOutput(f"prompt rambles ({len(words)} words)")
    if len(words) <= limit:
        return prompt, False
    kept: list[str] = []
    for clause in (c.strip() for c in prompt.split(",")):
        if sum(len(c.split()) for c in kept) + len(clause.split()) > limit:
            break
        kept.append(clause)
    cut = ", ".join(kept) if kept else " ".join(words[:limit])
    return cut.rstrip(" ,;:"), True


def clean_overrides(overrides: ParamOverrides) -> tuple[dict[str, float], list[str]]:
    """Positive, finite overrides of the settings the parameter engine honours; and the
    names of those dropped. Range limits are the parameter engine's job."""
    kept: dict[str, float] = {}
    dropped: list[str] = []
    for name in OVERRIDABLE:
        value = getattr(overrides, name)
        if value is None:
            continue
        if math.isfinite(value) and value > 0:
            kept[name] = value
        else:
            dropped.append(name)
    return kept, dropped


def accept_reply(request: PlanRequest, reply: VideoPlan) -> PlanDraft:
    """Checks the LLM's parsed reply and turns it into a draft (raises to fall back)."""
    prompt, truncated = clean_prompt(reply.prompt)
    try:
        motion = to_ascii(reply.motion).strip() or prompt
        negative = to_ascii(reply.negative_prompt).strip() or None
    except InvalidPlanOutput:
        motion, negative = prompt, None
    overrides, dropped = clean_overrides(reply.overrides)
    question = (reply.question or "").strip() or None
    action, reason = "generate", "LLM structured reply"
    if reply.action == "clarify" and request.allow_clarify and question:
        action, reason = "clarify", "LLM asks to clarify"
    elif reply.action == "clarify":
        why = "this request cannot ask" if not request.allow_clarify else "no question given"
        reason = f"LLM asked to clarify but {why}: its best guess is used"
        question = None
    detail: dict[str, Any] = {"truncated": truncated}
    if dropped:
        detail["dropped_overrides"] = dropped
    return PlanDraft(
        planner="llm",
        prompt=prompt,
        motion=motion,
        reason=reason,
        action=action,
        question=question if action == "clarify" else None,
        negative_prompt=negative,
        overrides=overrides,
        detail=detail,
    )


def _validation_reason(error: pydantic.ValidationError) -> str:
    kinds = {e["type"] for e in error.errors()}
    if "json_invalid" in kinds:
        return "invalid_json"
    if "missing" in kinds:
        return "missing_fields"
    return "schema_mismatch"  # wrong types or values, e.g. an unknown action


def describe_failure(error: BaseException) -> Fallback:
    """A short, metrics-friendly reason for an LLM failure, with its type and message."""
    if isinstance(error, openai.APITimeoutError):  # before APIConnectionError, its base
        reason = "timeout"
    elif isinstance(error, openai.APIConnectionError):
        reason = "connection"
    elif isinstance(error, openai.APIStatusError):
        reason = "http_error"
    elif isinstance(error, openai.LengthFinishReasonError):
        reason = "truncated"
    elif isinstance(error, (ModelRefusalError, openai.ContentFilterFinishReasonError)):
        reason = "refused"
    elif isinstance(error, pydantic.ValidationError):
        reason = _validation_reason(error)
    elif isinstance(error, InvalidPlanOutput):
        reason = "invalid_output"
    else:
        reason = "error"
    if isinstance(error, pydantic.ValidationError):
        message = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors()[:3]
        )
    else:
        message = " ".join(str(error).split())
    return Fallback(reason=reason, exception=type(error).__name__, message=message[:160])


def rules_draft(inputs: dict[str, Any]) -> PlanDraft:
    """The rules planner as a draft; `inputs[ERROR_KEY]` (set by with_fallbacks) says why it
    stands in for the LLM."""
    request: PlanRequest = inputs["request"]
    understanding: Understanding | None = inputs.get("understanding")
    result = plan_with_rules(
        request.instruction,
        understanding.category if understanding else request.category,
        request.history,
        request.previous,
        inputs.get("base"),
        subject=understanding.picture_subject if understanding else None,
    )
    error = inputs.get(ERROR_KEY)
    asks = request.allow_clarify and is_question(request.instruction)
    return PlanDraft(
        planner="rules",
        prompt=result.prompt,
        motion=result.motion,
        reason=result.reason,
        action="clarify" if asks else "generate",
        question=(
            clarifying_question(request.instruction, result.motion_names, result.motion)
            if asks
            else None
        ),
        overrides=dict(result.overrides),
        detail={
            "motions": list(result.motion_names),
            "speed": result.speed,
            "subject_source": result.subject_source,
        },
        fallback=describe_failure(error) if error is not None else None,
        subject=result.subject,
    )


def _lambda(func: Any) -> RunnableLambda:
    """A RunnableLambda for a cheap pure function that also runs inline under ainvoke
    (without `afunc`, LangChain would hand it to a thread pool)."""

    async def afunc(inputs: Any) -> Any:
        return func(inputs)

    return RunnableLambda(func, afunc=afunc, name=func.__name__)


def make_chat_model(config: LLMConfig) -> ChatOpenAI:
    return ChatOpenAI(
        model=config.model,
        base_url=config.resolved_base_url(),
        api_key=config.resolved_api_key(),
        timeout=config.timeout_s,
        max_retries=config.max_retries,
        temperature=config.temperature,
        use_responses_api=False,  # generic OpenAI-compatible servers speak Chat Completions
    )


def build_planner(
    config: LLMConfig, chat_model: BaseChatModel | None = None
) -> Runnable[dict[str, Any], PlanDraft]:
    """One LLM round-trip with a strict JSON-schema `response_format` (vLLM, Ollama, SGLang
    and OpenAI all honour it), checked; on any exception the rules planner answers instead."""
    model = chat_model or make_chat_model(config)
    ask = (
        _lambda(prompt_variables)
        | PROMPT
        | model.with_structured_output(VideoPlan, method="json_schema")
    )

    # A plain function around `ask` rather than RunnablePassthrough.assign, whose sync path
    # starts a thread pool on every call (~5 ms on two cores).
    def plan_with_llm(inputs: dict[str, Any], config: RunnableConfig) -> PlanDraft:
        return accept_reply(inputs["request"], ask.invoke(inputs, config))

    async def aplan_with_llm(inputs: dict[str, Any], config: RunnableConfig) -> PlanDraft:
        return accept_reply(inputs["request"], await ask.ainvoke(inputs, config))

    llm = RunnableLambda(plan_with_llm, afunc=aplan_with_llm, name="llm_planner")
    return llm.with_fallbacks([_lambda(rules_draft)], exception_key=ERROR_KEY)
