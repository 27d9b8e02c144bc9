"""Decision-test files that are wrong become diagnostics at file:line:col, not tracebacks or passes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import policyrouter
from policyrouter import cli, decision_tests

REGISTRY = """\
providers:
  work: {litellm_provider: anthropic, api_key_env: WORK_KEY, quota: {limit: 5M, unit: tokens, window: 5h}}
  personal: {litellm_provider: anthropic, api_key_env: PERSONAL_KEY}
models:
  sonnet:
    capabilities: [tools, streaming]
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}
    deployments:
      - {provider: work, model_id: claude-sonnet-4}
      - {provider: personal, model_id: claude-sonnet-4}
"""
CARD = "route sonnet when quota(work) > 20% prefer work else personal\n"
GOOD = "- name: fine\n  request: {model: sonnet}\n  expect: {order: [work, personal]}\n"

# (name, file text, code, line, column, words in the message, words in the help or None)
# fmt: off
BAD_FILES = [
    ("unknown case key",
     "- name: typo\n  request: {model: sonnet}\n  expcet: {order: [work, personal]}\n",
     "test-invalid", 3, 3, ["unknown key `expcet`"], ["`expect`"]),
    ("unknown request key",
     "- name: typo\n  request: {model: sonnet, tokns: 5}\n  expect: {first: work}\n",
     "test-invalid", 2, 28, ["unknown key `tokns`"], ["`tokens`"]),
    ("unknown expect key",
     "- name: typo\n  request: {model: sonnet}\n  expect: {frist: work}\n",
     "test-invalid", 3, 12, ["unknown key `frist`"], ["`first`"]),
    ("missing request",
     "- name: no request\n  expect: {order: [work]}\n",
     "test-invalid", 1, 3, ["needs `request"], None),
    ("missing expect",
     "- name: no expectation\n  request: {model: sonnet}\n",
     "test-invalid", 1, 3, ["needs `expect"], None),
    ("request without a model",
     "- name: no model\n  request: {tokens: 5}\n  expect: {first: work}\n",
     "test-invalid", 2, 12, ["`model`"], None),
    ("two expectations",
     "- name: both\n  request: {model: sonnet}\n  expect: {order: [work, personal], first: work}\n",
     "test-invalid", 3, 11, ["`order`", "`first`", "`error`"], None),
    ("no expectation",
     "- name: neither\n  request: {model: sonnet}\n  expect: {}\n",
     "test-invalid", 3, 11, ["exactly one"], None),
    ("facts not a mapping",
     "- name: facts\n  request: {model: sonnet}\n  facts: [1]\n  expect: {first: work}\n",
     "test-invalid", 1, 3, ["`facts`"], None),
    ("a case that is not a mapping",
     GOOD + "- 5\n",
     "test-invalid", 4, 3, ["mapping"], None),
    ("a file that is not a list",
     "name: x\nrequest: {model: sonnet}\n",
     "test-invalid", 1, 1, ["list"], None),
    ("invalid YAML",
     GOOD + "- name: [unclosed\n",
     "test-syntax", 5, 1, ["invalid YAML"], ["while parsing a flow sequence", "starts on line 4"]),
    ("a tab for indentation",
     GOOD + "-\tname: tab\n",
     "test-syntax", 4, 2, ["invalid YAML"], ["spaces, not tabs"]),
    ("order that is not a list",
     "- name: order\n  request: {model: sonnet}\n  expect: {order: work}\n",
     "test-invalid", 3, 19, ["`order`", "list"], None),
    ("requires that is not a list",
     "- name: requires\n  request: {model: sonnet, requires: tools}\n  expect: {first: work}\n",
     "test-invalid", 2, 38, ["`requires`", "list"], None),
    ("a duplicate key",
     "- name: twice\n  request: {model: sonnet}\n  request: {model: haiku}\n  expect: {first: work}\n",
     "test-syntax", 3, 3, ["duplicate key", "request"], None),
    ("a negative token count",
     "- name: negative\n  request: {model: sonnet, tokens: -5}\n  expect: {first: work}\n",
     "test-invalid", 2, 36, ["`tokens`", "number of tokens"], None),
    ("a max_tokens that is no count",
     "- name: lots\n  request: {model: sonnet, max_tokens: lots}\n  expect: {first: work}\n",
     "test-invalid", 2, 40, ["`max_tokens`", "number of tokens"], None),
    ("an unknown refusal code",
     "- name: typo\n  request: {model: sonnet}\n  expect: {error: budget_exceded}\n",
     "test-invalid", 3, 19, ["unknown refusal code `budget_exceded`"], ["`budget_exceeded`"]),
    ("a character YAML does not allow",
     "- name: bell\n  request: {model: \asonnet}\n  expect: {first: work}\n",
     "test-syntax", 2, 20, ["unacceptable character #x0007"], None),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "code", "line", "column", "message", "help"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_files_become_diagnostics(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    code: str,
    line: int,
    column: int,
    message: list[str],
    help: list[str] | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "cases.yaml").write_text(text, encoding="utf-8")
    _, problems = decision_tests.load_cases(Path("tests/cases.yaml"))
    assert len(problems) == 1, [p.render() for p in problems]
    (problem,) = problems
    assert (problem.code, problem.severity) == (code, "error")
    assert problem.location == f"tests/cases.yaml:{line}:{column}"
    for word in message:
        assert word in problem.message
    assert "{'" not in problem.message  # no Python reprs
    if help is None:
        return
    assert problem.help is not None
    for word in help:
        assert word in problem.help


def test_the_good_cases_of_a_file_still_load(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(
        GOOD + "- name: typo\n  request: {model: sonnet}\n  expcet: {first: work}\n" + GOOD.replace("fine", "also fine")
    )
    cases, problems = decision_tests.load_cases(path)
    assert [c.name for c in cases] == ["fine", "also fine"]
    assert [p.span.line for p in problems if p.span is not None] == [6]


def test_every_problem_of_a_case_is_reported_once(tmp_path: Path) -> None:
    # It reported the first only: fixing a file took as many runs as it had mistakes. A misspelled
    # key is not reported again as missing (`modle` is not also "`request` needs a `model`").
    path = tmp_path / "cases.yaml"
    path.write_text(
        "- name: three mistakes\n"
        "  request: {modle: sonnet, tags: batch, tokens: -1}\n"
        "  expect: {error: budget_exceded}\n"
        "  facts: [1]\n"
    )
    cases, problems = decision_tests.load_cases(path)
    assert cases == []
    assert [(p.span.line, p.span.column, p.message) for p in problems if p.span is not None] == [
        (2, 13, "unknown key `modle`"),
        (2, 34, "`tags` is a list, such as `[batch]`"),
        (2, 49, "`tokens` is a whole number of tokens, 0 to 2**53, such as `2000` or `8k`"),
        (3, 19, "unknown refusal code `budget_exceded`"),
        (1, 3, "`facts` is a mapping such as `{quota: {work: 15%}}`"),
    ]


# (case, the one problem it has): values that were read as text (`None`, `5`) or cut (`1.5` as 1), so
# such a case ran, and could pass, instead of being reported
NULLS_AND_FRACTIONS = [
    ("request: {model: ~}\n  expect: {error: unknown_model}", "`model` is a model's name, such as `sonnet`"),
    ("request: {model: 5}\n  expect: {error: unknown_model}", "`model` is a model's name, such as `sonnet`"),
    ("request: {model: sonnet, tokens: 1.5}\n  expect: {first: work}", "`tokens` is a whole number of tokens"),
    ("request: {model: sonnet}\n  expect: {error: ~}", "`error` needs a value"),
    ("request: {model: sonnet}\n  expect: {first: ~}", "`first` needs a value"),
    ("request: {model: sonnet}\n  expect: {order: ~}", "`order` needs a value"),
    ("request: {model: sonnet}\n  expect: {order: []}", "an empty `order` never comes"),
    ("request: {model: sonnet}\n  expect: {order: [work, ~]}", "`order` lists deployments by name"),
    ("request: {model: sonnet}\n  expect: {order: [work, [personal]]}", "`order` lists deployments by name"),
    ('request: {model: sonnet}\n  expect: {first: ""}', "`first` takes one deployment"),
    ("request: {model: sonnet, tokens: 99999999999999999999}\n  expect: {first: work}", "0 to 2**53"),
]


@pytest.mark.parametrize(
    ("case", "problem"),
    NULLS_AND_FRACTIONS,
    ids=[
        "null model",
        "number model",
        "1.5 tokens",
        "error",
        "first",
        "order",
        "empty order",
        "null in order",
        "list in order",
        "empty first",
        "tokens too many",
    ],
)
def test_a_value_that_is_no_value_is_an_invalid_case(tmp_path: Path, case: str, problem: str) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(f"- name: odd\n  {case}\n")
    cases, problems = decision_tests.load_cases(path)
    assert cases == [] and len(problems) == 1 and problem in problems[0].message


def test_null_tokens_are_no_tokens_as_null_max_tokens_are_none(make_config: Callable[..., Path]) -> None:
    # `tokens: ~` loaded, then failed the case: "expected a count, got `None`"
    case = "- name: odd\n  request: {model: sonnet, tokens: ~, max_tokens: ~}\n  expect: {first: work}\n"
    directory = make_config(REGISTRY, CARD, tests={"cases.yaml": case})
    (outcome,), problems = decision_tests.run_files(policyrouter.load(directory), [directory / "tests" / "cases.yaml"])
    assert problems == [] and outcome.passed, outcome.message


def test_half_a_surrogate_pair_is_a_placed_error(tmp_path: Path) -> None:
    # `"\ud800"` decoded to a string that no output could print: `test` and `check` ended in a
    # UnicodeEncodeError traceback
    path = tmp_path / "cases.yaml"
    path.write_text('- name: "odd \\ud800 name"\n  request: {model: sonnet}\n  expect: {first: work}\n')
    cases, (problem,) = decision_tests.load_cases(path)
    assert cases == [] and problem.code == "test-syntax"
    assert "`\\ud800` is half of a UTF-16 surrogate pair" in problem.message
    assert problem.span is not None and (problem.span.line, problem.span.column) == (1, 14)


def test_an_empty_file_has_no_cases(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("# nothing yet\n")
    assert decision_tests.load_cases(path) == ([], [])


# The YAML is read first without the scanner that keeps comments, and again by the full round-trip
# loader where that fails: these texts are read differently by the two, and must read as the full one.


def test_a_value_only_the_full_reader_takes_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("- name: a\n  request: {model: sonnet}\n  facts: {quota: {work: :21%}}\n  expect: {first: work}\n")
    (case,), problems = decision_tests.load_cases(path)
    assert problems == [] and case.facts == {"quota": {"work": ":21%"}}
    assert (case.span.line, case.span.column) == (1, 3)


def test_broken_yaml_is_reported_where_the_full_reader_stops(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(GOOD + "- name: {b}c: d}\n  request: {model: sonnet}\n")
    cases, (problem,) = decision_tests.load_cases(path)
    assert cases == [] and problem.code == "test-syntax"
    assert problem.message == "invalid YAML: mapping values are not allowed here"
    assert problem.span is not None and (problem.span.line, problem.span.column) == (4, 13)


def test_facts_that_do_not_fit_fail_the_case_with_a_suggestion(make_config: Callable[..., Path]) -> None:
    wrong = "- name: typo in facts\n  request: {model: sonnet}\n  facts: {quota: {wrk: 5%}}\n  expect: {first: work}\n"
    directory = make_config(REGISTRY, CARD, tests={"cases.yaml": wrong})
    router = policyrouter.load(directory)
    (outcome,), problems = decision_tests.run_files(router, [directory / "tests" / "cases.yaml"])
    assert problems == [] and not outcome.passed
    assert "wrk" in outcome.message and "`work`" in outcome.message
    assert outcome.case.span.line == 1


def test_a_capability_that_does_not_exist_fails_the_case(make_config: Callable[..., Path]) -> None:
    # `requires: [vison]` was refused as unsupported, so a case expecting that refusal passed on a typo
    case = "- name: typo\n  request: {model: sonnet, requires: [vison]}\n  expect: {error: unsupported_capability}\n"
    directory = make_config(REGISTRY, CARD, tests={"cases.yaml": case})
    (outcome,), _ = decision_tests.run_files(policyrouter.load(directory), [directory / "tests" / "cases.yaml"])
    assert not outcome.passed
    assert outcome.message == "invalid case: `vison` is not a capability name (did you mean `vision`?)"


def test_the_cli_renders_them_with_a_position(
    make_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = "- name: typo\n  request: {model: sonnet}\n  expcet: {order: [work, personal]}\n"
    directory = make_config(REGISTRY, CARD, tests={"bad.yaml": bad, "good.yaml": GOOD})
    monkeypatch.chdir(directory.parent)
    code = cli.main(["test", "--config", "cfg"])
    out = capsys.readouterr().out
    assert code == 1
    assert "cfg/tests/bad.yaml:3:3: error[test-invalid]: unknown key `expcet`" in out
    assert "did you mean `expect`?" in out
    assert out.strip().splitlines()[-1] == "1 passed, 0 failed"


NIGHT = "route sonnet when hour >= 22 or weekday == 7 prefer personal\n"
# (name, facts of the case, the clock facts the warning names: none, no warning)
CLOCK_CASES = [
    ("neither given", "", ["hour", "weekday"]),
    ("hour given, weekday read", "  facts: {hour: 9}\n", ["weekday"]),
    ("hour holds: weekday never read", "  facts: {hour: 23}\n", []),
    ("both given", "  facts: {hour: 9, weekday: 3}\n", []),
]


@pytest.mark.parametrize(("facts", "named"), [c[1:] for c in CLOCK_CASES], ids=[c[0] for c in CLOCK_CASES])
def test_a_case_that_reads_the_clock_is_a_warning(
    make_config: Callable[..., Path], facts: str, named: list[str]
) -> None:
    # Such a case passed or failed with the time it ran: in CI, one that passed on Friday failed on Sunday.
    case = f"- name: at night\n  request: {{model: sonnet}}\n{facts}  expect: {{first: personal}}\n"
    directory = make_config(REGISTRY, NIGHT, tests={"cases.yaml": case})
    outcomes, problems = decision_tests.run_files(policyrouter.load(directory), [directory / "tests" / "cases.yaml"])
    assert len(outcomes) == 1
    if not named:
        assert problems == []
        return
    (warning,) = problems
    assert (warning.code, warning.severity) == ("test-reads-clock", "warning")
    assert warning.span is not None and (warning.span.line, warning.span.column) == (1, 3)
    for fact in ("hour", "weekday"):
        assert (f"`{fact}`" in warning.message) == (fact in named)
        assert (f"{fact}: " in (warning.help or "")) == (fact in named)


def test_the_clock_warning_can_be_allowed_as_a_lint_can(make_config: Callable[..., Path]) -> None:
    allowed = "# policyrouter: allow test-reads-clock\n"
    case = allowed + "- name: any time\n  request: {model: sonnet}\n  expect: {first: work}\n"
    directory = make_config(REGISTRY, NIGHT, tests={"cases.yaml": case})
    outcomes, problems = decision_tests.run_files(policyrouter.load(directory), [directory / "tests" / "cases.yaml"])
    assert len(outcomes) == 1 and outcomes[0].clock and problems == []


def test_the_clock_warning_fails_only_a_strict_check(
    make_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Work comes first at any hour, so the case passes whenever it runs; it still reads the clock.
    case = "- name: work first\n  request: {model: sonnet}\n  expect: {first: work}\n"
    directory = make_config(REGISTRY, "route sonnet when hour >= 22 prefer work\n", tests={"cases.yaml": case})
    monkeypatch.chdir(directory.parent)
    assert cli.main(["test", "--config", "cfg"]) == 0
    assert "warning[test-reads-clock]" in capsys.readouterr().out
    assert cli.main(["test", "--config", "cfg", "--format", "junit"]) == 0
    junit = capsys.readouterr()
    assert 'tests="1" failures="0" errors="0"' in junit.out and "test-reads-clock" in junit.err
    assert cli.main(["check", "cfg"]) == 0
    assert "0 errors, 1 warning, 1 passed, 0 failed" in capsys.readouterr().out
    assert cli.main(["check", "cfg", "--strict"]) == 1
    assert "error[test-reads-clock]" in capsys.readouterr().out


def test_a_junit_report_stays_xml_whatever_a_case_is_named(make_config: Callable[..., Path]) -> None:
    # a case named with a control character made XML no JUnit reader would take
    from xml.dom import minidom

    case = '- name: "bell\\a"\n  request: {model: sonnet}\n  expect: {first: personal}\n'
    directory = make_config(REGISTRY, CARD, tests={"cases.yaml": case})
    files = [directory / "tests" / "cases.yaml"]
    outcomes, problems = decision_tests.run_files(policyrouter.load(directory), files)
    assert outcomes[0].case.name == "bell\a" and not outcomes[0].passed
    report = minidom.parseString(decision_tests.junit_xml(outcomes, problems, files))
    (case_node,) = report.getElementsByTagName("testcase")
    assert case_node.getAttribute("name") == "bell\ufffd"


def test_a_second_case_of_one_name_is_a_warning(make_config: Callable[..., Path]) -> None:
    # both ran under one name: JUnit readers merged them and pytest gave them one id
    directory = make_config(
        REGISTRY, CARD, tests={"cases.yaml": GOOD + GOOD.replace("order: [work, personal]", "first: work")}
    )
    outcomes, problems = decision_tests.run_files(policyrouter.load(directory), [directory / "tests" / "cases.yaml"])
    assert len(outcomes) == 2
    (warning,) = problems
    assert (warning.code, warning.severity, warning.message) == (
        "test-duplicate-name",
        "warning",
        "a second case named `fine`",
    )
    assert warning.span is not None and warning.span.line == 4


def test_a_second_case_of_one_name_is_a_warning_even_when_it_is_invalid(make_config: Callable[..., Path]) -> None:
    # the case's own problem was reported, and the name it repeats was not
    invalid = GOOD.replace("order: [work, personal]", "first: work") + "  facts: 5\n"
    directory = make_config(REGISTRY, CARD, tests={"cases.yaml": GOOD + invalid})
    _, problems = decision_tests.run_files(policyrouter.load(directory), [directory / "tests" / "cases.yaml"])
    assert sorted(p.code for p in problems) == ["test-duplicate-name", "test-invalid"]
