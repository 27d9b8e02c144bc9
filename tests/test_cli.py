"""The command line: exit codes, output formats, explain, test, and staying clear of litellm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import policyrouter
from policyrouter import cli

REGISTRY = """\
providers:
  work:
    litellm_provider: anthropic
    api_key_env: ANTHROPIC_API_KEY_WORK
    quota: {limit: 5M, unit: tokens, window: 5h}
  personal:
    litellm_provider: anthropic
    api_key_env: ANTHROPIC_API_KEY_PERSONAL
    quota: {limit: 2M, unit: tokens, window: 5h}
models:
  sonnet:
    capabilities: [tools, vision, streaming]
    context_window: 200k
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}
    deployments:
      - {provider: work, model_id: claude-sonnet-4}
      - {provider: personal, model_id: claude-sonnet-4}
"""
CARD = "route sonnet when quota(work) > 20% prefer work else personal\n"
WARNING_ONLY = "route sonnet {\n    prefer work\n    when quota(personal) > 20% prefer personal\n}\n"  # unreachable
ERROR = "route sonnet when quota(wrok) > 20% prefer work\n"
PASSING_TESTS = """\
- name: work first while it keeps its margin
  request: {model: sonnet}
  facts: {quota: {work: 50%}}
  expect: {order: [work, personal]}
- name: personal first below the margin
  request: {model: sonnet}
  facts: {quota: {work: 15%}}
  expect: {first: personal}
"""
WRONG_TEST = """\
- name: deliberately wrong
  request: {model: sonnet}
  facts: {quota: {work: 10%}}
  expect: {order: [work, personal]}
"""


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """`run(*argv)` runs the CLI in tmp_path (so paths print relative to it) and captures its output."""
    monkeypatch.chdir(tmp_path)

    def go(*argv: str) -> Run:
        try:
            code = cli.main(list(argv))
        except SystemExit as e:  # argparse's own usage errors
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return go


@pytest.fixture
def card(make_config: Callable[..., Path]) -> Path:
    return make_config(REGISTRY, CARD, tests={"card.yaml": PASSING_TESTS})


def test_version(run: Callable[..., Run]) -> None:
    result = run("--version")
    assert (result.code, result.out) == (0, f"policyrouter {policyrouter.__version__}\n")


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (["check", "nope"], ["nope: error[config-missing]: no directory `nope`", " = help: a config directory holds"]),
        (["check", "cfg/registry.yaml"], ["is not a directory", "give the config directory that holds it: `cfg`"]),
        (["explain", "sonnet", "--config", "cfg/main.policy"], ["is not a directory", "holds it: `cfg`"]),
    ],
    ids=["missing", "the registry file", "a policy file"],
)
def test_a_config_path_that_is_not_a_config_directory(
    card: Path, run: Callable[..., Run], argv: list[str], lines: list[str]
) -> None:
    result = run(*argv)
    assert result.code == 1
    text = result.out + result.err
    for line in lines:
        assert line in text


def test_check_prints_no_python_warning_for_an_anchor_defined_again(
    make_config: Callable[..., Path], run: Callable[..., Run]
) -> None:
    # Valid YAML that ruamel warns about: the second `&plan` is what the alias after it takes.
    registry = REGISTRY.replace(
        "quota: {limit: 5M, unit: tokens, window: 5h}", "quota: &plan {limit: 5M, unit: tokens, window: 5h}"
    ).replace("quota: {limit: 2M, unit: tokens, window: 5h}", "quota: &plan {limit: 2M, unit: tokens, window: 5h}")
    make_config(registry, CARD, tests={"card.yaml": PASSING_TESTS})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run("check")
    assert result.code == 0, result.out + result.err
    assert [str(w.message) for w in caught] == []


# -- check: exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "tests", "argv", "code"),
    [
        (CARD, {"card.yaml": PASSING_TESTS}, [], 0),
        (CARD, {"card.yaml": PASSING_TESTS}, ["--strict"], 0),
        (WARNING_ONLY, {}, [], 0),
        (WARNING_ONLY, {}, ["--strict"], 1),
        (ERROR, {}, [], 1),
        (CARD, {"wrong.yaml": WRONG_TEST}, [], 1),
        (CARD, {}, ["--format", "xml"], 2),
    ],
    ids=["clean", "clean strict", "warning", "warning strict", "error", "failing decision test", "bad option"],
)
def test_check_exit_codes(
    make_config: Callable[..., Path],
    run: Callable[..., Run],
    policy: str,
    tests: dict[str, str],
    argv: list[str],
    code: int,
) -> None:
    make_config(REGISTRY, policy, tests=tests)
    result = run("check", "cfg", *argv)
    assert result.code == code
    assert "Traceback" not in result.out + result.err


def test_check_with_no_command_is_a_usage_error(run: Callable[..., Run]) -> None:
    assert run().code == 2


def test_check_reports_and_counts(card: Path, run: Callable[..., Run]) -> None:
    result = run("check", "cfg")
    assert result.out.strip().splitlines()[-1] == "cfg: 0 errors, 0 warnings, 2 passed, 0 failed decision tests"


def test_check_takes_the_config_option(card: Path, run: Callable[..., Run]) -> None:
    assert run("check", "--config", "cfg").code == 0


def test_strict_turns_warnings_into_errors(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, WARNING_ONLY)
    plain, strict = run("check", "cfg"), run("check", "cfg", "--strict")
    assert "warning[unreachable-clause]" in plain.out and "error[unreachable-clause]" not in plain.out
    assert "error[unreachable-clause]" in strict.out and "warning[unreachable-clause]" not in strict.out


def test_check_runs_the_decision_tests(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD, tests={"card.yaml": PASSING_TESTS, "wrong.yaml": WRONG_TEST})
    result = run("check", "cfg")
    assert result.code == 1
    assert "FAIL deliberately wrong" in result.out
    assert result.out.strip().splitlines()[-1].endswith("2 passed, 1 failed decision tests")


def test_check_on_a_tree_of_configs(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD, name="configs/a")
    make_config(REGISTRY, ERROR, name="configs/b")
    result = run("check", "configs")
    assert result.code == 1
    summaries = result.out.strip().splitlines()[-2:]
    assert summaries[0].startswith("configs/a: 0 errors") and summaries[1].startswith("configs/b: 1 error,")


def test_check_caps_the_diagnostics_it_shows(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, "route sonnet {\n    requires tols\n    strategy fastst\n    prefer wrok, persnal\n}\n")
    result = run("check", "cfg", "--max-diagnostics", "1")
    assert result.code == 1
    assert result.out.count("error[") == 1 and "… and 3 more" in result.out
    assert result.out.strip().splitlines()[-1].startswith("cfg: 4 errors,")
    for bad, words in (("-1", "a count is 0 or more, not -1"), ("x", "not a whole number: 'x'")):
        refused = run("check", "cfg", "--max-diagnostics", bad)  # -1 showed all but one, then "… and 5 more"
        assert refused.code == 2 and words in refused.err


def test_the_shipped_policies_pass_strictly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert cli.main(["check", "policies", "--strict"]) == 0, capsys.readouterr().out


# -- check: formats -------------------------------------------------------------------------------------


def test_check_json(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, ERROR + WARNING_ONLY.replace("sonnet", "sonnet2"), tests={})
    data = json.loads(run("check", "cfg", "--format", "json").out)
    assert set(data) >= {"diagnostics", "tests"}
    (diagnostic, *_) = data["diagnostics"]
    assert {"code", "severity", "message", "file", "line", "column", "end_line", "end_column"} <= set(diagnostic)
    assert diagnostic == {
        "code": "unknown-provider",
        "severity": "error",
        "message": "unknown provider `wrok`",
        "file": "cfg/main.policy",
        "line": 1,
        "column": 25,
        "end_line": 1,
        "end_column": 29,
        "help": "did you mean `work`?",
    }


def test_check_json_lists_decision_tests(card: Path, run: Callable[..., Run]) -> None:
    data = json.loads(run("check", "cfg", "--format", "json").out)
    assert data["diagnostics"] == []
    assert [(t["name"], t["passed"], t["file"], t["line"]) for t in data["tests"]] == [
        ("work first while it keeps its margin", True, "cfg/tests/card.yaml", 1),
        ("personal first below the margin", True, "cfg/tests/card.yaml", 5),
    ]


def test_check_json_is_sorted_like_the_text(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, "route sonnet fallback sonnet\nroute * when quota(wrok) > 20% prefer work\n")
    data = json.loads(run("check", "cfg", "--format", "json").out)
    positions = [(d["file"], d["line"], d["column"]) for d in data["diagnostics"]]
    assert positions == sorted(positions) and len(positions) == 3  # unknown provider, shadowed `*`, cycle


def test_check_github(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, ERROR)
    lines = run("check", "cfg", "--format", "github").out.strip().splitlines()
    assert lines == [
        "::error file=cfg/main.policy,line=1,col=25,endColumn=29,title=unknown-provider::"
        "unknown provider `wrok` (help: did you mean `work`?)"
    ]


def test_check_github_warning(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, WARNING_ONLY)
    (line,) = run("check", "cfg", "--format", "github").out.strip().splitlines()
    assert line.startswith("::warning file=cfg/main.policy,line=3,col=5,")
    assert "title=unreachable-clause::" in line


# -- lints that check must report ------------------------------------------------------------------------


def test_a_route_that_can_leave_no_deployment_is_a_warning(
    make_config: Callable[..., Path], run: Callable[..., Run]
) -> None:
    make_config(REGISTRY, "route sonnet requires json\n")  # sonnet lacks json: the policy empties the list
    data = json.loads(run("check", "cfg", "--format", "json").out)
    assert [(d["severity"], d["line"]) for d in data["diagnostics"]] == [("warning", 1)]


def test_a_fallback_cycle_is_reported_once(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    registry = REGISTRY + "  haiku:\n    deployments:\n      - {provider: work, model_id: claude-haiku}\n"
    make_config(registry, "route sonnet fallback haiku\nroute haiku fallback sonnet\n")
    data = json.loads(run("check", "cfg", "--format", "json").out)
    assert [d["code"] for d in data["diagnostics"]] == ["fallback-cycle"]


def test_a_model_named_by_a_bare_use_is_not_unused(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    registry = REGISTRY + "  haiku:\n    deployments:\n      - {provider: work, model_id: claude-haiku}\n"
    make_config(registry, "route sonnet use haiku\n")
    data = json.loads(run("check", "cfg", "--format", "json").out)
    assert [d for d in data["diagnostics"] if d["code"] == "unused-model"] == []


# -- explain -----------------------------------------------------------------------------------------------


def test_explain_text(card: Path, run: Callable[..., Run]) -> None:
    result = run("explain", "sonnet", "--config", "cfg", "--fact", "quota.work=15%")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "sonnet → sonnet@personal, sonnet@work"
    condition = next(line for line in lines if "quota(work) > 20%" in line)
    assert "false" in condition and "15%" in condition
    assert any("prefer personal" in line and "cfg/main.policy:1:14" in line for line in lines)


@pytest.mark.parametrize(
    ("argv", "facts", "kwargs"),
    [
        (["--fact", "quota.work=15%"], {"quota": {"work": "15%"}}, {}),
        (["--fact", "quota.work=0%", "--tokens", "2k"], {"quota": {"work": "0%"}}, {"tokens": 2000}),
        (
            ["--requires", "vision", "--tag", "batch", "--fact", "hour=9"],
            {"hour": 9},
            {"requires": ["vision"], "tags": ["batch"]},
        ),
    ],
    ids=["fact", "excluded", "request"],
)
def test_explain_json_is_exactly_the_decision(
    card: Path, run: Callable[..., Run], argv: list[str], facts: dict[str, object], kwargs: dict[str, object]
) -> None:
    result = run("explain", "sonnet", "--config", "cfg", "--format", "json", *argv)
    assert result.code == 0
    expected = policyrouter.load("cfg").decide("sonnet", facts=facts, **kwargs).to_dict()
    assert json.loads(result.out) == expected


def test_explain_a_refusal(card: Path, run: Callable[..., Run]) -> None:
    result = run("explain", "sonnet", "--config", "cfg", "--fact", "quota.work=0%", "--fact", "quota.personal=0%")
    assert result.code == 1
    assert "no_route" in result.out and "used up" in result.out


def test_explain_json_of_a_refusal_is_the_decision_too(card: Path, run: Callable[..., Run]) -> None:
    """One shape for machines: a refusal prints `Decision.to_dict()`, whose `error` holds the code."""
    facts = ["--fact", "quota.work=0%", "--fact", "quota.personal=0%"]
    result = run("explain", "sonnet", "--config", "cfg", "--format", "json", *facts)
    assert result.code == 1
    with pytest.raises(policyrouter.DecisionError) as info:
        policyrouter.load("cfg").decide("sonnet", facts={"quota": {"work": "0%", "personal": "0%"}})
    assert info.value.decision is not None
    assert json.loads(result.out) == info.value.decision.to_dict()


def test_explain_an_unknown_model(card: Path, run: Callable[..., Run]) -> None:
    result = run("explain", "sonet", "--config", "cfg")
    assert result.code == 1
    assert "unknown_model" in result.out + result.err and "`sonnet`" in result.out + result.err


def test_explain_a_broken_config(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, ERROR)
    result = run("explain", "sonnet", "--config", "cfg")
    assert result.code == 1
    assert "error[unknown-provider]" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--fact", "quota.wrk=15%"], ["wrk", "`work`"]),
        (["--fact", "quota.work=150%"], ["quota.work", "150%"]),
        (["--fact", "quota.work=lots"], ["quota.work", "lots"]),
        (["--fact", "quota.work"], ["quota.work", "KEY=VALUE"]),
        (["--fact", "quotas.work=15%"], ["quotas", "`quota`"]),
        (["--fact", "hour=25"], ["hour", "23"]),
        (["--fact", "a.b.c=1"], ["unknown fact `a`"]),
        (["--fact", "latency.work=fast"], ["latency.work", "fast"]),
        (["--tokens", "lots"], ["`--tokens lots`", "`8k`"]),
        (["--max-tokens", "-1"], ["`--max-tokens -1`"]),
        (["--tokens", "9999999999M"], ["`--tokens 9999999999M`"]),  # more than 2**53: was a traceback
        (["--fact", "errors.work=-1"], ["errors.work", "negative"]),
        (["--fact", "quota=0%", "--fact", "quota.work=15%"], ["`quota.work=15%`", "both", "`quota.NAME=VALUE`"]),
        (["--fact", "quota.work=15%", "--fact", "quota=0%"], ["`quota=0%`", "both"]),
    ],
    ids=["unknown provider", "share over 100%", "not a share", "no value", "unknown fact", "hour", "dotted name",
         "not a duration", "tokens", "max tokens", "tokens beyond 2**53", "negative",
         "one value, then by name",
         "by name, then one value"],
)  # fmt: skip
def test_explain_with_a_bad_fact_is_a_usage_error(
    card: Path, run: Callable[..., Run], argv: list[str], mentions: list[str]
) -> None:
    result = run("explain", "sonnet", "--config", "cfg", *argv)
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    for word in mentions:
        assert word in result.err


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ([], "give a MODEL, or --replay EVENTS with --request-id ID"),
        (["sonnet", "--replay", "events.jsonl", "--request-id", "r1"], "give a MODEL or --replay EVENTS, not both"),
        (["--replay", "events.jsonl"], "--replay needs --request-id ID"),
        (["sonnet", "--request-id", "r1"], "--request-id goes with --replay EVENTS"),
    ],
    ids=["neither", "both", "replay without request id", "request id without replay"],
)
def test_explain_called_wrongly_says_how(card: Path, run: Callable[..., Run], argv: list[str], error: str) -> None:
    result = run("explain", "--config", "cfg", *argv)
    assert result.code == 2
    assert result.err.startswith(f"error: {error}")


# -- test ----------------------------------------------------------------------------------------------------


def test_test_passes(card: Path, run: Callable[..., Run]) -> None:
    result = run("test", "--config", "cfg")
    assert result.code == 0
    assert result.out.strip().splitlines()[-1] == "2 passed, 0 failed"


def test_test_shows_expected_and_actual(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD, tests={"card.yaml": PASSING_TESTS, "wrong.yaml": WRONG_TEST})
    result = run("test", "--config", "cfg")
    assert result.code == 1
    assert result.out.strip().splitlines()[-1] == "2 passed, 1 failed"
    assert "cfg/tests/wrong.yaml:1:3: FAIL deliberately wrong" in result.out
    assert "expected order [sonnet@work, sonnet@personal]" in result.out
    assert "actual order [sonnet@personal, sonnet@work]" in result.out


def test_test_named_files(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD, tests={"card.yaml": PASSING_TESTS, "wrong.yaml": WRONG_TEST})
    result = run("test", "--config", "cfg", "cfg/tests/card.yaml")
    assert (result.code, result.out.strip().splitlines()[-1]) == (0, "2 passed, 0 failed")


def test_test_a_missing_file(card: Path, run: Callable[..., Run]) -> None:
    result = run("test", "--config", "cfg", "cfg/tests/nope.yaml")
    assert result.code == 2 and "nope.yaml" in result.err


def test_test_a_directory_of_tests(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD, tests={"card.yaml": PASSING_TESTS, "wrong.yaml": WRONG_TEST})
    result = run("test", "--config", "cfg", "cfg/tests")
    assert (result.code, result.out.strip().splitlines()[-1]) == (1, "2 passed, 1 failed")


def test_test_a_config_directory_in_place_of_tests_says_to_use_config(card: Path, run: Callable[..., Run]) -> None:
    result = run("test", "cfg")  # the config would be `.`, which holds no registry: that error would mislead
    assert result.code == 2
    assert result.err.splitlines() == [
        "error: `cfg` is a config directory, not decision tests",
        "  help: policyrouter test --config cfg",
    ]


def test_test_json(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD, tests={"wrong.yaml": WRONG_TEST})
    data = json.loads(run("test", "--config", "cfg", "--format", "json").out)
    assert data["summary"] == "0 passed, 1 failed"
    (test,) = data["tests"]
    assert (test["name"], test["passed"]) == ("deliberately wrong", False)
    assert "expected order" in test["message"]


# -- litellm stays out of check and explain ---------------------------------------------------------------

NO_LITELLM = """\
import sys
from policyrouter import cli
codes = [cli.main(["check", "cfg"]), cli.main(["explain", "sonnet", "--config", "cfg", "--fact", "quota.work=15%"])]
assert codes == [0, 0], codes
loaded = sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm."))
assert not loaded, loaded
"""


def test_check_and_explain_do_not_import_litellm(card: Path) -> None:
    root = str(Path(policyrouter.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", NO_LITELLM], cwd=card.parent, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


LAZY_PACKAGE = """\
import sys
import policyrouter
heavy = [m for m in ("router", "executor", "completion_errors") if f"policyrouter.{m}" in sys.modules]
assert not heavy, heavy
from policyrouter import *
assert Router.__module__ == "policyrouter.router" and ExecutorOptions.__module__ == "policyrouter.executor"
"""


def test_the_package_imports_its_exports_on_first_use() -> None:
    root = str(Path(policyrouter.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", LAZY_PACKAGE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_package_exports() -> None:
    import importlib

    assert sorted(policyrouter.__all__) == sorted(policyrouter._EXPORTS)
    for name, module in policyrouter._EXPORTS.items():
        assert getattr(policyrouter, name) is getattr(importlib.import_module(module), name)
    assert set(policyrouter.__all__) <= set(dir(policyrouter))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        policyrouter.nothing  # noqa: B018


@pytest.mark.parametrize("command", [["explain", "sonnet"], ["status"], ["reset"]])
def test_a_bad_run_id_is_a_usage_error(card: Path, run: Callable[..., Run], command: list[str]) -> None:
    result = run(*command, "--config", "cfg", "--run", "bad id!")
    assert result.code == 2
    assert "run id `bad id!`" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("provider", "code", "words"),
    [
        ("work", 0, ["forgot 0 counters"]),
        ("wrok", 2, ["unknown provider `wrok`", "did you mean `work`?"]),
        ("zzz", 2, ["unknown provider `zzz`", "the registry's providers: `work`, `personal`"]),
    ],
    ids=["known", "typo", "nothing close"],
)
def test_reset_a_provider(card: Path, run: Callable[..., Run], provider: str, code: int, words: list[str]) -> None:
    result = run("reset", "--config", "cfg", "--provider", provider)
    assert result.code == code, result.err
    for word in words:
        assert word in result.out + result.err


def test_test_without_decision_tests_says_so(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    make_config(REGISTRY, CARD)
    result = run("test", "--config", "cfg")
    assert result.code == 0
    assert result.out.strip() == "0 passed, 0 failed"
    assert "note: no decision tests: no `*.yaml` file in `cfg/tests`" in result.err


def test_reading_commands_do_not_make_the_state_file(card: Path, run: Callable[..., Run]) -> None:
    # explain, status and reset made `cfg/.policyrouter/state.db`, and failed where the config directory
    # was read-only. Here the state directory's place is taken by a file, so nothing can be made there.
    (card / ".policyrouter").write_text("")
    explained = run("explain", "sonnet", "--config", "cfg")
    assert explained.code == 0 and explained.out.startswith("sonnet → sonnet@work"), explained.err
    status = run("status", "--config", "cfg", "--format", "json")
    assert status.code == 0 and json.loads(status.out)["limits"][0]["used"] == 0, status.err
    assert "note: no state recorded yet (no file cfg/.policyrouter/state.db): a fresh state" in status.err
    # It said `state: memory://`, as if the registry named no file: it names the file it will be.
    assert json.loads(status.out)["store"] == f"sqlite:///{(card / '.policyrouter' / 'state.db').resolve()}"
    assert run("reset", "--config", "cfg", "--run", "r").out == "forgot 0 counters\n"
    (card / ".policyrouter").unlink()
    with policyrouter.load(card) as router:  # a call in flight: the file is made
        router.store.reserve(router.registry.models["sonnet"].deployments[0], tokens=1, cost=0.0)
    recorded = run("status", "--config", "cfg", "--format", "json")
    assert "note:" not in recorded.err and json.loads(recorded.out)["limits"][0]["reserved"] == 1


@pytest.mark.parametrize("command", [["status"], ["reset", "--run", "r"]], ids=["status", "reset"])
def test_status_and_reset_name_a_wrong_directory_as_check_does(run: Callable[..., Run], command: list[str]) -> None:
    # They said "nowhere/registry.yaml: no registry file here", as if only the registry were missing.
    result = run(*command, "--config", "nowhere")
    assert result.code == 1
    assert result.err.splitlines()[0] == "nowhere: error[config-missing]: no directory `nowhere`"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["status"], 2),
        (["explain", "sonnet"], 2),
        (["status", "--run", "r"], 0),  # a command that names its run does not read the variable
        (["reset", "--run", "r"], 0),
        (["reset", "--provider", "work"], 0),
    ],
)
def test_a_bad_run_id_in_the_environment_is_a_usage_error_where_it_is_read(
    card: Path, run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, command: list[str], code: int
) -> None:
    # It was a traceback (ValueError) out of status, explain and reset once the state file existed;
    # then `reset --run r` failed on it, which it does not read, where `status --run r` did not.
    with policyrouter.load(card) as router:
        router.store.reserve(router.registry.models["sonnet"].deployments[0], tokens=1, cost=0.0)
    monkeypatch.setenv("POLICYROUTER_RUN_ID", "bad id")
    result = run(*command, "--config", "cfg")
    assert result.code == code
    if code == 2:
        assert result.err.splitlines()[-1].startswith("error: $POLICYROUTER_RUN_ID: run id `bad id` must be")


@pytest.mark.parametrize(
    "argv", [["fmt", ""], ["check", ""], ["test", "--config", ""], ["explain", "sonnet", "--config", ""]]
)
def test_an_empty_path_is_a_usage_error(card: Path, run: Callable[..., Run], argv: list[str]) -> None:
    # `fmt "$UNSET"` formatted every file under the working directory: "" read as "."
    result = run(*argv)
    assert result.code == 2 and "an empty path" in result.err


def test_a_test_file_named_twice_runs_once(card: Path, run: Callable[..., Run]) -> None:
    result = run("test", "--config", "cfg", "cfg/tests", "cfg/tests/card.yaml", "./cfg/tests/card.yaml")
    assert result.code == 0 and result.out.splitlines()[-1] == run("test", "--config", "cfg").out.splitlines()[-1]


def test_a_directory_with_nothing_of_a_config_says_so_once(run: Callable[..., Run]) -> None:
    # It said "no registry file here" and warned "no `*.policy` file", two findings for a wrong directory.
    result = run("check", ".")
    assert result.code == 1
    assert result.out.splitlines()[0] == (
        ".: error[config-missing]: `.` is not a config directory: no `registry.yaml` and no `*.policy` file"
    )
    assert "no-policies" not in result.out and "registry-not-found" not in result.out


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_output_that_cannot_be_written_is_an_error_not_a_traceback() -> None:
    # `policyrouter schema > /dev/full` ended in an OSError traceback
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "policyrouter.cli", "schema"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == "error: [Errno 28] No space left on device\n"


def test_check_walks_into_a_linked_config_directory_once(card: Path, run: Callable[..., Run], tmp_path: Path) -> None:
    # A symlinked config directory was passed over, and check said all was well.
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "linked").symlink_to(card, target_is_directory=True)
    (tmp_path / "tree" / "up").symlink_to(tmp_path / "tree", target_is_directory=True)  # a loop: walked once
    result = run("check", "tree")
    assert result.code == 0, result.out + result.err
    assert [line.split(":")[0] for line in result.out.splitlines()] == ["tree/linked"]


def test_github_annotations_escape_the_file_property(make_config: Callable[..., Path], run: Callable[..., Run]) -> None:
    # a diagnostic's `file=g,1/…` ended the property at the comma; test failures already wrote `g%2C1`
    make_config(REGISTRY, "route sonnet when quota(work) > 100% prefer work\n", name="g,1")
    result = run("check", "g,1", "--format", "github")
    assert "::warning file=g%2C1/" in result.out and "file=g,1" not in result.out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_config_file_that_is_a_named_pipe_is_an_error_not_a_wait(card: Path, run: Callable[..., Run]) -> None:
    # reading it waited for a writer forever: check, load and fmt hung
    (card / "main.policy").unlink()
    os.mkfifo(card / "main.policy")
    result = run("check", "cfg")
    assert result.code == 1
    assert "cfg/main.policy: error[config-unreadable]: cannot read the file: not a regular file" in result.out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_decision_test_files_are_regular_files_as_pytest_collects_them(card: Path, run: Callable[..., Run]) -> None:
    # a folder named `x.yaml` under tests/ failed `test` and `check` with a syntax error, while the
    # pytest plugin passed over it; a named pipe given by name was "no such file"
    tests = card / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "folder.yaml").mkdir()
    os.mkfifo(tests / "pipe.yaml")
    result = run("test", "--config", "cfg")
    assert result.code == 0, result.err
    result = run("test", "cfg/tests/pipe.yaml", "--config", "cfg")
    assert (result.code, result.err) == (2, "error: not a regular file: cfg/tests/pipe.yaml\n")
