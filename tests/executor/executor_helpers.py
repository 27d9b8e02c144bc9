"""Shared test data and helpers of the executor's tests: the test registry, a hand-moved clock, event filters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from policyrouter import ExecutorOptions, Router

FAST = ExecutorOptions(retries=2, backoff_base=0.001, backoff_max=0.01, seed=7)
PROVIDERS = ("work", "personal", "backup", "local")

# Two subscriptions serving one model, and a pay-as-you-go fallback; prices from the registry.
REGISTRY = """
settings:
  state: memory://
providers:
  work:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_WORK
    base_url: {url}/work/v1
    quota: {limit: 100k, unit: tokens, window: 5h}
  personal:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_PERSONAL
    base_url: {url}/personal/v1
    quota: {limit: 100k, unit: tokens, window: 5h}
  backup:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_BACKUP
    base_url: {url}/backup/v1
models:
  sonnet:
    capabilities: [tools, streaming]
    context_window: 200k
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}
    deployments:
      - {provider: work, model_id: claude-sonnet-4}
      - {provider: personal, model_id: claude-sonnet-4}
  gpt-4o:
    capabilities: [tools, streaming]
    context_window: 128k
    price: {input_per_mtok: 2.50, output_per_mtok: 10.00}
    deployments:
      - {provider: backup, model_id: gpt-4o}
budgets:
  run: {usd: 5.00, hard: true}
"""
POLICY = "route sonnet fallback gpt-4o\n"


class Clock:
    """An aware clock the test moves by hand (cooldowns and windows read it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 16, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def spend(router: Router, scope: str = "run") -> float:
    """USD spent in `scope` as the store has it now."""
    live = router.live_facts
    live.clear()  # type: ignore[attr-defined]
    return live.spend(scope)


def hi(text: str = "hello") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
