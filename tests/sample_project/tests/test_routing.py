"""Decisions asserted from Python, next to the YAML cases in decisions.yaml."""

from policyrouter import Router
from policyrouter.pytest_plugin import assert_routes


def test_work_plan_first(policy_router: Router) -> None:
    assert_routes(policy_router, "sonnet", ["work", "personal", "gpt-4o@openai"], facts={"quota": {"work": "50%"}})


def test_gpt4o_when_both_plans_are_spent(policy_router: Router) -> None:
    assert_routes(policy_router, "sonnet", first="gpt-4o@openai", facts={"quota": {"work": 0, "personal": 0}})


def test_refused_over_the_run_budget(policy_router: Router) -> None:
    assert_routes(policy_router, "sonnet", error="budget_exceeded", tokens="50k", facts={"spend": {"run": 4.99}})


def test_the_decision_comes_back(policy_router: Router) -> None:
    decision = assert_routes(policy_router, "sonnet", first="personal", facts={"quota": {"work": "10%"}})
    assert decision is not None
    assert decision.rule.endswith("routing.policy:3:5")
