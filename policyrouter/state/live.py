"""`LiveFacts`: the evaluator's `FactSource` over a state store.

Reads on the decision path are cheap: the first read takes a snapshot of every limit, error count,
cooldown and in-flight count in one round trip, and it is kept in a bounded TTL cache (`ttl` seconds of
staleness, default `STALENESS`) with the counters read on their own. A cached read may be up to
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
from policyrouter.registry import Deployment, Registry
from policyrouter.state import layout as keys
from policyrouter.state.errors import StateError
from policyrouter.state.layout import Meter
from policyrouter.state.model import Counter, LimitKind, Usage, share_left
from policyrouter.state.store import StateStore, check_run_id, utc_now

log = logging.getLogger("policyrouter.state")

STALENESS = 1.0  # seconds a fact read may be cached
_SNAPSHOT = "\0snapshot"  # the cache entry holding the counters read together
_BATCH = 500  # counters per read (SQLite takes a bounded number of parameters per query)
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
        self._held: dict[str, Counter] | None = None  # a decision view's snapshot, taken once
        self._stale: set[str] = set()  # counters this process wrote since they were cached
        self._tz = self.registry.settings.timezone

    def for_decision(self) -> LiveFacts:
        """A view with the time fixed at now, sharing this cache: one decision sees one instant."""
        view = copy.copy(self)
        view._pinned = self.now()
        view._held = None
        return view

    def clear(self) -> None:
        """Forget every cached read."""
        with self._lock:
            self._cache.clear()

    def forget(self, deployment: Deployment) -> None:
        """Forget the cached counters a call on `deployment` writes (after this process reserved,
        settled or released one), so the next decision here reads them fresh; the rest stay cached."""
        meters = self.store.layout.call_meters(deployment, self._at(), self.run_id)
        p = deployment.provider
        written = [m.key for m in (*meters.spends, *meters.rates, *((meters.quota,) if meters.quota else ()))]
        written += [keys.errors_key(p), keys.cooldown_key(p), keys.inflight_key(p)]
        self._stale.update(written)  # cheap here: the next snapshot read refreshes them in one round trip
        self._stale.add(keys.latency_key(p))  # samples, not a counter: dropped when next read

    def _drop_if_stale(self, key: str) -> None:
        if key not in self._stale:
            return
        with self._lock:
            self._stale.discard(key)
            self._cache.pop(key, None)
            snapshot = self._cache.get(_SNAPSHOT)
            for held in (snapshot, self._held):
                if held is not None:
                    held.pop(key, None)  # a missing counter is read on its own, fresh

    def forget_round_robin(self, model: str) -> None:
        """Forget the cached round-robin position of `model` (after this process moved it on)."""
        with self._lock:
            self._cache.pop(keys.round_robin_key(model), None)

    # -- the snapshot: every counter a decision may read, in one round trip --------------------

    def _snapshot(self) -> dict[str, Counter]:
        """The counters of every limit, error count, cooldown and in-flight count, read together and
        cached for `ttl` seconds; empty (each fact then reads on its own) if the store fails."""
        if self._held is not None:
            return self._held
        with self._lock:
            snapshot = self._cache.get(_SNAPSHOT)
        if snapshot is None:
            snapshot = self._read_snapshot()
        elif self._stale:
            self._refresh(snapshot)
        if self._pinned is not None:
            self._held = snapshot
        return snapshot

    def _read_snapshot(self) -> dict[str, Counter]:
        wanted = self._snapshot_keys()
        try:
            counters = [c for i in range(0, len(wanted), _BATCH) for c in self.store.read(wanted[i : i + _BATCH])]
        except StateError as e:
            log.debug("%s; reading facts one by one", e)
            return {}
        snapshot = dict(zip(wanted, counters, strict=True))
        with self._lock:
            self._cache[_SNAPSHOT] = snapshot
            self._stale.difference_update(wanted)
        return snapshot

    def _refresh(self, snapshot: dict[str, Counter]) -> None:
        """Re-read, in one round trip, the snapshot's counters this process wrote since it was taken."""
        stale = [k for k in list(self._stale) if k in snapshot]
        if not stale:
            return
        try:
            counters = self.store.read(stale)
        except StateError as e:
            log.debug("%s; reading facts one by one", e)
            return  # `_counter` drops each stale counter and reads it on its own
        with self._lock:
            snapshot.update(zip(stale, counters, strict=True))
            self._stale.difference_update(stale)

    def _snapshot_keys(self) -> list[str]:
        at, layout, run = self._at(), self.store.layout, self.run_id
        meters = [*layout.quota_meters(at, run), *layout.budget_meters(at, run), *layout.limited_rate_meters(at)]
        providers = self.registry.providers
        return [
            *(m.key for m in meters),
            *(f(p) for p in providers for f in (keys.errors_key, keys.cooldown_key, keys.inflight_key)),
        ]

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
        self._drop_if_stale(key)
        found = self._snapshot().get(key)
        if found is not None:
            return found
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
        quota = self.registry.providers[provider].quota
        if quota is None:
            return 1.0
        key = self.store.layout.quota_key(provider, self._at(), self.run_id)
        return _share_left(self._counter(key), quota.limit)  # type: ignore[arg-type]

    def spend(self, scope: str) -> float:
        key = self.store.layout.spend_key(scope, self._at(), self.run_id)
        if key is None:
            return 0.0
        budget = self.registry.budgets.get(scope)
        return self._counter(key, closed=budget is not None and budget.hard).used

    def budget_left(self, scope: str) -> float:
        """Share of the budget not spent nor held by live reservations."""
        budget = self.registry.budgets.get(scope)
        key = self.store.layout.spend_key(scope, self._at(), self.run_id)
        if budget is None or key is None:
            return 1.0
        return _share_left(self._counter(key, closed=budget.hard), budget.usd)

    def rate(self, kind: str, key: str) -> float:
        """Requests / tokens this minute, counting calls in flight."""
        if kind not in ("rpm", "tpm"):
            raise ValueError(f"unknown rate `{kind}`")
        return self._counter(self.store.layout.rate_key(kind, key, self._at())).total

    def errors(self, provider: str) -> float:
        return self._counter(keys.errors_key(provider)).used

    def latency(self, provider: str) -> float | None:
        key = keys.latency_key(provider)
        self._drop_if_stale(key)
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


def _share_left(counter: Counter, limit: float | None) -> float:
    return share_left(counter.used + max(0.0, counter.reserved), limit)
