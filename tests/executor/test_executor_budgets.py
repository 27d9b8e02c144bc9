"""Budgets hard and soft, run identity, and the price a call is booked at."""

from __future__ import annotations

from typing import Any

import pytest
from executor_helpers import REGISTRY, hi, of_kind, spend
from loopback_server import LoopbackLLM, ok

import policyrouter
from policyrouter import BudgetExceeded, DecisionError

# one call: 1000 tokens in at $3/M + 500 out at $15/M = $0.0105, estimated exactly (tokens=, max_tokens=)
CALL_COST = 0.0105


def exact_call(router: Any, **kwargs: Any) -> Any:
    return router.completion("sonnet", hi(), tokens=1000, max_tokens=500, **kwargs)


def with_budgets(budgets: str, settings: str = "") -> str:
    text = REGISTRY.split("budgets:")[0] + "budgets:\n" + budgets
    return text.replace("  state: memory://\n", "  state: memory://\n" + settings)


def test_a_hard_budget_fails_fast_with_which_budget_spent_limit_reset_and_how_to_raise(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=500))
    router = make_router(with_budgets("  run: {usd: 0.05, hard: true}\n"), "route sonnet strategy in_order\n")
    for _ in range(4):
        exact_call(router)
    with pytest.raises(BudgetExceeded) as caught:
        exact_call(router)

    error = caught.value
    assert isinstance(error, DecisionError) and error.code == "budget_exceeded"
    assert (error.budget, error.window) == ("run", "run")
    assert error.spent == pytest.approx(4 * CALL_COST)
    assert error.limit == 0.05
    assert error.requested == pytest.approx(CALL_COST)
    assert error.resets_at is None
    text = str(error)
    assert "hard budget `run` (run) would be broken: $0.042 of $0.05" in text
    assert "resets with a new run" in text
    assert "raise `budgets.run.usd` in registry.yaml" in text
    assert len(llm.calls()) == 4  # the fifth was never sent
    assert spend(router) == pytest.approx(4 * CALL_COST)
    (exceeded,) = of_kind(events, "budget_exceeded")
    assert exceeded["budget"] == "run" and exceeded["hard"] is True


def test_a_calendar_budget_says_when_it_resets(make_router: Any, llm: LoopbackLLM) -> None:
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=500))
    registry = with_budgets("  month: {usd: 0.015, hard: true}\n", "  timezone: Europe/Berlin\n")
    router = make_router(registry, "route sonnet strategy in_order\n")
    exact_call(router)
    with pytest.raises(BudgetExceeded) as caught:
        exact_call(router)
    assert caught.value.budget == "month"
    assert caught.value.resets_at is not None
    assert caught.value.resets_at.isoformat() == "2026-04-01T00:00:00+02:00"  # the test clock is in March
    assert "wait until it resets" in caught.value.help


def test_the_reservation_refuses_when_another_process_spent_the_budget_meanwhile(
    make_router: Any, llm: LoopbackLLM
) -> None:
    """The decision read the budget before; the reservation, not the read, enforces the limit."""
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=500))
    registry = with_budgets("  run: {usd: 0.02, hard: true}\n")
    first = make_router(registry, "route sonnet strategy in_order\n", run_id="shared")
    store = first.store
    first.decide("sonnet", tokens=1000, max_tokens=500)  # reads and caches the budget left
    # another process spends $0.0105 of $0.02 in the shared store: `first` still holds its read from before
    work = first.registry.models["sonnet"].deployments[0]
    held = store.reserve(work, tokens=1500, cost=CALL_COST, run_id="shared")
    store.settle(held, input_tokens=1000, output_tokens=500, cost=CALL_COST)

    with pytest.raises(BudgetExceeded) as caught:
        exact_call(first)
    assert caught.value.attempts[0].code == "budget"
    assert caught.value.spent == pytest.approx(CALL_COST)
    assert len(llm.calls()) == 0


def test_a_router_on_the_same_store_in_this_process_sees_the_others_spend_at_once(
    make_router: Any, llm: LoopbackLLM
) -> None:
    """In one process, what one router writes, another on the same store reads at its next decision."""
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=500))
    registry = with_budgets("  run: {usd: 0.02, hard: true}\n")
    first = make_router(registry, "route sonnet strategy in_order\n", run_id="shared")
    first.decide("sonnet", tokens=1000, max_tokens=500)  # reads and caches the budget left
    other = make_router(registry, "route sonnet strategy in_order\n", run_id="shared", state=first.store)
    exact_call(other)
    with pytest.raises(BudgetExceeded) as caught:
        exact_call(first)
    assert caught.value.attempts == []  # refused by the decision: nothing was reserved
    assert len(llm.calls()) == 1


def test_a_soft_budget_proceeds_and_warns(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=500))
    router = make_router(with_budgets("  day: {usd: 0.015, hard: false}\n"), "route sonnet strategy in_order\n")
    exact_call(router)
    assert not of_kind(events, "budget_warning")
    with caplog.at_level("WARNING", logger="policyrouter.executor"):
        exact_call(router)  # would go over: warned, not refused
    # the log said `0.021 of 0.015`: no unit, and not when it resets
    (logged,) = [r.getMessage() for r in caplog.records if "soft budget" in r.getMessage()]
    assert logged.startswith("soft budget `day` (day) is over its limit: $0.021 of $0.015 used or reserved; resets 20")

    (warning,) = of_kind(events, "budget_warning")
    assert (warning["budget"], warning["hard"], warning["limit"]) == ("day", False, 0.015)
    assert warning["spent"] == pytest.approx(2 * CALL_COST)
    assert len(llm.calls()) == 2
    assert spend(router, "day") == pytest.approx(2 * CALL_COST)


def test_runs_scope_the_run_budget(make_router: Any, llm: LoopbackLLM) -> None:
    llm.default("work", ok(prompt_tokens=1000, completion_tokens=500))
    router = make_router(with_budgets("  run: {usd: 0.015, hard: true}\n"), "route sonnet strategy in_order\n")
    with router.run("batch-1") as run:
        exact_call(run)
        with pytest.raises(BudgetExceeded):
            exact_call(run)
    exact_call(router, run_id="batch-2")  # a new run has its own budget
    with pytest.raises(BudgetExceeded):
        exact_call(router, run_id="batch-2")

    assert spend(router.run("batch-1")) == pytest.approx(CALL_COST)
    assert spend(router.run("batch-2")) == pytest.approx(CALL_COST)
    assert spend(router, "month") == pytest.approx(2 * CALL_COST)  # every run counts in the month
    assert len(llm.calls()) == 2


def test_a_run_id_is_in_every_event(make_router: Any, events: list[dict[str, Any]]) -> None:
    router = make_router()
    with router.run("nightly-7") as run:
        run.completion("sonnet", hi())
    router.completion("sonnet", hi(), run_id="nightly-8")
    assert [e["run_id"] for e in events if e["event"] == "success"] == ["nightly-7", "nightly-8"]


def test_a_bad_run_name_is_refused(make_router: Any) -> None:
    with pytest.raises(ValueError, match="run id"):
        make_router().run("no spaces please")


# -- prices -------------------------------------------------------------------------------------

COST_MAP_REGISTRY = """
settings:
  state: memory://
  unknown_price: {unknown}
providers:
  backup:
    litellm_provider: openai
    api_key_env: PR_TEST_KEY_BACKUP
    base_url: {url}/backup/v1
models:
  mini:
    deployments:
      - {provider: backup, model_id: gpt-4o-mini}
  house:
    deployments:
      - {provider: backup, model_id: house-model-without-price}
"""


def test_without_a_registry_price_the_cost_map_prices_the_model_actually_served(
    make_router: Any, llm: LoopbackLLM
) -> None:
    from policyrouter.prices import lookup_price

    llm.script("backup", ok(prompt_tokens=1_000_000, completion_tokens=1_000_000, model="gpt-4o-2024-08-06"))
    router = make_router(COST_MAP_REGISTRY.replace("{unknown}", "allow"), None)
    router.completion("mini", hi())

    served = lookup_price("openai", "gpt-4o-2024-08-06")
    asked = lookup_price("openai", "gpt-4o-mini")
    assert served is not None and asked is not None and served != asked
    assert spend(router, "month") == pytest.approx(served.input_per_mtok + served.output_per_mtok)


def test_an_unknown_price_is_booked_as_free_with_a_warning_when_settings_say_warn(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    router = make_router(COST_MAP_REGISTRY.replace("{unknown}", "warn"), None)
    router.completion("house", hi())
    (success,) = of_kind(events, "success")
    assert success["cost"] is None
    (warning,) = of_kind(events, "budget_warning")
    assert "price of `house@backup`" in warning["reason"]
    assert spend(router, "month") == 0


def test_completion_never_imports_litellm_before_the_first_call(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, policyrouter\n"
        f"r = policyrouter.load({str(root / 'policies' / 'first-policy')!r}, state='memory://')\n"
        "r.decide('sonnet')\n"
        "r.run('x').decide('sonnet')\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={"PYTHONPATH": str(root)})


def test_load_still_takes_its_old_arguments(tmp_path: Any) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    router = policyrouter.load(root / "policies" / "first-policy", facts=None, state="memory://", run_id="r1")
    decision = router.decide("sonnet", facts={"quota": {"work": "50%"}})
    assert decision.order[0].key == "sonnet@work"
