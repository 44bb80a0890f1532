"""Ray Serve wrapper of the router engine."""

from __future__ import annotations

from deployments.router.config import RouterConfig
from deployments.router.protocol import Plan, PlanRequest
from i2v_core.startup import StartupClock


class Router:
    def __init__(self, config: RouterConfig):
        # Imported here, in the replica: the process that builds the application imports this
        # module only to bind it, without LangChain and the dictionaries.
        clock = StartupClock()
        from deployments.router.engine import RouterEngine

        clock.lap("imports")
        self.engine = RouterEngine(config)
        clock.lap("load")
        clock.report("Router")

    async def plan(self, request: PlanRequest) -> Plan:
        # The LLM call is awaited, so one replica serves other requests meanwhile.
        return await self.engine.aplan(request)

    def check_health(self) -> None:
        """The router needs nothing external: when the LLM is down it plans with the rules, so
        the replica is healthy while it runs."""
