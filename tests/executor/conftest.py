"""Fixtures for the executor's tests: the loopback LLM server, planted API keys, routers pointed at it.

Every provider of a test registry is litellm's `openai` provider with `base_url` on the loopback server
(`{url}/PROVIDER/v1`), so litellm talks real HTTP to 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import FAST, POLICY, PROVIDERS, REGISTRY, Clock
from loopback_server import LoopbackLLM

import policyrouter
from policyrouter import Router


@pytest.fixture(scope="session")
def loopback() -> Iterator[LoopbackLLM]:
    server = LoopbackLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm(loopback: LoopbackLLM) -> Iterator[LoopbackLLM]:
    """The loopback server with a clean script and request log."""
    loopback.reset()
    yield loopback
    loopback.reset()


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A distinct planted API key per provider, in the variables the test registries name."""
    planted = {}
    for provider in PROVIDERS:
        value = f"sk-planted-{provider}-{uuid.uuid4().hex}"
        monkeypatch.setenv(f"PR_TEST_KEY_{provider.upper()}", value)
        planted[provider] = value
    return planted


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


RouterFactory = Callable[..., Router]


@pytest.fixture
def make_router(
    llm: LoopbackLLM,
    keys: dict[str, str],
    events: list[dict[str, Any]],
    clock: Clock,
    make_config: Callable[..., Path],
) -> Iterator[RouterFactory]:
    """`make_router(registry=REGISTRY, policy=POLICY, **load_options)`: a router on the loopback server,
    its events appended to `events`, a memory store on the test's clock, fast backoff."""
    opened: list[Router] = []
    base = f"http://127.0.0.1:{llm.port}"

    def make(registry: str = REGISTRY, policy: str | None = POLICY, **options: Any) -> Router:
        directory = make_config(registry.replace("{url}", base), policy, name=f"cfg-{len(opened)}")
        options.setdefault("events", events.append)
        options.setdefault("executor", FAST)
        options.setdefault("clock", clock)
        options.setdefault("state", "memory://")
        router = policyrouter.load(directory, **options)
        opened.append(router)
        return router

    yield make
    for router in opened:
        router.close()


def pytest_configure(config: pytest.Config) -> None:
    # litellm 1.106's own types and field reads warn under pydantic 2.11: not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:litellm")
    config.addinivalue_line("filterwarnings", "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")
