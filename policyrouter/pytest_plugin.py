"""The pytest plugin: decision tests as pytest items, a `policy_router` fixture and `assert_routes`.

Installed with the package, pytest loads it by itself (entry point `pytest11`); otherwise pass
`-p policyrouter.pytest_plugin`. It adds:

- collection of the YAML decision tests — exactly the files `policyrouter test` runs: the `*.yaml`
  (and `*.yml`) files directly in the `tests/` folder of a config directory (one with `registry.yaml`
  beside `tests/`). One item per case, named by the case; a failure shows what `policyrouter test` shows.
- the `policy_router` fixture: the Router of the config directory given by `--policyrouter-config DIR`,
  else the ini option `policyrouter_config` (relative to the ini file), else the rootdir.
- `assert_routes(router, model, order=…|first=…|error=…, **request)`: one decision held against the
  same expectations a YAML case states, with the same message when it fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from policyrouter.decision import Decision
    from policyrouter.decision_tests import Case, Outcome
    from policyrouter.diagnostics import Diagnostic
    from policyrouter.router import Router

_ROUTERS = pytest.StashKey[dict[Path, "Router | str"]]()
MARKER = "policyrouter"


# -- options and the fixture --------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("policyrouter", "policy routing")
    group.addoption(
        "--policyrouter-config",
        dest="policyrouter_config",
        default=None,
        metavar="DIR",
        help="config directory (registry.yaml, *.policy) for the policy_router fixture (default: rootdir)",
    )
    parser.addini(
        "policyrouter_config",
        "config directory for the policy_router fixture, relative to the ini file (default: rootdir)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a YAML decision test of a policyrouter config directory")
    config.stash[_ROUTERS] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    for router in config.stash.get(_ROUTERS, {}).values():
        if not isinstance(router, str):
            router.close()  # the state store, if a test opened it by deciding without facts


def config_directory(config: pytest.Config) -> Path:
    """The directory the `policy_router` fixture loads: option, then ini, then rootdir."""
    option = config.getoption("policyrouter_config")
    if option:
        return (config.invocation_params.dir / option).resolve()
    ini = str(config.getini("policyrouter_config") or "").strip()
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return (base / ini).resolve()
    return config.rootpath


@pytest.fixture(scope="session")
def policy_router(pytestconfig: pytest.Config) -> Router:
    """The Router of the configured policy directory, loaded once per session."""
    found = _router(pytestconfig, config_directory(pytestconfig))
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return found


def _router(config: pytest.Config, directory: Path) -> Router | str:
    """The directory's Router, or the rendered problems that keep it from loading (cached both ways)."""
    cache = config.stash[_ROUTERS]
    directory = directory.resolve()
    if directory not in cache:
        from policyrouter.config import display_path, load_config
        from policyrouter.diagnostics import render
        from policyrouter.router import Router

        loaded = load_config(directory)
        if loaded.program is None:
            problems = loaded.errors or loaded.diagnostics
            cache[directory] = f"cannot load `{display_path(directory)}`:\n" + render(problems)
        else:
            cache[directory] = Router(loaded)
    return cache[directory]


# -- assert_routes ------------------------------------------------------------------------------


def assert_routes(
    router: Router,
    model: str,
    order: Sequence[str] | None = None,
    *,
    first: str | None = None,
    error: str | None = None,
    requires: Iterable[str] = (),
    tokens: int | str = 0,
    max_tokens: int | str | None = None,
    tags: Iterable[str] = (),
    facts: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> Decision | None:
    """Assert where a request goes, in one line, with what a YAML case would expect:

        assert_routes(router, "sonnet", ["work", "personal"], facts={"quota": {"work": "50%"}})
        assert_routes(router, "sonnet", first="gpt-4o@openai", facts={"quota": {"work": 0, "personal": 0}})
        assert_routes(router, "sonnet", error="budget_exceeded", tokens="50k", facts={"spend": {"run": 4.99}})

    A plain name is the requested model on that provider. On a mismatch it raises AssertionError with
    the expected and actual order and the decision's explanation. Returns the decision (a refusal's too).
    """
    __tracebackhide__ = True
    from policyrouter.decision_tests import clock_text, judge
    from policyrouter.errors import REFUSAL_CODES, unknown_refusal

    given = [name for name, value in (("order", order), ("first", first), ("error", error)) if value is not None]
    if len(given) != 1:
        raise TypeError("assert_routes takes exactly one of `order`, `first`, `error`")
    if isinstance(order, str):
        raise TypeError("`order` is a list of deployments; for just the head, use `first=`")
    for name, value in (("first", first), ("error", error)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"`{name}` is one name, such as `work`; got {type(value).__name__}")
    if error is not None and error not in REFUSAL_CODES:
        raise ValueError(f"unknown refusal code `{error}`: {unknown_refusal(error)}")
    expect: dict[str, Any] = {"order": list(order)} if order is not None else {given[0]: first or error}
    request: dict[str, Any] = {
        "model": model,
        "requires": [requires] if isinstance(requires, str) else list(requires or ()),  # a name, not its letters
        "tokens": tokens,
        "max_tokens": max_tokens,
        "tags": [tags] if isinstance(tags, str) else list(tags or ()),
        "request_id": request_id,
    }
    verdict = judge(router, request, facts, expect)
    if not verdict.passed:
        raise AssertionError(verdict.message)
    clock = verdict.clock_facts(facts)
    if clock:
        warnings.warn(
            f"the decision read {clock_text(clock)} from the clock: give it in `facts`, "
            "or the test may pass or fail with the time it runs",
            stacklevel=2,
        )
    return verdict.decision


# -- YAML decision tests as items ---------------------------------------------------------------


def is_decision_test_file(path: Path) -> bool:
    """`DIR/tests/*.yaml` (or `.yml`) where DIR has a `registry.yaml`: what `policyrouter test` runs."""
    from policyrouter.config import REGISTRY_FILE

    return (
        path.suffix in (".yaml", ".yml")
        and path.parent.name == "tests"
        and (path.parent.parent / REGISTRY_FILE).is_file()
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_decision_test_file(file_path):
        return DecisionTestFile.from_parent(parent, path=file_path)
    return None


class DecisionTestFile(pytest.File):
    """A YAML file of decision cases; its config directory is the folder above `tests/`."""

    def collect(self) -> Iterator[pytest.Item]:
        from policyrouter.decision_tests import load_cases
        from policyrouter.lint import suppress

        router = _router(self.config, self.path.parent.parent)
        if isinstance(router, str):
            raise self.CollectError(router)
        cases, found = load_cases(self.path)
        problems = suppress(found)  # a warning allowed by a comment, as `policyrouter test` allows it
        for case in cases:
            yield DecisionCase.from_parent(self, name=case.name, router=router, case=case)
        for problem in problems:
            if problem.severity != "error":  # a second case of one name: it runs, and pytest says so
                self.warn(pytest.PytestWarning(f"{problem.location}: {problem.message}"))
                continue
            where = problem.span
            name = f"invalid case at {where.line}:{where.column}" if where is not None else "invalid file"
            yield InvalidCase.from_parent(self, name=name, problem=problem)


class DecisionTestFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class DecisionCase(pytest.Item):
    """One case of a decision-test file, run through the same `run_case` as `policyrouter test`."""

    def __init__(self, *, router: Router, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.router = router
        self.case = case
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from policyrouter.decision_tests import run_case
        from policyrouter.lint import suppress

        outcome = run_case(self.router, self.case)
        if not outcome.passed:
            raise DecisionTestFailed(outcome)
        warning = outcome.clock_warning()
        for allowed in suppress([warning] if warning is not None else []):  # as `policyrouter test` allows it
            self.warn(pytest.PytestWarning(f"{allowed.message} ({allowed.help})"))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, DecisionTestFailed):
            return excinfo.value.outcome.render()
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.span.line - 1, f"decision test: {self.case.name}"


class InvalidCase(pytest.Item):
    """A case the YAML file gets wrong (unknown key, missing `expect`, bad YAML): fails with the problem."""

    def __init__(self, *, problem: Diagnostic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from policyrouter.diagnostics import render

        raise InvalidCaseError(render([self.problem]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, InvalidCaseError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        line = self.problem.span.line - 1 if self.problem.span is not None else 0
        return self.path, line, f"invalid decision test: {self.problem.message}"


class InvalidCaseError(Exception):
    pass
