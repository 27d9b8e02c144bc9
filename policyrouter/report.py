"""The events of one request, one method per kind, with the fields docs/executor.md lists.

Every method returns at once when no sink listens, so a router without events builds nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from policyrouter.accounting import Usage
from policyrouter.events import Events
from policyrouter.registry import Deployment

if TYPE_CHECKING:
    from policyrouter.decision import Decision
    from policyrouter.errors import DecisionError
    from policyrouter.state import Usage as LimitUsage
    from policyrouter.streams import Tally


class RequestReport:
    """Emits the events of the request `request_id` (asking for `model`, counted in run `run_id`)."""

    def __init__(self, events: Events, request_id: str, run_id: str, model: str) -> None:
        self.events = events
        self.request_id = request_id
        self.run_id = run_id
        self.model = model

    @property
    def enabled(self) -> bool:
        return self.events.enabled

    def _emit(self, kind: str, d: Deployment, **fields: Any) -> None:
        if self.events.enabled:
            self.events.emit(
                kind,
                request_id=self.request_id,
                run_id=self.run_id,
                model=d.model,
                provider=d.provider,
                deployment=d.key,
                **fields,
            )

    def decision(self, decision: Decision | None, error: DecisionError | None, estimate: dict[str, Any]) -> None:
        """What was decided (or refused), with the request and every fact read, so it can be replayed."""
        if not self.events.enabled:
            return
        extra: dict[str, Any] = {}
        if decision is not None:
            extra = {
                "request": decision.request.to_dict(),
                "order": [d.key for d in decision.order],
                "rule": decision.rule,
                "excluded": [e.to_dict() for e in decision.excluded],
                "facts": {k: round(v, 9) if isinstance(v, float) else v for k, v in decision.facts.items()},
            }
        if error is not None:
            extra["error"] = {"code": error.code, "message": error.message}
        self.events.emit(
            "decision",
            request_id=self.request_id,
            run_id=self.run_id,
            model=self.model,
            tokens=estimate,
            reason=error.message if error is not None else None,
            **extra,
        )

    def attempt(
        self,
        d: Deployment,
        number: int,
        retry: int,
        estimate: dict[str, Any],
        cost: float | None,
        stream: bool,
        messages: Any,
    ) -> None:
        if not self.events.enabled:
            return
        extra: dict[str, Any] = {"messages": list(messages)} if self.events.include_content else {}
        self._emit(
            "attempt",
            d,
            tokens=estimate,
            cost=cost,
            attempt=number,
            retry=retry,
            litellm_model=d.litellm_model,
            stream=stream,
            **extra,
        )

    def success(
        self,
        d: Deployment,
        number: int,
        usage: Usage,
        cost: float | None,
        latency: float,
        served_model: str | None,
        response: Any = None,
        tally: Tally | None = None,
    ) -> None:
        if not self.events.enabled:
            return
        extra: dict[str, Any] = {}
        if tally is not None:
            extra = {"stream": True, "chunks": tally.chunks, "closed_early": tally.closed_early}
        if self.events.include_content and response is not None:
            extra["content"] = [getattr(getattr(c, "message", None), "content", None) for c in response.choices]
        self._emit(
            "success",
            d,
            tokens=usage.to_dict(),
            cost=cost,
            latency=latency,
            attempt=number,
            served_model=served_model,
            **extra,
        )

    def failure(self, d: Deployment, kind: str, reason: str, latency: float | None, **fields: Any) -> None:
        """A failed call: `fields` add `status`, `next` (retry, fallback, fail), `attempt`, `billed`, …"""
        self._emit("failure", d, latency=latency, reason=reason, error=kind, **fields)

    def fallback(self, d: Deployment, following: Deployment, reason: str) -> None:
        self._emit("fallback", d, reason=reason, to=following.key, **{"from": d.key})

    def throttled(self, d: Deployment, reason: str, **fields: Any) -> None:
        """A rate limit: `source` is `provider` (a 429) or `local` (an rpm/tpm window of the state)."""
        self._emit("throttled", d, reason=reason, **fields)

    def budget_warning(self, d: Deployment, usage: LimitUsage) -> None:
        """A soft budget or quota this request goes over."""
        spent = usage.used + usage.reserved
        self._emit(
            "budget_warning",
            d,
            reason=f"soft {usage.kind} `{usage.name}` ({usage.window}) is over its limit",
            limit_kind=usage.kind,
            budget=usage.name,
            window=usage.window,
            unit=usage.unit,
            spent=round(spent, 9),
            limit=usage.limit,
            resets_at=_iso(usage.resets_at),
            hard=False,
        )

    def price_unknown(self, d: Deployment, reason: str, usage: Usage) -> None:
        self._emit("budget_warning", d, reason=reason, tokens=usage.to_dict(), limit_kind="price")

    def budget_exceeded(
        self,
        d: Deployment,
        budget: str,
        window: str,
        spent: float,
        limit: float,
        requested: float,
        resets_at: datetime | None,
    ) -> None:
        self._emit(
            "budget_exceeded",
            d,
            reason=f"hard budget `{budget}` would be broken",
            budget=budget,
            window=window,
            spent=round(spent, 9),
            limit=limit,
            requested=round(requested, 9),
            resets_at=_iso(resets_at),
            hard=True,
        )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
