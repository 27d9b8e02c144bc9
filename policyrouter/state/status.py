"""`policyrouter status`: quotas, budgets and rate windows as they stand, as a table or JSON."""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from policyrouter.quantities import format_quantity
from policyrouter.registry import Registry
from policyrouter.state import layout as keys
from policyrouter.state.errors import StateError
from policyrouter.state.model import Usage
from policyrouter.state.store import StateStore

log = logging.getLogger("policyrouter.state")

COLUMNS = ("KIND", "NAME", "WINDOW", "USED", "RESERVED", "LIMIT", "LEFT", "RESETS")
RUNS_SHOWN = 10  # the table lists the runs that spent most; JSON lists them all


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    name: str
    errors: int
    cooldown_seconds: float
    in_flight: int
    latency_seconds: float | None


@dataclass(frozen=True, slots=True)
class RunSpend:
    run_id: str
    spent: float
    reserved: float


@dataclass(frozen=True, slots=True)
class Status:
    store: str
    run_id: str
    now: datetime
    limits: list[Usage]
    providers: list[ProviderHealth]
    runs: list[RunSpend]  # most spent first

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "run_id": self.run_id,
            "now": self.now.isoformat(timespec="seconds"),
            "limits": [_usage_dict(u) for u in self.limits],
            "providers": [asdict(p) for p in self.providers],
            "runs": [asdict(r) for r in self.runs],
        }


def collect(registry: Registry, store: StateStore, run_id: str | None = None) -> Status:
    """Every limit's usage in its current window and each provider's health, in one read of the store."""
    run = run_id or store.run_id
    now = store.now().astimezone(registry.settings.timezone)
    try:
        store.reap()  # reservations of crashed processes should not show as held
    except StateError:  # a state file this user may only read, or one held locked: shown as it is
        log.info("expired reservations of %s were not dropped", store.url, exc_info=True)
    layout = store.layout
    meters = [
        *layout.quota_meters(now, run),
        *layout.budget_meters(now, run),
        *layout.limited_rate_meters(now),
    ]
    providers = list(registry.providers)
    health_keys = [k for p in providers for k in (keys.errors_key(p), keys.cooldown_key(p), keys.inflight_key(p))]
    counters = store.read([m.key for m in meters] + health_keys)
    health = counters[len(meters) :]
    rows = []
    for i, p in enumerate(providers):
        errors, cooldown, inflight = health[3 * i : 3 * i + 3]
        samples = store.samples(keys.latency_key(p))
        rows.append(
            ProviderHealth(
                name=p,
                errors=int(errors.used),
                cooldown_seconds=round(max(0.0, cooldown.used - now.timestamp()), 3),
                in_flight=max(0, round(inflight.reserved)),
                latency_seconds=statistics.median(samples) if samples else None,
            )
        )
    runs = [RunSpend(r, c.used, max(0.0, c.reserved)) for r, c in store.runs().items()]
    runs.sort(key=lambda r: (-(r.spent + r.reserved), r.run_id))
    usage = [m.usage(c) for m, c in zip(meters, counters[: len(meters)], strict=True)]
    return Status(store.url, run, now, usage, rows, runs)


def status_report(registry: Registry, store: StateStore, fmt: str = "table", run_id: str | None = None) -> str:
    """The text `policyrouter status` prints: `fmt` is `table` or `json`. `run_id` picks the run
    whose `run` windows are shown (default: the store's)."""
    if fmt not in ("table", "json"):
        raise ValueError(f"unknown status format `{fmt}`: expected `table` or `json`")
    status = collect(registry, store, run_id)
    if fmt == "json":
        return json.dumps(status.to_dict(), indent=2)
    now = status.now
    lines = [f"state: {status.store}   run: {status.run_id}   now: {_when(now)}", ""]
    if status.limits:
        lines += _align([COLUMNS, *(_row(u, now) for u in status.limits)])
    else:
        lines.append("no quotas, budgets or rate limits in the registry")
    if status.providers:
        health = [("PROVIDER", "ERRORS", "COOLDOWN", "IN FLIGHT", "LATENCY")]
        for p in status.providers:
            health.append(
                (
                    p.name,
                    str(p.errors),
                    format_quantity("duration", p.cooldown_seconds) if p.cooldown_seconds > 0 else "-",
                    str(p.in_flight),
                    format_quantity("duration", p.latency_seconds) if p.latency_seconds is not None else "-",
                )
            )
        lines += ["", *_align(health)]
    if status.runs:
        spent = [("RUN", "SPENT", "RESERVED")]
        for r in status.runs[:RUNS_SHOWN]:
            reserved = format_quantity("money", r.reserved) if r.reserved > 1e-12 else "-"
            spent.append((r.run_id, format_quantity("money", r.spent), reserved))
        lines += ["", *_align(spent)]
        if len(status.runs) > RUNS_SHOWN:
            lines.append(f"… and {len(status.runs) - RUNS_SHOWN} more runs (all of them in `--format json`)")
    return "\n".join(lines)


def _usage_dict(u: Usage) -> dict[str, Any]:
    return {
        "kind": u.kind,
        "name": u.name,
        "window": u.window,
        "unit": u.unit,
        "used": u.used,
        "reserved": u.reserved,
        "limit": u.limit,
        "hard": u.hard,
        "share_left": round(u.share_left, 6),
        "resets_at": u.resets_at.isoformat(timespec="seconds") if u.resets_at else None,
    }


def _amount(u: Usage, x: float) -> str:
    if u.unit == "usd":
        return format_quantity("money", x)
    text = format_quantity("count", x)
    return f"{text} {u.unit}" if u.kind == "quota" else text


def _row(u: Usage, now: datetime) -> tuple[str, ...]:
    if u.resets_at is None:
        resets = "with the run"
    else:
        left = u.resets_at.timestamp() - now.timestamp()  # not `resets_at - now`: wall time within one zone
        resets = f"{_when(u.resets_at)} (in {_span(left)})"
    limit = _amount(u, u.limit) if u.limit is not None else "-"
    kind = u.kind if u.hard or u.limit is None else f"{u.kind} (soft)"
    return (
        kind,
        u.name,
        u.window,
        _amount(u, u.used),
        _amount(u, u.reserved) if u.reserved > 1e-12 else "-",
        limit,
        format_quantity("share", u.share_left),
        resets,
    )


def _span(seconds: float) -> str:
    """`45s`, `12m`, `2h 5m`, `16d 13h`: how long until a reset."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    big, small = (f"{s // 3600}h", f"{s % 3600 // 60}m") if s < 86400 else (f"{s // 86400}d", f"{s % 86400 // 3600}h")
    return big if small[0] == "0" else f"{big} {small}"


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S %Z")


def _align(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
