"""Decision-test coverage, and the CI formats of `policyrouter test` (json, github, junit).

Each test writes a small config directory into a temporary one and works there, so paths in the
output are short and relative (`routes.policy:3:5`).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

import policyrouter
from policyrouter import cli
from policyrouter.coverage import Coverage, branches, coverage_of
from policyrouter.decision import Decision
from policyrouter.errors import DecisionError

REPO = Path(__file__).parent.parent

REGISTRY = """\
providers:
  a: {litellm_provider: anthropic, api_key_env: KEY_A, quota: {limit: 1M, unit: tokens, window: 5h}}
  b: {litellm_provider: anthropic, api_key_env: KEY_B, quota: {limit: 1M, unit: tokens, window: 5h}}
models:
  m: {deployments: [{provider: a, model_id: m-1}, {provider: b, model_id: m-1}]}
  n: {deployments: [{provider: a, model_id: n-1}, {provider: b, model_id: n-1}]}
  o: {deployments: [{provider: a, model_id: o-1}, {provider: b, model_id: o-1}]}
  p: {deployments: [{provider: a, model_id: p-1}, {provider: b, model_id: p-1}]}
  q: {deployments: [{provider: a, model_id: q-1}, {provider: b, model_id: q-1}]}
  r: {deployments: [{provider: a, model_id: r-1}, {provider: b, model_id: r-1}]}
  s: {deployments: [{provider: a, model_id: s-1}, {provider: b, model_id: s-1}]}
  t: {deployments: [{provider: a, model_id: t-1}]}
"""

# Every kind of branch, one route each where it can be (line numbers matter below).
POLICY = """\
route m {
    when tag("x") use n
    when quota(a) > 50% prefer a
    otherwise avoid a
}
route n when quota(b) > 50% prefer b else a
route o {
    when tag("z") deny "no z"
    when hour >= 22 only b
    fallback p
}
route p prefer b
route q strategy round_robin
route r when true prefer a
route s {
    prefer a
    when tag("x") prefer b
}
"""

# (line, route, kind, text) of every branch of POLICY, in report order.
BRANCHES = [
    (2, "m", "true", 'when tag("x") → use n'),
    (2, "m", "false", 'when tag("x") → false'),
    (3, "m", "true", "when quota(a) > 50% → prefer a"),
    (3, "m", "false", "when quota(a) > 50% → false"),
    (4, "m", "otherwise", "otherwise avoid a"),
    (6, "n", "true", "when quota(b) > 50% → prefer b"),
    (6, "n", "else", "when quota(b) > 50% → else prefer a"),
    (8, "o", "true", 'when tag("z") → deny "no z"'),
    (8, "o", "false", 'when tag("z") → false'),
    (9, "o", "true", "when hour >= 22 → only b"),
    (9, "o", "false", "when hour >= 22 → false"),
    (7, "o", "none", "no clause fired"),
    (12, "p", "do", "prefer b"),
    (13, "q", "none", "route applies"),
    (14, "r", "true", "when true → prefer a"),
    (16, "s", "do", "prefer a"),
]


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    (tmp_path / "routes.policy").write_text(POLICY)
    (tmp_path / "tests").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_tests(directory: Path, text: str, name: str = "decisions.yaml") -> Path:
    path = directory / "tests" / name
    path.write_text(textwrap.dedent(text))
    return path


def decide(router: policyrouter.Router, model: str, **kwargs: object) -> Decision:
    """A decision, or the one a refusal carries."""
    kwargs.setdefault("facts", {})
    try:
        return router.decide(model, **kwargs)  # type: ignore[arg-type]
    except DecisionError as e:
        assert e.decision is not None
        return e.decision


def hits(router: policyrouter.Router, decisions: list[Decision]) -> dict[tuple[int, str, str], int]:
    report = coverage_of(router.program, decisions)
    return {(r.branch.span.line, r.branch.route.target, r.branch.kind): r.hits for r in report.rows if r.branch.span}


# -- which branches there are -------------------------------------------------------------------


def test_every_kind_of_branch_is_enumerated_in_order(config_dir: Path) -> None:
    router = policyrouter.load(config_dir)
    found = [(b.span.line if b.span else 0, b.route.target, b.kind, b.text) for b in branches(router.program)]
    assert found == BRANCHES


def test_a_clause_after_one_that_always_decides_has_no_branch(config_dir: Path) -> None:
    """`s`'s `when tag("x")` is unreachable (compile warns) and `r`'s `when true` has no false branch."""
    router = policyrouter.load(config_dir)
    by_route = {b.route.target: [] for b in branches(router.program)}
    for b in branches(router.program):
        by_route[b.route.target].append(b.kind)
    assert by_route["s"] == ["do"]
    assert by_route["r"] == ["true"]
    assert "none" not in by_route["m"]  # `otherwise` always decides: nothing falls through


def test_a_condition_that_cannot_hold_has_no_branch_for_its_action(config_dir: Path) -> None:
    # `when hour > 30 … else …` listed `→ prefer a` with 0 hits: 100% could not be reached
    (config_dir / "routes.policy").write_text(
        "route m when hour > 30 prefer a else b\nroute n when not true prefer a\n"
    )
    router = policyrouter.load(config_dir)
    kinds = {(b.route.target, b.kind) for b in branches(router.program)}
    assert kinds == {("m", "else"), ("n", "false"), ("n", "none")}


# -- which branches decisions took --------------------------------------------------------------


def test_conditions_count_true_false_and_else(config_dir: Path) -> None:
    router = policyrouter.load(config_dir)
    decisions = [
        decide(router, "m", facts={"quota": {"a": "90%"}}),  # x false, quota true
        decide(router, "m", facts={"quota": {"a": "10%"}}),  # x false, quota false → otherwise
        decide(router, "n", facts={"quota": {"b": "10%"}}),  # else
    ]
    got = hits(router, decisions)
    assert got[2, "m", "true"] == 0
    assert got[2, "m", "false"] == 2
    assert got[3, "m", "true"] == 1
    assert got[3, "m", "false"] == 1
    assert got[4, "m", "otherwise"] == 1
    assert got[6, "n", "true"] == 0
    assert got[6, "n", "else"] == 1


def test_use_counts_the_route_it_leads_to(config_dir: Path) -> None:
    router = policyrouter.load(config_dir)
    got = hits(router, [decide(router, "m", tags=["x"])])
    assert got[2, "m", "true"] == 1
    assert got[6, "n", "true"] == 1  # n's route decided the `use n` request (full quota of b)
    assert got[3, "m", "true"] == 0  # m's later clauses were not tried


def test_a_refusal_counts_and_fallbacks_count(config_dir: Path) -> None:
    router = policyrouter.load(config_dir)
    denied = decide(router, "o", tags=["z"])
    assert denied.error is not None and denied.error.code == "denied"
    late = decide(router, "o", facts={"hour": 23})
    got = hits(router, [denied, late])
    assert got[8, "o", "true"] == 1
    assert got[8, "o", "false"] == 1
    assert got[9, "o", "true"] == 1
    assert got[7, "o", "none"] == 0
    assert got[12, "p", "do"] == 1  # p's route, reached as o's fallback


def test_fall_through_and_constant_and_bare_branches(config_dir: Path) -> None:
    router = policyrouter.load(config_dir)
    decisions = [decide(router, "o", facts={"hour": 9}), decide(router, "q"), decide(router, "r"), decide(router, "s")]
    got = hits(router, decisions)
    assert got[7, "o", "none"] == 1
    assert got[13, "q", "none"] == 1
    assert got[14, "r", "true"] == 1
    assert got[16, "s", "do"] == 1


def test_totals_and_per_file(config_dir: Path) -> None:
    router = policyrouter.load(config_dir)
    coverage = Coverage(router.program)
    coverage.record(decide(router, "q"))
    coverage.record(decide(router, "t"))  # no written route: nothing to count, still a decision
    coverage.record(None)  # no decision at all (an invalid case): not counted
    report = coverage.report()
    assert (report.covered, report.total) == (1, 16)
    assert report.percent == pytest.approx(6.25)
    assert (report.routes_covered, report.routes_total) == (1, 7)
    assert report.decisions == 2
    [file] = report.files()
    assert (file.path, file.covered, file.total) == ("routes.policy", 1, 16)
    assert [b.kind for b in report.missed][:2] == ["true", "false"]


def test_nothing_to_cover_is_full_coverage(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text(REGISTRY)
    router = policyrouter.load(tmp_path)
    report = coverage_of(router.program, [])
    assert (report.total, report.percent) == (0, 100.0)


# -- the command --------------------------------------------------------------------------------

CASES = """\
- name: m prefers a with quota
  request: {model: m}
  facts: {quota: {a: 90%}}
  expect: {order: [a, b]}
- name: n prefers b
  request: {model: n}
  expect: {first: b}
- name: z is denied
  request: {model: o, tags: [z]}
  expect: {error: denied}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_text_report_is_a_table_with_a_total(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES)
    code, out, _ = run(["test", "--coverage"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["location", "route", "branch", "hits"]
    row = next(line for line in lines if "when quota(a) > 50% → prefer a" in line)
    assert row.startswith("routes.policy:3:5 ")
    assert row.split()[1] == "m"
    assert row.split()[-1] == "1"
    missed = next(line for line in lines if "otherwise avoid a" in line)
    assert missed.split()[-1] == "0"
    # m: x false ×1, quota true ×1; n: true ×1; o: z true ×1
    assert "routes.policy: 4/16 branches (25.0%)" in lines
    assert "coverage: 4/16 branches (25.0%), 3/7 routes, from 3 decisions" in lines
    assert lines[-1] == "3 passed, 0 failed"


def test_fail_under(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES)
    code, _, err = run(["test", "--fail-under", "80"], capsys)
    assert code == 1
    assert "coverage 25.0% is below --fail-under 80%" in err
    code, out, err = run(["test", "--fail-under", "25"], capsys)
    assert (code, err) == (0, "")
    assert "coverage: 4/16 branches" in out  # --fail-under implies --coverage


def test_fail_under_takes_a_percentage(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES)
    with pytest.raises(SystemExit) as exit:
        cli.main(["test", "--fail-under", "120"])
    assert exit.value.code == 2
    assert "between 0 and 100" in capsys.readouterr().err
    assert run(["test", "--fail-under", "20%"], capsys)[0] == 0


def test_a_failing_case_still_counts_its_decision(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES.replace("expect: {first: b}", "expect: {first: a}"))
    code, out, _ = run(["test", "--coverage"], capsys)
    assert code == 1
    assert "FAIL n prefers b" in out
    assert "coverage: 4/16 branches (25.0%)" in out


def test_json_includes_coverage(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES)
    code, out, _ = run(["test", "--format", "json", "--fail-under", "30"], capsys)
    assert code == 1
    data = json.loads(out)
    cov = data["coverage"]
    assert cov["percent"] == 25.0
    assert cov["branches"] == {"covered": 4, "total": 16}
    assert cov["routes"] == {"covered": 3, "total": 7}
    assert (cov["fail_under"], cov["passed"]) == (30.0, False)
    assert cov["files"] == [{"file": "routes.policy", "covered": 4, "total": 16, "percent": 25.0}]
    assert cov["rows"][0] == {
        "file": "routes.policy",
        "line": 2,
        "column": 5,
        "route": "m",
        "kind": "true",
        "branch": 'when tag("x") → use n',
        "hits": 0,
    }
    assert len(cov["rows"]) == 16
    assert [t["passed"] for t in data["tests"]] == [True, True, True]


def test_json_without_coverage_has_none(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES)
    code, out, _ = run(["test", "--format", "json"], capsys)
    assert code == 0
    assert "coverage" not in json.loads(out)


def test_github_annotates_failures_and_missed_branches(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES.replace("expect: {first: b}", "expect: {first: a}"))
    code, out, _ = run(["test", "--format", "github", "--coverage", "--fail-under", "50"], capsys)
    assert code == 1
    lines = out.splitlines()
    assert (
        "::error file=tests/decisions.yaml,line=5,title=decision test failed::n prefers b: expected first n@a" in lines
    )
    assert "::notice file=routes.policy,line=4,col=5,title=not covered by decision tests::m: otherwise avoid a" in lines
    assert sum(line.startswith("::notice ") for line in lines) == 12
    # `%` is escaped as GitHub reads workflow commands
    assert (
        "::notice file=routes.policy,line=3,col=5,title=not covered by decision tests::m: when quota(a) > 50%25 → false"
        in lines
    )
    assert "::error title=decision-test coverage::coverage 25.0%25 is below --fail-under 50%25" in lines


# -- junit --------------------------------------------------------------------------------------


def test_junit_has_a_suite_per_file_and_a_case_per_case(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, CASES.replace("expect: {first: b}", "expect: {first: a}"))
    write_tests(config_dir, "- name: q applies\n  request: {model: q}\n  expect: {order: [a, b]}\n", "more.yaml")
    write_tests(config_dir, "- name: typo\n  request: {model: q, tokenz: 1}\n  expect: {first: a}\n", "typo.yaml")
    code, out, err = run(["test", "--format", "junit", "--coverage"], capsys)
    assert code == 1
    root = ElementTree.fromstring(out)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["tests/decisions.yaml", "tests/more.yaml", "tests/typo.yaml"]
    decisions = suites["tests/decisions.yaml"]
    assert (decisions.get("tests"), decisions.get("failures"), decisions.get("errors")) == ("3", "1", "0")
    cases = {c.get("name"): c for c in decisions.findall("testcase")}
    assert list(cases) == ["m prefers a with quota", "n prefers b", "z is denied"]
    assert cases["m prefers a with quota"].find("failure") is None
    assert cases["n prefers b"].get("line") == "5"
    assert cases["n prefers b"].get("classname") == "tests.decisions"
    failure = cases["n prefers b"].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected first n@a; actual order [n@b, n@a]"
    assert failure.text is not None
    assert failure.text.startswith("tests/decisions.yaml:5:3: FAIL n prefers b\n  expected first n@a\n")
    assert "route n at routes.policy:6:1" in failure.text  # the explanation comes along
    error = suites["tests/typo.yaml"].find("testcase/error")
    assert error is not None
    assert (error.get("type"), error.get("message")) == ("test-invalid", "unknown key `tokenz`")
    # the XML is the whole of stdout; the coverage table goes to stderr
    assert "coverage: " in err


def test_junit_lists_a_file_without_cases(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(config_dir, "", "empty.yaml")
    code, out, _ = run(["test", "--format", "junit"], capsys)
    assert code == 0
    [suite] = ElementTree.fromstring(out).findall("testsuite")
    assert (suite.get("name"), suite.get("tests")) == ("tests/empty.yaml", "0")


def test_shipped_example_is_fully_covered(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run(["test", "--config", "policies/first-policy", "--fail-under", "100"], capsys)
    assert code == 0
    assert "coverage: 2/2 branches (100.0%), 1/1 routes" in out


def test_fail_under_compares_the_percentage_as_it_is_shown(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2 of 3 branches: `--fail-under 66.67` failed against 66.666…, while JSON showed 66.67 and passed false
    (config_dir / "routes.policy").write_text("route m when quota(a) > 20% prefer a\n")
    write_tests(config_dir, "- name: low\n  request: {model: m}\n  facts: {quota: {a: 10%}}\n  expect: {first: a}\n")
    code, out, _ = run(["test", "--fail-under", "66.67", "--format", "json"], capsys)
    coverage = json.loads(out)["coverage"]
    assert (code, coverage["percent"], coverage["passed"]) == (0, 66.67, True)
    code, _, err = run(["test", "--fail-under", "66.7"], capsys)
    assert code == 1 and "coverage 66.67% is below --fail-under 66.7%" in err
