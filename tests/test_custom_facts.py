"""Facts registered from Python: typed, with or without an argument, overridable in a dry run."""

from __future__ import annotations

from pathlib import Path

import pytest

import policyrouter
from policyrouter import ConfigError, Fact, InvalidFacts

REGISTRY = (Path(__file__).resolve().parent.parent / "policies" / "first-policy" / "registry.yaml").read_text()


def _router(tmp_path: Path, policy: str, facts: dict[str, Fact]) -> policyrouter.Router:
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    (tmp_path / "p.policy").write_text(policy)
    return policyrouter.load(tmp_path, facts=facts)


def _providers(router: policyrouter.Router, **kwargs: object) -> list[str]:
    return [d.provider for d in router.decide("sonnet", **kwargs).order]  # type: ignore[arg-type]


def test_a_fact_without_an_argument(tmp_path: Path) -> None:
    depth = {"value": 250}
    router = _router(tmp_path, "route sonnet when queue_depth > 100 prefer personal\n",
                     {"queue_depth": Fact("count", lambda _: depth["value"])})  # fmt: skip
    assert _providers(router, facts={}) == ["personal", "work"]
    depth["value"] = 5
    assert _providers(router, facts={}) == ["work", "personal"]
    assert _providers(router, facts={"queue_depth": "1k"}) == ["personal", "work"]  # a dry run overrides it
    with pytest.raises(InvalidFacts, match="`-1` is negative"):  # as for the built-in counts
        router.decide("sonnet", facts={"queue_depth": -1})


def test_a_fact_with_an_argument(tmp_path: Path) -> None:
    backlog = {"work": 0.9, "personal": 0.1}
    router = _router(tmp_path, "route sonnet when backlog(work) > 50% prefer personal\n",
                     {"backlog": Fact("share", lambda p: backlog[str(p)], arg=True)})  # fmt: skip
    assert _providers(router, facts={}) == ["personal", "work"]
    assert _providers(router, facts={"backlog": {"work": "10%"}}) == ["work", "personal"]


@pytest.mark.parametrize(
    ("policy", "fact", "message"),
    [
        ("route sonnet when queue_depth(work) > 1 prefer personal\n", Fact("count", lambda _: 0), "takes no argument"),
        (
            "route sonnet when backlog > 50% prefer personal\n",
            Fact("share", lambda _: 0, arg=True),
            "takes an argument",
        ),
        ("route sonnet when queue_depth > $1 prefer personal\n", Fact("count", lambda _: 0), "cannot compare"),
    ],
    ids=["argument not taken", "argument missing", "wrong type"],
)
def test_misuse_is_a_compile_error(tmp_path: Path, policy: str, fact: Fact, message: str) -> None:
    name = "backlog" if "backlog" in policy else "queue_depth"
    with pytest.raises(ConfigError) as caught:
        _router(tmp_path, policy, {name: fact})
    assert message in str(caught.value)


def test_dry_run_values_are_parsed_by_type(tmp_path: Path) -> None:
    router = _router(tmp_path, "route sonnet when queue_depth > 100 prefer personal\n",
                     {"queue_depth": Fact("number", lambda _: 0)})  # fmt: skip
    with pytest.raises(InvalidFacts, match="queue_depth"):
        router.decide("sonnet", facts={"queue_depth": "lots"})


def test_a_bool_fact_takes_true_and_false_written_as_text(tmp_path: Path) -> None:
    # "true" was refused with "expected true or false, got `true`"
    router = _router(
        tmp_path, "route sonnet when on_call prefer personal\n", {"on_call": Fact("bool", lambda _: False)}
    )
    assert router.decide("sonnet", facts={"on_call": "true"}).order[0].provider == "personal"
    assert router.decide("sonnet", facts={"on_call": "False"}).order[0].provider == "work"


def test_an_unknown_type_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="a fact's type is one of"):
        Fact("percent", lambda _: 0)
    with pytest.raises(TypeError, match="a fact's `fn` is a function"):
        Fact("count", 5)  # type: ignore[arg-type]


COUNT = Fact("count", lambda _: 0)


@pytest.mark.parametrize(
    ("facts", "error", "message"),
    [
        ({"depth": 5}, TypeError, "the fact `depth` is a `policyrouter.Fact(type, fn)`, not int"),
        ({"quota": COUNT}, ValueError, "`quota` is a built-in fact: give yours another name"),
        ({"cooldown": COUNT}, ValueError, "`cooldown` names a fact the router keeps for itself"),
        ({"queue depth": COUNT}, ValueError, "a fact's name is one a policy can write"),
        ({"not": COUNT}, ValueError, "a fact's name is one a policy can write"),
        ({5: COUNT}, ValueError, "got 5"),
        # `quota.work` took the place of the built-in `quota(work)` in every decision, eligibility too
        ({"quota.work": COUNT}, ValueError, "`quota.work` reads as the built-in fact `quota`"),
        ({"cooldown.work": COUNT}, ValueError, "reads as the built-in fact `cooldown`"),
        # `q(len)` and `q.len` were one value: a string compared as a count raised a TypeError
        (
            {"q": Fact("string", lambda _: "x", arg=True), "q.len": COUNT},
            ValueError,
            "`q.len` starts with the fact `q`",
        ),
    ],
    ids=[
        "not a Fact",
        "a built-in name",
        "a name the router keeps",
        "a space",
        "an operator",
        "not a string",
        "a built-in fact's key",
        "a key the router keeps",
        "another fact's key",
    ],
)
def test_facts_a_policy_could_not_read_are_refused_at_load(
    tmp_path: Path, facts: dict[object, object], error: type[Exception], message: str
) -> None:
    # Each loaded; a policy reading one then failed to compile (`quota(work)`: "takes no argument"),
    # or a decision raised AttributeError.
    with pytest.raises(error) as info:
        _router(tmp_path, "route sonnet prefer work\n", facts)  # type: ignore[arg-type]
    assert message in str(info.value)


# (fact type, what its function gives): each was read as it came, a string "false" as true, None as a
# TypeError from inside a comparison that named no fact, NaN as a decision whose explanation raised
BAD_VALUES = [
    ("bool", "false"),
    ("count", None),
    ("count", "5"),
    ("count", float("nan")),
    ("count", 10**400),
    ("count", -1),
    ("share", 1.5),
    ("string", 5),
]


@pytest.mark.parametrize(("kind", "value"), BAD_VALUES, ids=[f"{k} {v!r}" for k, v in BAD_VALUES])
def test_a_function_that_gives_a_value_not_of_its_type_is_named(tmp_path: Path, kind: str, value: object) -> None:
    condition = {"bool": "mine", "string": 'mine == "x"', "share": "mine > 50%"}.get(kind, "mine > 3")
    router = _router(
        tmp_path, f"route sonnet when {condition} prefer personal\n", {"mine": Fact(kind, lambda _: value)}
    )
    with pytest.raises(TypeError, match=rf"the fact `mine` \({kind}\) gave"):
        router.decide("sonnet", facts={})


def test_a_decision_on_a_dotted_fact_with_an_argument_is_made_again_from_its_facts(tmp_path: Path) -> None:
    # `q.len.eu` was split at its first dot: "unknown fact `q.len.eu`", so replay could not make it again
    from policyrouter.facts import nest_facts

    facts = {"q.len": Fact("count", lambda region: 10, arg=True)}
    router = _router(tmp_path, 'route sonnet when q.len("eu") > 5 only personal\n', facts)
    decision = router.decide("sonnet", facts={})
    assert decision.facts["q.len.eu"] == 10
    again = router.decide("sonnet", facts=nest_facts(decision.facts, facts))
    assert [d.key for d in again.order] == [d.key for d in decision.order] == ["sonnet@personal"]
