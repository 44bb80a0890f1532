"""The router engine: instruction + picture category (+ session history) -> Plan. Runs without
Ray; the LLM planner when configured, with the rules planner as its fallback."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Any

from langchain_core.language_models import BaseChatModel

from deployments.router.config import RouterConfig
from deployments.router.llm import PlanDraft, build_planner, planner_input, rules_draft
from deployments.router.params import resolve_params
from deployments.router.protocol import Decision, GenerationParams, Plan, PlanRequest
from deployments.router.subjects import warm_up
from deployments.router.understanding import Understanding, understand
from i2v_core import metrics

logger = logging.getLogger("ray.serve")


def merge_negative(configured: str, extra: str | None) -> str:
    """The configured negative prompt plus the planner's extra terms, without repeats."""
    terms = [t.strip() for t in configured.split(",") if t.strip()]
    seen = {t.lower() for t in terms}
    for term in (t.strip() for t in (extra or "").split(",")):
        if term and term.lower() not in seen:
            terms.append(term)
            seen.add(term.lower())
    return ", ".join(terms)


class RouterEngine:
    """Plans one request. `fallbacks` counts the LLM answers replaced by the rules planner,
    by reason (timeout, connection, http_error, invalid_json, missing_fields, ...)."""

    def __init__(
        self,
        config: RouterConfig,
        rng: random.Random | None = None,
        chat_model: BaseChatModel | None = None,
    ):
        self.config = config
        self._rng = rng
        self.fallbacks: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._chain = build_planner(config.llm, chat_model) if config.llm is not None else None
        warm_up()  # the segmenter, dictionaries and lexicon load here, not on a first request

    def plan(self, request: PlanRequest) -> Plan:
        started = time.perf_counter()
        inputs = self._inputs(request)
        draft = self._chain.invoke(inputs) if self._chain is not None else rules_draft(inputs)
        return self._finish(request, inputs["understanding"], draft, started)

    async def aplan(self, request: PlanRequest) -> Plan:
        """As `plan`, with the LLM call awaited rather than blocking the event loop."""
        started = time.perf_counter()
        inputs = self._inputs(request)
        if self._chain is not None:
            draft = await self._chain.ainvoke(inputs)
        else:
            draft = rules_draft(inputs)
        return self._finish(request, inputs["understanding"], draft, started)

    def _inputs(self, request: PlanRequest) -> dict[str, Any]:
        if request.category not in self.config.categories:
            raise ValueError(
                f"unknown category {request.category!r}; known: {sorted(self.config.categories)}"
            )
        understanding = understand(request, self.config.min_label_score)
        return planner_input(request, self._base(request, understanding.category), understanding)

    def _base(self, request: PlanRequest, category: str) -> GenerationParams:
        """The settings without planner overrides: what "slower" is relative to."""
        params, _ = resolve_params(
            self.config,
            category,
            (request.image_width, request.image_height),
            request.user,
            rng=random.Random(0),  # the real seed is drawn once, in _finish
            previous=request.previous,
        )
        return params

    def _finish(
        self, request: PlanRequest, understanding: Understanding, draft: PlanDraft, started: float
    ) -> Plan:
        if draft.fallback is not None:
            with self._lock:
                self.fallbacks[draft.fallback.reason] += 1
        params, sources = resolve_params(
            self.config,
            understanding.category,
            (request.image_width, request.image_height),
            request.user,
            plan_overrides=draft.overrides,
            rng=self._rng,
            previous=request.previous,
        )
        plan_detail: dict[str, Any] = {
            "reason": draft.reason,
            "prompt": draft.prompt,
            "action": draft.action,
            "overrides": draft.overrides,
            **draft.detail,
        }
        if draft.planner == "llm" and self.config.llm is not None:
            plan_detail["model"] = self.config.llm.model
        if draft.fallback is not None:
            plan_detail["fallback"] = vars(draft.fallback)
        plan_ms = round((time.perf_counter() - started) * 1000, 3)
        plan_detail["plan_ms"] = plan_ms
        plan = Plan(
            action=draft.action,
            planner=draft.planner,
            category=understanding.category,
            subject=draft.subject or understanding.head,
            prompt=draft.prompt,
            negative_prompt=merge_negative(self.config.negative_prompt, draft.negative_prompt),
            motion=draft.motion,
            question=draft.question,
            overrides=draft.overrides,
            params=params,
            param_sources=sources,
            trace=[
                Decision(
                    stage="category",
                    decision=understanding.category,
                    detail=understanding.trace_detail(request),
                ),
                Decision(stage="plan", decision=draft.planner, detail=plan_detail),
                Decision(
                    stage="params",
                    decision="resolved",
                    detail={"sources": sources, "values": params.model_dump()},
                ),
            ],
        )
        self._log(plan, draft, plan_ms)
        if draft.fallback is not None:
            metrics.llm_fallback(draft.fallback.reason)
        return plan

    @staticmethod
    def _log(plan: Plan, draft: PlanDraft, plan_ms: float) -> None:
        logger.info(
            "router plan",
            extra={
                "planner": plan.planner,
                "plan_action": plan.action,
                "category": plan.category,
                "subject": plan.subject,
                "plan_reason": draft.reason,
                "fallback_reason": draft.fallback.reason if draft.fallback else None,
                "fallback_error": draft.fallback.exception if draft.fallback else None,
                "prompt": plan.prompt,
                "overrides": plan.overrides,
                "params": plan.params.model_dump(),
                "param_sources": plan.param_sources,
                "plan_ms": plan_ms,
            },
        )
