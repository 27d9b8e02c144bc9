"""LiveFacts: the evaluator's FactSource over a store — cached reads, staleness, failure behaviour."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from state_helpers import FakeClock, StoreFactory, deployment, free_port, make_registry

from policyrouter.facts import MISSING, FactSource
from policyrouter.registry import Registry
from policyrouter.state import LiveFacts, StateError, open_store
from policyrouter.state.memory import MemoryStore
from policyrouter.state.model import Counter


class CountingStore(MemoryStore):
    """A memory store that records which keys each read asked for."""

    def __init__(self, registry: Registry, **options: object) -> None:
        super().__init__(registry, **options)  # type: ignore[arg-type]
        self.reads: list[list[str]] = []

    def _read(self, now: float, keys: Sequence[str]) -> list[Counter]:
        self.reads.append(list(keys))
        return super()._read(now, keys)


def test_live_facts_is_a_fact_source(clock: FakeClock) -> None:
    registry = make_registry()
    f: FactSource = LiveFacts(MemoryStore(registry, clock=clock))
    assert f.custom("anything", None) is MISSING
    assert f.now() == clock() and f.now().tzinfo is registry.settings.timezone
    assert f.quota_left("local") == 1.0  # no quota: all of it left
    assert f.budget_left("work") == 1.0 and f.spend("work") == 0  # a provider without a budget
    assert f.budget_left("week") == 1.0  # counted, but no budget on it


def test_facts_come_from_one_snapshot_read_and_are_cached(clock: FakeClock) -> None:
    registry = make_registry()
    store = CountingStore(registry, clock=clock)
    f = LiveFacts(store, ttl=1.0)
    f.quota_left("work")
    f.quota_left("work")
    f.errors("work")
    f.cooldown("personal")
    assert len(store.reads) == 1  # every limit, error count and cooldown in one round trip
    quota_key = store.layout.quota("work", clock(), store.run_id).key  # type: ignore[union-attr]
    assert {quota_key, "errors:work", "cooldown:personal"} <= set(store.reads[0])
    f.round_robin("sonnet")  # not in the snapshot: read on its own, then cached
    f.round_robin("sonnet")
    assert store.reads[1:] == [["rr:sonnet"]]


def test_cached_reads_are_stale_for_at_most_ttl(clock: FakeClock) -> None:
    registry = make_registry()
    store = MemoryStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    f = LiveFacts(store, ttl=1.0)
    assert f.quota_left("work") == 1.0
    store.settle(store.reserve(work, tokens=5000, cost=0), input_tokens=5000, output_tokens=0, cost=0)
    assert f.quota_left("work") == 1.0  # stale, as documented
    clock.advance(0.5)
    assert f.quota_left("work") == 1.0
    clock.advance(0.6)
    assert f.quota_left("work") == 0.5
    f2 = LiveFacts(store, ttl=60)
    store.release(store.reserve(work, tokens=1, cost=0), error="x")
    assert f2.errors("work") == 1
    store.release(store.reserve(work, tokens=1, cost=0), error="x")
    assert f2.errors("work") == 1
    f2.clear()
    assert f2.errors("work") == 2


def test_a_new_window_is_read_at_once_despite_the_cache(clock: FakeClock) -> None:
    registry = make_registry(work_quota=1000)
    store = MemoryStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    clock.set(datetime(2024, 3, 15, 11, 59, tzinfo=timezone.utc))
    store.settle(store.reserve(work, tokens=1000, cost=0), input_tokens=1000, output_tokens=0, cost=0)
    f = LiveFacts(store, ttl=3600)
    assert f.quota_left("work") == 0
    clock.set(datetime(2024, 3, 15, 12, 0, tzinfo=timezone.utc))
    assert f.quota_left("work") == 1.0


def test_the_cache_is_bounded(clock: FakeClock) -> None:
    registry = make_registry()
    f = LiveFacts(MemoryStore(registry, clock=clock), maxsize=2)
    for model in registry.models:  # counters read one by one (outside the snapshot)
        f.round_robin(model)
    assert len(registry.models) > 2 and len(f._cache) == 2


def test_a_decision_sees_one_instant(clock: FakeClock) -> None:
    store = MemoryStore(make_registry(), clock=clock)
    store.cooldown("openai", 30)
    live = LiveFacts(store, ttl=0)
    start = clock()
    view = live.for_decision()
    clock.advance(10)
    assert view.now() == start and live.now() == clock()
    assert view.cooldown("openai") == 30 and live.cooldown("openai") == 20


# -- decision views keep the values they work out ------------------------------------------------


def test_decision_views_share_fact_values_until_this_process_writes(clock: FakeClock) -> None:
    registry = make_registry()
    store = CountingStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    live = LiveFacts(store, ttl=60)
    assert live.for_decision().quota_left("work") == 1.0
    store.settle(store.reserve(work, tokens=5000, cost=0), input_tokens=5000, output_tokens=0, cost=0)
    assert live.for_decision().quota_left("work") == 1.0  # another writer: stale for up to ttl
    live.forget(work)  # this process wrote it
    assert live.for_decision().quota_left("work") == 0.5
    assert len(store.reads) == 2  # the snapshot, then the refresh of what the call wrote


def test_what_a_settle_returns_needs_no_read_again(clock: FakeClock) -> None:
    registry = make_registry()
    store = CountingStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    live = LiveFacts(store, ttl=60)
    assert live.for_decision().quota_left("work") == 1.0
    fresh = store.settle(store.reserve(work, tokens=5000, cost=0), input_tokens=5000, output_tokens=0, cost=0)
    live.forget(work, fresh)
    view = live.for_decision()
    assert view.quota_left("work") == 0.5 and view.errors("work") == 0
    assert len(store.reads) == 1  # the first snapshot only
    live.forget(work, {})  # the store failed and kept the writes: nothing fresh, so read again
    assert live.for_decision().quota_left("work") == 0.5 and len(store.reads) == 2


def test_a_counter_read_on_its_own_is_read_again_after_a_settle(clock: FakeClock) -> None:
    registry = make_registry()  # no rpm limit on `work`: its rpm counter is not in the snapshot
    store = MemoryStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    live = LiveFacts(store, ttl=60)
    assert live.for_decision().rate("rpm", "work") == 0
    live.forget(work, store.settle(store.reserve(work, tokens=10, cost=0), input_tokens=5, output_tokens=5, cost=0))
    assert live.for_decision().rate("rpm", "work") == 1


def test_decision_views_read_a_new_window_at_once(clock: FakeClock) -> None:
    registry = make_registry(work_quota=1000)
    store = MemoryStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    clock.set(datetime(2024, 3, 15, 11, 59, tzinfo=timezone.utc))
    store.settle(store.reserve(work, tokens=1000, cost=0), input_tokens=1000, output_tokens=0, cost=0)
    live = LiveFacts(store, ttl=3600)
    assert live.for_decision().quota_left("work") == 0
    assert live.for_decision().quota_left("work") == 0
    clock.set(datetime(2024, 3, 15, 12, 0, tzinfo=timezone.utc))  # the 5 h window ends
    assert live.for_decision().quota_left("work") == 1.0


def test_decision_views_count_a_cooldown_down(clock: FakeClock) -> None:
    store = MemoryStore(make_registry(), clock=clock)
    store.cooldown("openai", 30)
    live = LiveFacts(store, ttl=3600)
    assert live.for_decision().cooldown("openai") == 30
    clock.advance(10)
    assert live.for_decision().cooldown("openai") == 20
    clock.advance(25)
    assert live.for_decision().cooldown("openai") == 0


def test_live_facts_read_every_store(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    store.reserve(work, tokens=2500, cost=0.5)
    f = LiveFacts(store, ttl=1)
    assert (f.quota_left("work"), f.budget_left("run"), f.in_flight("work")) == (0.75, 0.9, 1)
    assert f.rate("rpm", "work") == 1 and f.rate("tpm", "sonnet@work") == 2500  # in flight counts


# -- when the store fails --------------------------------------------------------------------------


def dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


@pytest.mark.parametrize(
    ("setting", "budget_raises", "quota_raises"),
    [(None, True, False), ("closed", True, True), ("open", False, False)],
)
def test_fact_reads_fail_as_on_state_error_says(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, setting: str | None, budget_raises: bool, quota_raises: bool
) -> None:
    registry = make_registry(on_state_error=setting)
    store = open_store(registry, dead_redis(), clock=clock, socket_timeout=0.2)
    f = LiveFacts(store)
    caplog.set_level(logging.WARNING, logger="policyrouter.state")
    for read, raises, fresh in (
        (lambda: f.budget_left("run"), budget_raises, 1.0),
        (lambda: f.quota_left("work"), quota_raises, 1.0),
    ):
        if raises:
            with pytest.raises(StateError) as e:
                read()
            assert store.url in str(e.value) and "help:" in str(e.value)
        else:
            assert read() == fresh
    if not (budget_raises and quota_raises):
        assert "fresh state" in caplog.text


@pytest.mark.parametrize(
    ("setting", "key", "cost", "offline"),
    [
        (None, "sonnet@work", 0.1, None),  # a hard budget applies: closed
        (None, "local-coder@local", 0.0, True),  # free: no hard budget can break: open
        ("open", "sonnet@work", 0.1, True),
        ("closed", "local-coder@local", 0.0, None),
    ],
)
def test_reserve_fails_as_on_state_error_says(
    clock: FakeClock, setting: str | None, key: str, cost: float, offline: bool | None
) -> None:
    registry = make_registry(on_state_error=setting)
    store = open_store(registry, dead_redis(), clock=clock, socket_timeout=0.2)
    if offline is None:
        with pytest.raises(StateError, match=r"redis://127\.0\.0\.1"):
            store.reserve(deployment(registry, key), tokens=10, cost=cost)
    else:
        r = store.reserve(deployment(registry, key), tokens=10, cost=cost)
        assert r.offline
        store.settle(r, input_tokens=1, output_tokens=1, cost=cost)
        assert store.pending == 1  # kept, not dropped


def test_usage_says_when_each_limit_resets(clock: FakeClock) -> None:
    registry = make_registry(work_rpm=10)
    store = MemoryStore(registry, clock=clock, run_id="r")
    store.reserve(deployment(registry, "sonnet@work"), tokens=2000, cost=0.5)
    f = LiveFacts(store)
    quota = f.usage("quota", "work")
    assert quota is not None and (quota.used, quota.reserved, quota.limit) == (0, 2000, 10_000)
    assert quota.resets_at == datetime(2024, 3, 15, 12, tzinfo=timezone.utc)
    month = f.usage("budget", "month")
    assert month is not None and month.resets_at == datetime(2024, 4, 1, tzinfo=registry.settings.timezone)
    run = f.usage("budget", "run")
    assert run is not None and run.resets_at is None and run.reserved == 0.5
    rpm = f.usage("rpm", "work")
    assert rpm is not None and rpm.reserved == 1 and rpm.resets_at == datetime(2024, 3, 15, 10, 1, tzinfo=timezone.utc)
    assert f.usage("quota", "local") is None and f.usage("budget", "week") is None and f.usage("tpm", "work") is None


@pytest.mark.parametrize(
    "amounts",
    [{"tokens": -1}, {"tokens": math.nan}, {"tokens": math.inf}, {"cost": -0.01}, {"cost": math.nan},
     {"lease": -5}, {"lease": 0}, {"lease": math.nan}],
)  # fmt: skip
def test_amounts_that_would_corrupt_the_books_are_refused_by_reserve(
    amounts: dict[str, float], clock: FakeClock
) -> None:
    # a NaN cost held a hard budget shut for good; a NaN token count failed every later reserve
    registry = make_registry()
    store = MemoryStore(registry, clock=clock)
    with pytest.raises(ValueError, match=f"`{next(iter(amounts))}`"):
        store.reserve(deployment(registry, "sonnet@work"), **{"tokens": 10, "cost": 0.01, **amounts})
    assert LiveFacts(store, ttl=0).in_flight("work") == 0  # nothing held


@pytest.mark.parametrize(
    "amounts",
    [{"input_tokens": -1000}, {"output_tokens": math.nan}, {"cost": -5.0}, {"cost": math.nan}, {"latency": -1.0}],
)
def test_amounts_that_would_corrupt_the_books_are_refused_by_settle(
    amounts: dict[str, float], clock: FakeClock
) -> None:
    # a negative settle gave a hard budget room it never had
    registry = make_registry()
    store = MemoryStore(registry, clock=clock)
    held = store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=0.01)
    with pytest.raises(ValueError, match=f"`{next(iter(amounts))}`"):
        store.settle(held, **{"input_tokens": 5, "output_tokens": 5, "cost": 0.01, **amounts})
    store.settle(held, input_tokens=5, output_tokens=5, cost=0.01)  # still held: settled right after
    assert LiveFacts(store, ttl=0).spend("run") == pytest.approx(0.01)


def test_a_failed_store_is_not_asked_again_for_a_while(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    # One outage costs one wait on the store per `ttl`, not one per fact: a store that does not answer
    # (a network that drops packets) would hold every decision for a timeout per fact it reads.
    registry = make_registry(on_state_error="open")
    store = open_store(registry, dead_redis(), clock=clock, socket_timeout=0.2)
    asked: list[list[str]] = []
    read = store.read
    store.read = lambda keys: (asked.append(list(keys)), read(keys))[1]  # type: ignore[method-assign]
    live = LiveFacts(store, ttl=1)
    caplog.set_level(logging.WARNING, logger="policyrouter.state")

    view = live.for_decision()
    facts = (view.quota_left("work"), view.quota_left("personal"), view.cooldown("work"), view.budget_left("run"))
    assert facts == (1.0, 1.0, 0.0, 1.0)  # a fresh state, as on_state_error: open says
    assert len(asked) == 1  # the snapshot; no fact asked again
    assert caplog.text.count("fresh state") == 1
    live.for_decision().quota_left("work")
    assert len(asked) == 1
    clock.advance(1.5)
    live.for_decision().quota_left("work")
    assert len(asked) == 2  # asked again once `ttl` has passed


def test_the_memory_store_deletes_the_counters_of_windows_gone_by(clock: FakeClock) -> None:
    # each minute's rpm counter, each 5h quota window's, was kept for as long as the process ran
    registry = make_registry()
    store = MemoryStore(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    sizes = []
    for _ in range(50):
        store.settle(store.reserve(work, tokens=10, cost=0.01), input_tokens=5, output_tokens=5, cost=0.01)
        clock.advance(3600)  # an hour: the minute windows of the call before are long gone
        sizes.append(len(store._cells))
    assert max(sizes) < 20  # it was 4 more for each call
