"""The request path: (compiled program, request, facts) → Decision.

Pure and deterministic for given facts: every fact is fetched at most once per decision, through
the `FactSource`, and only when a condition, an eligibility check or a strategy needs it.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from policyrouter.decision import ConditionResult, Decision, Exclusion, Request, Step
from policyrouter.diagnostics import closest
from policyrouter.errors import DecisionError
from policyrouter.facts import FactSource
from policyrouter.program import Action, Clause, ModelPlan, Program
from policyrouter.registry import Deployment, Registry, meant_capability


class Context:
    """One decision's view of the world: the request, the fact source and the facts read so far."""

    __slots__ = ("context_tokens", "costs", "facts", "output", "quota_tokens", "read", "registry", "request")

    def __init__(self, registry: Registry, request: Request, facts: FactSource) -> None:
        self.registry = registry
        self.request = request
        self.facts = facts
        self.read: dict[str, Any] = {}
        self.costs: dict[str, float | None] = {}
        self.context_tokens = request.tokens + (request.max_tokens or 0)  # what must fit the context window
        self.output = (
            request.max_tokens if request.max_tokens is not None else registry.settings.estimated_output_tokens
        )
        self.quota_tokens = request.tokens + self.output  # what a token quota must have left

    def fact(self, key: str, fetch: Callable[[], Any]) -> Any:
        read = self.read
        if key in read:
            return read[key]
        value = read[key] = fetch()
        return value

    def cost(self, d: Deployment) -> float | None:
        """Estimated cost of this request on the deployment; None when its price is unknown."""
        costs = self.costs
        if d.key not in costs:
            costs[d.key] = None if d.price is None else d.price.cost(self.request.tokens, self.output)
        return costs[d.key]


def decide(program: Program, request: Request, facts: FactSource) -> Decision:
    """Route one request. Returns a decision, or raises DecisionError with a stable code."""
    ctx = Context(program.registry, request, facts)
    walk = _Walk(program, ctx)
    if request.model not in program.plans:
        known = program.registry.models
        error = DecisionError(
            "unknown_model",
            f"unknown model `{request.model}`" + _unknown_model_hint(request.model, program.registry),
            known_models=list(known),
        )
        error.decision = Decision(request, (), (), (), {}, error)
        raise error
    walk.visit(request.model, request.requires)
    excluded = walk.excluded
    if walk.revisited and excluded:  # a model routed twice: say why each deployment left out is left out, once
        kept: dict[str, Exclusion] = {}
        for e in walk.excluded:  # the first reason, but rather one that is not a capability another route needed
            first = kept.get(e.deployment.key)
            if first is None or (first.code == "capability" and e.code != "capability"):
                kept[e.deployment.key] = e
        excluded = [e for key, e in kept.items() if key not in walk.placed]
    decision = Decision(request, tuple(walk.order), tuple(excluded), tuple(walk.steps), ctx.read)
    if walk.denied is not None:
        error = DecisionError("denied", walk.denied)
    elif not walk.order:
        error = _refusal(program, decision, walk)
    else:
        return decision
    error.decision = replace(decision, error=error)
    raise error


class _Walk:
    """Routes the requested model, then its `use` targets and fallbacks, collecting the order."""

    def __init__(self, program: Program, ctx: Context) -> None:
        self.program = program
        self.ctx = ctx
        self.order: list[Deployment] = []
        self.placed: set[str] = set()
        self.excluded: list[Exclusion] = []
        self.needs: list[frozenset[str]] = []  # each exclusion's: the capabilities the route to it required
        self.steps: list[Step] = []
        self.visited: dict[str, list[frozenset[str]]] = {}  # each model: the requirements it was routed under
        self.revisited = False
        self.denied: str | None = None

    def visit(self, model: str, requires: frozenset[str]) -> None:
        """Route the requested model, then the models its `use` or fallbacks lead to, depth first: a
        loop over the models still to route, not a recursion (a chain of a thousand fallbacks would
        overflow Python's stack)."""
        pending = [(model, requires, "request")]
        while pending:
            model, requires, via = pending.pop()
            plan = self.program.plans[model]
            route = plan.route
            if route.requires:
                requires = requires | route.requires
            seen = self.visited.get(model)
            if seen is None:
                self.visited[model] = [requires]
            elif any(before <= requires for before in seen):
                continue  # a cycle, or reached again needing as much: nothing more to place
            else:  # reached again needing less (another route's `requires` led here first)
                seen.append(requires)
                self.revisited = True
            conditions, fired, action = self.clauses(route.clauses)
            if action is not None and action.verb == "use" and action.model is not None:
                self.steps.append(Step(model, via, route, conditions, fired, action, (), f"routed as `{action.model}`"))
                pending.append((action.model, requires, "use" if via == "request" else via))
                continue
            if action is not None and action.verb == "deny":
                self.steps.append(Step(model, via, route, conditions, fired, action, (), f"denied: {action.message}"))
                if via == "fallback":
                    for d in plan.deployments:
                        self.exclude(Exclusion(d, "denied", f"denied by {fired_at(fired)}: {action.message}"), requires)
                elif self.denied is None:
                    self.denied = action.message or "denied"
                continue
            eligible = self.eligible(plan, requires, action)
            ordered = self.arrange(plan, eligible, action)
            self.steps.append(Step(model, via, route, conditions, fired, action, tuple(ordered)))
            for d in ordered:
                if d.key not in self.placed:
                    self.placed.add(d.key)
                    self.order.append(d)
            for fallback in reversed(route.fallbacks):  # the first, and all it leads to, before the second
                pending.append((fallback, requires, "fallback"))

    def clauses(self, clauses: tuple[Clause, ...]) -> tuple[tuple[ConditionResult, ...], Clause | None, Action | None]:
        results: list[ConditionResult] = []
        for clause in clauses:
            if clause.condition is None:
                if clause.kind == "when":  # a condition settled true when compiled: tried all the same
                    results.append(ConditionResult(clause, True))
                return tuple(results), clause, clause.action
            value = bool(clause.condition(self.ctx))
            results.append(ConditionResult(clause, value))
            if value:
                return tuple(results), clause, clause.action
            if clause.otherwise is not None:
                return tuple(results), clause, clause.otherwise
        return tuple(results), None, None

    # -- eligibility ----------------------------------------------------------------------------

    def eligible(self, plan: ModelPlan, requires: frozenset[str], action: Action | None) -> list[Deployment]:
        out = []
        only = action.rank if action is not None and action.verb == "only" else None
        ctx = self.ctx
        for d, check in zip(plan.deployments, plan.checks, strict=True):
            reason = check(ctx, requires)
            if reason is not None:
                self.exclude(Exclusion(d, *reason), requires)
            elif only is not None and d.provider not in only:
                self.exclude(Exclusion(d, "only", f"not named by `{action.text if action else ''}`"), requires)
            else:
                out.append(d)
        return out

    def exclude(self, exclusion: Exclusion, requires: frozenset[str]) -> None:
        self.excluded.append(exclusion)
        self.needs.append(requires)

    # -- ordering -------------------------------------------------------------------------------

    def arrange(self, plan: ModelPlan, eligible: list[Deployment], action: Action | None) -> list[Deployment]:
        strategy = plan.route.strategy
        if action is None or action.verb not in ("prefer", "only", "avoid"):
            return self.by_strategy(strategy, plan.model.name, eligible)
        listed = action.rank  # looked up, not scanned: a route may name a hundred providers
        named = [d for d in eligible if d.provider in listed]
        if len(listed) > 1:
            named.sort(key=lambda d: listed[d.provider])  # stable: in registry order within a provider
        rest = [d for d in eligible if d.provider not in listed]
        if action.verb == "only":
            return named
        if action.verb == "prefer":
            return named + self.by_strategy(strategy, plan.model.name, rest)
        return self.by_strategy(strategy, plan.model.name, rest) + named

    def by_strategy(self, strategy: str, model: str, deployments: list[Deployment]) -> list[Deployment]:
        if len(deployments) < 2 or strategy == "in_order":
            return deployments
        ctx = self.ctx
        if strategy == "round_robin":
            position = ctx.fact("round_robin." + model, lambda: ctx.facts.round_robin(model)) % len(deployments)
            return deployments[position:] + deployments[:position]
        if strategy == "most_remaining":
            return sorted(deployments, key=self._remaining_key)
        if strategy == "cheapest":
            return sorted(deployments, key=lambda d: _or_inf(ctx.cost(d)))
        if strategy == "fastest":
            return sorted(deployments, key=lambda d: _or_inf(self._latency(d.provider)))
        if strategy == "least_busy":
            return sorted(deployments, key=lambda d: self._in_flight(d.provider))
        return self._weighted(model, deployments)

    def _remaining_key(self, d: Deployment) -> float:
        if self.ctx.registry.providers[d.provider].quota is None:
            return -1.0
        key = "quota." + d.provider
        read = self.ctx.read
        share = read.get(key)
        if share is None:
            share = read[key] = self.ctx.facts.quota_left(d.provider)
        return -share

    def _latency(self, provider: str) -> float | None:
        return self.ctx.fact("latency." + provider, lambda: self.ctx.facts.latency(provider))

    def _in_flight(self, provider: str) -> float:
        return self.ctx.fact("in_flight." + provider, lambda: self.ctx.facts.in_flight(provider))

    def _weighted(self, model: str, deployments: list[Deployment]) -> list[Deployment]:
        """Weighted random order without replacement (Efraimidis–Spirakis), seeded by the request id."""
        rng = random.Random(zlib.crc32(f"{self.ctx.request.request_id}\0{model}".encode()))
        return sorted(deployments, key=lambda d: -(rng.random() ** (1.0 / d.weight)))


def _refusal(program: Program, decision: Decision, walk: _Walk) -> DecisionError:
    """Which refusal, by the spec's rule: capability, then budget, then no route. Every exclusion
    counts, with what was needed where it was made: a model reached twice may be left out for lacking
    what one route to it required and for a budget on another."""
    excluded = decision.excluded
    lacking = [
        needs
        for e, needs in zip(walk.excluded, walk.needs, strict=True)
        if e.code == "capability" or (e.code == "denied" and not needs <= e.deployment.capabilities)
    ]
    if excluded and len(lacking) == len(walk.excluded):
        needed = frozenset[str]().union(*lacking)
        # a model whose route sent the request on with `use` was never asked: not one that could serve
        passed_on = {s.model: s.action.model for s in decision.steps if s.action is not None and s.action.verb == "use"}
        offering = [m.name for m in program.registry.models.values() if needed <= m.capabilities]
        return DecisionError(
            "unsupported_capability",
            f"no deployment of `{decision.request.model}` or its fallbacks offers "
            + ("all of " if len(needed) > 1 else "")
            + _listing(sorted(needed))
            + (f"; models that do: {_listing(offering)}" if offering else "; no model in the registry does")
            + "".join(f"; `{m}` is routed as `{to}` (`use {to}`)" for m, to in passed_on.items() if m in offering)
            + _unknown_capabilities(needed, program.registry.settings.capabilities),
            decision,
            capabilities=sorted(needed),
            models=offering,
        )
    over_budget = {e.deployment.key: e for e in walk.excluded if e.code in ("budget", "unknown_price")}.values()
    if over_budget:
        return DecisionError(
            "budget_exceeded",
            f"every deployment of `{decision.request.model}` that could serve would break a hard budget: "
            + "; ".join(f"{e.deployment.key}: {e.reason}" for e in over_budget),
            decision,
        )
    reasons = "; ".join(f"{e.deployment.key}: {e.reason}" for e in excluded) or "no deployment"
    return DecisionError("no_route", f"no eligible deployment for `{decision.request.model}`: {reasons}", decision)


def _unknown_capabilities(needed: frozenset[str], vocabulary: frozenset[str]) -> str:
    """What to add to a refusal for each requested name that is no capability at all (most likely a
    typo), with the closest name."""
    out = ""
    for name in sorted(needed - vocabulary):
        guess = meant_capability(name, vocabulary)
        out += f"; `{name}` is not a capability name" + (f" (did you mean `{guess}`?)" if guess else "")
    return out


def _unknown_model_hint(name: str, registry: Registry) -> str:
    """What the caller likely meant: the model of a deployment key (`sonnet@work`), the model whose
    deployments use that id (`claude-sonnet-4-20250514`, as litellm is called), or the closest name."""
    model, at, provider = name.partition("@")
    if at and model in registry.models:
        pin = f" (a policy's `only {provider}` pins one)" if provider in registry.providers else ""
        return f"; ask for the model `{model}`: the policy picks the provider{pin}"
    serving = [
        m.name for m in registry.models.values() if any(name in (d.model_id, d.litellm_model) for d in m.deployments)
    ]
    if serving:
        return f"; ask for the model by its name: {_listing(serving)} {'uses' if len(serving) == 1 else 'use'} that id"
    guess = closest(name, registry.models)
    return f"; did you mean `{guess}`?" if guess else ""


def fired_at(clause: Clause | None) -> str:
    return str(clause.span) if clause is not None and clause.span is not None else "the route"


def _listing(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value
