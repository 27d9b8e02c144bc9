"""Decision tests: YAML files of requests, dry-run facts and the decision expected.

```yaml
- name: work first while it has quota
  request: {model: sonnet, requires: [tools], tokens: 2000, tags: [batch]}
  facts: {quota: {work: 50%}}
  expect: {order: [work, personal]}   # or {first: gpt-4o@openai}, or {error: budget_exceeded}
```
A plain name in `order`/`first` means the requested model on that provider. `check`, `test` and
the pytest plugin all run cases through `run_case`, so they agree on what passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyrouter.config import display_path
from policyrouter.diagnostics import Diagnostic, Source, Span, did_you_mean
from policyrouter.errors import DecisionError
from policyrouter.quantities import QuantityError, parse_count
from policyrouter.router import InvalidFacts, Router

CASE_KEYS = ("name", "request", "facts", "expect")
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
class Outcome:
    case: Case
    passed: bool
    message: str = ""  # for a failure: expected vs actual, then the decision's explanation

    def render(self) -> str:
        head = f"{self.case.span}: {'PASS' if self.passed else 'FAIL'} {self.case.name}"
        return head if self.passed else head + "\n" + _indent(self.message)


def load_cases(path: Path) -> tuple[list[Case], list[Diagnostic]]:
    """Read one YAML file of cases; problems in it come back as diagnostics with positions."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    shown = display_path(path)
    text = path.read_text(encoding="utf-8")
    source = Source(shown, text)
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(e, "problem", None) or "invalid YAML"
        return [], [Diagnostic("test-syntax", f"invalid YAML: {problem}", Span(source, line, col, line, col + 1))]
    if data is None:
        return [], []
    if not isinstance(data, list):
        return [], [Diagnostic("test-invalid", "a decision test file is a list of cases", _span(source, data))]
    cases, problems = [], []
    for index, item in enumerate(data):
        where = _item_span(source, data, index)
        found = _check_case(item, where, source)
        if isinstance(found, Diagnostic):
            problems.append(found)
        else:
            cases.append(found)
    return cases, problems


def _check_case(item: Any, where: Span, source: Source) -> Case | Diagnostic:
    if not isinstance(item, Mapping):
        return Diagnostic("test-invalid", "a case is a mapping with `name`, `request` and `expect`", where)
    for key in item:
        if key not in CASE_KEYS:
            return _unknown_key(source, item, key, CASE_KEYS)
    for key in ("request", "expect"):
        if not isinstance(item.get(key), Mapping):
            return Diagnostic("test-invalid", f"a case needs `{key}:` as a mapping", where)
    request, expect = item["request"], item["expect"]
    for key in request:
        if key not in REQUEST_KEYS:
            return _unknown_key(source, request, key, REQUEST_KEYS)
    if "model" not in request:
        return Diagnostic("test-invalid", "`request` needs a `model`", _span(source, request))
    for key in expect:
        if key not in EXPECT_KEYS:
            return _unknown_key(source, expect, key, EXPECT_KEYS)
    if len(expect) != 1:
        return Diagnostic(
            "test-invalid", "`expect` takes exactly one of `order`, `first`, `error`", _span(source, expect)
        )
    facts = item.get("facts")
    if facts is not None and not isinstance(facts, Mapping):
        return Diagnostic("test-invalid", "`facts` is a mapping such as `{quota: {work: 15%}}`", where)
    name = str(item.get("name") or f"case {where.line}")
    return Case(name, _plain(request), _plain(facts) if facts is not None else None, _plain(expect), where)


def run_case(router: Router, case: Case) -> Outcome:
    req = case.request
    try:
        decision = router.decide(
            str(req["model"]),
            requires=[str(c) for c in req.get("requires") or ()],
            tokens=int(parse_count(req.get("tokens", 0))),
            max_tokens=int(parse_count(req["max_tokens"])) if req.get("max_tokens") is not None else None,
            tags=[str(t) for t in req.get("tags") or ()],
            facts=case.facts or {},
            request_id=str(req["request_id"]) if "request_id" in req else None,
        )
    except DecisionError as e:
        decision, error = e.decision, e
    except (InvalidFacts, QuantityError) as e:
        return Outcome(case, False, f"invalid case: {e}")
    else:
        error = None
    expect = case.expect
    model = str(req["model"])
    actual = [d.key for d in decision.order] if decision is not None else []
    trace = decision.explain() if decision is not None else (str(error) if error else "")
    if "error" in expect:
        want = str(expect["error"])
        if error is not None and error.code == want:
            return Outcome(case, True)
        got = f"error {error.code}: {error.message}" if error else f"order [{', '.join(actual)}]"
        return Outcome(case, False, f"expected error {want}\n  actual {got}\n\n{trace}")
    if error is not None:
        want_text = _want_text(expect, model)
        return Outcome(case, False, f"expected {want_text}\n  actual error {error.code}: {error.message}\n\n{trace}")
    if "first" in expect:
        want = _qualify(str(expect["first"]), model)
        if actual[:1] == [want]:
            return Outcome(case, True)
        return Outcome(case, False, f"expected first {want}\n  actual order [{', '.join(actual)}]\n\n{trace}")
    want_order = [_qualify(str(n), model) for n in expect["order"] or ()]
    if actual == want_order:
        return Outcome(case, True)
    return Outcome(
        case, False, f"expected order [{', '.join(want_order)}]\n  actual order [{', '.join(actual)}]\n\n{trace}"
    )


def run_files(router: Router, paths: Sequence[Path]) -> tuple[list[Outcome], list[Diagnostic]]:
    outcomes: list[Outcome] = []
    problems: list[Diagnostic] = []
    for path in paths:
        cases, found = load_cases(path)
        problems += found
        outcomes += (run_case(router, c) for c in cases)
    return outcomes, problems


def summary(outcomes: Sequence[Outcome]) -> str:
    passed = sum(o.passed for o in outcomes)
    return f"{passed} passed, {len(outcomes) - passed} failed"


def _want_text(expect: Mapping[str, Any], model: str) -> str:
    if "first" in expect:
        return f"first {_qualify(str(expect['first']), model)}"
    return f"order [{', '.join(_qualify(str(n), model) for n in expect.get('order') or ())}]"


def _qualify(name: str, model: str) -> str:
    return name if "@" in name else f"{model}@{name}"


def _plain(value: Any) -> Any:
    """ruamel's round-trip containers as plain dicts and lists (scalars stay as written)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _span(source: Source, node: Any) -> Span:
    lc = getattr(node, "lc", None)
    line, col = (lc.line + 1, lc.col + 1) if lc is not None else (1, 1)
    return Span(source, line, col, line, col + 1)


def _item_span(source: Source, seq: Any, index: int) -> Span:
    try:
        line, col = seq.lc.item(index)
    except (AttributeError, KeyError, TypeError):
        return _span(source, seq)
    text = source.line_text(line + 1)
    return Span(source, line + 1, col + 1, line + 1, len(text) + 1)


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


def iter_failures(outcomes: Sequence[Outcome]) -> Iterator[Outcome]:
    return (o for o in outcomes if not o.passed)
