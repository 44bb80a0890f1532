"""Ray Serve wrapper of the router engine."""

from __future__ import annotations

from deployments.router.config import RouterConfig
from deployments.router.engine import RouterEngine
from deployments.router.plan import Plan, PlanRequest


class Router:
    def __init__(self, config: RouterConfig):
        self.engine = RouterEngine(config)

    async def plan(self, request: PlanRequest) -> Plan:
        return self.engine.plan(request)

    def check_health(self) -> None:
        """The rules planner needs nothing external; the replica is healthy while it runs."""
