"""Concurrency, with real threads and real processes: no overspend beyond the bound, no lost spend,
and the reservation of a process killed with SIGKILL expires.

The bound: settled spend never exceeds a hard budget's limit by more than what the requests in flight
cost beyond their estimates. Over a whole test that is at most the sum of `max(0, actual - estimate)`
over the requests that went through.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from state_helpers import T0, FakeClock, StoreFactory, deployment, make_registry

from policyrouter.registry import Registry
from policyrouter.state import BudgetExceededError, LiveFacts, QuotaExhaustedError, StateStore

LIMIT = 1.0
ESTIMATE = 0.05
# Children start from a fresh server process, not forked from this one, which has threads of other tests.
PROCESSES = multiprocessing.get_context("forkserver")


def run_spend(store: StateStore) -> tuple[float, float]:
    meter = store.layout.spend("run", store.now(), store.run_id)
    assert meter is not None
    c = store.read([meter.key])[0]
    return c.used, c.reserved


def one_request(store: StateStore, registry: Registry, factor: float) -> tuple[float, float] | None:
    """Reserve the estimate, "call", settle the actual cost; None when refused."""
    try:
        r = store.reserve(deployment(registry, "sonnet@personal"), tokens=1000, cost=ESTIMATE)
    except BudgetExceededError:
        return None
    time.sleep(random.random() * 0.002)  # the call: let other requests interleave
    actual = ESTIMATE * factor
    store.settle(r, input_tokens=800, output_tokens=200, cost=actual)
    return ESTIMATE, actual


def check_bound(store: StateStore, results: list[tuple[float, float] | None]) -> None:
    done = [r for r in results if r is not None]
    settled, reserved = run_spend(store)
    assert settled == pytest.approx(sum(actual for _, actual in done))  # nothing lost, nothing twice
    assert reserved == pytest.approx(0, abs=1e-9)
    overrun = sum(max(0.0, actual - est) for est, actual in done)
    assert settled <= LIMIT + overrun + 1e-9
    assert len(done) >= int(LIMIT / (ESTIMATE * 1.5))  # the budget was actually used, not refused


@pytest.mark.parametrize("exact", [True, False], ids=["actual=estimate", "actual varies"])
def test_threads_never_overspend(store_factory: StoreFactory, exact: bool) -> None:
    registry = make_registry(run_usd=LIMIT)
    store = store_factory(registry, clock=FakeClock(), run_id="threads")
    rng = random.Random(7)
    factors = [1.0 if exact else rng.uniform(0.5, 1.5) for _ in range(32)]
    results: list[tuple[float, float] | None] = [None] * len(factors)
    barrier = threading.Barrier(len(factors))

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = one_request(store, registry, factors[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(factors))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_bound(store, results)
    if exact:  # with exact estimates the limit is met exactly: 20 x $0.05
        assert sum(r is not None for r in results) == 20
        assert run_spend(store)[0] == pytest.approx(LIMIT)


def test_threads_share_a_quota_exactly(store_factory: StoreFactory) -> None:
    registry = make_registry(work_quota=10_000, run_usd=1000)
    store = store_factory(registry, clock=FakeClock())
    work = deployment(registry, "sonnet@work")
    barrier = threading.Barrier(24)
    granted: list[int] = []

    def worker() -> None:
        barrier.wait()
        try:
            store.reserve(work, tokens=1000, cost=0.0)
            granted.append(1)
        except QuotaExhaustedError:
            pass

    threads = [threading.Thread(target=worker) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 10
    assert LiveFacts(store, ttl=0).in_flight("work") == 10


# -- several processes -------------------------------------------------------------------------------


def _process_worker(make: StoreFactory, registry: Registry, factors: list[float], start: Any, out: Any) -> None:
    store = make(registry, clock=lambda: T0, run_id="fleet")
    start.wait()
    out.put([one_request(store, registry, f) for f in factors])
    store.close()


@pytest.mark.parametrize("exact", [True, False], ids=["actual=estimate", "actual varies"])
def test_processes_never_overspend(shared_store_factory: StoreFactory, exact: bool) -> None:
    registry = make_registry(run_usd=LIMIT)
    rng = random.Random(11)
    start, out = PROCESSES.Event(), PROCESSES.Queue()
    procs = []
    for _ in range(4):
        factors = [1.0 if exact else rng.uniform(0.5, 1.5) for _ in range(10)]
        p = PROCESSES.Process(target=_process_worker, args=(shared_store_factory, registry, factors, start, out))
        p.start()
        procs.append(p)
    start.set()
    results = [r for _ in procs for r in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    store = shared_store_factory(registry, clock=lambda: T0, run_id="fleet")
    check_bound(store, results)
    if exact:
        assert sum(r is not None for r in results) == 20


def _holder(make: StoreFactory, registry: Registry, ready: Any) -> None:
    store = make(registry, clock=lambda: T0, run_id="victim")
    work = deployment(registry, "sonnet@work")
    r = store.reserve(work, tokens=100, cost=0.3)
    store.settle(r, input_tokens=50, output_tokens=50, cost=0.25)
    store.reserve(work, tokens=100, cost=0.5)  # held when the process dies
    ready.set()
    time.sleep(60)


def test_a_killed_process_loses_no_spend_and_its_reservation_expires(shared_store_factory: StoreFactory) -> None:
    registry = make_registry(run_usd=1.0)
    ready = PROCESSES.Event()
    p = PROCESSES.Process(target=_holder, args=(shared_store_factory, registry, ready))
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
    p.join(10)
    assert p.exitcode == -signal.SIGKILL

    clock = FakeClock(T0)
    store = shared_store_factory(registry, clock=clock, run_id="victim")
    assert run_spend(store) == (pytest.approx(0.25), pytest.approx(0.5))  # settled kept, hold still there
    assert LiveFacts(store, ttl=0).in_flight("work") == 1
    work = deployment(registry, "sonnet@work")
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=100, cost=0.5)  # 0.25 + 0.5 held + 0.5 > 1.0
    clock.advance(store.reservation_ttl + 1)
    store.reserve(work, tokens=100, cost=0.5)  # the dead process's hold expired
    assert run_spend(store) == (pytest.approx(0.25), pytest.approx(0.5))
    assert LiveFacts(store, ttl=0).in_flight("work") == 1


def _busy_settler(make: StoreFactory, registry: Registry, confirmed: Any) -> None:
    store = make(registry, clock=lambda: T0, run_id="busy")
    work = deployment(registry, "sonnet@personal")
    while True:
        r = store.reserve(work, tokens=10, cost=0.01)
        store.settle(r, input_tokens=5, output_tokens=5, cost=0.01)
        confirmed.send(1)  # this settle returned: its spend must be in the store


def test_a_process_killed_mid_traffic_loses_no_settled_spend(shared_store_factory: StoreFactory) -> None:
    registry = make_registry(run_usd=1e6)
    receive, send = PROCESSES.Pipe(duplex=False)
    p = PROCESSES.Process(target=_busy_settler, args=(shared_store_factory, registry, send))
    p.start()
    confirmed = 0
    deadline = time.monotonic() + 20
    while confirmed < 50 and time.monotonic() < deadline:  # kill it in full flow
        if receive.poll(0.1):
            confirmed += receive.recv()
    os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
    p.join(10)
    while receive.poll(0):
        confirmed += receive.recv()
    assert confirmed >= 50
    store = shared_store_factory(registry, clock=lambda: T0, run_id="busy")
    settled, _ = run_spend(store)
    # every confirmed settle is there; at most one more committed before its confirmation was sent
    assert confirmed * 0.01 - 1e-9 <= settled <= (confirmed + 1) * 0.01 + 1e-9


FORK_REGISTRY = """\
providers:
  work: {litellm_provider: anthropic, quota: {limit: 5M, unit: tokens, window: 5h}}
  personal: {litellm_provider: anthropic}
models:
  sonnet:
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}
    deployments: [{provider: work, model_id: claude-sonnet-4}, {provider: personal, model_id: claude-sonnet-4}]
budgets:
  run: {usd: 5.00, hard: true}
"""
FORK_SCRIPT = """
import os, signal, sys, threading
import policyrouter
from policyrouter.state import live as live_module

router = policyrouter.load(sys.argv[1], state=sys.argv[2], events=sys.argv[3])
router.decide("sonnet")  # opens the store and the live facts
store, live, sink = router.store, router.live_facts, router.events._sinks[0]
held, done = threading.Event(), threading.Event()

def hold():  # another thread of the parent holds every lock of ours when the parent forks
    locks = [router._lock, live._lock, sink._lock, store._pending_lock, live_module._joining.lock]
    locks += [getattr(store, name) for name in ("_lock", "_conns_lock") if hasattr(store, name)]
    for lock in locks:
        lock.acquire()
    held.set()
    done.wait()
    for lock in locks:
        lock.release()

threading.Thread(target=hold, daemon=True).start()
held.wait()
child = os.fork()
if child == 0:
    signal.alarm(20)  # a child that waits on a lock for good is killed: exit code -14
    threading.Thread(target=lambda: None).start()  # a fresh SQLite connection in another thread
    deployment = router.registry.models["sonnet"].deployments[0]
    reservation = store.reserve(deployment, tokens=100, cost=0.01)
    store.settle(reservation, input_tokens=50, output_tokens=50, cost=0.01)
    live.clear()
    router.decide("sonnet")
    router.events.emit("child", request_id="r", run_id="child-run")
    router.run("child-run").decide("sonnet")
    os._exit(0)
_, status = os.waitpid(child, 0)
done.set()
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("state", ["memory://", "sqlite:///state.db"])
def test_a_child_forked_while_another_thread_holds_our_locks_does_not_wait_for_them(tmp_path: Path, state: str) -> None:
    # Only the forking thread lives on in a child: a lock another thread held stayed held there for
    # good, and the child's first reservation, decision or event waited forever.
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "registry.yaml").write_text(FORK_REGISTRY)
    (config / "card.policy").write_text("route sonnet when quota(work) > 20% prefer work else personal\n")
    events = tmp_path / "events.jsonl"
    repo = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(config), state, str(events)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", done.stderr  # the child finished; -14: it waited on a lock
    assert [json.loads(line)["event"] for line in events.read_text().splitlines()] == ["child"]
