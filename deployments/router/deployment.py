"""Ray Serve wrapper of the router engine."""

from __future__ import annotations

from deployments.router.config import RouterConfig
from deployments.router.engine import RouterEngine
from deployments.router.protocol import Plan, PlanRequest


class Router:
    def __init__(self, config: RouterConfig):
        self.engine = RouterEngine(config)

    async def plan(self, request: PlanRequest) -> Plan:
        # The LLM call is awaited, so one replica serves other requests meanwhile.
        return await self.engine.aplan(request)

    def check_health(self) -> None:
        """The router needs nothing external: when the LLM is down it plans with the rules, so
        the replica is healthy while it runs."""
