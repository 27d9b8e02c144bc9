"""`LiveFacts`: the evaluator's `FactSource` over a state store.

Reads on the decision path are cheap: each fact fetches only its own counter, and counters are kept
in a bounded TTL cache (`ttl` seconds of staleness, default `STALENESS`). A cached read may be up to
`ttl` old: that is fine for ordering deployments, because the reservation made before the call — not
this read — enforces hard limits. Cache entries are keyed by the counter's store key, which holds its
window, so a window that rolls over is read fresh at once.
"""

from __future__ import annotations

import copy
import logging
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cachetools import TTLCache

from policyrouter.facts import MISSING
from policyrouter.registry import Registry
from policyrouter.state import layout as keys
from policyrouter.state.errors import StateError
from policyrouter.state.layout import Meter
from policyrouter.state.model import Counter, LimitKind, Usage
from policyrouter.state.store import StateStore, check_run_id, utc_now

log = logging.getLogger("policyrouter.state")

STALENESS = 1.0  # seconds a fact read may be cached
CACHE_SIZE = 4096  # counters kept at most


class LiveFacts:
    """Facts read from `store` (for `registry`, at `clock`'s time, for run `run_id`), cached for `ttl` s.

    When the store fails, `settings.on_state_error` decides: closed raises the `StateError`, open reads
    the fact as a fresh state would (and logs a warning). By default only the spend and budget facts of
    hard budgets fail closed.
    """

    def __init__(
        self,
        store: StateStore,
        registry: Registry | None = None,
        clock: Callable[[], datetime] | None = None,
        run_id: str | None = None,
        ttl: float = STALENESS,
        maxsize: int = CACHE_SIZE,
    ) -> None:
        self.store = store
        self.registry = registry or store.registry
        self.clock = clock or store.clock
        self.run_id = check_run_id(run_id) if run_id else store.run_id
        self.ttl = ttl
        self.request_id: str | None = None
        wall_clock = self.clock is utc_now
        timer: Callable[[], float] = time.monotonic if wall_clock else (lambda: self.clock().timestamp())
        self._cache: TTLCache[str, Any] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._lock = threading.Lock()
        self._pinned: datetime | None = None
        self._tz = self.registry.settings.timezone

    def for_decision(self) -> LiveFacts:
        """A view with the time fixed at now, sharing this cache: one decision sees one instant."""
        view = copy.copy(self)
        view._pinned = self.now()
        return view

    def clear(self) -> None:
        """Forget every cached read (e.g. after this process settled a call)."""
        with self._lock:
            self._cache.clear()

    # -- reading through the cache ------------------------------------------------------------

    def _cached(self, key: str, fetch: Callable[[], Any], fresh: Any, closed: bool) -> Any:
        with self._lock:
            hit = self._cache.get(key, MISSING)
        if hit is not MISSING:
            return hit
        try:
            value = fetch()
        except StateError as e:
            if closed:
                raise
            log.warning("%s; reading `%s` as a fresh state would (on_state_error: open)", e, key)
            value = fresh  # cached too: a failing store is not asked again until the entry expires
        with self._lock:
            self._cache[key] = value
        return value

    def _counter(self, key: str, closed: bool = False) -> Counter:
        return self._cached(key, lambda: self.store.read([key])[0], Counter(), self._closed(closed))

    def _closed(self, hard_budget: bool) -> bool:
        setting = self.registry.settings.on_state_error
        return hard_budget if setting is None else setting == "closed"

    def _at(self) -> datetime:
        return self._pinned or self.now()

    def _meter_counter(self, meter: Meter) -> Counter:
        return self._counter(meter.key, closed=meter.kind == "budget" and meter.hard)

    def usage(self, kind: LimitKind, name: str) -> Usage | None:
        """The limit on a provider's `quota`, a `budget` scope or an `rpm`/`tpm` key as it stands — used,
        reserved, limit and when its window resets — through the cache; None when nothing limits it."""
        at, layout = self._at(), self.store.layout
        meter: Meter | None
        if kind == "quota":
            meter = layout.quota(name, at, self.run_id) if name in self.registry.providers else None
        elif kind == "budget":
            meter = layout.spend(name, at, self.run_id)
        else:
            meter = layout.rate(kind, name, at)
        if meter is None or meter.limit is None:
            return None
        return meter.usage(self._meter_counter(meter))

    # -- FactSource ---------------------------------------------------------------------------

    def quota_left(self, provider: str) -> float:
        meter = self.store.layout.quota(provider, self._at(), self.run_id)
        return 1.0 if meter is None else meter.usage(self._meter_counter(meter)).share_left

    def spend(self, scope: str) -> float:
        meter = self.store.layout.spend(scope, self._at(), self.run_id)
        return 0.0 if meter is None else self._meter_counter(meter).used

    def budget_left(self, scope: str) -> float:
        """Share of the budget not spent nor held by live reservations."""
        meter = self.store.layout.spend(scope, self._at(), self.run_id)
        if meter is None or meter.limit is None:
            return 1.0
        return meter.usage(self._meter_counter(meter)).share_left

    def rate(self, kind: str, key: str) -> float:
        """Requests / tokens this minute, counting calls in flight."""
        if kind not in ("rpm", "tpm"):
            raise ValueError(f"unknown rate `{kind}`")
        meter = self.store.layout.rate(kind, key, self._at())  # type: ignore[arg-type]
        return self._meter_counter(meter).total

    def errors(self, provider: str) -> float:
        return self._counter(keys.errors_key(provider)).used

    def latency(self, provider: str) -> float | None:
        key = keys.latency_key(provider)
        samples = self._cached(key, lambda: self.store.samples(key), [], self._closed(False))
        return statistics.median(samples) if samples else None

    def cooldown(self, provider: str) -> float:
        until = self._counter(keys.cooldown_key(provider)).used
        return max(0.0, until - self._at().timestamp())

    def in_flight(self, provider: str) -> float:
        return max(0.0, round(self._counter(keys.inflight_key(provider)).reserved, 9))

    def round_robin(self, model: str) -> int:
        return int(self._counter(keys.round_robin_key(model)).used)

    def now(self) -> datetime:
        if self._pinned is not None:
            return self._pinned
        return self.clock().astimezone(self._tz)

    def custom(self, name: str, arg: str | None) -> Any:
        return MISSING
