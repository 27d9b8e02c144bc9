"""Every lint: a bad policy renders exactly its golden diagnostic; the fixed policy does not trigger it.

Run with UPDATE_GOLDEN=1 to rewrite the golden files after checking the new output by eye.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from policyrouter.config import load_config
from policyrouter.diagnostics import render

HERE = Path(__file__).parent
REGISTRY = (HERE / "registry.yaml").read_text()
DOCS = HERE.parent.parent / "docs" / "lints.md"

# One case per lint: a policy that triggers it, and the same policy fixed so it does not.
# `route * strategy in_order` is added to every policy unless the case says `catch_all: False`, so
# models a case does not mention are still routed (and `unused-model` stays quiet). A case may change
# the shared registry with `registry: (old, new)`, a text replacement.
CASES: list[dict[str, Any]] = [
    {
        "code": "unreachable-clause",
        "bad": (
            "route sonnet {\n    when quota(work) > 20% prefer work else personal\n"
            "    when hour > 22 prefer personal\n}\n"
        ),
        "good": "route sonnet {\n    when quota(work) > 20% prefer work\n    when hour > 22 prefer personal\n}\n",
    },
    {
        "code": "duplicate-name",
        "bad": "route sonnet prefer work, work\n",
        "good": "route sonnet prefer work, personal\n",
    },
    {
        "code": "condition-no-effect",
        "bad": "route sonnet when quota(work) > 20% prefer work else work\n",
        "good": "route sonnet when quota(work) > 20% prefer work else personal\n",
    },
    {
        "code": "condition-never-holds",
        "bad": "route sonnet when quota(work) > 100% prefer work\n",
        "good": "route sonnet when quota(work) > 90% prefer work\n",
    },
    {
        "code": "condition-always-holds",
        "bad": "route sonnet when weekday >= 1 prefer work\n",
        "good": "route sonnet when weekday >= 6 prefer work\n",
    },
    {
        "code": "provider-not-serving",
        "bad": "route sonnet prefer openai\n",
        "good": "route sonnet prefer personal\n",
    },
    {
        "code": "no-quota",
        "bad": 'route gpt-4o when quota(openai) < 10% deny "openai is nearly spent"\n',
        "good": 'route gpt-4o when spend(run) > $4 deny "the run is nearly spent"\n',
    },
    {
        "code": "shadowed-route",
        "bad": "route sonnet prefer work\nroute sonn* prefer personal\n",
        "good": "route sonnet prefer work\nroute sonn* prefer personal\n",
        "good_registry": (
            "models:\n",
            "models:\n  sonnet-3:\n    price: {input_per_mtok: 3, output_per_mtok: 15}\n"
            "    deployments:\n      - {provider: work, model_id: s3}\n      - {provider: personal, model_id: s3}\n",
        ),
    },
    {
        "code": "unused-route",
        "bad": "route claude-* prefer work\n",
        "good": "route sonn* prefer work\n",
    },
    {
        "code": "fallback-lacks-capability",
        "bad": "route sonnet requires tools fallback local-coder\n",
        "good": "route sonnet requires tools fallback gpt-4o\n",
    },
    {
        "code": "fallback-context-window",
        "bad": "route sonnet fallback gpt-4o\n",
        "good": "route gpt-4o fallback sonnet\n",
    },
    {
        "code": "no-eligible-deployment",
        "bad": "route sonnet when quota(work) > 20% only work else only personal\n",
        "good": "route sonnet when quota(work) > 20% prefer work else personal\n",
    },
    {
        "code": "unused-model",
        "bad": "route sonnet prefer work\nroute gpt-4o fallback sonnet\n",
        "good": "route sonnet prefer work\nroute gpt-4o fallback sonnet, local-coder\n",
        "catch_all": False,
    },
    {
        "code": "unused-provider",
        "bad": "route sonnet prefer work\n",
        "good": "route sonnet prefer work\n",
        "registry": ("providers:\n", "providers:\n  spare:\n    litellm_provider: openai\n"),
        "good_registry": None,
    },
    {
        "code": "unpriced-hard-budget",
        "bad": "route sonnet prefer work\n",
        "good": "route sonnet prefer work\n",
        "registry": ("    price: {input_per_mtok: 0, output_per_mtok: 0}\n", ""),
        "good_registry": None,
    },
]


def _config(root: Path, name: str, case: dict[str, Any], policy: str, registry_change: Any) -> Path:
    directory = root / name
    directory.mkdir()
    registry = REGISTRY
    if registry_change:
        old, new = registry_change
        assert old in registry
        registry = registry.replace(old, new, 1)
    (directory / "registry.yaml").write_text(registry)
    if case.get("catch_all", True):
        policy += "route * strategy in_order\n"
    (directory / "policy.policy").write_text(policy)
    return directory


@pytest.mark.parametrize("case", CASES, ids=[c["code"] for c in CASES])
def test_bad_policy_renders_its_golden(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "bad", case, case["bad"], case.get("registry"))
    found = [d for d in load_config(Path("bad"), deep=True).diagnostics if d.code == case["code"]]
    assert found, f"{case['code']} did not fire"
    text = render(found) + "\n"
    golden = HERE / "golden" / f"{case['code']}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("case", CASES, ids=[c["code"] for c in CASES])
def test_fixed_policy_is_quiet(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "good", case, case["good"], case.get("good_registry", case.get("registry")))
    config = load_config(Path("good"), deep=True)
    assert config.program is not None
    assert [d.code for d in config.diagnostics if d.severity != "note" or d.code == case["code"]] == []


@pytest.mark.parametrize(
    "comment",
    ["# policyrouter: allow condition-never-holds", "# policyrouter: allow condition-never-holds -- on purpose"],
    ids=["the code", "the code and a reason"],  # a reason after ` --` was read as part of the code
)
def test_a_comment_naming_the_code_suppresses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, comment: str) -> None:
    monkeypatch.chdir(tmp_path)
    policy = f"route sonnet when quota(work) > 100% prefer work  {comment}\n"
    _config(tmp_path, "allowed", {}, policy, None)
    assert [d.code for d in load_config(Path("allowed"), deep=True).diagnostics] == []


def test_a_suppression_in_a_run_of_comments_above_the_line_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # where `fmt` puts the comments of the lines it joins: the allow comment was two lines up, and ignored
    monkeypatch.chdir(tmp_path)
    policy = (
        "# policyrouter: allow condition-never-holds\n# on purpose\nroute sonnet when quota(work) > 100% prefer work\n"
    )
    _config(tmp_path, "above", {}, policy, None)
    assert [d.code for d in load_config(Path("above"), deep=True).diagnostics] == []


def test_a_suppression_names_one_code_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    policy = "# policyrouter: allow unused-route\nroute sonnet when quota(work) > 100% prefer work\n"
    _config(tmp_path, "other", {}, policy, None)
    assert [d.code for d in load_config(Path("other"), deep=True).diagnostics] == ["condition-never-holds"]


def test_every_lint_has_a_docs_entry() -> None:
    documented = set(re.findall(r"^### `([a-z-]+)`", DOCS.read_text(), re.M))
    missing = {c["code"] for c in CASES} - documented
    assert not missing, f"docs/lints.md lacks {sorted(missing)}"


def test_the_planted_hole_names_the_facts_that_reach_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    case = next(c for c in CASES if c["code"] == "no-eligible-deployment")
    _config(tmp_path, "hole", case, case["bad"], None)
    (found,) = [d for d in load_config(Path("hole"), deep=True).diagnostics if d.code == "no-eligible-deployment"]
    assert found.help is not None
    assert "quota: {work: 19%}" in found.help and "personal" in found.help


@pytest.mark.parametrize(
    ("condition", "never"),
    [
        ("quota(work) > 20% and quota(work) < 10%", True),
        ("quota(work) > 20% and quota(personal) < 10%", False),  # two facts
        ("hour >= 9 and hour < 9", True),
        ("hour >= 9 and hour <= 9", False),  # 9 itself
        ("hour > 9 and hour == 9", True),
        ("hour == 9 and hour == 10", True),
        ("hour != 9 and hour == 9", False),  # `!=` is not followed
        ("50k > tokens and tokens > 100k", True),  # a literal on the left
        ("(tokens > 100k and tokens < 50k) or hour == 3", True),  # found inside an `or`
        ("tokens > 100k or tokens < 50k", False),  # `or` leaves both
        ('spend(month) >= $5 and spend(month) <= $5 and tag("batch")', False),
    ],
)
def test_an_and_that_leaves_a_fact_no_value_never_holds(
    condition: str, never: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "c", {}, f"route sonnet when {condition} prefer work\n", None)
    codes = [d.code for d in load_config(Path("c"), deep=False).diagnostics]
    assert ("condition-never-holds" in codes) is never


def test_a_when_that_repeats_an_earlier_condition_never_fires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    policy = (
        "route sonnet {\n"
        "    when hour < 9 prefer personal\n"
        "    when hour<9 prefer work\n"  # the same condition, spaced otherwise
        "    when hour < 8 prefer work\n"  # another condition
        "}\n"
    )
    _config(tmp_path, "again", {}, policy, None)
    (found,) = [d for d in load_config(Path("again"), deep=False).diagnostics if d.code == "unreachable-clause"]
    assert found.span is not None and found.span.line == 3
    assert found.help == "the clause at again/policy.policy:2:5 tests the same condition and decides first"


# (policy, what the hole's help names): the search tried only the literals of comparisons, so `in`
# lists were never tried (a weekday hole was found or not by the day `check` ran on); it stepped 1%
# below a share, past `< 1%` to 0%; and it printed 30.001 s as `30s`, which does not reach `> 30s`
HOLES = [
    ("route sonnet when weekday in (6, 7) only personal", "weekday: 6"),
    ("route sonnet when tokens in (8k, 16k) use local-coder", "tokens: 8000"),
    ("route sonnet when quota(work) < 1% only personal", "quota: {work: 0.5%}"),
    ("route sonnet when latency(work) > 30s only personal", "latency: {work: 30001ms}"),
]


@pytest.mark.parametrize(("policy", "named"), HOLES, ids=["weekday in", "tokens in", "under 1%", "just past 30s"])
def test_the_hole_search_finds_holes_the_help_reproduces(
    policy: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "hole", {}, policy + "\n", None)
    (found,) = [d for d in load_config(Path("hole"), deep=True).diagnostics if d.code == "no-eligible-deployment"]
    assert found.help is not None and named in found.help


def test_a_let_is_read_as_its_own_file_defines_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the lints read every file's `night` as the first file's: the hole behind b.policy's was missed
    monkeypatch.chdir(tmp_path)
    directory = _config(tmp_path, "lets", {}, "let night = quota(work) < 20%\nroute gpt-4o prefer openai\n", None)
    (directory / "b.policy").write_text("let night = hour >= 22\nroute sonnet when night only personal\n")
    holes = [d for d in load_config(Path("lets"), deep=True).diagnostics if d.code == "no-eligible-deployment"]
    assert [d.span.path for d in holes if d.span is not None] == ["lets/b.policy"]
    assert holes[0].help is not None and "hour: 22" in holes[0].help


ONWARD = [  # `local-coder` lacks vision; whether where its route goes on to has it
    ("route local-coder use gpt-4o\n", False),
    ("route local-* fallback gpt-4o\n", False),  # a glob's route serves it too
    ('route local-coder when tag("x") use sonnet\n', False),
    ("route local-coder fallback sonnet\nroute gpt-4o fallback local-coder\n", False),
    ("route gpt-* use sonnet\n", True),  # a glob that does not match it
    ("route local-coder strategy in_order\nroute local-* fallback gpt-4o\n", True),  # its own route applies
    ("route local-* strategy in_order\nroute *coder fallback gpt-4o\n", True),  # so does the most specific glob
    ("", True),
]


@pytest.mark.parametrize(("onward", "warned"), ONWARD)
def test_a_fallback_that_goes_on_to_a_capable_model_can_serve(
    onward: str, warned: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "onward", {}, "route sonnet requires vision fallback local-coder\n" + onward, None)
    codes = [d.code for d in load_config(Path("onward"), deep=False).diagnostics]
    assert ("fallback-lacks-capability" in codes) is warned


def test_the_search_for_holes_reads_a_fixed_clock_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `hour` compared with no literal came from the wall clock: `check` found this hole at noon and not
    # at 01:00, and its help left the hour out, so the facts it gave did not leave nothing again
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "clock", {}, "route sonnet when hour > weekday only personal\n", None)
    (hole,) = [d for d in load_config(Path("clock"), deep=True).diagnostics if d.code == "no-eligible-deployment"]
    assert hole.help is not None and "hour: 12" in hole.help and "weekday: 3" in hole.help


def test_the_facts_of_a_hole_are_written_as_fact_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `$1,000.01`, which `--fact spend.month=...` refuses as "not a number"
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "money", {}, "route sonnet when spend(month) > $1000 only personal\n", None)
    (hole,) = [d for d in load_config(Path("money"), deep=True).diagnostics if d.code == "no-eligible-deployment"]
    assert hole.help is not None and "spend: {month: $1000.01}" in hole.help


def test_a_fact_compared_through_a_let_that_holds_it_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `q < 20%` was no comparison of `quota(work)` to the search: the hole it leaves went unseen
    monkeypatch.chdir(tmp_path)
    _config(tmp_path, "held", {}, "let q = quota(work)\nroute sonnet when q < 20% only work\n", None)
    (hole,) = [d for d in load_config(Path("held"), deep=True).diagnostics if d.code == "no-eligible-deployment"]
    assert hole.help is not None and "quota: {work: " in hole.help
