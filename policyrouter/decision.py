"""What a decision is: the ordered deployments, what was excluded and why, and the rules that fired.

`Decision.explain()` is for people; `Decision.to_dict()` is for machines and is exactly what
`policyrouter explain --format json` prints. Keys are stable.

`Decision`, `Step` and `ConditionResult` are made on every decision, so they are plain slotted
dataclasses: a frozen one sets each field through `object.__setattr__`, and building them that way was
a quarter of a two-deployment decision. Nothing changes them once the decision is made.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from policyrouter.program import Action, Clause, Route
from policyrouter.quantities import format_quantity
from policyrouter.registry import Deployment

_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))  # a forked child must not repeat ids


def new_id() -> str:
    """A random 128-bit hex id for a request or a reservation. Not `uuid4`: `os.urandom` releases the
    GIL on every call, and with litellm's background threads running, getting it back costs ~0.2 ms."""
    return f"{_ids.getrandbits(128):032x}"


def request_id_or_new(value: object) -> str:
    """A caller's `request_id` (a string; it goes into every event of the request), or a new one."""
    if value is None:
        return new_id()
    if not isinstance(value, str):
        raise TypeError(f"`request_id` is a string; got {value!r}")
    return value


MAX_TOKENS = 2**53  # the largest count a float holds exactly; token counts are priced and booked as floats


def token_count(name: str, value: object) -> int:
    """A count of tokens passed in by a caller (`tokens`, `max_tokens`): a whole number, 0 or more
    (`1500.0`, as `1.5k` reads, is one; `1.5` is not)."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_TOKENS:  # not NaN, not 1.5
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:  # an int subclass
        return int(value)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
    raise ValueError(f"`{name}` is a whole number of tokens, 0 or more (at most 2**53); got {shown}")


@dataclass(frozen=True, slots=True)
class Request:
    model: str
    requires: frozenset[str] = frozenset()
    tokens: int = 0
    max_tokens: int | None = None
    tags: frozenset[str] = frozenset()
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "requires": sorted(self.requires), "tokens": self.tokens}
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        out["tags"] = sorted(self.tags)
        if self.request_id:
            out["request_id"] = self.request_id
        return out


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A deployment that could not serve, with a stable `code` and a sentence saying why."""

    deployment: Deployment
    code: str  # capability | context_window | quota | rate_limit | cooldown | budget | unknown_price | only | denied
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment.key, "code": self.code, "reason": self.reason}


@dataclass(slots=True)
class ConditionResult:
    clause: Clause
    value: bool


@dataclass(slots=True)
class Step:
    """How one model of the chain was routed: the requested one, then `use` targets and fallbacks."""

    model: str
    via: str  # request | use | fallback
    route: Route
    conditions: tuple[ConditionResult, ...]
    fired: Clause | None
    action: Action | None
    deployments: tuple[Deployment, ...]
    note: str = ""

    @property
    def rule(self) -> str:
        """Where the deciding rule is written: the clause that fired, else the route."""
        if self.fired is not None and self.fired.span is not None:
            return str(self.fired.span)
        return self.route.location

    def to_dict(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.model,
            "via": self.via,
            "route": self.route.target or None,
            "rule": self.rule,
            "action": self.action.text if self.action else None,
            "conditions": [_condition_dict(c, facts) for c in self.conditions],
            "deployments": [d.key for d in self.deployments],
            **({"note": self.note} if self.note else {}),
        }


@dataclass(slots=True)
class Decision:
    request: Request
    order: tuple[Deployment, ...]
    excluded: tuple[Exclusion, ...]
    steps: tuple[Step, ...]
    facts: dict[str, Any] = field(compare=False)  # every fact read, by key (`quota.work`)
    error: Any = None  # the refusal (a DecisionError) when the order is empty

    @property
    def rule(self) -> str:
        return self.steps[0].rule if self.steps else ""

    @property
    def first(self) -> Deployment | None:
        return self.order[0] if self.order else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": self.request.to_dict(),
            "order": [_deployment_dict(d) for d in self.order],
            "excluded": [e.to_dict() for e in self.excluded],
            "rule": self.rule,
            "steps": [s.to_dict(self.facts) for s in self.steps],
            "facts": {k: _plain(v) for k, v in self.facts.items()},
        }
        if self.error is not None:
            out["error"] = {"code": self.error.code, "message": self.error.message}
        return out

    def explain(self) -> str:
        lines = []
        if self.order:
            lines.append(f"{self.request.model} → {', '.join(d.key for d in self.order)}")
        else:
            code = self.error.code if self.error is not None else "no_route"
            lines.append(f"{self.request.model} → refused [{code}]: {self.error.message if self.error else ''}")
        for step in self.steps:
            lines.append("")
            where = f"route {step.route.target} at {step.route.location}" if step.route.target else step.route.location
            lines.append(f"{step.model} ({step.via}): {where}")
            for cond in step.conditions:
                facts = _facts_text(cond.clause, self.facts)
                lines.append(f"  when {cond.clause.condition_text}  → {str(cond.value).lower()}{facts}")
            if step.action is not None:
                branch = "else " if step.fired is not None and step.action is step.fired.otherwise else ""
                lines.append(f"  → {branch}{step.action.text}  ({step.rule})")
            elif step.route.target:
                lines.append("  → no clause fired")
            if step.action is not None and step.action.verb in ("use", "deny"):
                lines.append(f"  {step.note}")
            else:
                listed = ", ".join(d.key for d in step.deployments) or "nothing eligible"
                lines.append(f"  strategy {step.route.strategy}: {listed}")
        if self.excluded:
            lines.append("")
            lines.append("excluded:")
            lines += [f"  {e.deployment.key}: {e.reason}" for e in self.excluded]
        return "\n".join(lines)


def _deployment_dict(d: Deployment) -> dict[str, Any]:
    return {"model": d.model, "provider": d.provider, "model_id": d.model_id, "litellm_model": d.litellm_model}


def _condition_dict(result: ConditionResult, facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "condition": result.clause.condition_text,
        "at": str(result.clause.span) if result.clause.span else None,
        "value": result.value,
        "facts": {ref.label: _plain(facts.get(ref.key)) for ref in result.clause.facts if ref.key in facts},
    }


def _facts_text(clause: Clause, facts: dict[str, Any]) -> str:
    shown = [
        f"{ref.label} = {describe_value(ref.kind, facts[ref.key])}"
        for ref in dict.fromkeys(clause.facts)
        if ref.key is not None and ref.key in facts
    ]
    return f"  ({', '.join(shown)})" if shown else ""


def _plain(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def describe_value(kind: str, value: Any) -> str:
    """A fact's value as the language writes it: 0.15 share → `15%`; None (a latency not yet
    measured) → `unknown`."""
    if value is None:
        return "unknown"
    if kind == "string":
        return str(value)
    if isinstance(value, bool) or kind == "bool":
        return str(bool(value)).lower()
    return format_quantity(kind, float(value))
