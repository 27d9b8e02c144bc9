"""Lints over a compiled program: mistakes that type-check but would not do what was meant.

- `condition-never-holds`: an `and` whose comparisons of one fact with literals leave it no value;
- `fallback-lacks-capability`: a fallback model lacks a capability its route requires;
- `fallback-context-window` (a note): a fallback has a smaller context window than the route's model;
- `unused-provider`, `unused-model`: declared in the registry, used by nothing;
- `no-eligible-deployment`: the policy itself (`only`, `requires`, `use`, a `deny` reached through a
  fallback) can leave a request with nothing although the facts alone would leave a deployment.
  Found by trying the finite boundary values of the facts the route reads, with each provider
  available or not; reported with the request and facts that reach it.

Warnings are suppressed per line by a comment naming the code: `# policyrouter: allow unused-model`
on the line or the line before.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from policyrouter import ast
from policyrouter.compile import BUILTIN_FACTS, FLIPPED
from policyrouter.decision import Request
from policyrouter.diagnostics import Diagnostic
from policyrouter.errors import DecisionError
from policyrouter.evaluate import Context, decide
from policyrouter.facts import FactsError, StaticFacts, nest_facts
from policyrouter.program import ModelPlan, Program
from policyrouter.quantities import format_quantity
from policyrouter.registry import Registry

MAX_CASES_PER_ROUTE = 2048
_CODE = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_ALLOW = re.compile(rf"policyrouter:\s*allow\s+({_CODE}(?:\s*,\s*{_CODE})*)")  # codes, then any reason


def lint(program: Program, files: Sequence[ast.PolicyFile], *, deep: bool = True) -> list[Diagnostic]:
    registry = program.registry
    routes = [s for f in files for s in f.statements if isinstance(s, ast.Route)]
    found = list(_fallbacks(registry, routes))
    for f in files:  # a `let` belongs to its file: another file may give its name another condition
        lets: dict[str, ast.Expr] = {}
        for s in f.statements:
            if isinstance(s, ast.Let) and s.name.name not in BUILTIN_FACTS:  # a fact's name stays the fact's
                lets.setdefault(s.name.name, s.value)
        own = [s for s in f.statements if isinstance(s, ast.Route)]
        found += _contradictions(own, lets)
        if deep:
            found += _holes(program, own, lets)
    if files:
        found += _unused(registry, routes)
    return found


def suppress(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Drop warnings and notes whose line, or a comment line right above it (one, or a run of them),
    says `policyrouter: allow CODE`. A run, since `fmt` puts the comments of lines it joins there."""
    kept = []
    for d in diagnostics:
        if d.severity != "error" and d.span is not None:
            source = d.span.source
            lines = [d.span.line]
            while lines[-1] > 1 and source.line_text(lines[-1] - 1).lstrip().startswith("#"):
                lines.append(lines[-1] - 1)
            if len(lines) == 1:
                lines.append(d.span.line - 1)  # the line before, whatever it holds
            allowed = {
                code.strip()
                for line in lines
                for m in _ALLOW.finditer(source.line_text(line))
                for code in m.group(1).split(",")
            }
            if d.code in allowed:
                continue
        kept.append(d)
    return kept


# -- fallbacks ----------------------------------------------------------------------------------


def _fallbacks(registry: Registry, routes: Sequence[ast.Route]) -> Iterator[Diagnostic]:
    onward = _Onward(routes)
    for route in routes:
        requires = {c.name for clause in route.clauses if isinstance(clause, ast.Requires) for c in clause.capabilities}
        own = registry.models.get(route.target.name)
        for clause in route.clauses:
            if not isinstance(clause, ast.Fallback):
                continue
            for ident in clause.models:
                model = registry.models.get(ident.name)
                if model is None:
                    continue
                lacking = sorted(requires - model.capabilities)
                if lacking and not any(  # where it goes on to (its route's `use`s, fallbacks) may serve
                    requires <= registry.models[m].capabilities for m in onward(ident.name) if m in registry.models
                ):
                    yield Diagnostic(
                        "fallback-lacks-capability",
                        f"`{ident.name}` lacks {_listing(lacking)}, which this route requires: it can never serve",
                        ident.span,
                        "warning",
                        f"remove it from the fallbacks, or pick a model with {_listing(lacking)}",
                    )
                window, own_window = model.context_window, own.context_window if own else None
                if window is not None and own_window is not None and window < own_window:
                    yield Diagnostic(
                        "fallback-context-window",
                        f"`{ident.name}` has a smaller context window ({format_quantity('count', window)}) "
                        f"than `{route.target.name}` ({format_quantity('count', own_window)})",
                        ident.span,
                        "note",
                        f"requests over {format_quantity('count', window)} tokens skip this fallback",
                    )


# -- contradictions -----------------------------------------------------------------------------


def _contradictions(routes: Sequence[ast.Route], lets: Mapping[str, ast.Expr]) -> Iterator[Diagnostic]:
    """`quota(work) > 20% and quota(work) < 10%`: an `and` whose comparisons of one fact with literals
    leave the fact no value (each comparison on its own is checked against the fact's range at compile),
    in a route's condition or a `let`'s value (once, where it is written)."""
    conditions = [c.condition for route in routes for c in route.clauses if isinstance(c, ast.When)]
    for condition in [*conditions, *lets.values()]:
        stack = [condition]
        while stack:
            expr = stack.pop()
            if isinstance(expr, (ast.And, ast.Or)):
                stack += expr.operands
            elif isinstance(expr, ast.Not):
                stack.append(expr.operand)
            if isinstance(expr, ast.And):
                clash = _clash(expr)
                if clash is not None:
                    fact, compares = clash
                    yield Diagnostic(
                        "condition-never-holds",
                        f"`{expr.span.text}` never holds",
                        expr.span,
                        "warning",
                        f"no value of `{fact}` meets " + " and ".join(f"`{c.span.text}`" for c in compares),
                    )


def _clash(conjunction: ast.And) -> tuple[str, list[ast.Compare]] | None:
    """A fact and its comparisons with literals, among the operands of `conjunction`, that no value
    of the fact meets; None when each fact compared keeps a value."""
    ranges: dict[str, _Range] = {}
    for operand in conjunction.operands:
        if isinstance(operand, ast.Compare) and (bound := _bound(operand)) is not None:
            fact, op, value = bound
            ranges.setdefault(fact, _Range()).narrow(op, value, operand)
    return next(((fact, r.compares) for fact, r in ranges.items() if r.empty()), None)


def _bound(expr: ast.Compare) -> tuple[str, str, float] | None:
    """`quota(work) > 20%` (or `20% < quota(work)`) → ("quota(work)", ">", 0.2)."""
    if expr.op == "!=":
        return None
    for fact, op, literal in ((expr.left, expr.op, expr.right), (expr.right, FLIPPED[expr.op], expr.left)):
        if isinstance(literal, ast.Literal) and isinstance(literal.value, float):
            if isinstance(fact, ast.Call) and isinstance(fact.arg, ast.Ident):
                return f"{fact.func.name}({fact.arg.name})", op, literal.value
            if isinstance(fact, ast.Name) and fact.name in BUILTIN_FACTS:
                return fact.name, op, literal.value
    return None


class _Range:
    """The values a fact may take under the comparisons so far: from `low` to `high`, each end open
    (excluded) or not."""

    def __init__(self) -> None:
        self.low, self.low_open, self.high, self.high_open = -math.inf, False, math.inf, False
        self.compares: list[ast.Compare] = []

    def narrow(self, op: str, value: float, compare: ast.Compare) -> None:
        self.compares.append(compare)
        if op in (">", ">=", "==") and (value > self.low or (value == self.low and op == ">")):
            self.low, self.low_open = value, op == ">"
        if op in ("<", "<=", "==") and (value < self.high or (value == self.high and op == "<")):
            self.high, self.high_open = value, op == "<"

    def empty(self) -> bool:
        return self.low > self.high or (self.low == self.high and (self.low_open or self.high_open))


# -- unused declarations ------------------------------------------------------------------------


def _unused(registry: Registry, routes: Sequence[ast.Route]) -> Iterator[Diagnostic]:
    used_providers = {d.provider for m in registry.models.values() for d in m.deployments}
    for name, provider in registry.providers.items():
        if name not in used_providers:
            yield Diagnostic(
                "unused-provider",
                f"provider `{name}` serves no model",
                provider.span,
                "warning",
                "add a deployment on it, or remove it",
            )
    named: set[str] = set()
    for route in routes:
        if "*" in route.target.name:
            named.update(m for m in registry.models if _glob_match(route.target.name, m))
        else:
            named.add(route.target.name)
        for node in _walk_names(route):
            named.add(node)
    for name, model in registry.models.items():
        if name not in named:
            yield Diagnostic(
                "unused-model",
                f"no policy routes or names model `{name}`",
                model.span,
                "warning",
                "requests for it go in registry order; route it, name it as a fallback, or remove it",
            )


def _walk_names(route: ast.Route) -> Iterator[str]:
    for clause in route.clauses:
        if isinstance(clause, ast.Fallback):
            yield from (m.name for m in clause.models)
        actions = []
        if isinstance(clause, ast.When):
            actions = [clause.action, clause.otherwise]
        elif isinstance(clause, (ast.Otherwise, ast.Do)):
            actions = [clause.action]
        yield from (a.model.name for a in actions if isinstance(a, ast.Use))


class _Onward:
    """The models a request for a model can go on to through the `use`s and fallbacks of the routes
    that serve it, and of theirs in turn: worked out for a model when first asked, from routes indexed
    by name once (asking each route of a large policy about each fallback was quadratic)."""

    def __init__(self, routes: Sequence[ast.Route]) -> None:
        self.named: dict[str, list[ast.Route]] = {}
        self.globs = [r for r in routes if r.is_glob]
        for route in routes:
            if not route.is_glob:
                self.named.setdefault(route.target.name, []).append(route)
        self.reached: dict[str, set[str]] = {}

    def __call__(self, model: str) -> set[str]:
        reached = self.reached.get(model)
        if reached is not None:
            return reached
        reached = self.reached[model] = set()
        pending = [model]
        while pending:
            name = pending.pop()
            for route in self.serving(name):
                for onward in _walk_names(route):
                    if onward not in reached and onward != model:
                        reached.add(onward)
                        pending.append(onward)
        return reached

    def serving(self, model: str) -> list[ast.Route]:
        """The routes that serve `model`, as compile picks them: its own, else its most specific glob."""
        own = self.named.get(model)
        if own:
            return own
        matching = [r for r in self.globs if _glob_match(r.target.name, model)]
        literal = lambda r: len(r.target.name.replace("*", ""))  # noqa: E731
        return [max(matching, key=literal)] if matching else []  # the first of a tie, as compile takes


def _glob_match(pattern: str, name: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


# -- routes that can leave nothing --------------------------------------------------------------


def _holes(program: Program, routes: Sequence[ast.Route], lets: Mapping[str, ast.Expr]) -> Iterator[Diagnostic]:
    by_target = {r.target.name: r for r in routes}
    for name, plan in program.plans.items():
        node = by_target.get(plan.route.target)
        if node is None:
            continue
        found = _first_hole(program, plan, node, lets)
        if found is not None:
            request, facts, alive = found
            yield Diagnostic(
                "no-eligible-deployment",
                f"route `{node.target.name}` can leave "
                + (f"`{name}` with no deployment" if "*" in node.target.name else "a request with no deployment"),
                node.target.span,
                "warning",
                f"e.g. request {_request_text(request)} with facts {_facts_text(facts)}: "
                f"the policy leaves nothing although {alive} is eligible",
            )


def _first_hole(
    program: Program, plan: ModelPlan, node: ast.Route, lets: Mapping[str, ast.Expr]
) -> tuple[Request, dict[str, Any], str] | None:
    registry = program.registry
    model = plan.model
    conditions = list(_conditions(node, lets))
    dims = _fact_dimensions(registry, plan, conditions, lets)
    tags = sorted(_tags(conditions))
    tokens = sorted({0, *(t for t in _literals(conditions, "tokens") if t <= (model.context_window or math.inf))})
    requests = [
        Request(model.name, frozenset(caps), int(tok), None, frozenset(tagset))
        for caps in [(), *((c,) for c in sorted(model.capabilities))]
        for tok in tokens
        for tagset in _subsets(tags)
    ]
    keys = list(dims)
    combos = itertools.islice(itertools.product(*(dims[k] for k in keys)), MAX_CASES_PER_ROUTE)
    for values in combos:
        facts = nest_facts(dict(zip(keys, values, strict=True)))
        try:  # the clock, where the search does not try it, is a fixed one: `check` says the same at any hour
            source = StaticFacts(registry, {**_NOON_ON_A_WEDNESDAY, **facts})
        except FactsError:  # a value no live state could give: nothing to find there
            continue
        for request in requests:
            # A hole needs both: a deployment the facts alone leave, and a decision that leaves none.
            # The first is a few checks, the second a whole decision, so it is asked only when the
            # first holds (often it does not: the facts tried include used-up quotas and cooldowns).
            alive = _eligible_alone(program, plan, request, source)
            if alive is None:
                continue
            try:
                decide(program, request, source)
            except DecisionError as e:
                if e.code not in ("denied", "unknown_model"):
                    read = e.decision.facts if e.decision is not None else {}
                    clock = {k: v for k, v in _NOON_ON_A_WEDNESDAY.items() if k in read and k not in facts}
                    return request, {**facts, **clock}, alive  # with the clock, if it was read, to say it again
    return None


_NOON_ON_A_WEDNESDAY = {"hour": 12, "weekday": 3}


def _eligible_alone(program: Program, plan: ModelPlan, request: Request, source: StaticFacts) -> str | None:
    """A deployment the facts alone leave for this request (no policy), if any."""
    ctx = Context(program.registry, request, source)
    for d, check in zip(plan.deployments, plan.checks, strict=True):
        if check(ctx, request.requires) is None:
            return d.key
    return None


def _fact_dimensions(
    registry: Registry, plan: ModelPlan, conditions: Sequence[ast.Expr], lets: Mapping[str, ast.Expr]
) -> dict[str, list[Any]]:
    """Each fact the route reads, with the boundary values of its comparisons; and each provider of
    the model available or cooling down."""
    dims: dict[str, list[Any]] = {}
    for key, kind, literals in _compared_facts(conditions, lets):
        lo, hi = (
            (0.0, 1.0)
            if kind == "share"
            else (0.0, 23.0)
            if key == "hour"
            else (1.0, 7.0)
            if key == "weekday"
            else (0.0, math.inf)
        )
        provider = registry.providers.get(key.removeprefix("quota.")) if key.startswith("quota.") else None
        if provider is not None and provider.quota is None:
            dims[key] = [1.0]  # a provider without a quota has all of it, always
            continue
        base = {"share": 0.01, "money": 0.01, "duration": 0.001}.get(kind, 1.0)
        values = {lo} | ({hi} if hi != math.inf else set())
        for c in literals:
            step = min(base, c / 2) if c > 0 else base  # below `< 1%` is 0.5%, not 0%
            values |= {v for v in (c - step, c, c + step) if lo <= v <= hi}
        if key in ("hour", "weekday"):  # whole numbers: `hour > 3.5` is decided between 3 and 4
            values = {n for v in values for n in (math.floor(v), math.ceil(v)) if lo <= n <= hi}
        dims[key] = sorted(values)
    for d in plan.deployments:
        dims.setdefault(f"cooldown.{d.provider}", [0.0, 60.0])
    return dims


def _compared_facts(
    conditions: Sequence[ast.Expr], lets: Mapping[str, ast.Expr]
) -> Iterator[tuple[str, str, list[float]]]:
    found: dict[str, tuple[str, list[float]]] = {}
    for expr in conditions:
        for fact, literal in _compared(expr):
            key_kind = _fact_key(fact, lets)
            if key_kind is not None and isinstance(literal, ast.Literal) and isinstance(literal.value, float):
                key, kind = key_kind
                found.setdefault(key, (kind, []))[1].append(literal.value)
    for key, (kind, literals) in found.items():
        yield key, kind, literals


def _fact_key(node: ast.Expr, lets: Mapping[str, ast.Expr]) -> tuple[str, str] | None:
    seen = 0
    while isinstance(node, ast.Name) and node.name in lets and seen < ast.MAX_NESTING:  # `let q = quota(work)`
        node, seen = lets[node.name], seen + 1
    if isinstance(node, ast.Call) and isinstance(node.arg, ast.Ident):
        builtin = BUILTIN_FACTS.get(node.func.name)
        if builtin is not None and builtin.arg in ("provider", "budget", "scope"):
            return f"{node.func.name}.{node.arg.name}", builtin.type
    if isinstance(node, ast.Name) and node.name in ("hour", "weekday"):
        return node.name, "count"
    return None


def _conditions(node: ast.Route, lets: Mapping[str, ast.Expr]) -> Iterator[ast.Expr]:
    """The route's `when` conditions, then the value of each `let` they name (and those name in turn):
    a fact compared in a `let` is compared by the routes that use it."""
    pending = [clause.condition for clause in node.clauses if isinstance(clause, ast.When)]
    named: set[str] = set()
    while pending:
        expr = pending.pop(0)
        yield expr
        stack = [expr]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.Name) and e.name in lets and e.name not in named:
                named.add(e.name)
                pending.append(lets[e.name])
            elif isinstance(e, (ast.And, ast.Or)):
                stack += e.operands
            elif isinstance(e, ast.Not):
                stack.append(e.operand)


def _compared(expr: ast.Expr) -> Iterator[tuple[ast.Expr, ast.Expr]]:
    """Each pair of operands an expression compares, both ways round: `a > b` gives (a, b) and (b, a);
    `a in (b, c)` gives (a, b) and (a, c)."""
    if isinstance(expr, ast.Compare):
        yield expr.left, expr.right
        yield expr.right, expr.left
    elif isinstance(expr, ast.In):
        for option in expr.options:
            yield expr.left, option
    elif isinstance(expr, (ast.And, ast.Or)):
        for op in expr.operands:
            yield from _compared(op)
    elif isinstance(expr, ast.Not):
        yield from _compared(expr.operand)


def _tags(conditions: Sequence[ast.Expr]) -> set[str]:
    out = set()
    for expr in conditions:
        stack = [expr]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.Call) and e.func.name == "tag" and isinstance(e.arg, ast.Literal):
                out.add(str(e.arg.value))
            elif isinstance(e, (ast.And, ast.Or)):
                stack += e.operands
            elif isinstance(e, ast.Not):
                stack.append(e.operand)
    return out


def _literals(conditions: Sequence[ast.Expr], name: str) -> set[float]:
    out: set[float] = set()
    for expr in conditions:
        for fact, literal in _compared(expr):
            if isinstance(fact, ast.Name) and fact.name == name and isinstance(literal, ast.Literal):
                value = float(literal.value)
                out |= {max(0.0, value - 1), value, value + 1}
    return out


def _subsets(items: list[str]) -> Iterator[tuple[str, ...]]:
    for n in range(len(items) + 1):
        yield from itertools.combinations(items, n)


def _request_text(request: Request) -> str:
    parts = [f"model: {request.model}"]
    if request.requires:
        parts.append(f"requires: [{', '.join(sorted(request.requires))}]")
    if request.tokens:
        parts.append(f"tokens: {request.tokens}")
    if request.tags:
        parts.append(f"tags: [{', '.join(sorted(request.tags))}]")
    return "{" + ", ".join(parts) + "}"


def _facts_text(facts: dict[str, Any]) -> str:
    shown = []
    for head, value in facts.items():
        if isinstance(value, dict):
            inner = [f"{k}: {_fact_value(head, v)}" for k, v in value.items() if not (head == "cooldown" and v == 0)]
            if inner:
                shown.append(f"{head}: {{{', '.join(inner)}}}")
        else:
            shown.append(f"{head}: {value}")
    return "{" + ", ".join(shown) + "}"


def _fact_value(head: str, value: float) -> str:
    kind = {"quota": "share", "budget": "share", "spend": "money", "cooldown": "duration", "latency": "duration"}
    if kind.get(head) == "duration" and not float(value).is_integer():  # just past `> 30s`: 30001ms, not 30s
        return f"{round(value * 1000)}ms"
    return format_quantity(kind.get(head, "count"), value).replace(",", "")  # as `--fact` reads it: `$1000.01`


def _listing(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
