"""Laws of the expression evaluator, checked with hypothesis over random facts.

One policy is compiled once for the module: each law's expressions get a model of their own whose
route says `when EXPR prefer b`, so a decision's head is `b` exactly when EXPR holds. Quotas are
soft, so no fact value makes a deployment ineligible and the head reads the condition alone.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policyrouter

OPS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
THRESHOLDS = ("0", "2.5", "10", "20", "33.3", "50", "66.7", "99.9", "100")  # percent, as written

CONDITIONS: dict[str, str] = {
    **{f"share-gt-{i}": f"quota(a) > {t}%" for i, t in enumerate(THRESHOLDS)},
    **{f"share-{i}": f"quota(a) {op} quota(b)" for i, op in enumerate(OPS)},
    **{f"count-{i}": f"errors(a) {op} errors(b)" for i, op in enumerate(OPS)},
    **{f"money-{i}": f"spend(run) {op} $2.5" for i, op in enumerate(OPS)},
    **{f"duration-{i}": f"latency(a) {op} 1500ms" for i, op in enumerate(OPS)},
    **{f"tokens-{i}": f"tokens {op} 8k" for i, op in enumerate(OPS)},
    "a": "quota(a) > 50%",
    "not-a": "not (quota(a) > 50%)",
    "not-not-a": "not not (quota(a) > 50%)",
    "not-and": "not (quota(a) > 50% and errors(a) < 3)",
    "or-nots": "not quota(a) > 50% or not errors(a) < 3",
    "not-or": "not (quota(a) > 50% or errors(a) < 3)",
    "and-nots": "not quota(a) > 50% and not errors(a) < 3",
    "in-facts": "errors(a) in (errors(b), errors(c))",
    "eq-or-eq-facts": "errors(a) == errors(b) or errors(a) == errors(c)",
    "in-literals": "hour in (3, 7)",
    "eq-or-eq-literals": "hour == 3 or hour == 7",
    "precedence": 'tag("x") and not tag("y") or tag("z")',
    "and-tags": 'tag("x") and tag("y")',
    "or-tags": 'tag("x") or tag("y")',
}


def _registry() -> str:
    models = "".join(
        f"  {name}:\n    price: {{input_per_mtok: 1, output_per_mtok: 1}}\n    deployments:\n"
        "      - {provider: a, model_id: m}\n      - {provider: b, model_id: m}\n"
        for name in CONDITIONS
    )
    providers = "".join(
        f"  {p}:\n    litellm_provider: openai\n    api_key_env: KEY_{p.upper()}\n"
        "    quota: {limit: 1M, unit: tokens, window: 5h, hard: false}\n"
        for p in ("a", "b", "c")
    )
    return f"providers:\n{providers}models:\n{models}"


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory, write_config: Callable[..., Path]) -> policyrouter.Router:
    policy = "\n".join(f"route {name} when {condition} prefer b" for name, condition in CONDITIONS.items())
    return policyrouter.load(write_config(tmp_path_factory.mktemp("laws"), _registry(), policy))


def holds(router: policyrouter.Router, name: str, facts: Mapping[str, Any], **request: Any) -> bool:
    return router.decide(name, facts=dict(facts), **request).order[0].provider == "b"


# Values drawn from a grid as well as at random, so equal values (and boundaries) come up often.
shares = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 0.25, 0.5, 1.0] + [v for t in THRESHOLDS for v in (float(t) / 100, float(Decimal(t) / 100))]),
)
counts = st.integers(min_value=0, max_value=6)
money = st.one_of(st.floats(min_value=0.0, max_value=10.0), st.just(2.5))
seconds = st.one_of(st.floats(min_value=0.0, max_value=10.0), st.sampled_from([1.5, 1.499, 1.501]))
tokens = st.one_of(st.integers(min_value=0, max_value=20_000), st.sampled_from([7999, 8000, 8001]))
tags = st.sets(st.sampled_from(["x", "y", "z"]))
EXAMPLES = settings(max_examples=60, deadline=None)


@EXAMPLES
@given(share=shares, index=st.integers(min_value=0, max_value=len(THRESHOLDS) - 1))
def test_a_share_threshold_holds_iff_the_share_is_above_it(
    router: policyrouter.Router, share: float, index: int
) -> None:
    threshold = float(Decimal(THRESHOLDS[index]) / 100)  # a literal is worked out in decimal: 99.9% is 0.999
    assert holds(router, f"share-gt-{index}", {"quota": {"a": share}}) == (share > threshold)


@EXAMPLES
@given(left=shares, right=shares)
def test_share_comparisons_agree_with_python(router: policyrouter.Router, left: float, right: float) -> None:
    facts = {"quota": {"a": left, "b": right}}
    assert [holds(router, f"share-{i}", facts) for i in range(len(OPS))] == [op(left, right) for op in OPS.values()]


@EXAMPLES
@given(left=counts, right=counts)
def test_count_comparisons_agree_with_python(router: policyrouter.Router, left: int, right: int) -> None:
    facts = {"errors": {"a": left, "b": right}}
    assert [holds(router, f"count-{i}", facts) for i in range(len(OPS))] == [op(left, right) for op in OPS.values()]


@EXAMPLES
@given(spent=money)
def test_money_comparisons_agree_with_python(router: policyrouter.Router, spent: float) -> None:
    facts = {"spend": {"run": spent}}
    assert [holds(router, f"money-{i}", facts) for i in range(len(OPS))] == [op(spent, 2.5) for op in OPS.values()]


@EXAMPLES
@given(latency=seconds)
def test_duration_comparisons_agree_with_python(router: policyrouter.Router, latency: float) -> None:
    facts = {"latency": {"a": latency}}
    assert [holds(router, f"duration-{i}", facts) for i in range(len(OPS))] == [op(latency, 1.5) for op in OPS.values()]


@EXAMPLES
@given(n=tokens)
def test_token_comparisons_agree_with_python(router: policyrouter.Router, n: int) -> None:
    assert [holds(router, f"tokens-{i}", {}, tokens=n) for i in range(len(OPS))] == [op(n, 8000) for op in OPS.values()]


@EXAMPLES
@given(share=shares, errors=counts)
def test_not_is_the_negation(router: policyrouter.Router, share: float, errors: int) -> None:
    facts = {"quota": {"a": share}, "errors": {"a": errors}}
    a = holds(router, "a", facts)
    assert holds(router, "not-a", facts) is (not a)
    assert holds(router, "not-not-a", facts) is a


@EXAMPLES
@given(share=shares, errors=counts)
def test_de_morgan(router: policyrouter.Router, share: float, errors: int) -> None:
    facts = {"quota": {"a": share}, "errors": {"a": errors}}
    a, b = share > 0.5, errors < 3
    assert holds(router, "not-and", facts) == holds(router, "or-nots", facts) == (not (a and b))
    assert holds(router, "not-or", facts) == holds(router, "and-nots", facts) == (not (a or b))


@EXAMPLES
@given(a=counts, b=counts, c=counts)
def test_in_is_a_disjunction_of_equalities_over_facts(router: policyrouter.Router, a: int, b: int, c: int) -> None:
    facts = {"errors": {"a": a, "b": b, "c": c}}
    assert holds(router, "in-facts", facts) == holds(router, "eq-or-eq-facts", facts) == (a in (b, c))


@EXAMPLES
@given(hour=st.integers(min_value=0, max_value=23))
def test_in_is_a_disjunction_of_equalities_over_literals(router: policyrouter.Router, hour: int) -> None:
    facts = {"hour": hour}
    assert holds(router, "in-literals", facts) == holds(router, "eq-or-eq-literals", facts) == (hour in (3, 7))


@EXAMPLES
@given(given_tags=tags)
def test_and_or_not_follow_python_precedence(router: policyrouter.Router, given_tags: set[str]) -> None:
    x, y, z = ("x" in given_tags), ("y" in given_tags), ("z" in given_tags)
    assert holds(router, "precedence", {}, tags=given_tags) == ((x and not y) or z)
    assert holds(router, "and-tags", {}, tags=given_tags) == (x and y)
    assert holds(router, "or-tags", {}, tags=given_tags) == (x or y)
