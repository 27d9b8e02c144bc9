"""The peers policyrouter is measured against: litellm's own `Router`, a bare `litellm.completion`, and
the floor a decision can approach (a plain-Python filter-and-sort of ten dicts).

litellm's routers run with their defaults and their in-memory caches (no Redis): the cheapest setting
litellm offers, and the one a single process gets without configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from benchmarks.workloads import LITELLM_MODEL, MESSAGES, litellm_model_list

# litellm's strategies. It has no synchronous selector for cost-based routing: only
# `async_get_available_deployment` can use it (the sync call raises "No deployments available").
STRATEGIES = ("simple-shuffle", "usage-based-routing-v2", "least-busy", "latency-based-routing", "cost-based-routing")
SYNC_STRATEGIES = STRATEGIES[:-1]


def import_litellm() -> ModuleType:
    """litellm as policyrouter's executor imports it (local cost map, no feedback banner), with its
    loggers quiet: pricing given per deployment makes it warn once per deployment."""
    from policyrouter.executor import import_litellm as executor_import

    litellm = executor_import()
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return litellm


def litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


def litellm_router(n: int, strategy: str) -> Any:
    """litellm's Router over the same `n` deployments of `sonnet`."""
    litellm = import_litellm()
    return litellm.Router(model_list=litellm_model_list(n), routing_strategy=strategy)


def pick_sync(router: Any) -> Callable[[], object]:
    def pick() -> object:
        return router.get_available_deployment("sonnet", messages=MESSAGES)

    return pick


def pick_async(router: Any) -> Callable[[], Awaitable[object]]:
    async def pick() -> object:
        return await router.async_get_available_deployment("sonnet", request_kwargs={}, messages=MESSAGES)

    return pick


def bare_completion() -> Callable[[], object]:
    """One `litellm.completion` with `mock_response`: no routing, no state, nothing sent."""
    litellm = import_litellm()

    def call() -> object:
        return litellm.completion(model=LITELLM_MODEL, messages=MESSAGES, api_key="sk-bench", mock_response="ok")

    return call


def router_completion(router: Any) -> Callable[[], object]:
    """litellm's `Router.completion` with `mock_response`."""

    def call() -> object:
        return router.completion(model="sonnet", messages=MESSAGES, mock_response="ok")

    return call


def floor() -> Callable[[], object]:
    """The floor a decision can approach: filter and sort ten dicts in plain Python."""
    rows = [{"provider": f"p{i}", "quota": (i * 37) % 100 / 100, "ok": i % 3 != 0} for i in range(10)]
    return lambda: sorted((r for r in rows if r["ok"]), key=lambda r: -r["quota"])
