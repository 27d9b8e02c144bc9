"""Decision tests: YAML files of requests, dry-run facts and the decision expected.

```yaml
- name: work first while it has quota
  request: {model: sonnet, requires: [tools], tokens: 2000, tags: [batch]}
  facts: {quota: {work: 50%}}
  expect: {order: [work, personal]}   # or {first: gpt-4o@openai}, or {error: budget_exceeded}
```
A plain name in `order`/`first` means the requested model on that provider. `check`, `test` and
the pytest plugin all judge cases with `judge`, so they agree on what passes and say it the same way.
Each outcome keeps the decision it was judged on, for coverage (`policyrouter.coverage`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policyrouter.config import display_path
from policyrouter.decision import Decision, token_count
from policyrouter.diagnostics import Diagnostic, Source, Span, closest, did_you_mean
from policyrouter.errors import REFUSAL_CODES, ConfigError, DecisionError, unknown_refusal
from policyrouter.lint import suppress
from policyrouter.quantities import parse_count
from policyrouter.registry import meant_capability
from policyrouter.router import InvalidFacts, Router
from policyrouter.text_files import read_config_text, unreadable
from policyrouter.yaml_text import load_yaml, problem_at, problem_help, problem_text

if TYPE_CHECKING:
    from policyrouter.filecache import FileCache

CASE_KEYS = ("name", "request", "facts", "expect")
CLOCK_FACTS = ("hour", "weekday")  # what a dry run reads from the clock when the facts do not give it
REQUEST_KEYS = ("model", "requires", "tokens", "max_tokens", "tags", "request_id")
EXPECT_KEYS = ("order", "first", "error")


@dataclass(frozen=True)
class Case:
    name: str
    request: Mapping[str, Any]
    facts: Mapping[str, Any] | None
    expect: Mapping[str, Any]
    span: Span


@dataclass(frozen=True)
class Verdict:
    """A decision held against an expectation: whether it passed, and if not, why."""

    passed: bool
    message: str = ""  # for a failure: expected vs actual, then the decision's explanation
    decision: Decision | None = field(default=None, compare=False, repr=False)  # also a refusal's

    def clock_facts(self, facts: Mapping[str, Any] | None) -> dict[str, Any]:
        """What the decision read from the clock, not from `facts`: `{"hour": 13}`. A case that reads
        the clock may pass or fail with the time it runs."""
        read = self.decision.facts if self.decision is not None else {}
        return {key: read[key] for key in CLOCK_FACTS if key in read and key not in (facts or {})}


@dataclass(frozen=True)
class Outcome:
    case: Case
    passed: bool
    message: str = ""  # for a failure: expected vs actual, then the decision's explanation
    decision: Decision | None = field(default=None, compare=False, repr=False)  # None if none was made
    seconds: float = field(default=0.0, compare=False)
    clock: Mapping[str, Any] = field(default_factory=dict, compare=False)  # facts read from the clock

    def clock_warning(self) -> Diagnostic | None:
        if not self.clock:
            return None
        read = clock_text(self.clock)
        example = ", ".join(f"{key}: {value}" for key, value in self.clock.items())
        return Diagnostic(
            "test-reads-clock",
            f"`{self.case.name}` read {read} from the clock: it may pass or fail with the time it runs",
            self.case.span,
            "warning",
            help=f"give {'them' if len(self.clock) > 1 else 'it'} in the case's facts, e.g. `facts: {{{example}}}`",
        )

    def render(self) -> str:
        head = f"{self.case.span}: {'PASS' if self.passed else 'FAIL'} {self.case.name}"
        return head if self.passed else head + "\n" + _indent(self.message)


def clock_text(clock: Mapping[str, Any]) -> str:
    """What a decision read from the clock, for a message: "`hour` (13) and `weekday` (7)"."""
    return " and ".join(f"`{key}` ({value})" for key, value in clock.items())


def load_cases(path: Path, cache: FileCache | None = None) -> tuple[list[Case], list[Diagnostic]]:
    """Read one YAML file of cases; problems in it come back as diagnostics with positions. With a
    `cache`, a file unchanged since it was last read there is not read again."""
    shown = display_path(path)
    try:
        text = read_config_text(path, shown, "test-syntax")
    except ConfigError as e:
        return [], e.diagnostics
    except OSError as e:
        return [], [unreadable("test-syntax", shown, e)]
    if cache is None:
        return _cases_from_text(text, shown)
    return cache.fetch("cases", path, (shown, text), lambda: _cases_from_text(text, shown))


def _cases_from_text(text: str, shown: str) -> tuple[list[Case], list[Diagnostic]]:
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import YAMLError

    source = Source(shown, text, yaml=True)
    try:
        data = load_yaml(text)
    except YAMLError as e:
        at = problem_at(e, text)
        line, col = (at[0] + 1, at[1] + 1) if at else (1, 1)
        where = Span(source, line, col, line, col + 1)
        if isinstance(e, DuplicateKeyError):
            key = source.line_text(line)[col - 1 :].split(":", 1)[0].strip()
            help = "a key appears once in a mapping: keep one of them"
            where = Span(source, line, col, line, col + max(1, len(key)))
            return [], [Diagnostic("test-syntax", f"duplicate key `{key}`", where, help=help)]
        return [], [Diagnostic("test-syntax", f"invalid YAML: {problem_text(e)}", where, help=problem_help(e, text))]
    if data is None:
        return [], []
    if not isinstance(data, list):
        return [], [Diagnostic("test-invalid", "a decision test file is a list of cases", _span(source, data))]
    cases, problems = [], []
    named: dict[str, Span] = {}  # each name's first case, valid or not
    for index, item in enumerate(data):
        where = _item_span(source, data, index)
        found = _check_case(item, where, source)
        name = found.name if isinstance(found, Case) else isinstance(item, dict) and item.get("name")
        if name:
            first = named.setdefault(str(name), where)
            if first is not where:  # reports and pytest ids tell cases apart by name
                problems.append(
                    Diagnostic(
                        "test-duplicate-name",
                        f"a second case named `{name}`",
                        where,
                        "warning",
                        help=f"the first is at {first}; give each case a name of its own",
                    )
                )
        if isinstance(found, list):
            problems += found
        else:
            cases.append(found)
    return cases, problems


def _check_case(item: Any, where: Span, source: Source) -> Case | list[Diagnostic]:
    """The case, or every problem found in it."""
    problems = list(_case_problems(item, where, source))
    if problems:
        return problems
    facts = item.get("facts")
    name = str(item.get("name") or f"case {where.line}")
    return Case(
        name, _plain(item["request"]), _plain(facts) if facts is not None else None, _plain(item["expect"]), where
    )


def _case_problems(item: Any, where: Span, source: Source) -> Iterator[Diagnostic]:
    if not isinstance(item, Mapping):
        yield Diagnostic("test-invalid", "a case is a mapping with `name`, `request` and `expect`", where)
        return
    meant = yield from _unknown_keys(source, item, CASE_KEYS)
    for key in ("request", "expect"):
        if not isinstance(item.get(key), Mapping) and key not in meant:
            yield Diagnostic("test-invalid", f"a case needs `{key}:` as a mapping", where)
    request = item["request"] if isinstance(item.get("request"), Mapping) else None
    expect = item["expect"] if isinstance(item.get("expect"), Mapping) else None
    if request is not None:
        yield from _request_problems(request, source)
    if expect is not None:
        yield from _expect_problems(expect, source)
    facts = item.get("facts")
    if facts is not None and not isinstance(facts, Mapping):
        yield Diagnostic("test-invalid", "`facts` is a mapping such as `{quota: {work: 15%}}`", where)


def _request_problems(request: Mapping[str, Any], source: Source) -> Iterator[Diagnostic]:
    meant = yield from _unknown_keys(source, request, REQUEST_KEYS)
    if "model" not in request and "model" not in meant:
        yield Diagnostic("test-invalid", "`request` needs a `model`", _span(source, request))
    elif "model" in request and (not isinstance(request["model"], str) or not request["model"]):
        yield Diagnostic(
            "test-invalid", "`model` is a model's name, such as `sonnet`", _value_span(source, request, "model")
        )
    for key, example in (("requires", "[tools]"), ("tags", "[batch]")):
        if request.get(key) is not None and not isinstance(request[key], list):
            yield Diagnostic(
                "test-invalid", f"`{key}` is a list, such as `{example}`", _value_span(source, request, key)
            )
    for key in ("tokens", "max_tokens"):
        if request.get(key) is not None:
            try:
                token_count(key, parse_count(request[key]))
            except ValueError:
                value = _value_span(source, request, key)
                yield Diagnostic(
                    "test-invalid", f"`{key}` is a whole number of tokens, 0 to 2**53, such as `2000` or `8k`", value
                )


def _expect_problems(expect: Mapping[str, Any], source: Source) -> Iterator[Diagnostic]:
    yield from _unknown_keys(source, expect, EXPECT_KEYS)
    if len(expect) != 1:
        yield Diagnostic(
            "test-invalid", "`expect` takes exactly one of `order`, `first`, `error`", _span(source, expect)
        )
    for key in ("order", "first", "error"):
        if key in expect and expect[key] is None:
            yield Diagnostic("test-invalid", f"`{key}` needs a value", _value_span(source, expect, key))
    if expect.get("order") is not None and not isinstance(expect["order"], list):
        where = _value_span(source, expect, "order")
        yield Diagnostic("test-invalid", "`order` is a list, such as `[work, personal]`", where)
    elif isinstance(expect.get("order"), list) and not all(
        isinstance(x, (str, int, float)) and not isinstance(x, bool) and str(x) for x in expect["order"]
    ):  # `[work, ~]`, `[work, [personal]]`, `[""]`
        where = _value_span(source, expect, "order")
        yield Diagnostic("test-invalid", "`order` lists deployments by name, such as `[work, personal]`", where)
    elif expect.get("order") == []:
        where = _value_span(source, expect, "order")
        yield Diagnostic(
            "test-invalid",
            "an empty `order` never comes: a decision that leaves nothing is a refusal",
            where,
            help="expect the refusal: `error: no_route` (or the code it has)",
        )
    for key, one in (("first", "one deployment, such as `work` or `gpt-4o@openai`"), ("error", "one refusal code")):
        if isinstance(expect.get(key), (Mapping, list)) or expect.get(key) == "":
            yield Diagnostic("test-invalid", f"`{key}` takes {one}", _value_span(source, expect, key))
    code = expect.get("error")
    if code is not None and not isinstance(code, (Mapping, list)) and str(code) not in REFUSAL_CODES:
        where_code = _value_span(source, expect, "error")
        yield Diagnostic("test-invalid", f"unknown refusal code `{code}`", where_code, help=unknown_refusal(str(code)))


def run_case(router: Router, case: Case) -> Outcome:
    started = time.perf_counter()
    verdict = judge(router, case.request, case.facts, case.expect)
    seconds = time.perf_counter() - started
    return Outcome(case, verdict.passed, verdict.message, verdict.decision, seconds, verdict.clock_facts(case.facts))


def judge(
    router: Router, request: Mapping[str, Any], facts: Mapping[str, Any] | None, expect: Mapping[str, Any]
) -> Verdict:
    """Decide `request` (a case's `request:` mapping) with `facts` and hold it against `expect`
    (`{order: [...]}`, `{first: ...}` or `{error: CODE}`)."""
    req = request
    decision: Decision | None
    error: DecisionError | None
    vocabulary = router.registry.settings.capabilities
    for name in req.get("requires") or ():  # a typo would be refused, and pass a test that expects that
        if str(name) not in vocabulary:
            guess = meant_capability(str(name), vocabulary)
            hint = f" (did you mean `{guess}`?)" if guess else ""
            return Verdict(False, f"invalid case: `{name}` is not a capability name{hint}")
    try:
        decision = router.decide(
            str(req["model"]),
            requires=[str(c) for c in req.get("requires") or ()],
            tokens=token_count("tokens", parse_count(req["tokens"])) if req.get("tokens") is not None else 0,
            max_tokens=token_count("max_tokens", parse_count(req["max_tokens"]))
            if req.get("max_tokens") is not None
            else None,
            tags=[str(t) for t in req.get("tags") or ()],
            facts=facts or {},
            request_id=str(req["request_id"]) if req.get("request_id") is not None else None,
        )
    except DecisionError as e:
        decision, error = e.decision, e
    except (InvalidFacts, ValueError) as e:  # facts that do not fit, or an unreadable or negative count
        return Verdict(False, f"invalid case: {e}")
    else:
        error = None
    model = str(req["model"])
    actual = [d.key for d in decision.order] if decision is not None else []
    trace = decision.explain() if decision is not None else (str(error) if error else "")
    if "error" in expect:
        want = str(expect["error"])
        if error is not None and error.code == want:
            return Verdict(True, decision=decision)
        got = f"error {error.code}: {error.message}" if error else f"order [{', '.join(actual)}]"
        return Verdict(False, f"expected error {want}\n  actual {got}\n\n{trace}", decision)
    if error is not None:
        want_text = _want_text(expect, model)
        return Verdict(
            False, f"expected {want_text}\n  actual error {error.code}: {error.message}\n\n{trace}", decision
        )
    if "first" in expect:
        want = _qualify(str(expect["first"]), model)
        if actual[:1] == [want]:
            return Verdict(True, decision=decision)
        return Verdict(False, f"expected first {want}\n  actual order [{', '.join(actual)}]\n\n{trace}", decision)
    want_order = [_qualify(str(n), model) for n in expect["order"] or ()]
    if actual == want_order:
        return Verdict(True, decision=decision)
    return Verdict(
        False,
        f"expected order [{', '.join(want_order)}]\n  actual order [{', '.join(actual)}]\n\n{trace}",
        decision,
    )


def run_files(
    router: Router, paths: Sequence[Path], cache: FileCache | None = None
) -> tuple[list[Outcome], list[Diagnostic]]:
    """Every case of `paths`, run; the problems are the files' (errors) and a warning for each case
    that read the clock (unless a comment above the case allows `test-reads-clock`)."""
    outcomes: list[Outcome] = []
    problems: list[Diagnostic] = []
    for path in paths:
        cases, found = load_cases(path, cache)
        problems += suppress(found)
        for case in cases:
            outcome = run_case(router, case)
            outcomes.append(outcome)
            warning = outcome.clock_warning()
            if warning is not None:
                problems += suppress([warning])
    return outcomes, problems


def summary(outcomes: Sequence[Outcome]) -> str:
    passed = sum(o.passed for o in outcomes)
    return f"{passed} passed, {len(outcomes) - passed} failed"


def junit_xml(outcomes: Sequence[Outcome], problems: Sequence[Diagnostic], files: Sequence[Path] = ()) -> str:
    """JUnit XML for CI systems: one `<testsuite>` per file, one `<testcase>` per case. A failure's
    `message` is the expected and actual line; its text is what `policyrouter test` prints. A problem
    in a file (invalid YAML, an unknown key) is an `<error>` testcase of that file's suite; warnings
    are not test results, and are left out."""
    from xml.etree import ElementTree

    from policyrouter.diagnostics import render

    by_file: dict[str, tuple[list[Outcome], list[Diagnostic]]] = {display_path(f): ([], []) for f in files}
    for outcome in outcomes:
        by_file.setdefault(outcome.case.span.path, ([], []))[0].append(outcome)
    for problem in (p for p in problems if p.severity == "error"):
        where = problem.span.path if problem.span is not None else problem.path or ""
        by_file.setdefault(where, ([], []))[1].append(problem)
    root = ElementTree.Element("testsuites", name="policyrouter decision tests")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_seconds = 0.0
    for path, (ran, found) in by_file.items():
        failures = sum(not o.passed for o in ran)
        seconds = sum(o.seconds for o in ran)
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=path,
            tests=str(len(ran) + len(found)),
            failures=str(failures),
            errors=str(len(found)),
            skipped="0",
            time=f"{seconds:.6f}",
            file=path,
        )
        classname = _classname(path)
        for outcome in ran:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                name=_xml(outcome.case.name),
                classname=classname,
                file=path,
                line=str(outcome.case.span.line),
                time=f"{outcome.seconds:.6f}",
            )
            if not outcome.passed:
                failure = ElementTree.SubElement(
                    case, "failure", message=_xml(_headline(outcome.message)), type="decision"
                )
                failure.text = _xml(outcome.render())
        for problem in found:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                name=f"{problem.code} at {problem.location}",
                classname=classname,
                file=path,
                line=str(problem.span.line if problem.span else 1),
                time="0",
            )
            error = ElementTree.SubElement(case, "error", message=_xml(problem.message), type=problem.code)
            error.text = _xml(render([problem]))
        totals["tests"] += len(ran) + len(found)
        totals["failures"] += failures
        totals["errors"] += len(found)
        total_seconds += seconds
    root.attrib.update({k: str(v) for k, v in totals.items()}, time=f"{total_seconds:.6f}")
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _xml(text: str) -> str:
    """`text` without the characters XML 1.0 cannot hold (a case named with a bell made the report
    unreadable to every JUnit tool)."""
    return _NOT_XML.sub("\ufffd", text)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _headline(message: str) -> str:
    """The expected/actual lines of a failure message, on one line."""
    head = message.split("\n\n", 1)[0]
    return "; ".join(line.strip() for line in head.splitlines() if line.strip())


def _classname(path: str) -> str:
    """`policies/a/tests/x.yaml` → `policies.a.tests.x`, the dotted name JUnit readers group by."""
    stem = path.rsplit(".", 1)[0] if path.endswith((".yaml", ".yml")) else path
    return ".".join(part for part in stem.replace("\\", "/").split("/") if part not in ("", ".", ".."))


def _want_text(expect: Mapping[str, Any], model: str) -> str:
    if "first" in expect:
        return f"first {_qualify(str(expect['first']), model)}"
    return f"order [{', '.join(_qualify(str(n), model) for n in expect.get('order') or ())}]"


def _qualify(name: str, model: str) -> str:
    return name if "@" in name else f"{model}@{name}"


def _plain(value: Any) -> Any:
    """ruamel's round-trip containers as plain dicts and lists, its floats as plain floats (equal, and
    printed the same; a case kept in the file cache then needs no ruamel); other scalars stay as written."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    return value


def _span(source: Source, node: Any) -> Span:
    lc = getattr(node, "lc", None)
    line, col = (lc.line + 1, lc.col + 1) if lc is not None else (1, 1)
    return Span(source, line, col, line, col + 1)


def _value_span(source: Source, mapping: Any, key: str) -> Span:
    """Where the value of `key` starts (the mapping's own position if ruamel does not know)."""
    try:
        line, col = mapping.lc.value(key)
    except (AttributeError, KeyError, TypeError):
        return _span(source, mapping)
    text = str(mapping[key]) if not isinstance(mapping[key], (Mapping, list)) else ""
    return Span(source, line + 1, col + 1, line + 1, col + 1 + max(1, len(text)))


def _item_span(source: Source, seq: Any, index: int) -> Span:
    try:
        line, col = seq.lc.item(index)
    except (AttributeError, KeyError, TypeError):
        return _span(source, seq)
    text = source.line_text(line + 1)
    return Span(source, line + 1, col + 1, line + 1, len(text) + 1)


def _unknown_keys(
    source: Source, mapping: Mapping[Any, Any], allowed: Sequence[str]
) -> Generator[Diagnostic, None, set[str]]:
    """A problem for each key not `allowed`; returns the allowed keys they likely meant (`expcet`:
    `expect`), which need no "missing" problem of their own."""
    meant: set[str] = set()
    for key in mapping:
        if key not in allowed:
            yield _unknown_key(source, mapping, key, allowed)
            guess = closest(str(key), allowed)
            if guess is not None:
                meant.add(guess)
    return meant


def _unknown_key(source: Source, mapping: Any, key: Any, allowed: Sequence[str]) -> Diagnostic:
    try:
        line, col = mapping.lc.key(key)
        span = Span(source, line + 1, col + 1, line + 1, col + 1 + len(str(key)))
    except (AttributeError, KeyError, TypeError):
        span = _span(source, mapping)
    help = did_you_mean(str(key), allowed) or "expected one of " + ", ".join(f"`{k}`" for k in allowed)
    return Diagnostic("test-invalid", f"unknown key `{key}`", span, help=help)


def _indent(text: str) -> str:
    return "\n".join(("  " + line) if line else "" for line in text.splitlines())
