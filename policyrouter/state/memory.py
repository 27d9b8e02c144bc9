"""`memory://`: the state of one process, for tests and one-off scripts. A lock makes each step atomic."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policyrouter.registry import Registry
from policyrouter.state.model import Check, Counter, Hold, Op
from policyrouter.state.store import SWEEP_EVERY, StateStore, fits, forgets


@dataclass(slots=True)
class _Cell:
    used: float = 0.0
    reserved: float = 0.0
    expires_at: float | None = None


_ZERO = Counter()


class MemoryStore(StateStore):
    blocking = False  # its lock is held for microseconds, never across I/O

    def __init__(self, registry: Registry, url: str = "memory://", **options: Any) -> None:
        super().__init__(registry, url, **options)
        self._cells: dict[str, _Cell] = {}
        self._lists: dict[str, list[float]] = {}
        self._reservations: dict[str, tuple[float, tuple[Hold, ...]]] = {}
        self._next_lease_end = math.inf  # no reservation's lease ends before this
        self._next_sweep = -math.inf  # when the counters whose window has passed are next deleted

    def _new_locks(self) -> None:
        super()._new_locks()
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> _Cell | None:
        cell = self._cells.get(key)
        if cell is not None and cell.expires_at is not None and cell.expires_at <= now:
            del self._cells[key]
            return None
        return cell

    def _cell(self, key: str, now: float, ttl: float | None) -> _Cell:
        cell = self._live(key, now) or self._cells.setdefault(key, _Cell())
        if ttl is not None:
            cell.expires_at = now + ttl
        return cell

    def _reap_locked(self, now: float) -> int:
        if now >= self._next_sweep:  # a counter of a window gone by is never read or written again
            self._next_sweep = now + SWEEP_EVERY
            for key in [k for k, c in self._cells.items() if c.expires_at is not None and c.expires_at <= now]:
                del self._cells[key]
        if now < self._next_lease_end:  # the common case: no lease has ended, nothing to scan
            return 0
        expired = [rid for rid, (until, _) in self._reservations.items() if until <= now]
        for rid in expired:
            self._drop_holds(rid, now)
        self._next_lease_end = min((until for until, _ in self._reservations.values()), default=math.inf)
        return len(expired)

    def _drop_holds(self, rid: str, now: float) -> bool:
        entry = self._reservations.pop(rid, None)
        if entry is None:
            return False
        for hold in entry[1]:
            cell = self._live(hold.key, now)
            if cell is not None:
                cell.reserved -= hold.amount
        return True

    def _reserve(
        self, now: float, rid: str, lease_until: float, checks: Sequence[Check], holds: Sequence[Hold]
    ) -> tuple[int | None, list[Counter]]:
        with self._lock:
            self._reap_locked(now)
            counters = self._read_locked(now, [check.key for check in checks])
            for i, (check, c) in enumerate(zip(checks, counters, strict=True)):
                if check.limit is not None and not fits(c.used + c.reserved, check.amount, check.limit):
                    return i, counters
            for hold in holds:
                self._cell(hold.key, now, hold.ttl).reserved += hold.amount
            self._reservations[rid] = (lease_until, tuple(holds))
            self._next_lease_end = min(self._next_lease_end, lease_until)
            return None, counters

    def _finish(self, now: float, rid: str, ops: Sequence[Op], read: Sequence[str]) -> tuple[bool, list[Counter]]:
        with self._lock:
            self._reap_locked(now)
            live = self._drop_holds(rid, now)
            self._apply_locked(now, ops)
            return live, self._read_locked(now, read)

    def _apply(self, now: float, ops: Sequence[Op]) -> list[float]:
        with self._lock:
            self._reap_locked(now)
            return self._apply_locked(now, ops)

    def _apply_locked(self, now: float, ops: Sequence[Op]) -> list[float]:
        out = []
        for op in ops:
            if op.action == "push":
                samples = self._lists.setdefault(op.key, [])
                samples.insert(0, op.value)
                del samples[self.latency_samples :]
                out.append(op.value)
                continue
            if op.action == "max" and (kept := self._live(op.key, now)) is not None and kept.used >= op.value:
                out.append(kept.used)  # the larger value stays, with its own expiry
                continue
            cell = self._cell(op.key, now, op.ttl)
            cell.used = cell.used + op.value if op.action == "add" else op.value
            out.append(cell.used)
        return out

    def _read(self, now: float, keys: Sequence[str]) -> list[Counter]:
        with self._lock:
            return self._read_locked(now, keys)

    def _read_locked(self, now: float, keys: Sequence[str]) -> list[Counter]:
        out = []
        for key in keys:
            cell = self._cells.get(key)
            if cell is None:
                out.append(_ZERO)
            elif cell.expires_at is not None and cell.expires_at <= now:
                del self._cells[key]
                out.append(_ZERO)
            else:
                out.append(Counter(cell.used, cell.reserved))
        return out

    def _samples(self, key: str) -> list[float]:
        with self._lock:
            return list(self._lists.get(key, ()))

    def _delete(self, keys: Sequence[str] | None, suffix: str | None) -> int:
        with self._lock:
            if keys is None and suffix is None:
                n = len(self._cells) + len(self._lists) + len(self._reservations)
                self._cells.clear()
                self._lists.clear()
                self._reservations.clear()
                return n
            doomed = list(keys or ()) + [k for k in (*self._cells, *self._lists) if suffix and k.endswith(suffix)]
            for rid, (until, holds) in self._reservations.items():  # their holds go with the counters
                self._reservations[rid] = (until, tuple(h for h in holds if not forgets(h.key, keys, suffix)))
            return sum((self._cells.pop(k, None) or self._lists.pop(k, None)) is not None for k in doomed)

    def _reap(self, now: float) -> int:
        with self._lock:
            return self._reap_locked(now)

    def _keys(self, prefix: str) -> list[str]:
        with self._lock:
            return [k for k in self._cells if k.startswith(prefix)]

    def _close(self) -> None:
        pass
