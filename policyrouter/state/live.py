"""`LiveFacts`: the evaluator's `FactSource` over a state store.

Reads on the decision path are cheap: the first read takes a snapshot of every limit, spend, error
count, cooldown and in-flight count in one round trip and keeps it `ttl` seconds (default
`STALENESS`); counters read on their own are kept as long, in a bounded TTL cache. A cached read may be
up to `ttl` old: that is fine for ordering deployments, because the reservation made before the call —
not this read — enforces hard limits. Counters are keyed by their store key, which holds the window,
so a window that rolls over is read fresh at once.

A decision view (`for_decision`) also keeps the fact values it works out — a quota's share left, a
budget's, a cooldown's end — with the snapshot they came from, so the decisions that follow read them
as a dict lookup, like dry-run facts. They go when the snapshot does: when it expires, when this process
writes one of its counters (`forget`), or when one of its windows ends.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cachetools import TTLCache

from policyrouter.facts import MISSING
from policyrouter.forks import renew_locks_after_fork
from policyrouter.registry import GLOBAL_BUDGETS, Deployment, Registry
from policyrouter.state import layout as keys
from policyrouter.state.errors import StateError
from policyrouter.state.layout import Meter
from policyrouter.state.model import Counter, LimitKind, Usage, share_left
from policyrouter.state.store import StateStore, check_run_id, utc_now

log = logging.getLogger("policyrouter.state")

STALENESS = 1.0  # seconds a fact read may be cached
_BATCH = 500  # counters per read (SQLite takes a bounded number of parameters per query)
CACHE_SIZE = 4096  # counters kept at most


class _Snapshot:
    """The counters read together (by store key), kept until `expires` (on the cache's timer) and valid
    for instants before `until` (the end of the first of their windows to end), and the fact values
    worked out from them (`facts`; None when the read failed, so nothing is kept)."""

    __slots__ = ("counters", "expires", "facts", "until")

    def __init__(self, counters: dict[str, Counter], expires: float, until: float, keep: bool = True) -> None:
        self.counters = counters
        self.expires = expires
        self.until = until
        self.facts: _Derived | None = _Derived() if keep else None


class _Derived:
    """Fact values worked out from one snapshot's counters, by fact and name. A cooldown is kept as the
    instant it ends, since the seconds left depend on the decision's instant."""

    __slots__ = ("budget", "cooling_until", "errors", "in_flight", "quota", "rate", "spend")

    def __init__(self) -> None:
        self.quota: dict[str, float] = {}
        self.spend: dict[str, float] = {}
        self.budget: dict[str, float] = {}
        self.rate: dict[tuple[str, str], float] = {}
        self.errors: dict[str, float] = {}
        self.cooling_until: dict[str, float] = {}
        self.in_flight: dict[str, float] = {}


# every LiveFacts on a store, so that what one forgets after a write, the others do too: a list of
# references, copied without a lock (one step under the GIL), rebuilt under one when a LiveFacts joins
_on_store: weakref.WeakKeyDictionary[StateStore, list[weakref.ref[LiveFacts]]] = weakref.WeakKeyDictionary()


class _Joining:
    """The lock that rebuilds those lists, made anew in a forked child like every lock of ours."""

    def __init__(self) -> None:
        self._new_locks()
        renew_locks_after_fork(self)

    def _new_locks(self) -> None:
        self.lock = threading.Lock()


_joining = _Joining()


def _join(store: StateStore, facts: LiveFacts) -> None:
    with _joining.lock:  # the references of facts gone are dropped here: a run view per job adds no garbage
        alive = [ref for ref in _on_store.get(store, ()) if ref() is not None]
        _on_store[store] = [*alive, weakref.ref(facts)]


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
        self._timer = timer
        self._cache: TTLCache[str, Any] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._latest: list[_Snapshot | None] = [None]  # the snapshot, shared with decision views
        self._outage: list[tuple[float, StateError] | None] = [None]  # a failure of the store, and until when
        self._new_locks()
        renew_locks_after_fork(self)
        self._pinned: datetime | None = None
        self._pinned_ts = 0.0  # the same instant, in epoch seconds
        self._held: _Snapshot | None = None  # a decision view's snapshot, taken once
        self._facts: _Derived | None = None  # a decision view's kept fact values
        self._stale: set[str] = set()  # counters this process wrote since they were cached
        self._tz = self.registry.settings.timezone
        _join(store, self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()  # decision views share it; one made before a fork lives one decision

    def for_decision(self) -> LiveFacts:
        """A view with the time fixed at now, sharing this cache: one decision sees one instant. It
        takes the snapshot at once, and with it the fact values earlier decisions worked out from it."""
        view = LiveFacts.__new__(LiveFacts)
        view.__dict__.update(self.__dict__)  # shares the cache, the lock and the snapshot
        at = view._pinned = self.now()
        view._pinned_ts = at.timestamp()
        view._held = None
        snapshot = view._snapshot()
        if view._pinned_ts >= snapshot.until and snapshot.facts is not None:  # a window ended: new keys
            with self._lock:
                if self._latest[0] is snapshot:
                    self._latest[0] = None
            view._held = None
            snapshot = view._snapshot()
        view._facts = snapshot.facts
        return view

    def clear(self) -> None:
        """Forget every cached read, and that the store failed."""
        with self._lock:
            self._cache.clear()
            self._latest[0] = None
            self._outage[0] = None

    def forget(self, deployment: Deployment, fresh: Mapping[str, Counter] | None = None) -> None:
        """Forget the cached counters a call on `deployment` writes (after this process settled,
        released or cooled one down), so the next decision here sees them as they are now; the rest stay
        cached. `fresh`: those counters as the write left them (what `settle` and `release` return),
        taken as they are; the others are read again by the next decision, in one round trip. The
        other live facts on the same store (a router's run views) forget them too: they are the same
        provider's cooldown, errors and calls in flight."""
        for ref in list(_on_store.get(self.store, ())):
            other = ref()
            if other is not None and other is not self:
                other._forget(deployment, None)
        self._forget(deployment, fresh)

    def _forget(self, deployment: Deployment, fresh: Mapping[str, Counter] | None) -> None:
        written = self.store.layout.call_meters(deployment, self._at(), self.run_id).keys
        with self._lock:
            snapshot = self._latest[0]
            taken: set[str] = set()
            if fresh and snapshot is not None:
                taken = {k for k in fresh if k in snapshot.counters}
                snapshot.counters.update((k, fresh[k]) for k in taken)
            self._stale.update(k for k in written if k not in taken)  # read on their own: read again
            self._stale.add(keys.latency_key(deployment.provider))  # samples, not a counter: dropped when next read
            if snapshot is not None and snapshot.facts is not None:
                snapshot.facts = _Derived()  # replaced, not cleared: a decision under way keeps its own

    def _drop_if_stale(self, key: str) -> None:
        if key not in self._stale:
            return
        with self._lock:
            self._stale.discard(key)
            self._cache.pop(key, None)
            for held in (self._latest[0], self._held):
                if held is not None:
                    held.counters.pop(key, None)  # a missing counter is read on its own, fresh

    def forget_round_robin(self, model: str) -> None:
        """Forget the cached round-robin position of `model` (after this process moved it on)."""
        with self._lock:
            self._cache.pop(keys.round_robin_key(model), None)

    # -- the snapshot: every counter a decision may read, in one round trip --------------------

    def _snapshot(self) -> _Snapshot:
        """The counters of every limit, spend, error count, cooldown and in-flight count, read together
        and cached for `ttl` seconds; empty (each fact then reads on its own) if the store fails."""
        if self._held is not None:
            return self._held
        snapshot = self._latest[0]
        if snapshot is None or self._timer() >= snapshot.expires:
            snapshot = self._read_snapshot()
        elif self._stale:
            self._refresh(snapshot)
        if self._pinned is not None:
            self._held = snapshot
        return snapshot

    def _read_snapshot(self) -> _Snapshot:
        if self._failing() is not None:
            return _Snapshot({}, -math.inf, -math.inf, keep=False)
        at = self._at()
        meters = self._snapshot_meters(at)
        providers = self.registry.providers
        wanted = [
            *(m.key for m in meters),
            *(f(p) for p in providers for f in (keys.errors_key, keys.cooldown_key, keys.inflight_key)),
        ]
        try:
            counters = [c for i in range(0, len(wanted), _BATCH) for c in self.store.read(wanted[i : i + _BATCH])]
        except StateError as e:
            self._failed(e)
            return _Snapshot({}, -math.inf, -math.inf, keep=False)
        ends = (m.span.end_ts for m in meters if m.span.end is not None)
        expires = self._timer() + self.ttl
        snapshot = _Snapshot(dict(zip(wanted, counters, strict=True)), expires, min(ends, default=math.inf))
        with self._lock:
            self._latest[0] = snapshot
            self._stale.difference_update(wanted)
        return snapshot

    def _refresh(self, snapshot: _Snapshot) -> None:
        """Re-read, in one round trip, the snapshot's counters this process wrote since it was taken."""
        stale = [k for k in list(self._stale) if k in snapshot.counters]
        if not stale:
            return
        try:
            counters = self.store.read(stale)
        except StateError as e:
            self._failed(e)
            return  # `_counter` drops each stale counter and reads it as `on_state_error` says
        with self._lock:
            snapshot.counters.update(zip(stale, counters, strict=True))
            self._stale.difference_update(stale)

    def _snapshot_meters(self, at: datetime) -> list[Meter]:
        layout, run = self.store.layout, self.run_id
        scopes = dict.fromkeys((*self.registry.budgets, *GLOBAL_BUDGETS))  # a budget may be named `month`
        spends = [m for s in scopes if (m := layout.spend(s, at, run)) is not None]
        return [*layout.quota_meters(at, run), *spends, *layout.limited_rate_meters(at)]

    # -- reading through the cache ------------------------------------------------------------

    def _cached(self, key: str, fetch: Callable[[], Any], fresh: Any, closed: bool) -> Any:
        with self._lock:
            hit = self._cache.get(key, MISSING)
        if hit is not MISSING:
            return hit
        failing = self._failing()
        if failing is not None:  # the store failed a moment ago: do not wait on it again
            if closed:
                raise StateError(failing.store, failing.message, failing.help)
            value = fresh
        else:
            try:
                value = fetch()
            except StateError as e:
                self._failed(e)
                if closed:
                    raise
                value = fresh  # cached too: a failing store is not asked again until the entry expires
        with self._lock:
            self._cache[key] = value
        return value

    def _failing(self) -> StateError | None:
        """The store's failure, for `ttl` seconds after it: until then facts do not ask the store again
        (one outage costs one timeout, not one per fact) and read as `on_state_error` says."""
        outage = self._outage[0]
        if outage is None or self._timer() >= outage[0]:
            return None
        return outage[1]

    def _failed(self, error: StateError) -> None:
        self._outage[0] = (self._timer() + self.ttl, error)
        log.warning(
            "state store `%s`: %s — for %gs, facts read as a fresh state would, or raise where "
            "on_state_error is closed%s",
            error.store,
            error.message,
            self.ttl,
            f"\nhelp: {error.help}" if error.help else "",
        )

    def _counter(self, key: str, closed: bool = False) -> Counter:
        self._drop_if_stale(key)
        found = self._snapshot().counters.get(key)
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
    # In a decision view, each fact is worked out once per snapshot and kept in `_facts`, but only when
    # its counter came with the snapshot: one read on its own has its own age, and stays in `_cache`.

    def _from_snapshot(self, key: str) -> bool:
        return self._held is not None and key in self._held.counters

    def quota_left(self, provider: str) -> float:
        kept = self._facts
        if kept is not None and (share := kept.quota.get(provider)) is not None:
            return share
        quota = self.registry.providers[provider].quota
        if quota is None:
            return 1.0
        key = self.store.layout.quota_key(provider, self._at(), self.run_id)
        share = _share_left(self._counter(key), quota.limit)  # type: ignore[arg-type]
        if kept is not None and self._from_snapshot(key):  # type: ignore[arg-type]
            kept.quota[provider] = share
        return share

    def spend(self, scope: str) -> float:
        kept = self._facts
        if kept is not None and (used := kept.spend.get(scope)) is not None:
            return used
        key = self.store.layout.spend_key(scope, self._at(), self.run_id)
        if key is None:
            return 0.0
        budget = self.registry.budgets.get(scope)
        used = self._counter(key, closed=budget is not None and budget.hard).used
        if kept is not None and self._from_snapshot(key):
            kept.spend[scope] = used
        return used

    def budget_left(self, scope: str) -> float:
        """Share of the budget not spent nor held by live reservations."""
        kept = self._facts
        if kept is not None and (share := kept.budget.get(scope)) is not None:
            return share
        budget = self.registry.budgets.get(scope)
        key = self.store.layout.spend_key(scope, self._at(), self.run_id)
        if budget is None or key is None:
            return 1.0
        share = _share_left(self._counter(key, closed=budget.hard), budget.usd)
        if kept is not None and self._from_snapshot(key):
            kept.budget[scope] = share
        return share

    def rate(self, kind: str, key: str) -> float:
        """Requests / tokens this minute, counting calls in flight."""
        kept = self._facts
        if kept is not None and (used := kept.rate.get((kind, key))) is not None:
            return used
        if kind not in ("rpm", "tpm"):
            raise ValueError(f"unknown rate `{kind}`")
        counter_key = self.store.layout.rate_key(kind, key, self._at())
        used = self._counter(counter_key).total
        if kept is not None and self._from_snapshot(counter_key):
            kept.rate[(kind, key)] = used
        return used

    def errors(self, provider: str) -> float:
        kept = self._facts
        if kept is not None and (count := kept.errors.get(provider)) is not None:
            return count
        key = keys.errors_key(provider)
        count = self._counter(key).used
        if kept is not None and self._from_snapshot(key):
            kept.errors[provider] = count
        return count

    def latency(self, provider: str) -> float | None:
        key = keys.latency_key(provider)
        self._drop_if_stale(key)
        samples = self._cached(key, lambda: self.store.samples(key), [], self._closed(False))
        return statistics.median(samples) if samples else None

    def cooldown(self, provider: str) -> float:
        kept = self._facts
        until = kept.cooling_until.get(provider) if kept is not None else None
        if until is None:
            key = keys.cooldown_key(provider)
            until = self._counter(key).used
            if kept is not None and self._from_snapshot(key):
                kept.cooling_until[provider] = until
        return max(0.0, until - (self._pinned_ts if self._pinned is not None else self.now().timestamp()))

    def in_flight(self, provider: str) -> float:
        kept = self._facts
        if kept is not None and (count := kept.in_flight.get(provider)) is not None:
            return count
        key = keys.inflight_key(provider)
        count = max(0.0, round(self._counter(key).reserved, 9))
        if kept is not None and self._from_snapshot(key):
            kept.in_flight[provider] = count
        return count

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
