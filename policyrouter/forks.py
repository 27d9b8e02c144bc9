"""Locks that a forked child can take.

Only the thread that calls `fork()` lives on in the child. A lock that another thread of the parent
held at that moment stays held in the child for good, so the child's first call that takes it would
wait forever: a batch job that forks workers (`multiprocessing` on Linux) while a thread of its own
writes an event or settles a call. Objects that keep locks register here, and in each child their
locks are made anew. What such a lock guards is as the parent's other thread left it, which for our
locks is a consistent state, at worst missing that thread's last update.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol


class HoldsLocks(Protocol):
    def _new_locks(self) -> None:
        """Make every lock of the object anew (in a forked child)."""


_holders: weakref.WeakSet[HoldsLocks] = weakref.WeakSet()
_holders_lock = threading.Lock()


def renew_locks_after_fork(holder: HoldsLocks) -> None:
    """Call `holder._new_locks()` in every child forked from now on, while `holder` lives."""
    with _holders_lock:
        _holders.add(holder)


def _after_fork_in_child() -> None:
    global _holders_lock
    _holders_lock = threading.Lock()
    for holder in list(_holders):
        holder._new_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
