"""The policy AST: small frozen nodes, one per grammar rule, each carrying its source span.

Spans are excluded from equality, so two parses of differently laid-out text compare equal when
their structure does (the formatter's round-trip law relies on it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from typing import Literal as TypingLiteral

from policyrouter.diagnostics import Source, Span


def _span() -> Any:
    """Spans are carried but not compared: structure is what equality means."""
    return field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written: a provider, model, capability, strategy, let or glob."""

    name: str
    span: Span = _span()


# -- expressions --------------------------------------------------------------------------------

LiteralKind = TypingLiteral["share", "money", "count", "duration", "string", "bool"]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")  # the grammar's NAME: what a policy can write as a name

# The deepest a condition may nest: each `not`, `and`, `or`, comparison and `in` is a level, counted
# through the `let`s it uses. Far above what a person writes; it keeps every recursive walk (building,
# checking, formatting, evaluating) well inside Python's recursion limit.
MAX_NESTING = 100
NESTING_HELP = "write it flatter: `not not x` is `x`, and `a and (b and c)` is `a and b and c`"


@dataclass(frozen=True, slots=True)
class Literal:
    kind: LiteralKind
    value: float | str | bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name in an expression: a `let`, or a fact with no argument (`tokens`, `hour`)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """A fact with an argument: `quota(work)`, `tag("batch")`."""

    func: Ident
    arg: Ident | Literal | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class In:
    left: Expr
    options: tuple[Expr, ...]
    span: Span = _span()


Expr = Literal | Name | Call | Not | And | Or | Compare | In


# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prefer:
    providers: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Only:
    providers: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Avoid:
    providers: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Use:
    model: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Deny:
    message: str
    span: Span = _span()


Action = Prefer | Only | Avoid | Use | Deny


# -- clauses ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requires:
    capabilities: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class When:
    condition: Expr
    action: Action
    otherwise: Action | None  # the `else` branch
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Otherwise:
    action: Action
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Do:
    """An unconditional action written as a clause of its own."""

    action: Action
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Strategy:
    name: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Fallback:
    models: tuple[Ident, ...]
    span: Span = _span()


Clause = Requires | When | Otherwise | Do | Strategy | Fallback


# -- statements ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    target: Ident  # a model name, a glob such as `claude-*`, or `*`
    clauses: tuple[Clause, ...]
    block: bool = field(compare=False)  # written with `{ }`: layout, not structure
    span: Span = _span()

    @property
    def is_glob(self) -> bool:
        return "*" in self.target.name


@dataclass(frozen=True, slots=True)
class Let:
    name: Ident
    value: Expr
    span: Span = _span()


Statement = Route | Let


@dataclass(frozen=True, slots=True)
class PolicyFile:
    statements: tuple[Statement, ...]
    source: Source = _span()
    comments: tuple[tuple[int, str], ...] = field(default=(), compare=False, repr=False)  # (line, text), for fmt
