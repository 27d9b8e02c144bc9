"""Where the evaluator reads the world from.

`FactSource` is the whole interface between decisions and state: the evaluator calls it lazily,
once per fact per decision, and only for the facts the matched route reads. `StaticFacts` is the
dry-run source (the `facts` mapping of decision tests, `--fact` and `decide(facts=...)`): what it is
not given reads as a fresh state would. The live store provides another implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from policyrouter.diagnostics import closest
from policyrouter.quantities import (
    QuantityError,
    exact_share,
    finite_number,
    parse_count,
    parse_duration,
    parse_money,
    parse_share,
)
from policyrouter.registry import GLOBAL_BUDGETS, Registry

MISSING: Any = object()


class FactSource(Protocol):
    """Facts about the world at decision time. Every method is cheap to call and pure for a decision."""

    def quota_left(self, provider: str) -> float:
        """Share (0..1) of the provider's quota left in its window; 1.0 for a provider without quota."""
        ...

    def spend(self, scope: str) -> float:
        """USD spent in the scope's current window (`run`, `day`, `week`, `month`, a provider or model)."""
        ...

    def budget_left(self, scope: str) -> float:
        """Share (0..1) of the scope's budget left."""
        ...

    def rate(self, kind: str, key: str) -> float:
        """Requests (`rpm`) or tokens (`tpm`) used this minute by a provider or a `model@provider`."""
        ...

    def errors(self, provider: str) -> float: ...

    def latency(self, provider: str) -> float | None:
        """Median latency of recent calls, seconds; None when there are none."""
        ...

    def cooldown(self, provider: str) -> float:
        """Seconds left of the provider's cooldown; 0 when it is not cooling down."""
        ...

    def in_flight(self, provider: str) -> float: ...

    def round_robin(self, model: str) -> int: ...

    def now(self) -> datetime:
        """The decision time, aware, in the registry's timezone."""
        ...

    def custom(self, name: str, arg: str | None) -> Any:
        """A value for a user-registered fact, or MISSING to have its function called."""
        ...


FACT_TYPES = ("share", "money", "count", "duration", "bool", "string")


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact you register from Python for policies to read: its type (`share`, `money`, `count`
    (or `number`), `duration`, `bool`, `string`), a function giving its value, and whether it takes an
    argument: `fn(None)` for `queue_depth`, `fn("work")` for `backlog(work)` when `arg` is set."""

    type: str
    fn: Callable[[str | None], Any]
    arg: bool = False

    def __post_init__(self) -> None:
        if self.type == "number":
            object.__setattr__(self, "type", "count")
        if self.type not in FACT_TYPES:
            raise ValueError(f"a fact's type is one of {', '.join(FACT_TYPES)} (or `number`), not `{self.type}`")
        if not callable(self.fn):
            raise TypeError(f"a fact's `fn` is a function that gives its value; got {type(self.fn).__name__}")

    def checked(self, name: str, value: object) -> Any:
        """What `fn` gave, if it is a value of this fact's type; else a TypeError naming the fact (a
        string `"false"` would read as true, `None` fail a comparison with no name on it)."""
        if self.type == "bool":
            ok = isinstance(value, bool)
        elif self.type == "string":
            ok = isinstance(value, str)
        else:
            number = finite_number(value)
            ok = number is not None and number >= 0 and (self.type != "share" or number <= 1)
        if not ok:
            expected = {"bool": "True or False", "string": "a str", "share": "a number from 0 to 1"}.get(
                self.type, "a number, 0 or more"
            )
            raise TypeError(f"the fact `{name}` ({self.type}) gave {value!r}: its function must give {expected}")
        return value

    def parse(self, value: object) -> Any:
        """A dry-run value of this fact's type (`15%`, `$4`, `8k`, `800ms`, true), or QuantityError."""
        if self.type == "bool":
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):  # as `--fact` gives it
                return value.strip().lower() == "true"
            if not isinstance(value, bool):
                raise QuantityError(f"expected true or false, got `{value!r}`")
            return value
        if self.type == "string":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):  # None is no "None"
                raise QuantityError(f"expected a string, got `{value}`")
            return str(value)
        amount = {"share": parse_share, "money": parse_money, "count": parse_count, "duration": parse_duration}[
            self.type
        ](value)
        if amount < 0:  # as for the built-in facts: the language has no negative amounts
            raise QuantityError(f"`{value}` is negative: amounts here are 0 or more")
        return amount


NAMED_FACTS = ("quota", "spend", "budget", "rpm", "tpm", "errors", "latency", "cooldown", "in_flight", "round_robin")
FACT_KEYS = (*NAMED_FACTS, "hour", "weekday", "request_id")  # NAMED_FACTS take a mapping by name


# What a policy reads from the request, for a facts mapping that gives it: where it goes instead.
REQUEST_PARTS = {
    key: f"give it with the request: `{python}=` in Python, `{cli}` to `explain`, `request: {{{python}: …}}` in a test"
    for key, python, cli in (
        ("tokens", "tokens", "--tokens N"),
        ("max_tokens", "max_tokens", "--max-tokens N"),
        ("tag", "tags", "--tag T"),
        ("tags", "tags", "--tag T"),
        ("requires", "requires", "--requires CAP"),
    )
}


class FactsError(ValueError):
    """A dry-run facts mapping that does not fit; `path` is where in the mapping."""

    def __init__(self, message: str, path: tuple[object, ...] = (), help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(map(str, path))  # a mapping from YAML or a caller may have keys of any kind
        self.help = help


class StaticFacts:
    """Facts from a mapping, as in the spec's "Facts in a dry run"; the rest reads as a fresh state."""

    def __init__(
        self,
        registry: Registry,
        facts: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] | None = None,
        custom: Mapping[str, Fact] | None = None,
    ) -> None:
        self._registry = registry
        tz = registry.settings.timezone
        self._now = (clock or (lambda: datetime.now(timezone.utc)))().astimezone(tz)
        self._quota: dict[str, float] = {}
        self._spend: dict[str, float] = {}
        self._budget: dict[str, float] = {}
        self._rate: dict[tuple[str, str], float] = {}
        self._errors: dict[str, float] = {}
        self._latency: dict[str, float] = {}
        self._cooldown: dict[str, float] = {}
        self._in_flight: dict[str, float] = {}
        self._round_robin: dict[str, int] = {}
        self._custom: dict[str, Any] = {}
        self.request_id: str | None = None
        self._load(dict(facts or {}), dict(custom or {}))

    # -- reading the mapping ------------------------------------------------------------------

    def _load(self, facts: dict[str, Any], custom: dict[str, Fact]) -> None:
        reg = self._registry
        # the names each key takes, looked up, not scanned (a dry run is on the hot path, and a registry
        # may hold thousands); those of several kinds are put together only when a fact names one
        providers = reg.providers
        scopes = lambda: _AnyOf(reg.budgets, _GLOBAL_SCOPES, reg.providers, reg.models)  # noqa: E731
        rate_keys = lambda: _AnyOf(reg.providers, reg.deployments)  # noqa: E731
        per_key: dict[str, tuple[dict[Any, Any], Callable[[object], Any], _Names]] = {
            "quota": (self._quota, parse_share, providers),
            "spend": (self._spend, parse_money, scopes),
            "budget": (self._budget, parse_share, reg.budgets),
            "errors": (self._errors, parse_count, providers),
            "latency": (self._latency, parse_duration, providers),
            "cooldown": (self._cooldown, parse_duration, providers),
            "in_flight": (self._in_flight, parse_count, providers),
            "round_robin": (self._round_robin, lambda v: int(parse_count(v)), reg.models),
        }
        for key, value in facts.items():
            if key in per_key:
                target, parse, names = per_key[key]
                for name, raw in _mapping(key, value).items():
                    known = _name(key, name, names)
                    target[known] = _amount((key, known), parse, raw)
                    if key == "quota" and target[known] != 1.0 and reg.providers[known].quota is None:
                        raise FactsError(
                            f"`{known}` has no quota: `quota({known})` is always 100%",
                            (key, known),
                            f"give `{known}` a `quota:` in registry.yaml, or leave this fact out",
                        )
            elif key in ("rpm", "tpm"):
                for name, raw in _mapping(key, value).items():
                    known = _name(key, name, rate_keys)
                    self._rate[(key, known)] = _amount((key, known), parse_count, raw)
            elif key in ("hour", "weekday"):
                n = _parse((key,), parse_count, value)
                lo, hi = (0, 23) if key == "hour" else (1, 7)
                if not (lo <= n <= hi and n == int(n)):
                    raise FactsError(f"`{key}` is a whole number from {lo} to {hi}", (key,))
                self._custom[key] = int(n)
            elif key == "request_id":
                if not isinstance(value, str):  # None would be the id "None"
                    raise FactsError(
                        f"`request_id` is a string, got {value!r}", (key,), 'quote it: `request_id: "r-1"`'
                    )
                self.request_id = value
            elif key in custom:
                fact = custom[key]
                if fact.arg:
                    for arg, raw in _mapping(key, value).items():
                        self._custom[f"{key}.{arg}"] = _parse((key, str(arg)), fact.parse, raw)
                else:
                    self._custom[key] = _parse((key,), fact.parse, value)
            elif key in REQUEST_PARTS:  # `tokens` and `tag(…)` read the request, not the facts
                raise FactsError(f"`{key}` is part of the request, not a fact", (key,), REQUEST_PARTS[key])
            else:  # the mapping may come from YAML or a caller: its keys need not even be text
                guess = closest(str(key), (*FACT_KEYS, *custom))
                raise FactsError(f"unknown fact `{key}`", (str(key),), f"did you mean `{guess}`?" if guess else None)

    # -- FactSource ---------------------------------------------------------------------------

    def quota_left(self, provider: str) -> float:
        return self._quota.get(provider, 1.0)

    def spend(self, scope: str) -> float:
        if scope in self._spend:
            return self._spend[scope]
        budget = self._registry.budgets.get(scope)
        if budget is not None and scope in self._budget:
            return budget.usd * (1.0 - self._budget[scope])
        return 0.0

    def budget_left(self, scope: str) -> float:
        if scope in self._budget:
            return self._budget[scope]
        budget = self._registry.budgets.get(scope)
        spent = self.spend(scope)
        if budget is None or spent <= 0:
            return 1.0
        if budget.usd <= 0:
            return 0.0
        return max(0.0, exact_share(1.0 - spent / budget.usd))

    def rate(self, kind: str, key: str) -> float:
        return self._rate.get((kind, key), 0.0)

    def errors(self, provider: str) -> float:
        return self._errors.get(provider, 0.0)

    def latency(self, provider: str) -> float | None:
        return self._latency.get(provider)

    def cooldown(self, provider: str) -> float:
        return self._cooldown.get(provider, 0.0)

    def in_flight(self, provider: str) -> float:
        return self._in_flight.get(provider, 0.0)

    def round_robin(self, model: str) -> int:
        return self._round_robin.get(model, 0)

    def now(self) -> datetime:
        return self._now

    def custom(self, name: str, arg: str | None) -> Any:
        return self._custom.get(name if arg is None else f"{name}.{arg}", MISSING)


def nest_facts(flat: Mapping[str, Any], custom: Mapping[str, Fact] | None = None) -> dict[str, Any]:
    """Facts read by a decision (`{"quota.work": 0.15, "hour": 9}`, as `Decision.facts` and `decision`
    events hold them) in the shape dry runs take (`{"quota": {"work": 0.15}, "hour": 9}`), so the
    decision can be made again. A None (a latency with no samples) is left out: a fresh state reads
    it the same way. `custom`: the facts of your own, whose names may hold a dot (`queue.depth`).
    A FactsError if a key is both one value and a mapping (an events line edited by hand)."""
    custom = custom or {}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        kind, dot, name = key.partition(".")
        if key not in custom:  # a fact of your own with an argument may hold a dot itself: `q.len` of `eu`
            kind, dot, name = next(
                ((f, ".", key[len(f) + 1 :]) for f, fact in custom.items() if fact.arg and key.startswith(f + ".")),
                (kind, dot, name),
            )
        by_name = dot and key not in custom and (kind in NAMED_FACTS or (kind in custom and custom[kind].arg))
        into = out.setdefault(kind, {}) if by_name else out
        if not isinstance(into, dict) or (not by_name and isinstance(out.get(key), dict)):
            raise FactsError(f"`{kind if by_name else key}` is both one value and a mapping", (key,))
        into[name if by_name else key] = value
    return out


def _mapping(key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FactsError(f"`{key}` takes a mapping such as `{{{key}: {{NAME: VALUE}}}}`", (key,))
    return value


class _AnyOf:
    """The names of several mappings: looked up in each, listed (for an error's hint) when needed."""

    def __init__(self, *names: Mapping[str, object]) -> None:
        self.names = names

    def __contains__(self, name: object) -> bool:
        return any(name in names for names in self.names)

    def __iter__(self) -> Iterator[str]:
        return (name for names in self.names for name in names)


_GLOBAL_SCOPES = dict.fromkeys(GLOBAL_BUDGETS)
_Names = Mapping[str, object] | Callable[[], _AnyOf]


def _name(key: str, name: object, known: _Names) -> str:
    names = known() if callable(known) else known
    if name in names:
        return str(name)
    guess = closest(str(name), list(names))
    listing = ", ".join(sorted(set(names)))
    raise FactsError(
        f"`{name}` is not a known name for `{key}`",
        (key, str(name)),
        f"did you mean `{guess}`?"
        if guess
        else (f"expected one of: {listing}" if listing else f"registry.yaml declares no {key}s"),
    )


def _parse(path: tuple[str, ...], parse: Callable[[object], Any], raw: object) -> Any:
    try:
        return parse(raw)
    except QuantityError as e:
        raise FactsError(str(e), path) from None


def _amount(path: tuple[str, ...], parse: Callable[[object], float], raw: object) -> float:
    """A built-in fact's value: spend, counts and durations are never negative."""
    value = _parse(path, parse, raw)
    if value < 0:
        raise FactsError(f"`{raw}` is negative: amounts here are 0 or more", path)
    return value


def parse_fact_assignment(text: str) -> tuple[tuple[str, ...], str]:
    """`quota.work=15%` → (("quota", "work"), "15%"), for `--fact`."""
    if "=" not in text:
        raise FactsError(f"`{text}` is not KEY=VALUE", help="write it like `quota.work=15%` or `hour=23`")
    lhs, _, rhs = text.partition("=")
    head, _, name = lhs.strip().partition(".")
    return ((head, name) if name else (head,)), rhs.strip()


def facts_from_assignments(assignments: list[str]) -> dict[str, Any]:
    """Fold `--fact` options into the facts mapping shape."""
    out: dict[str, Any] = {}
    for text in assignments:
        path, value = parse_fact_assignment(text)
        head, known = path[0], out.get(path[0])
        if known is not None and isinstance(known, dict) != (len(path) == 2):
            raise FactsError(
                f"`{text}`: `{head}` is given both as one value and by name",
                help=f"give it one way: `{head}=VALUE`, or `{head}.NAME=VALUE` for each name",
            )
        if len(path) == 1:
            out[head] = value
        else:
            out.setdefault(head, {})[path[1]] = value
    return out
