"""The seeds' scenarios, end to end over HTTP: two subscriptions, a budgeted batch run, a rate-limited
provider and its cooldown, a fallback chain walked during an outage."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from executor_helpers import REGISTRY, Clock, hi, of_kind, spend
from loopback_server import LoopbackLLM, ok, rate_limited, server_error

from policyrouter import BudgetExceeded


def served(response: Any) -> str:
    return str(response._hidden_params["policyrouter"]["deployment"])


def test_two_subscriptions_switch_when_one_is_used_up_mid_run(make_router: Any, llm: LoopbackLLM) -> None:
    registry = REGISTRY.replace("quota: {limit: 100k", "quota: {limit: 2500", 1)  # work's plan is small
    policy = "route sonnet when quota(work) > 20% prefer work else personal\n"
    router = make_router(registry, policy)
    llm.default("work", ok(prompt_tokens=800, completion_tokens=200))
    llm.default("personal", ok(prompt_tokens=800, completion_tokens=200))

    order = [served(router.completion("sonnet", hi(), max_tokens=200)) for _ in range(4)]

    assert order == ["sonnet@work", "sonnet@work", "sonnet@personal", "sonnet@personal"]
    live = router.live_facts
    assert live.quota_left("work") == pytest.approx(0.2)  # 2000 of 2500 tokens
    assert live.quota_left("personal") == pytest.approx(1 - 2000 / 100_000)


def test_a_hard_quota_refuses_at_reservation_and_the_other_plan_serves(make_router: Any, llm: LoopbackLLM) -> None:
    """No policy condition: the work plan simply runs out, and the reservation moves the call on."""
    registry = REGISTRY.replace("quota: {limit: 100k", "quota: {limit: 2500", 1)
    router = make_router(registry, "route sonnet prefer work\n")
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=200))

    order = [served(router.completion("sonnet", hi(), tokens=1000, max_tokens=200)) for _ in range(3)]

    assert order == ["sonnet@work", "sonnet@work", "sonnet@personal"]
    assert [c.provider for c in llm.calls()] == ["work", "work", "personal"]


def test_a_batch_run_stops_cleanly_at_its_hard_budget_with_the_books_right(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    registry = REGISTRY.split("budgets:")[0] + "budgets:\n  run: {usd: 0.05, hard: true}\n"
    router = make_router(registry)
    llm.default("work", ok(prompt_tokens=1200, completion_tokens=400))  # $0.0096 a call
    done: list[int] = []
    stopped: BudgetExceeded | None = None
    with router.run("batch-42") as run:
        for task in range(20):
            try:
                run.completion("sonnet", hi(f"task {task}"), max_tokens=400)
            except BudgetExceeded as e:
                stopped = e
                break
            done.append(task)

    assert stopped is not None and stopped.budget == "run"
    assert len(done) == 5  # 5 × $0.0096 = $0.048; a sixth call (≈ $0.006 estimated) would pass $0.05
    assert len(llm.calls()) == 5
    assert spend(run) == pytest.approx(5 * 0.0096)
    assert stopped.spent == pytest.approx(5 * 0.0096)
    assert sum(e["cost"] for e in of_kind(events, "success")) == pytest.approx(5 * 0.0096)
    assert run.live_facts.in_flight("work") == 0
    assert len(of_kind(events, "budget_exceeded")) == 1


def test_a_rate_limited_provider_is_skipped_then_used_again_after_its_cooldown(
    make_router: Any, llm: LoopbackLLM, clock: Clock
) -> None:
    router = make_router()
    llm.script("work", rate_limited(retry_after=30))

    assert served(router.completion("sonnet", hi())) == "sonnet@personal"
    clock.advance(10)
    decision = router.decide("sonnet")
    assert [e.code for e in decision.excluded] == ["cooldown"]
    assert served(router.completion("sonnet", hi())) == "sonnet@personal"
    clock.advance(25)
    assert served(router.completion("sonnet", hi())) == "sonnet@work"

    assert [c.provider for c in llm.calls()] == ["work", "personal", "personal", "work"]


CHAIN_REGISTRY = """
settings:
  state: memory://
providers:
  openai:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_BACKUP
    base_url: {url}/openai/v1
  google:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_BACKUP
    base_url: http://127.0.0.1:{closed}/v1
  local:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_LOCAL
    base_url: {url}/local/v1
models:
  gpt-4o:
    price: {input_per_mtok: 2.50, output_per_mtok: 10.00}
    deployments: [{provider: openai, model_id: gpt-4o}]
  gemini-pro:
    price: {input_per_mtok: 1.25, output_per_mtok: 10.00}
    deployments: [{provider: google, model_id: gemini-2.5-pro}]
  local-coder:
    price: {input_per_mtok: 0, output_per_mtok: 0}
    deployments: [{provider: local, model_id: qwen2.5-coder}]
"""
CHAIN_POLICY = """
route gpt-4o {
    when errors(openai) >= 3 use gemini-pro
    fallback gemini-pro, local-coder
}
route gemini-pro fallback local-coder
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_fallback_chain_is_walked_during_an_outage(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    router = make_router(CHAIN_REGISTRY.replace("{closed}", str(closed_port())), CHAIN_POLICY)
    llm.default("openai", server_error(503))

    response = router.completion("gpt-4o", hi())

    assert served(response) == "local-coder@local"
    failures = [(e["deployment"], e["error"]) for e in of_kind(events, "failure")]
    assert failures == [("gpt-4o@openai", "server_error")] * 3 + [("gemini-pro@google", "connection")] * 3
    assert [(e["from"], e["to"]) for e in of_kind(events, "fallback")] == [
        ("gpt-4o@openai", "gemini-pro@google"),
        ("gemini-pro@google", "local-coder@local"),
    ]
    live = router.live_facts
    assert (live.errors("openai"), live.errors("google"), live.errors("local")) == (3, 3, 0)

    # errors(openai) >= 3 now holds: the policy stops asking OpenAI first
    events.clear()
    router.completion("gpt-4o", hi())
    assert of_kind(events, "decision")[0]["order"] == ["gemini-pro@google", "local-coder@local"]
    assert [c.provider for c in llm.calls()].count("openai") == 3
