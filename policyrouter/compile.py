"""AST to evaluation tree, once: resolve names, check types and ranges, check reachability and
route conflicts, then lower conditions to closures and give every registry model its route.

`compile_program` returns the program and every diagnostic found (errors and warnings), so
`check` and `load` run the very same passes and can never disagree.
"""

from __future__ import annotations

import fnmatch
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from policyrouter import ast, program
from policyrouter.collector import without_collector
from policyrouter.diagnostics import Diagnostic, Span, closest, did_you_mean
from policyrouter.eligibility import check_for
from policyrouter.facts import FACT_KEYS, MISSING, Fact
from policyrouter.program import STRATEGIES, Condition, FactRef, ModelPlan, Program
from policyrouter.quantities import format_quantity
from policyrouter.registry import GLOBAL_BUDGETS, Deployment, Registry, meant_capability

Type = str  # share | money | count | duration | string | bool | error


@dataclass(frozen=True, slots=True)
class _Builtin:
    arg: str | None  # provider | budget | scope | string | None
    type: Type


BUILTIN_FACTS: Mapping[str, _Builtin] = {
    "quota": _Builtin("provider", "share"),
    "budget": _Builtin("budget", "share"),
    "spend": _Builtin("scope", "money"),
    "rpm": _Builtin("provider", "count"),
    "tpm": _Builtin("provider", "count"),
    "errors": _Builtin("provider", "count"),
    "latency": _Builtin("provider", "duration"),
    "tokens": _Builtin(None, "count"),
    "tag": _Builtin("string", "bool"),
    "hour": _Builtin(None, "count"),
    "weekday": _Builtin(None, "count"),
}

_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_PROVIDER_VERBS: Mapping[type, str] = {ast.Prefer: "prefer", ast.Only: "only", ast.Avoid: "avoid"}

_NOTHING_REQUIRED: frozenset[str] = frozenset()  # one for every route without `requires`, not one each


def check_custom_facts(facts: Mapping[Any, object]) -> dict[str, Fact]:
    """The facts registered from Python (`load(..., facts=...)`), each a `Fact` under a name a policy
    can write that no built-in fact has. Raises TypeError or ValueError where they are given, not
    where a policy reads them."""
    if not isinstance(facts, Mapping):
        raise TypeError(f"`facts` maps names to `policyrouter.Fact(type, fn)`; got {type(facts).__name__}")
    checked: dict[str, Fact] = {}
    for name, fact in facts.items():
        if not isinstance(name, str) or not ast.NAME.fullmatch(name) or name in _OPERATOR_WORDS:
            raise ValueError(
                "a fact's name is one a policy can write: a letter or `_`, then letters, digits, `_`, `.` "
                f"or `-`; got {name!r}"
            )
        if name in BUILTIN_FACTS:
            raise ValueError(f"`{name}` is a built-in fact: give yours another name")
        if name in FACT_KEYS:
            raise ValueError(f"`{name}` names a fact the router keeps for itself: give yours another name")
        head = name.partition(".")[0]
        if "." in name and (head in BUILTIN_FACTS or head in FACT_KEYS):  # `quota.work` is `quota(work)`'s key
            raise ValueError(f"`{name}` reads as the built-in fact `{head}`: give yours another name")
        if not isinstance(fact, Fact):
            raise TypeError(f"the fact `{name}` is a `policyrouter.Fact(type, fn)`, not {type(fact).__name__}")
        checked[name] = fact
    for name in checked:  # `q.len` and `q(len)` would be one value
        for other in checked:
            if name.startswith(other + "."):
                raise ValueError(f"`{name}` starts with the fact `{other}`: give one of them another name")
    return checked


_LITERAL_OF = {
    "share": "`20%`",
    "money": "`$5`",
    "count": "`100` or `8k`",
    "duration": "`800ms`",
    "string": '`"batch"`',
}
_OPERATOR_WORDS = frozenset({"not", "and", "or", "in", "true", "false"})  # what an expression reads otherwise

FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

_TYPE_WORDS = {
    "share": "a share",
    "money": "money",
    "count": "a number",
    "duration": "a duration",
    "string": "a string",
    "bool": "a condition (true or false)",
}


def _written(node: ast.Expr, type: str) -> str:
    """What the user wrote, and its type: "`quota(work)` (a share)"."""
    text = node.span.text
    if len(text) > 40:
        text = text[:39] + "…"
    return f"`{text}` ({_TYPE_WORDS[type]})"


@dataclass(slots=True)
class _Lowered:
    """A lowered expression: its closure, type, the facts it reads, and its constant value if folded."""

    fn: Condition
    type: Type
    facts: tuple[FactRef, ...] = ()
    const: Any = MISSING
    domain: tuple[float, float] | None = None  # the values a fact can take, for always/never-holds lints
    settled: bool = False  # a comparison inside was found to always or never hold (and said so)
    depth: int = 0  # how deep its closures nest, through the `let`s it uses (at most `ast.MAX_NESTING`)


@without_collector
def compile_program(
    registry: Registry,
    files: Sequence[ast.PolicyFile],
    custom_facts: Mapping[str, Fact] | None = None,
) -> tuple[Program | None, list[Diagnostic]]:
    """Check and lower the policies. The program is None when any diagnostic is an error."""
    compiler = _Compiler(registry, dict(custom_facts or {}))
    routes = [compiler.route(r, lets) for f in files for r, lets in compiler.statements(f)]
    plans = compiler.plans(routes)
    diagnostics = compiler.diagnostics
    if any(d.severity == "error" for d in diagnostics):
        return None, diagnostics
    return Program(registry, plans, tuple(r for r, _ in routes)), diagnostics


class _Compiler:
    def __init__(self, registry: Registry, custom: dict[str, Fact]) -> None:
        self.registry = registry
        self.custom = custom
        self.diagnostics: list[Diagnostic] = []
        self.budget_scopes = tuple(registry.budgets)
        self.spend_scopes = tuple(dict.fromkeys((*GLOBAL_BUDGETS, *registry.budgets)))
        self.later_lets: dict[str, Span] = {}  # every `let` of the file being compiled, to say "used too early"
        self.serving: dict[str, tuple[list[str], frozenset[str]]] = {}  # by route target, see `served`
        self.ranks: dict[tuple[str, ...], dict[str, int]] = {}  # each list of providers an action names: its order
        self.readers: dict[str, _Lowered] = {}  # each built-in fact's reader, shared by every use of the fact
        self.comparisons: dict[tuple[Any, ...], Condition] = {}  # each `fact OP literal` closure, shared likewise

    def error(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, "error", help))

    def warn(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, "warning", help))

    # -- statements -----------------------------------------------------------------------------

    def statements(self, file: ast.PolicyFile) -> Iterable[tuple[ast.Route, dict[str, _Lowered]]]:
        """The file's routes, each with the `let`s defined before it (a `let` is visible after it)."""
        lets: dict[str, _Lowered] = {}
        visible: dict[str, _Lowered] | None = None  # a copy of `lets`, shared by the routes up to the next `let`
        self.later_lets = {}  # each name's first `let`: the one to move above a use before it
        for s in file.statements:
            if isinstance(s, ast.Let):
                self.later_lets.setdefault(s.name.name, s.name.span)
        for statement in file.statements:
            if isinstance(statement, ast.Let):
                name = statement.name
                value = self.shallow(self.expr(statement.value, lets), statement.value, lets)
                if name.name in lets:  # the first stays: what follows is checked as the lints read it
                    self.error("duplicate-let", f"`{name.name}` is already defined in this file", name.span)
                elif name.name in BUILTIN_FACTS or name.name in self.custom:  # the name stays the fact's
                    self.error(
                        "duplicate-let",
                        f"`{name.name}` is the name of a fact",
                        name.span,
                        "pick another name for the `let`",
                    )
                else:
                    lets[name.name] = value
                    visible = None
            else:
                if visible is None:
                    visible = dict(lets)
                yield statement, visible

    def route(self, node: ast.Route, lets: dict[str, _Lowered]) -> tuple[program.Route, ast.Route]:
        requires: set[str] = set()
        clauses: list[program.Clause] = []
        strategy: ast.Strategy | None = None
        fallback: ast.Fallback | None = None
        closed_by: Span | None = None  # the clause after which no action clause is reachable
        tested: dict[ast.Expr, Span] = {}  # conditions of earlier `when`s: one that comes again never fires
        for clause in node.clauses:
            if isinstance(clause, ast.Requires):
                self.once(clause.capabilities)
                requires.update(self.capabilities(clause.capabilities))
            elif isinstance(clause, ast.Strategy):
                if strategy is not None:
                    self.error(
                        "duplicate-clause",
                        "this route already has a `strategy`",
                        clause.span,
                        f"the first is at {strategy.span}",
                    )
                strategy = clause
                self.strategy(clause.name)
            elif isinstance(clause, ast.Fallback):
                if fallback is not None:
                    self.error(
                        "duplicate-clause",
                        "this route already has a `fallback`",
                        clause.span,
                        f"list every fallback model in the first, at {fallback.span}",
                    )
                fallback = clause
                self.once(clause.models)
                for model in clause.models:
                    self.model_name(model)
            else:
                lowered = self.clause(clause, node, lets)
                if closed_by is not None:
                    self.warn(
                        "unreachable-clause",
                        "this clause can never fire",
                        clause.span,
                        f"the clause at {closed_by} always decides first",
                    )
                elif isinstance(clause, ast.When) and clause.condition in tested:
                    self.warn(
                        "unreachable-clause",
                        "this clause can never fire",
                        clause.span,
                        f"the clause at {tested[clause.condition]} tests the same condition and decides first",
                    )
                elif lowered is None:
                    continue
                else:
                    clauses.append(lowered)
                    if _always_decides(lowered):
                        closed_by = clause.span
                    if isinstance(clause, ast.When):
                        tested.setdefault(clause.condition, clause.span)
        compiled = program.Route(
            target=node.target.name,
            requires=frozenset(requires) if requires else _NOTHING_REQUIRED,
            clauses=tuple(clauses),
            strategy=strategy.name.name if strategy else "in_order",
            fallbacks=tuple(m.name for m in fallback.models) if fallback else (),
            span=node.span,
        )
        return compiled, node

    def clause(self, clause: ast.Clause, route: ast.Route, lets: dict[str, _Lowered]) -> program.Clause | None:
        if isinstance(clause, ast.When):
            cond = self.shallow(self.expr(clause.condition, lets), clause.condition, lets)
            self.expect(cond, "bool", clause.condition, "a `when` condition")
            if cond.const is False and not cond.settled and clause.otherwise is not None:  # `when false … else`
                self.warn(
                    "condition-never-holds",
                    "this condition is always false",
                    clause.condition.span,
                    "the `else` always fires: keep its action alone",
                )
            elif cond.const is False and not cond.settled:
                self.warn(
                    "unreachable-clause",
                    "this condition is always false",
                    clause.condition.span,
                    "the clause can never fire: remove it",
                )
            elif cond.const is True and not cond.settled:  # `when true`, `when "a" < "b"`
                self.warn(
                    "condition-always-holds",
                    "this condition is always true",
                    clause.condition.span,
                    "the `else` never fires: keep the action alone" if clause.otherwise else "keep the action alone",
                )
            action = self.action(clause.action, route)
            otherwise = self.action(clause.otherwise, route) if clause.otherwise else None
            if clause.otherwise is not None and clause.otherwise == clause.action:  # spans aside
                self.warn(
                    "condition-no-effect",
                    f"`{action.text}` either way",
                    clause.span,
                    "the condition changes nothing: keep the action alone, or change one branch",
                )
            condition = None if cond.const is True else cond.fn
            return program.Clause(
                "when",
                condition,
                clause.condition.span.text,
                cond.facts,
                action,
                otherwise,
                clause.span,
                never=cond.const is False,
            )
        if isinstance(clause, ast.Otherwise):
            return program.Clause("otherwise", None, "", (), self.action(clause.action, route), None, clause.span)
        assert isinstance(clause, ast.Do), clause  # requires, strategy and fallback are the route's own
        return program.Clause("do", None, "", (), self.action(clause.action, route), None, clause.span)

    def action(self, node: ast.Action, route: ast.Route) -> program.Action:
        if isinstance(node, (ast.Prefer, ast.Only, ast.Avoid)):
            verb = _PROVIDER_VERBS[type(node)]
            self.once(node.providers)
            providers = [name for ident in node.providers if (name := self.provider(ident))]
            for ident in node.providers:
                if ident.name in self.registry.providers:
                    self.check_serves(ident, route)
            text = f"{verb} {', '.join([p.name for p in node.providers])}"
            named = tuple(providers)
            rank = self.ranks.get(named)
            if rank is None:  # shared by the actions that name the same providers
                rank = self.ranks[named] = {p: i for i, p in enumerate(named)}
            return program.Action(verb, named, text=text, span=node.span, rank=rank)  # type: ignore[arg-type]
        if isinstance(node, ast.Use):
            model = self.model_name(node.model)
            return program.Action("use", model=model, text=f"use {node.model.name}", span=node.span)
        return program.Action("deny", message=node.message, text=f'deny "{node.message}"', span=node.span)

    # -- names ----------------------------------------------------------------------------------

    def once(self, idents: Iterable[ast.Ident]) -> None:
        """Warn about a name a list repeats: the repeat does nothing, and often stands for a typo."""
        first: dict[str, ast.Ident] = {}
        for ident in idents:
            if ident.name in first:
                self.warn(
                    "duplicate-name",
                    f"`{ident.name}` is named twice",
                    ident.span,
                    f"the first is at {first[ident.name].span}; remove this one, or name what was meant",
                )
            first.setdefault(ident.name, ident)

    def provider(self, ident: ast.Ident) -> str | None:
        if ident.name in self.registry.providers:
            return ident.name
        self.error(
            "unknown-provider",
            f"unknown provider `{ident.name}`",
            ident.span,
            did_you_mean(ident.name, self.registry.providers) or _choices(self.registry.providers, "providers"),
        )
        return None

    def model_name(self, ident: ast.Ident) -> str | None:
        if ident.name in self.registry.models:
            return ident.name
        self.error(
            "unknown-model",
            f"unknown model `{ident.name}`",
            ident.span,
            did_you_mean(ident.name, self.registry.models) or _choices(self.registry.models, "models"),
        )
        return None

    def capabilities(self, idents: Iterable[ast.Ident]) -> list[str]:
        known = self.registry.settings.capabilities
        out = []
        for ident in idents:
            if ident.name in known:
                out.append(ident.name)
            else:
                self.error(
                    "unknown-capability",
                    f"unknown capability `{ident.name}`",
                    ident.span,
                    (f"did you mean `{guess}`?" if (guess := meant_capability(ident.name, known)) else None)
                    or f"the capabilities are {_names(sorted(known))}; "
                    "declare your own under `settings.capabilities` in registry.yaml",
                )
        return out

    def strategy(self, ident: ast.Ident) -> None:
        if ident.name not in STRATEGIES:
            self.error(
                "unknown-strategy",
                f"unknown strategy `{ident.name}`",
                ident.span,
                did_you_mean(ident.name, STRATEGIES) or _choices(STRATEGIES),
            )

    def check_serves(self, ident: ast.Ident, route: ast.Route) -> None:
        models, served = self.served(route.target.name)
        if models and ident.name not in served:
            what = f"`{route.target.name}`" if not route.is_glob else f"any model `{route.target.name}` matches"
            self.warn(
                "provider-not-serving",
                f"provider `{ident.name}` does not serve {what}",
                ident.span,
                f"{what} is served by {_names(sorted(served))}",
            )

    def served(self, target: str) -> tuple[list[str], frozenset[str]]:
        """The models a route target names and the providers that serve any of them, worked out once
        per target: a route names several providers, and a glob's models take a pass over the registry."""
        found = self.serving.get(target)
        if found is None:
            models = self.models_matching(target)
            providers = frozenset([d.provider for m in models for d in self.registry.models[m].deployments])
            found = self.serving[target] = (models, providers)
        return found

    def models_matching(self, target: str) -> list[str]:
        if "*" not in target:
            return [target] if target in self.registry.models else []
        return [m for m in self.registry.models if fnmatch.fnmatchcase(m, target)]

    # -- expressions ----------------------------------------------------------------------------

    def shallow(self, lowered: _Lowered, node: ast.Expr, lets: Mapping[str, _Lowered]) -> _Lowered:
        """The condition or `let` value, or, when it nests deeper than the language allows (an error),
        one that reads as an error, so that what uses it is not reported again."""
        if lowered.depth <= ast.MAX_NESTING or lowered.type == "error":
            return lowered
        through = " through the `let`s it uses" if any(name in lets for name in _bare_names(node)) else ""
        self.error(
            "nested-too-deep",
            f"this condition nests {lowered.depth} deep{through}; at most {ast.MAX_NESTING}",
            node.span,
            ast.NESTING_HELP,
        )
        return _Lowered(lambda ctx: None, "error", lowered.facts)

    def expect(self, lowered: _Lowered, want: Type, node: ast.Expr, what: str) -> None:
        if lowered.type not in (want, "error"):
            self.error(
                "type-mismatch", f"{what} must be {_TYPE_WORDS[want]}, not {_written(node, lowered.type)}", node.span
            )

    def expr(self, node: ast.Expr, lets: Mapping[str, _Lowered]) -> _Lowered:
        if isinstance(node, ast.Literal):
            if node.kind == "share" and not 0.0 <= float(node.value) <= 1.0:
                self.error("share-out-of-range", f"a share is between 0% and 100%, not `{node.span.text}`", node.span)
            value = node.value
            return _Lowered(lambda ctx: value, node.kind, (), value)
        if isinstance(node, ast.Name):
            if node.name in lets:
                return lets[node.name]
            return self.fact(node.name, None, node.span, node, lets)
        if isinstance(node, ast.Call):
            return self.fact(node.func.name, node.arg, node.func.span, node)
        if isinstance(node, ast.Not):
            inner = self.expr(node.operand, lets)
            self.expect(inner, "bool", node.operand, "the operand of `not`")
            fn = inner.fn
            const = (not inner.const) if inner.const is not MISSING else MISSING
            typed = "error" if inner.type == "error" else "bool"  # an error inside was reported: not again
            return _Lowered(
                lambda ctx: not fn(ctx), typed, inner.facts, const, settled=inner.settled, depth=inner.depth + 1
            )
        if isinstance(node, (ast.And, ast.Or)):
            return self.logical(node, lets)
        if isinstance(node, ast.Compare):
            return self.compare(node, lets)
        return self.member(node, lets)

    def logical(self, node: ast.And | ast.Or, lets: Mapping[str, _Lowered]) -> _Lowered:
        word = "and" if isinstance(node, ast.And) else "or"
        parts = [self.expr(op, lets) for op in node.operands]
        for part, op in zip(parts, node.operands, strict=True):
            self.expect(part, "bool", op, f"each side of `{word}`")
        facts = tuple(f for p in parts for f in p.facts)
        fns = tuple(p.fn for p in parts)
        consts = [p.const for p in parts]
        settled = any(p.settled for p in parts)
        depth = max(p.depth for p in parts) + 1
        typed = "error" if any(p.type == "error" for p in parts) else "bool"
        if isinstance(node, ast.And):
            const = False if False in consts else (True if all(c is True for c in consts) else MISSING)
            return _Lowered(lambda ctx: all(f(ctx) for f in fns), typed, facts, const, settled=settled, depth=depth)
        const = True if True in consts else (False if all(c is False for c in consts) else MISSING)
        return _Lowered(lambda ctx: any(f(ctx) for f in fns), typed, facts, const, settled=settled, depth=depth)

    def compare(self, node: ast.Compare, lets: Mapping[str, _Lowered]) -> _Lowered:
        left, right = self.expr(node.left, lets), self.expr(node.right, lets)
        typed = self.same_type(left, right, node.left, node.right)
        op = _COMPARE[node.op]
        lf, rf = left.fn, right.fn
        facts = left.facts + right.facts
        depth = max(left.depth, right.depth) + 1
        if not typed:  # reported once; the config will not load, so nothing is worked out
            return _Lowered(lambda ctx: None, "error", facts)
        if lf is rf and left.const is MISSING:  # one reader on both sides: `quota(work) > quota(work)`
            holds = node.op in ("==", "<=", ">=")
            self.warn(
                f"condition-{'always' if holds else 'never'}-holds",
                f"`{node.span.text}` compares a fact with itself",
                node.span,
                "one side likely meant another name",
            )
            # settled as a range settles `weekday >= 1`: the clauses after an always are unreachable
            return _Lowered(lambda ctx: holds, "bool", facts, holds, settled=True, depth=depth)
        if left.const is not MISSING and right.const is not MISSING:
            value = op(left.const, right.const)
            return _Lowered(lambda ctx: value, "bool", facts, value)
        if right.const is not MISSING:  # the usual `fact OP literal`: fold the literal in
            const = self.settled(node, left, node.op, right.const)
            fn = self.folded(op, lf, right.const, literal_first=False)
            return _Lowered(fn, "bool", facts, const, settled=const is not MISSING, depth=depth)
        if left.const is not MISSING:
            const = self.settled(node, right, FLIPPED[node.op], left.const)
            fn = self.folded(op, rf, left.const, literal_first=True)
            return _Lowered(fn, "bool", facts, const, settled=const is not MISSING, depth=depth)
        return _Lowered(lambda ctx: op(lf(ctx), rf(ctx)), "bool", facts, depth=depth)

    def folded(self, op: Callable[[Any, Any], bool], fn: Condition, value: Any, *, literal_first: bool) -> Condition:
        """`fn OP value` (or `value OP fn`) as a closure, one per distinct comparison: the readers of
        built-in facts are shared (see `reader`), so a large config repeats the same few comparisons,
        and each closure is five objects for the garbage collector to track."""
        key = (op, fn, type(value), value, literal_first)  # the type too: `1 == 1.0 == True` as keys
        folded = self.comparisons.get(key)
        if folded is None:
            if literal_first:
                folded = self.comparisons[key] = lambda ctx: op(value, fn(ctx))
            else:
                folded = self.comparisons[key] = lambda ctx: op(fn(ctx), value)
        return folded

    def settled(self, node: ast.Compare, fact: _Lowered, op: str, value: Any) -> Any:
        """True or False when `fact OP value` is decided by the fact's domain alone (with a warning)."""
        domain = fact.domain
        if domain is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            return MISSING
        lo, hi = domain
        always = {
            ">": lo > value,
            ">=": lo >= value,
            "<": hi < value,
            "<=": hi <= value,
            "==": lo == hi == value,
            "!=": not lo <= value <= hi,
        }[op]
        never = {
            ">": hi <= value,
            ">=": hi < value,
            "<": lo >= value,
            "<=": lo > value,
            "==": not lo <= value <= hi,
            "!=": lo == hi == value,
        }[op]
        if not (always or never):
            return MISSING
        word = "always" if always else "never"
        self.warn(
            f"condition-{word}-holds",
            f"`{node.span.text}` {word} holds",
            node.span,
            f"the fact is between {_bound(fact.type, lo)} and {_bound(fact.type, hi)}",
        )
        return always

    def member(self, node: ast.In, lets: Mapping[str, _Lowered]) -> _Lowered:
        left = self.expr(node.left, lets)
        options = [self.expr(o, lets) for o in node.options]
        for option, option_node in zip(options, node.options, strict=True):
            self.same_type(left, option, node.left, option_node)
        lf = left.fn
        facts = left.facts + tuple(f for o in options for f in o.facts)
        depth = max(left.depth, *(o.depth for o in options)) + 1
        if all(o.const is not MISSING for o in options):
            values = frozenset(o.const for o in options)
            if left.const is not MISSING:  # literals alone (`3 in (1, 2)`): known now, as `1 > 2` is
                value = left.const in values
                return _Lowered(lambda ctx: value, "bool", facts, value, depth=depth)
            return _Lowered(lambda ctx: lf(ctx) in values, "bool", facts, depth=depth)
        fns = tuple(o.fn for o in options)
        return _Lowered(lambda ctx: lf(ctx) in {f(ctx) for f in fns}, "bool", facts, depth=depth)

    def same_type(self, left: _Lowered, right: _Lowered, left_node: ast.Expr, node: ast.Expr) -> bool:
        """Whether the two sides have one type; when not, an error at `node` (the right side), unless
        one side already had one."""
        if left.type == right.type:
            return True
        if "error" in (left.type, right.type):
            return False
        help = None
        if left.type == "share" and right.type == "count":
            help = "shares are written with `%`, e.g. `20%`"
        elif left.type == "money" and right.type == "count":
            help = "money is written with `$`, e.g. `$5`"
        elif left.type == "duration" and right.type == "count":
            help = "durations take a unit, e.g. `800ms` or `2s`"
        elif isinstance(node, ast.Literal) != isinstance(left_node, ast.Literal):  # a fact and a literal
            kind = left.type if isinstance(node, ast.Literal) else right.type
            if kind in _LITERAL_OF:
                help = f"compare it with {_TYPE_WORDS[kind]}, such as {_LITERAL_OF[kind]}"
        message = f"cannot compare {_written(left_node, left.type)} with {_written(node, right.type)}"
        self.error("type-mismatch", message, node.span, help)
        return False

    # -- facts ----------------------------------------------------------------------------------

    def fact(
        self, name: str, arg: ast.Ident | ast.Literal | None, span: Span, node: ast.Expr, lets: Iterable[str] = ()
    ) -> _Lowered:
        if name in self.custom:
            return self.custom_fact(name, self.custom[name], arg, node)
        spec = BUILTIN_FACTS.get(name)
        if spec is None and arg is None and name in self.later_lets:
            self.error(
                "unknown-fact",
                f"`{name}` is used before its `let`",
                span,
                f"a `let` is visible after its definition; move the one at {self.later_lets[name]} above this line",
            )
            return _Lowered(lambda ctx: None, "error")
        if spec is None:
            known = (*BUILTIN_FACTS, *self.custom)
            guess = closest(name, (*lets, *known) if arg is None else known)
            own = f"name a condition of your own with `let {name} = …` above this line"
            help = f"did you mean `{self.written(guess, arg)}`?" if guess else f"the facts are {_names(known)}; {own}"
            self.error("unknown-fact", f"unknown fact `{name}`", span, help)
            return _Lowered(lambda ctx: None, "error")
        if spec.arg is None:
            if arg is not None:
                self.error("fact-argument", f"`{name}` takes no argument", node.span, f"write `{name}`")
            return self.reader(name, lambda: _request_or_clock_fact(name))
        if arg is None:
            self.error(
                "fact-argument", f"`{name}` takes an argument", node.span, f"e.g. `{name}({_example_arg(spec.arg)})`"
            )
            return _Lowered(lambda ctx: None, "error")
        if spec.arg == "string":
            if not (isinstance(arg, ast.Literal) and arg.kind == "string"):
                self.error("fact-argument", f"`{name}` takes a string", arg.span, f'write `{name}("{_arg_text(arg)}")`')
                return _Lowered(lambda ctx: None, "error")
            tag = str(arg.value)
            return self.reader(f'{name}("{tag}")', lambda: _tag_fact(name, tag))
        if not isinstance(arg, ast.Ident):
            self.error(
                "fact-argument", f"`{name}` takes a name, not a string", arg.span, f"write `{name}({arg.value})`"
            )
            return _Lowered(lambda ctx: None, "error")
        resolved = self.fact_arg(name, spec.arg, arg)
        if resolved is None:
            return _Lowered(lambda ctx: None, "error")
        kind = spec.type
        return self.reader(f"{name}.{resolved}", lambda: _source_fact(name, resolved, kind))

    def written(self, name: str, arg: ast.Ident | ast.Literal | None) -> str:
        """How `name` is written where a policy wrote `arg` after a misspelled name: with an argument
        when the fact takes one (`quta > 5` means `quota(work) > 5`), else bare."""
        if arg is not None:
            return name
        if name in self.custom:
            return f"{name}(…)" if self.custom[name].arg else name
        spec = BUILTIN_FACTS.get(name)
        return name if spec is None or spec.arg is None else f"{name}({_example_arg(spec.arg)})"

    def reader(self, key: str, lower: Callable[[], _Lowered]) -> _Lowered:
        """The lowered built-in fact under `key`, lowered on its first use only. Its closures depend on
        nothing but the key, and a large config reads the same few facts in many routes: sharing them
        keeps what the program holds (and what the garbage collector must walk) growing with the facts
        it reads, not with the number of places that read them."""
        lowered = self.readers.get(key)
        if lowered is None:
            lowered = self.readers[key] = lower()
        return lowered

    def fact_arg(self, fact: str, kind: str, arg: ast.Ident) -> str | None:
        reg = self.registry
        if kind == "provider":
            provider = self.provider(arg)
            if provider and fact == "quota" and reg.providers[provider].quota is None:
                self.warn(
                    "no-quota",
                    f"provider `{provider}` has no quota, so `quota({provider})` is always 100%",
                    arg.span,
                    f"declare `quota:` for `{provider}` in registry.yaml, or test `spend(...)` or `budget(...)`",
                )
            return provider
        if kind == "budget":
            if arg.name in reg.budgets:
                return arg.name
            self.error(
                "unknown-budget",
                f"no budget named `{arg.name}`",
                arg.span,
                did_you_mean(arg.name, reg.budgets) or _budget_help(reg.budgets),
            )
            return None
        if arg.name in self.spend_scopes:  # spend(S)
            return arg.name
        self.error(
            "unknown-budget",
            f"`{arg.name}` has no spending window",
            arg.span,
            did_you_mean(arg.name, self.spend_scopes)
            or f"`spend` takes `run`, `day`, `week`, `month` or a budget: {_names(reg.budgets)}",
        )
        return None

    def custom_fact(self, name: str, fact: Fact, arg: ast.Ident | ast.Literal | None, node: ast.Expr) -> _Lowered:
        if fact.arg != (arg is not None):
            self.error("fact-argument", f"`{name}` takes {'an argument' if fact.arg else 'no argument'}", node.span)
            return _Lowered(lambda ctx: None, "error")
        value = None if arg is None else str(arg.value if isinstance(arg, ast.Literal) else arg.name)
        key = name if value is None else f"{name}.{value}"
        fn = fact.fn

        def fetch(ctx: Any) -> Any:
            got = ctx.facts.custom(name, value)
            return fact.checked(key, fn(value)) if got is MISSING else got

        read = _memo(key, fetch)
        return _Lowered(read, fact.type, (FactRef(node.span.text, key, fact.type, read),))

    # -- across routes --------------------------------------------------------------------------

    def plans(self, routes: list[tuple[program.Route, ast.Route]]) -> dict[str, ModelPlan]:
        reg = self.registry
        exact: dict[str, tuple[program.Route, ast.Route]] = {}
        globs: list[tuple[program.Route, ast.Route]] = []
        for compiled, node in routes:
            name = node.target.name
            if node.is_glob:
                globs.append((compiled, node))
            elif name in exact:
                self.error(
                    "duplicate-route",
                    f"a second route for `{name}`",
                    node.target.span,
                    f"the first is at {exact[name][1].target.span}; merge them into one route",
                )
            else:
                exact[name] = (compiled, node)
                self.model_name(node.target)
        chosen: dict[str, program.Route] = {m: exact[m][0] for m in reg.models if m in exact}
        self.match_globs(globs, exact, chosen)
        plans = {}
        # unpriced deployments under a hard budget, found here while each deployment is at hand (a pass
        # of its own over a large registry cost more), warned about after the cycle errors as before
        unpriced: list[tuple[Deployment, list[str]]] = []
        for name, model in reg.models.items():
            route = chosen.get(name, program.EMPTY_ROUTE)
            checks = []
            for d in model.deployments:
                budgets = reg.budgets_for(d)
                checks.append(check_for(reg, d, budgets))
                quota = reg.providers[d.provider].quota
                usd_quota = (
                    [f"the `{d.provider}` quota in USD"]
                    if quota is not None and quota.hard and quota.unit == "usd"
                    else []
                )
                if d.price is None and (hard := [f"hard budget `{b.name}`" for b in budgets if b.hard] + usd_quota):
                    unpriced.append((d, hard))
            plans[name] = ModelPlan(model, route, model.deployments, tuple(checks))
        self.cycles(plans, routes)
        self.unpriced_budgets(unpriced)
        return plans

    def match_globs(
        self, globs: list[tuple[program.Route, ast.Route]], exact: Mapping[str, Any], chosen: dict[str, program.Route]
    ) -> None:
        by_model: dict[str, tuple[int, ast.Route, program.Route]] = {}  # the most specific glob (first of a tie)
        tied: dict[str, list[ast.Route]] = {}  # model → later globs as specific as its most specific one
        seen: dict[str, ast.Route] = {}
        matches: dict[str, list[str]] = {}
        for compiled, node in globs:
            target = node.target.name
            if target in seen:
                self.error(
                    "duplicate-route",
                    f"a second route for `{target}`",
                    node.target.span,
                    f"the first is at {seen[target].target.span}; merge them into one route",
                )
                continue
            seen[target] = node
            matched = matches[target] = self.served(target)[0]
            literal = len(target.replace("*", ""))
            for model in matched:
                current = by_model.get(model)
                if current is None or literal > current[0]:
                    by_model[model] = (literal, node, compiled)
                    tied.pop(model, None)
                elif literal == current[0]:
                    tied.setdefault(model, []).append(node)
            if not matched:
                self.warn(
                    "unused-route",
                    f"`{target}` matches no model in the registry",
                    node.target.span,
                    f"the registry's models are {_names(self.registry.models)}",
                )
        # which route applies is unclear only where the tie is for the most specific glob of a model that
        # has no route of its own: found once every glob is seen, so the order they are written in is moot
        conflicted = {model for model in tied if model not in exact}
        for model in sorted(conflicted):
            first = by_model[model][1]
            for node in tied[model]:
                self.error(
                    "glob-conflict",
                    f"`{node.target.name}` and `{first.target.name}` both match `{model}` "
                    "and are as specific as each other",
                    node.target.span,
                    f"the other is at {first.target.span}; make one of them more specific, "
                    f"or give `{model}` a route of its own",
                )
        for target, node in seen.items():
            matched = matches[target]
            if matched and all(m in exact or (m not in conflicted and by_model[m][1] is not node) for m in matched):
                self.warn(
                    "shadowed-route",
                    f"every model `{target}` matches has a more specific route",
                    node.target.span,
                    "this route never applies",
                )
        for model, (_, _, compiled) in by_model.items():
            chosen.setdefault(model, compiled)

    def cycles(self, plans: Mapping[str, ModelPlan], routes: list[tuple[program.Route, ast.Route]]) -> None:
        """Fallback and `use` chains must not loop back: each loop is an error at the edge closing it."""
        spans: dict[tuple[str, str, str], Span] | None = None  # found when a loop is: most configs have none
        for kind in ("fallback", "use"):
            # models with no edge of this kind cannot be on a loop: leaving them out changes no result
            edges = {name: e for name, plan in plans.items() if (e := _edges(plan.route, kind))}
            reported: set[tuple[str, str]] = set()
            for a, b, path in _back_edges(edges):
                if spans is None:
                    spans = _edge_spans(routes)
                route = plans[a].route
                span = spans.get((kind, route.target, b))
                if (route.target, b) in reported or span is None:
                    continue
                reported.add((route.target, b))
                self.error(
                    f"{kind}-cycle",
                    f"{kind} cycle: {' → '.join(path)}",
                    span,
                    "a model cannot fall back to itself; end the chain with a model that has no fallback"
                    if kind == "fallback"
                    else "a `use` chain must end at a model whose route does not `use` its way back",
                )
        self.mixed_cycles(plans, routes)

    def mixed_cycles(self, plans: Mapping[str, ModelPlan], routes: list[tuple[program.Route, ast.Route]]) -> None:
        """Loops made of fallbacks and `use`s together (`sonnet fallback haiku`, `haiku use sonnet`):
        the model that closes one adds nothing to a decision. Only `use`s that are sure to be taken
        count: a `when` may keep the fallback useful. Loops of one kind are reported above."""
        uses = {name: e for name, plan in plans.items() if (e := _sure_use(plan.route))}
        if not uses:  # most configs: no loop can mix kinds
            return
        fallbacks = {name: _edges(plan.route, "fallback") for name, plan in plans.items()}
        edges = {name: e for name in plans if (e := fallbacks[name] + uses.get(name, ()))}
        spans: dict[tuple[str, str, str], Span] | None = None
        for a, b, path in _back_edges(edges):
            steps = list(pairwise(path))
            if all(y in fallbacks[x] for x, y in steps) or all(y in uses.get(x, ()) for x, y in steps):
                continue  # one kind only: a fallback or `use` cycle
            spans = spans if spans is not None else _edge_spans(routes)
            kind = "use" if b in uses.get(a, ()) else "fallback"
            span = spans.get((kind, plans[a].route.target, b))
            if span is not None:
                self.error(
                    "fallback-cycle",
                    f"fallback cycle through `use`: {' → '.join(path)}",
                    span,
                    "a fallback that `use`s its way back to a model on the chain adds nothing to a decision; "
                    "end the chain with a model that neither falls back nor `use`s its way back",
                )

    def unpriced_budgets(self, unpriced: list[tuple[Deployment, list[str]]]) -> None:
        """Deployments with no price under a hard budget, or a hard quota counted in USD: the limit
        cannot be checked before the call, nor the call counted against it."""
        policy = self.registry.settings.unknown_price
        for d, limits in unpriced:
            self.warn(
                "unpriced-hard-budget",
                f"`{d}` has no known price, but {' and '.join(limits)} {'apply' if len(limits) > 1 else 'applies'}",
                d.span,
                f"give the model a `price:` in registry.yaml; until then `settings.unknown_price: {policy}` decides",
            )


# -- lowering helpers ---------------------------------------------------------------------------


def _memo(key: str, fetch: Callable[[Any], Any]) -> Condition:
    """A reader that fetches a fact once per decision and records it among the facts read."""

    def read(ctx: Any) -> Any:
        seen = ctx.read
        if key in seen:
            return seen[key]
        value = seen[key] = fetch(ctx)
        return value

    return read


def _source_fact(name: str, arg: str, kind: Type) -> _Lowered:
    key = f"{name}.{arg}"
    fetchers: Mapping[str, Callable[[Any], Any]] = {
        "quota": lambda ctx: ctx.facts.quota_left(arg),
        "budget": lambda ctx: ctx.facts.budget_left(arg),
        "spend": lambda ctx: ctx.facts.spend(arg),
        "rpm": lambda ctx: ctx.facts.rate("rpm", arg),
        "tpm": lambda ctx: ctx.facts.rate("tpm", arg),
        "errors": lambda ctx: ctx.facts.errors(arg),
        "latency": lambda ctx: ctx.facts.latency(arg),
    }
    read = _memo(key, fetchers[name])
    if name == "latency":  # kept as read (None when unknown, as the `fastest` strategy reads it), compared as 0s
        memo = read
        read = lambda ctx: memo(ctx) or 0.0  # noqa: E731
    domain = (0.0, 1.0) if kind == "share" else (0.0, math.inf)
    return _Lowered(read, kind, (FactRef(f"{name}({arg})", key, kind, read),), domain=domain)


def _tag_fact(name: str, tag: str) -> _Lowered:
    label = f'{name}("{tag}")'
    return _Lowered(
        lambda ctx: tag in ctx.request.tags,
        "bool",
        (FactRef(label, None, "bool", lambda ctx: tag in ctx.request.tags),),
    )


def _request_or_clock_fact(name: str) -> _Lowered:
    if name == "tokens":
        fn: Condition = lambda ctx: ctx.request.tokens  # noqa: E731
        return _Lowered(fn, "count", (FactRef("tokens", None, "count", fn),), domain=(0.0, math.inf))

    def clock(ctx: Any) -> int:
        given = ctx.facts.custom(name, None)
        if given is not MISSING:
            return int(given)
        now = ctx.facts.now()
        return now.hour if name == "hour" else now.isoweekday()

    read = _memo(name, clock)
    domain = (0.0, 23.0) if name == "hour" else (1.0, 7.0)
    return _Lowered(read, "count", (FactRef(name, name, "count", read),), domain=domain)


def _bare_names(node: ast.Expr) -> Iterator[str]:
    """The bare names in an expression (facts without an argument, and `let`s), without recursion."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            yield node.name
        elif isinstance(node, ast.Not):
            stack.append(node.operand)
        elif isinstance(node, (ast.And, ast.Or)):
            stack.extend(node.operands)
        elif isinstance(node, ast.Compare):
            stack += (node.left, node.right)
        elif isinstance(node, ast.In):
            stack += (node.left, *node.options)


def _always_decides(clause: program.Clause) -> bool:
    return clause.condition is None or clause.otherwise is not None


def _actions(clause: ast.Clause) -> tuple[ast.Action, ...]:
    if isinstance(clause, ast.When):
        return (clause.action,) + ((clause.otherwise,) if clause.otherwise else ())
    if isinstance(clause, (ast.Otherwise, ast.Do)):
        return (clause.action,)
    return ()


def _edge_spans(routes: list[tuple[program.Route, ast.Route]]) -> dict[tuple[str, str, str], Span]:
    """Where each fallback and `use` edge is written, by (kind, route target, model): the first place."""
    spans: dict[tuple[str, str, str], Span] = {}
    for _compiled, node in routes:
        for clause in node.clauses:
            if isinstance(clause, ast.Fallback):
                for m in clause.models:
                    spans.setdefault(("fallback", node.target.name, m.name), m.span)
            for action in _actions(clause):
                if isinstance(action, ast.Use):
                    spans.setdefault(("use", node.target.name, action.model.name), action.model.span)
    return spans


def _edges(route: program.Route, kind: str) -> tuple[str, ...]:
    if kind == "fallback":
        return route.fallbacks
    return tuple(
        a.model
        for c in route.clauses
        for a in (c.action, c.otherwise)
        if a is not None and a.verb == "use" and a.model is not None
    )


def _sure_use(route: program.Route) -> tuple[str, ...]:
    """The model a route `use`s whatever the facts: its first clause has no condition and `use`s it."""
    first = route.clauses[0] if route.clauses else None
    if first is not None and first.condition is None and first.action.verb == "use" and first.action.model:
        return (first.action.model,)
    return ()


def _back_edges(edges: Mapping[str, tuple[str, ...]]) -> Iterator[tuple[str, str, list[str]]]:
    """Each edge (a, b) that closes a loop, with the loop's path from b back to b: one depth-first
    walk over the whole graph, so the cost grows with the number of edges, not its square."""
    done: set[str] = set()
    for root in edges:
        if root in done:
            continue
        path: list[str] = [root]
        position = {root: 0}
        stack = [iter(edges.get(root, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                node = path.pop()
                del position[node]
                done.add(node)
                continue
            if nxt in position:
                yield path[-1], nxt, [*path[position[nxt] :], nxt]
            elif nxt not in done:
                position[nxt] = len(path)
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))


def _bound(kind: str, x: float) -> str:
    return "∞" if x == math.inf else format_quantity(kind, x)


def _names(names: Iterable[str]) -> str:
    listed = [f"`{n}`" for n in names]
    return ", ".join(listed) if listed else "nothing"


def _choices(names: Iterable[str], section: str | None = None) -> str:
    """The names to choose from; with `section`, the registry's section they come from, for when it is empty."""
    listed = list(names)
    if not listed and section is not None:
        return f"the registry declares no {section}: add them under `{section}:` in registry.yaml"
    return f"expected one of {_names(listed)}"


def _budget_help(budgets: Iterable[str]) -> str:
    names = list(budgets)
    if not names:
        return "the registry declares no budgets: add one under `budgets:` in registry.yaml"
    return f"the registry's budgets are {_names(names)}"


def _example_arg(kind: str) -> str:
    return {"provider": "work", "budget": "month", "scope": "run"}.get(kind, '"batch"')


def _arg_text(arg: ast.Ident | ast.Literal) -> str:
    return arg.name if isinstance(arg, ast.Ident) else str(arg.value)
