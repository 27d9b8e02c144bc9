"""The compiled evaluation tree: what `compile` produces and `evaluate` walks.

Everything here is resolved: names are checked, conditions are closures over a decision context,
and every registry model already knows the route that serves it. Nothing on the request path
parses, looks names up or checks types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from policyrouter.diagnostics import Span
from policyrouter.eligibility import Check
from policyrouter.registry import Deployment, Model, Registry

if TYPE_CHECKING:
    from policyrouter.evaluate import Context

Condition = Callable[["Context"], Any]

STRATEGIES = ("in_order", "round_robin", "most_remaining", "cheapest", "fastest", "least_busy", "weighted")


@dataclass(frozen=True, slots=True)
class FactRef:
    """A fact a condition reads, for explanations: `quota(work)` stored under `quota.work`."""

    label: str
    key: str | None  # key in the facts read; None for request values (`tokens`, `tag("x")`)
    kind: str  # share | money | count | duration | bool | string
    read: Condition = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Action:
    verb: Literal["prefer", "only", "avoid", "use", "deny"]
    providers: tuple[str, ...] = ()
    model: str | None = None  # for `use`
    message: str | None = None  # for `deny`
    text: str = ""
    span: Span | None = field(default=None, compare=False)
    rank: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)  # each provider's place


@dataclass(frozen=True, slots=True)
class Clause:
    """A `when` (condition set), an `otherwise` or a bare action (condition None)."""

    kind: Literal["when", "otherwise", "do"]
    condition: Condition | None
    condition_text: str
    facts: tuple[FactRef, ...]
    action: Action
    otherwise: Action | None
    span: Span | None = field(default=None, compare=False)
    never: bool = field(default=False, compare=False)  # a condition that cannot hold (`hour > 30`)


@dataclass(frozen=True, slots=True)
class Route:
    target: str  # as written: a model, a glob, `*`; empty for the implicit route
    requires: frozenset[str]
    clauses: tuple[Clause, ...]
    strategy: str
    fallbacks: tuple[str, ...]
    span: Span | None = field(default=None, compare=False)

    @property
    def location(self) -> str:
        return str(self.span) if self.span is not None else "(no route: registry order)"


EMPTY_ROUTE = Route("", frozenset(), (), "in_order", ())


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """A registry model with the route that serves it and its deployments' eligibility checks."""

    model: Model
    route: Route
    deployments: tuple[Deployment, ...]
    checks: tuple[Check, ...]  # each deployment's eligibility check, in the same order


@dataclass(frozen=True, slots=True)
class Program:
    registry: Registry
    plans: Mapping[str, ModelPlan]
    routes: tuple[Route, ...]
