"""Random policies end to end: each one either fails to load with diagnostics, or routes every request
into an order or a refusal with a stable code, and explains either. Nothing in between raises.

Policies come from the same generator as the fmt laws (`policy_strategies.py`), checked against the
golden registry; requests and dry-run facts are drawn at random too.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_strategies import policies

import policyrouter
from policyrouter.errors import ConfigError, DecisionError

REGISTRY = Path(__file__).parent / "golden" / "policies" / "registry.yaml"
PROVIDERS = ["work", "personal", "openai", "local"]
SHARES = st.sampled_from(["0%", "5%", "20%", "21%", "100%"])
FACTS = st.fixed_dictionaries(
    {},
    optional={
        "quota": st.dictionaries(st.sampled_from(["work", "personal"]), SHARES, max_size=2),
        "budget": st.dictionaries(st.sampled_from(["run", "month"]), SHARES, max_size=2),
        "spend": st.dictionaries(st.sampled_from(["run", "month"]), st.sampled_from(["$0", "$4.99", "$5"]), max_size=2),
        "errors": st.dictionaries(st.sampled_from(PROVIDERS), st.sampled_from([0, 1, 3]), max_size=2),
        "cooldown": st.dictionaries(st.sampled_from(PROVIDERS), st.sampled_from(["0s", "30s"]), max_size=2),
        "round_robin": st.dictionaries(st.sampled_from(["sonnet", "gpt-4o"]), st.integers(0, 5), max_size=2),
        "hour": st.integers(0, 23),
    },
)
REQUESTS = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["sonnet", "haiku", "gpt-4o", "local-coder", "claude-3-haiku", "opus"]),
        "requires": st.lists(st.sampled_from(["tools", "vision", "json"]), max_size=2),
        "tags": st.lists(st.sampled_from(["batch", "interactive"]), max_size=2),
        "tokens": st.sampled_from([0, 1000, 50_000, 150_000]),
        "max_tokens": st.sampled_from([None, 1000, 100_000]),
    }
)
CODES = {"unknown_model", "unsupported_capability", "budget_exceeded", "no_route", "denied"}  # the stable ones


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), cases=st.lists(st.tuples(REQUESTS, FACTS), min_size=1, max_size=4))
def test_a_random_policy_loads_or_says_why_and_then_decides_or_refuses(
    policy: str, cases: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp)
        shutil.copyfile(REGISTRY, config / "registry.yaml")
        (config / "main.policy").write_text(policy, encoding="utf-8")
        try:
            router = policyrouter.load(config)
        except ConfigError as e:
            assert e.diagnostics and all(d.render() for d in e.diagnostics)
            return
        for request, facts in cases:
            try:
                decision = router.decide(**request, facts=facts)
            except DecisionError as e:
                assert e.code in CODES, e.code
                assert e.decision is None or e.decision.error is e
                refused = e.decision
                if refused is not None:
                    assert refused.explain() and refused.to_dict()
                continue
            assert decision.order and decision.explain() and decision.to_dict()
