"""The state interface: reserve before a call, settle or release after it, read counters for facts.

`StateStore` holds every rule (what a call counts, which limits it checks, how failures of the store
are handled); a backend (memory, SQLite, Redis) only implements a few atomic primitives on counters:

- `_reserve`: drop expired reservations, check each limit against `used + reserved + amount`, and if
  all pass add the holds to the counters' reserved parts and record the reservation — one atomic step,
  so two requests cannot both take the last dollar;
- `_finish`: drop the reservation's holds if it is still live, apply the settled writes, and read back
  the counters asked for;
- `_apply`, `_read`, `_samples`, `_delete`, `_reap`.

Time comes from `clock` (an aware datetime), never from the backend, so tests control every window.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Literal, NamedTuple

from policyrouter.decision import new_id
from policyrouter.forks import renew_locks_after_fork
from policyrouter.registry import Deployment, Registry
from policyrouter.state import layout as keys
from policyrouter.state.errors import (
    BudgetExceededError,
    LimitExceededError,
    QuotaExhaustedError,
    RateLimitedError,
    ReservationError,
    StateError,
)
from policyrouter.state.layout import Layout, Meter
from policyrouter.state.model import Check, Counter, Hold, Op, Reservation

SWEEP_EVERY = 60.0  # seconds: how often a store deletes the counters whose window has passed
log = logging.getLogger("policyrouter.state")

Clock = Callable[[], datetime]
RESERVATION_TTL = 600.0  # seconds an unsettled reservation holds its amounts (a crashed process's expire)
LATENCY_SAMPLES = 20  # latency(P) is the median of this many recent calls
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_NOT_IN_RUN_ID = re.compile(r"[^A-Za-z0-9._:@-]")
RUN_ID_VARIABLE = "POLICYROUTER_RUN_ID"  # the default run of every store of a process, when set
_process_run: tuple[int, str] | None = None
_checked_run_ids: set[str] = set()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def process_run_id() -> str:
    """This process's run id: host, pid and a random part; a forked child gets its own."""
    global _process_run
    pid = os.getpid()
    if _process_run is None or _process_run[0] != pid:
        host = _NOT_IN_RUN_ID.sub("-", socket.gethostname())[:64] or "host"
        _process_run = (pid, f"{host}-{pid}-{uuid.uuid4().hex[:8]}")
    return _process_run[1]


class RunIdError(ValueError):
    """A run id that is not one: the message says what a run id is, and where the bad one came from."""


def check_run_id(run_id: str, source: str = "") -> str:
    """`run_id` if it is a valid run id; `source` names where it came from, for the error."""
    if run_id in _checked_run_ids:  # every reserve names its run: match each id once
        return run_id
    if not isinstance(run_id, str):
        raise TypeError(f"a run id is a string of letters, digits and `._:@-`; got {run_id!r}")
    if not _RUN_ID.fullmatch(run_id):  # `$` of `.match` would take a final newline
        raise RunIdError(
            f"{source}run id `{run_id}` must be 1-128 letters, digits and `._:@-`, starting with a letter or digit"
        )
    if len(_checked_run_ids) < 4096:
        _checked_run_ids.add(run_id)
    return run_id


class Step(NamedTuple):
    """One limit a reservation touches: hold `hold` on the meter's counter; refuse (if `enforce`) when
    `used + reserved + need` would pass the limit."""

    meter: Meter
    hold: float
    need: float
    enforce: bool


class StateStore(ABC):
    """Live counters shared by every process that opens the same store.

    `run_id` names this store's default run (else `$POLICYROUTER_RUN_ID`, else one per process);
    `reservation_ttl` is how long an unsettled reservation holds its amounts.
    """

    # Whether a call may wait on a file or a socket. `Router.acompletion` makes the calls of a blocking
    # store on a worker thread, so that the event loop goes on while they wait.
    blocking: ClassVar[bool] = True

    def __init__(
        self,
        registry: Registry,
        url: str,
        *,
        clock: Clock | None = None,
        run_id: str | None = None,
        reservation_ttl: float = RESERVATION_TTL,
        latency_samples: int = LATENCY_SAMPLES,
    ) -> None:
        self.registry = registry
        self.url = url
        self.layout = Layout(registry)
        self.clock: Clock = clock or utc_now
        if run_id:
            self.run_id = check_run_id(run_id)
        elif os.environ.get(RUN_ID_VARIABLE):
            self.run_id = check_run_id(os.environ[RUN_ID_VARIABLE], f"${RUN_ID_VARIABLE}: ")
        else:
            self.run_id = process_run_id()
        self.reservation_ttl = reservation_ttl
        self.latency_samples = latency_samples
        self._pending: list[tuple[str, tuple[Op, ...]]] = []
        self._new_locks()
        renew_locks_after_fork(self)

    def _new_locks(self) -> None:
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        t = self.clock()
        if t.tzinfo is None:
            raise ValueError("the state clock must return an aware datetime")
        return t

    # -- reserve, settle, release ---------------------------------------------------------------

    def reserve(
        self,
        deployment: Deployment,
        *,
        tokens: float,
        cost: float,
        run_id: str | None = None,
        lease: float | None = None,
    ) -> Reservation:
        """Hold `tokens` and `cost` (estimates) against every limit a call on `deployment` touches.

        Raises `QuotaExhaustedError`, `BudgetExceededError` or `RateLimitedError` when a hard limit
        cannot take the request; soft limits it goes over come back in `Reservation.warnings`. If the
        store fails, `settings.on_state_error` decides: closed raises `StateError`, open returns an
        `offline` reservation that holds nothing.
        """
        _check_amounts("a reservation", tokens=tokens, cost=cost)
        if lease is not None and not 0 < lease < math.inf:
            raise ValueError(f"a reservation's `lease` is a number of seconds above 0, got {lease!r}")
        now = self.now()
        run = check_run_id(run_id) if run_id else self.run_id
        plan = self._plan(deployment, tokens, cost, now, run)
        rid = new_id()
        lease_s = self.reservation_ttl if lease is None else lease
        expires = now + timedelta(seconds=lease_s)
        now_ts = now.timestamp()
        checks: list[Check] = []
        holds: list[Hold] = []
        for s in plan:
            meter = s.meter
            checks.append(Check(meter.key, s.need, meter.limit if s.enforce else None))
            if s.hold:
                holds.append(Hold(meter.key, s.hold, meter.ttl(now_ts)))
        holds.append(Hold(keys.inflight_key(deployment.provider), 1.0, None))
        reservation = Reservation(rid, self.url, deployment, run, tokens, cost, now, expires)
        try:
            if self._pending:
                self._flush_pending()
            failed, counters = self._reserve(now_ts, rid, now_ts + lease_s, checks, holds)
        except StateError as e:
            if self._fails_closed(plan):
                raise
            log.warning("%s; letting the request through (on_state_error: open)", e)
            reservation.offline = True
            return reservation
        if failed is not None:
            raise _limit_error(plan[failed].meter, counters[failed], plan[failed].hold)
        reservation.warnings = tuple(
            s.meter.usage(Counter(c.used, c.reserved + s.hold))
            for s, c in zip(plan, counters, strict=True)
            # soft limits this request goes over (a free call passes a hard budget with no word: it adds nothing)
            if not s.meter.hard and s.meter.limit is not None and c.total + s.hold > s.meter.limit
        )
        return reservation

    def _plan(self, deployment: Deployment, tokens: float, cost: float, now: datetime, run: str) -> list[Step]:
        """The limits a call on `deployment` touches."""
        plan: list[Step] = []
        meters = self.layout.call_meters(deployment, now, run)
        quota = meters.quota
        if quota is not None:
            amount = {"tokens": tokens, "requests": 1.0, "usd": cost}[quota.unit]
            plan.append(Step(quota, amount, amount, quota.hard))
        for m in meters.spends:
            if m.limit is not None:  # a free call never breaks a budget
                plan.append(Step(m, cost, cost, m.hard and cost > 0))
        for m in meters.rates:
            # a rate window refuses when full: it must have room for one more request / token
            plan.append(Step(m, 1.0 if m.kind == "rpm" else tokens, 1.0, m.limit is not None))
        return plan

    def _fails_closed(self, plan: list[Step]) -> bool:
        setting = self.registry.settings.on_state_error
        if setting is not None:
            return setting == "closed"
        return any(s.meter.kind == "budget" and s.enforce for s in plan)

    def settle(
        self,
        reservation: Reservation,
        *,
        input_tokens: float,
        output_tokens: float,
        cost: float,
        latency: float | None = None,
        error: BaseException | str | None = None,
        failed: bool = False,
    ) -> Mapping[str, Counter]:
        """Record a call's actual use and free what it held. A success resets the provider's
        consecutive errors; with `error` (the provider billed, then failed) they go up instead; with
        `failed` alone (it billed, then refused a request that is at fault, not the provider) they
        stay as they are.

        Returns every counter a call on the deployment writes (`CallMeters.keys`) as this settle left
        it, read in the same atomic step, so live facts need not read them again.

        Spend is never dropped: if the store fails, the writes are kept in this process and replayed
        by the next operation (or `flush()`); the failure is logged, not raised, and nothing is returned.
        """
        _check_amounts("a settle", input_tokens=input_tokens, output_tokens=output_tokens, cost=cost)
        if latency is not None:
            _check_amounts("a settle", latency=latency)
        self._finish_state(reservation, "settled")
        now = self.now()
        d = reservation.deployment
        run = reservation.run_id
        tokens = input_tokens + output_tokens
        now_ts = now.timestamp()
        ops: list[Op] = []
        meters = self.layout.call_meters(d, now, run)
        quota = meters.quota
        if quota is not None:
            amount = {"tokens": tokens, "requests": 1.0, "usd": cost}[quota.unit]
            ops.append(Op("add", quota.key, amount, quota.ttl(now_ts)))
        if cost:
            ops += [Op("add", m.key, cost, m.ttl(now_ts)) for m in meters.spends]
        for m in meters.rates:
            ops.append(Op("add", m.key, 1.0 if m.kind == "rpm" else tokens, m.ttl(now_ts)))
        if error:
            ops.append(Op("add", keys.errors_key(d.provider), 1.0))
        elif not failed:
            ops.append(Op("set", keys.errors_key(d.provider), 0.0))
        if latency is not None:
            ops.append(Op("push", keys.latency_key(d.provider), latency))
        return self._finish_or_keep(now, reservation, ops, meters.keys)

    def release(self, reservation: Reservation, *, error: BaseException | str | None = None) -> Mapping[str, Counter]:
        """Free what a reservation holds without recording spend. With `error` (the call failed), the
        provider's consecutive errors go up and the request counts in its rpm window. Returns the
        counters as `settle` does."""
        self._finish_state(reservation, "released")
        now = self.now()
        d = reservation.deployment
        meters = self.layout.call_meters(d, now, reservation.run_id)
        ops: list[Op] = []
        if error is not None:
            ops.append(Op("add", keys.errors_key(d.provider), 1.0))
            ops += [Op("add", m.key, 1.0, m.ttl(now.timestamp())) for m in meters.rates if m.kind == "rpm"]
        return self._finish_or_keep(now, reservation, ops, meters.keys)

    def _finish_state(self, reservation: Reservation, state: Literal["settled", "released"]) -> None:
        if reservation.store != self.url:
            raise ReservationError(f"reservation `{reservation.id}` belongs to `{reservation.store}`, not `{self.url}`")
        if reservation.state != "held":
            raise ReservationError(f"reservation `{reservation.id}` is already {reservation.state}")
        reservation.state = state

    def _finish_or_keep(
        self, now: datetime, reservation: Reservation, ops: list[Op], read: Sequence[str]
    ) -> Mapping[str, Counter]:
        try:
            if self._pending:
                self._flush_pending()
            _, counters = self._finish(now.timestamp(), reservation.id, ops, read)
        except StateError as e:
            with self._pending_lock:
                self._pending.append((reservation.id, tuple(ops)))
            log.warning("%s; keeping the usage of reservation %s to record later", e, reservation.id)
            return {}
        return dict(zip(read, counters, strict=True))

    def _flush_pending(self) -> None:
        while self._pending:
            with self._pending_lock:
                if not self._pending:
                    return
                rid, ops = self._pending[0]
                self._finish(self.now().timestamp(), rid, ops, ())
                self._pending.pop(0)

    @property
    def pending(self) -> int:
        """Settlements and releases kept in this process because the store failed."""
        return len(self._pending)

    def flush(self) -> None:
        """Record kept settlements now; raises `StateError` if the store still fails."""
        self._flush_pending()

    # -- other writes -------------------------------------------------------------------------

    def cooldown(self, provider: str, seconds: float) -> None:
        """Keep `provider` cooling down for at least `seconds` from now: a longer cooldown already set
        (a 401's, when a 429 with a short `retry-after` comes after it) stays. 0 ends a cooldown."""
        now = self.now().timestamp()
        op = Op("max" if seconds > 0 else "set", keys.cooldown_key(provider), now + seconds, max(seconds, 1.0))
        self._apply(now, [op])

    def advance_round_robin(self, model: str) -> int:
        """Move `model`'s round-robin position on by one; returns the new position."""
        (value,) = self._apply(self.now().timestamp(), [Op("add", keys.round_robin_key(model), 1.0)])
        return int(value)

    def reset(self, *, run_id: str | None = None, provider: str | None = None, everything: bool = False) -> int:
        """Forget state; returns how many keys went.

        `run_id`: that run's counters (its `run` spend, and quotas with a `run` window);
        `provider`: its consecutive errors, cooldown and latency samples (not its quota use);
        `everything`: every counter and reservation of this store.
        """
        if everything:
            return self._delete(None, None)
        n = 0
        if run_id is not None:
            n += self._delete(None, f"|run:{check_run_id(run_id)}")
        if provider is not None:
            n += self._delete(
                [keys.errors_key(provider), keys.cooldown_key(provider), keys.latency_key(provider)], None
            )
        return n

    def reap(self) -> int:
        """Drop reservations whose lease has passed (done anyway by every reserve); returns how many."""
        return self._reap(self.now().timestamp())

    # -- reads --------------------------------------------------------------------------------

    def read(self, keys: Sequence[str]) -> list[Counter]:
        """The counters at these keys, in order; a missing or expired one reads as zero."""
        return self._read(self.now().timestamp(), keys)

    def samples(self, key: str) -> list[float]:
        """The samples kept at `key` (latency), newest first."""
        return self._samples(key)

    def runs(self) -> dict[str, Counter]:
        """Each run with spend in the store (its counters live a week after its last write), and
        its `run` spend: what `status` lists, so that a run named by no one can still be found."""
        found = sorted(self._keys(keys.RUN_SPEND))
        counters = self.read(found)
        return {  # a run whose holds came back to within float noise of 0 ($2.8e-17) holds nothing
            k.removeprefix(keys.RUN_SPEND): c
            for k, c in zip(found, counters, strict=True)
            if c.used > 1e-9 or c.reserved > 1e-9
        }

    def close(self) -> None:
        """Record kept settlements and let go of connections. Raises `StateError` if some spend could
        still not be recorded (it is logged too)."""
        try:
            if self._pending:
                self._flush_pending()
        except StateError:
            log.error("%d settlements of %s were never recorded", len(self._pending), self.url)
            raise
        finally:
            self._close()

    # -- the backend's primitives -------------------------------------------------------------

    @abstractmethod
    def _reserve(
        self, now: float, rid: str, lease_until: float, checks: Sequence[Check], holds: Sequence[Hold]
    ) -> tuple[int | None, list[Counter]]:
        """Atomically: reap, read every check's counter, and unless one fails add the holds and record
        the reservation. Returns the first failing check's index (or None) and the counters read."""

    @abstractmethod
    def _finish(self, now: float, rid: str, ops: Sequence[Op], read: Sequence[str]) -> tuple[bool, list[Counter]]:
        """Atomically: if the reservation is live, take its holds off and forget it; apply `ops`; read
        the counters at `read`. Returns whether it was live, and those counters."""

    @abstractmethod
    def _apply(self, now: float, ops: Sequence[Op]) -> list[float]:
        """Atomically: reap, then apply the writes; returns each counter's settled value after its write."""

    @abstractmethod
    def _read(self, now: float, keys: Sequence[str]) -> list[Counter]: ...

    @abstractmethod
    def _samples(self, key: str) -> list[float]: ...

    @abstractmethod
    def _delete(self, keys: Sequence[str] | None, suffix: str | None) -> int:
        """Delete these keys, or every key ending in `suffix`, or (both None) everything."""

    @abstractmethod
    def _reap(self, now: float) -> int: ...

    @abstractmethod
    def _keys(self, prefix: str) -> list[str]:
        """The keys of the counters that start with `prefix` (some may have just expired)."""

    @abstractmethod
    def _close(self) -> None: ...


def _limit_error(meter: Meter, counter: Counter, requested: float) -> LimitExceededError:
    cls: type[LimitExceededError] = {
        "quota": QuotaExhaustedError,
        "budget": BudgetExceededError,
        "rpm": RateLimitedError,
        "tpm": RateLimitedError,
    }[meter.kind]
    assert meter.limit is not None
    return cls(
        kind=meter.kind,
        name=meter.name,
        window=meter.span.window.name,
        unit=meter.unit,
        used=counter.used,
        reserved=max(0.0, counter.reserved),
        requested=requested,
        limit=meter.limit,
        resets_at=meter.span.end,
    )


def forgets(key: str, keys: Sequence[str] | None, suffix: str | None) -> bool:
    """Whether a reset of these `keys`, or of the keys ending in `suffix`, deletes `key`. A live
    reservation's hold on a deleted counter is dropped with it: released later, it would come off the
    counter made anew under that key, which holds other requests' reservations."""
    return (keys is not None and key in keys) or (suffix is not None and key.endswith(suffix))


def fits(total: float, amount: float, limit: float) -> bool:
    """The comparison every backend makes, with a tolerance for float sums of cents."""
    return total + amount <= limit + 1e-9 * max(1.0, abs(limit))


def _check_amounts(what: str, **amounts: float) -> None:
    """Refuses an amount that would corrupt the books: negative (room a hard limit never had), NaN
    (a counter no comparison refuses again) or infinite."""
    for name, value in amounts.items():
        if not 0 <= value < math.inf:
            raise ValueError(f"{what} needs `{name}` of at least 0 and finite, got {value!r}")
