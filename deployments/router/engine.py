"""The router engine: instruction + picture category -> Plan. Runs without Ray."""

from __future__ import annotations

import random

from deployments.router.config import RouterConfig
from deployments.router.params import resolve_params
from deployments.router.plan import Decision, Plan, PlanRequest
from deployments.router.rules import plan_with_rules


class RouterEngine:
    """Plans one request. Today the rules planner; the LLM planner plugs in front of it."""

    def __init__(self, config: RouterConfig, rng: random.Random | None = None):
        self.config = config
        self._rng = rng

    def plan(self, request: PlanRequest) -> Plan:
        if request.category not in self.config.categories:
            raise ValueError(
                f"unknown category {request.category!r}; known: {sorted(self.config.categories)}"
            )
        rules = plan_with_rules(request.instruction, request.category)
        params, sources = resolve_params(
            self.config,
            request.category,
            (request.image_width, request.image_height),
            request.user,
            rng=self._rng,
        )
        trace = [
            Decision(
                stage="plan",
                decision="rules",
                detail={
                    "reason": rules.reason,
                    "motions": list(rules.motion_names),
                    "speed": rules.speed,
                },
            ),
            Decision(stage="params", decision="resolved", detail={"sources": sources}),
        ]
        return Plan(
            planner="rules",
            prompt=rules.prompt,
            negative_prompt=self.config.negative_prompt,
            motion=rules.motion,
            params=params,
            param_sources=sources,
            trace=trace,
        )
