"""The state contract: one suite, run against memory, SQLite and a real Redis server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from state_helpers import FakeClock, StoreFactory, deployment, make_registry

from policyrouter.registry import Budget, Registry, Window
from policyrouter.state import (
    BudgetExceededError,
    LiveFacts,
    QuotaExhaustedError,
    RateLimitedError,
    ReservationError,
    StateStore,
)
from policyrouter.state import layout as keys
from policyrouter.state.model import Counter


def facts(store: StateStore, run_id: str | None = None) -> LiveFacts:
    return LiveFacts(store, ttl=0, run_id=run_id)  # no caching: every read goes to the store


def quota_counter(store: StateStore, provider: str = "work") -> tuple[float, float]:
    meter = store.layout.quota(provider, store.now(), store.run_id)
    assert meter is not None
    c = store.read([meter.key])[0]
    return c.used, c.reserved


def spend_counter(store: StateStore, scope: str) -> tuple[float, float]:
    meter = store.layout.spend(scope, store.now(), store.run_id)
    assert meter is not None
    c = store.read([meter.key])[0]
    return c.used, c.reserved


def test_reserve_holds_and_settle_records(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    f = facts(store)

    r = store.reserve(work, tokens=3000, cost=0.05)
    assert r.warnings == () and not r.offline
    assert quota_counter(store) == (0, 3000)
    assert spend_counter(store, "run") == (0, 0.05)
    assert f.in_flight("work") == 1
    assert f.quota_left("work") == pytest.approx(0.7)  # 3000 of 10k held
    assert f.spend("run") == 0  # spend counts settled calls only
    assert f.budget_left("run") == pytest.approx(0.99)  # ... the share left counts what is held

    store.settle(r, input_tokens=2000, output_tokens=500, cost=0.04, latency=1.5)
    assert quota_counter(store) == (2500, pytest.approx(0))
    assert spend_counter(store, "run") == (pytest.approx(0.04), pytest.approx(0))
    for scope in ("run", "day", "week", "month"):
        assert f.spend(scope) == pytest.approx(0.04)
    assert f.spend("openai") == 0
    assert f.in_flight("work") == 0
    assert f.rate("rpm", "work") == 1 and f.rate("rpm", "sonnet@work") == 1
    assert f.rate("tpm", "work") == 2500 and f.rate("tpm", "sonnet@work") == 2500
    assert f.rate("rpm", "personal") == 0
    assert f.latency("work") == 1.5 and f.latency("personal") is None
    assert f.quota_left("work") == pytest.approx(0.75)


def test_hard_quota_refuses_what_does_not_fit(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(work_quota=10_000)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    store.reserve(work, tokens=6000, cost=0.01)
    with pytest.raises(QuotaExhaustedError) as e:
        store.reserve(work, tokens=5000, cost=0.01)
    err = e.value
    assert (err.provider, err.kind, err.unit) == ("work", "quota", "tokens")
    assert (err.used, err.reserved, err.requested, err.limit) == (0, 6000, 5000, 10_000)
    assert err.resets_at == datetime(2024, 3, 15, 12, tzinfo=timezone.utc)  # 5h windows since the epoch
    assert err.code == "quota_exhausted"
    assert "`work`" in str(err) and "10k tokens" in str(err)
    store.reserve(work, tokens=4000, cost=0.01)  # exactly what is left still fits
    assert quota_counter(store) == (0, 10_000)


@pytest.mark.parametrize(("unit", "first", "second"), [("requests", 1, 1), ("usd", 0.6, 0.5)])
def test_quota_in_requests_or_usd(
    store_factory: StoreFactory, clock: FakeClock, unit: str, first: float, second: float
) -> None:
    registry = make_registry(work_quota=1 if unit == "requests" else 1.0, work_quota_unit=unit)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    r = store.reserve(work, tokens=100_000, cost=0.6)  # tokens do not count against these units
    with pytest.raises(QuotaExhaustedError):
        store.reserve(work, tokens=1, cost=0.5)
    store.release(r)
    r = store.reserve(work, tokens=1, cost=0.5)
    store.settle(r, input_tokens=10, output_tokens=10, cost=0.5)
    assert quota_counter(store) == (pytest.approx(1 if unit == "requests" else 0.5), pytest.approx(0))


def test_hard_budget_refuses_and_free_calls_pass(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(run_usd=1.0)
    store = store_factory(registry, clock=clock)
    work, local = deployment(registry, "sonnet@work"), deployment(registry, "local-coder@local")
    r = store.reserve(work, tokens=10, cost=0.6)
    with pytest.raises(BudgetExceededError) as e:
        store.reserve(work, tokens=10, cost=0.5)
    assert (e.value.budget, e.value.spent, e.value.limit, e.value.resets_at) == ("run", 0.6, 1.0, None)
    assert e.value.code == "budget_exceeded" and "resets with the run" in str(e.value)
    store.settle(r, input_tokens=10, output_tokens=10, cost=0.99)
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=10, cost=0.02)
    store.reserve(local, tokens=10, cost=0.0)  # a free deployment stays eligible


def test_provider_budget_applies_to_its_deployments_only(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(openai_usd=1.0, run_usd=100)
    store = store_factory(registry, clock=clock)
    gpt, work = deployment(registry, "gpt-4o@openai"), deployment(registry, "sonnet@work")
    with pytest.raises(BudgetExceededError) as e:
        store.reserve(gpt, tokens=10, cost=1.5)
    assert e.value.budget == "openai"
    assert e.value.resets_at == datetime(2024, 4, 1, tzinfo=registry.settings.timezone)
    store.reserve(work, tokens=10, cost=1.5)  # not an openai call


def test_soft_limits_warn_and_never_refuse(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(month_usd=1.0, month_hard=False, run_usd=100, work_quota_hard=False)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    r = store.reserve(work, tokens=20_000, cost=1.5)
    over = {(u.kind, u.name): u for u in r.warnings}
    assert set(over) == {("budget", "month"), ("quota", "work")}
    assert over["budget", "month"].over and over["budget", "month"].share_left == 0.0
    assert over["quota", "work"].reserved == 20_000 and not over["quota", "work"].hard
    r2 = store.reserve(work, tokens=1, cost=0.1)
    assert ("budget", "month") in {(u.kind, u.name) for u in r2.warnings}


@pytest.mark.parametrize("anchor", [None, datetime(2024, 1, 1, 9)], ids=["no anchor", "an anchor in local time"])
def test_a_hard_quota_holds_across_the_autumn_clock_change(
    store_factory: StoreFactory, clock: FakeClock, anchor: datetime | None
) -> None:
    # In Berlin's own time the 30m window at 02:30 CEST ran to 02:00 CET, -30 min long: its counter
    # expired a second after each write, and the quota let a second 9k through. With a naive anchor,
    # windows were an hour off in summer and expired at once the same way.
    window = Window("30m", seconds=1800, anchor=anchor)
    registry = make_registry(work_quota=10_000, work_quota_window=window)
    work = deployment(registry, "sonnet@work")
    for moment in (
        datetime(2024, 10, 27, 0, 35, tzinfo=timezone.utc),
        datetime(2024, 7, 1, 10, 5, tzinfo=timezone.utc),
    ):
        clock.set(moment)
        store = store_factory(registry, clock=clock)
        store.settle(store.reserve(work, tokens=9000, cost=0), input_tokens=9000, output_tokens=0, cost=0)
        clock.advance(2)
        with pytest.raises(QuotaExhaustedError):
            store.reserve(work, tokens=9000, cost=0)
        store.reset(everything=True)


def test_a_free_call_over_a_hard_budget_is_no_soft_warning(store_factory: StoreFactory, clock: FakeClock) -> None:
    # A free call passes a hard budget that earlier calls took over its limit; it was reported as a
    # soft budget going over (a `budget_warning` with `hard: false`) for a budget declared hard.
    registry = make_registry(run_usd=0.02)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    store.settle(store.reserve(work, tokens=1, cost=0.02), input_tokens=1, output_tokens=1, cost=0.05)
    assert store.reserve(work, tokens=1, cost=0).warnings == ()


def test_many_small_reservations_fill_a_budget_exactly(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(run_usd=1.0)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@personal")
    for _ in range(100):  # 100 x $0.01 is not exactly 1.0 in floats: the comparison tolerates that
        store.reserve(work, tokens=1, cost=0.01)
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=1, cost=0.01)


def test_rate_windows_refuse_when_full_until_the_next_minute(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(work_rpm=2, work_tpm=1000)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    store.reserve(work, tokens=10, cost=0.0)
    store.reserve(work, tokens=10, cost=0.0)
    with pytest.raises(RateLimitedError) as e:
        store.reserve(work, tokens=10, cost=0.0)
    assert (e.value.kind, e.value.name, e.value.limit) == ("rpm", "work", 2)
    assert str(e.value).startswith("rpm window of `work` is full: 2 requests of 2 requests used or reserved")
    assert e.value.resets_at == datetime(2024, 3, 15, 10, 1, tzinfo=timezone.utc)
    clock.advance(60)
    # tpm: an empty window takes one big request, then is full
    store.reserve(work, tokens=1500, cost=0.0)
    with pytest.raises(RateLimitedError) as e:
        store.reserve(work, tokens=1, cost=0.0)
    assert e.value.kind == "tpm"
    # a deployment's own rpm is counted under model@provider
    gpt = deployment(registry, "gpt-4o@openai")
    assert store.layout.rate("rpm", gpt.key, store.now()).limit == 60


def test_release_frees_and_errors_are_consecutive(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    f = facts(store)
    store.release(store.reserve(work, tokens=5000, cost=0.1))
    assert quota_counter(store) == (0, pytest.approx(0))
    assert (f.errors("work"), f.rate("rpm", "work"), f.spend("run")) == (0, 0, 0)  # a plain cancel
    store.release(store.reserve(work, tokens=5000, cost=0.1), error=TimeoutError("slow"))
    store.release(store.reserve(work, tokens=5000, cost=0.1), error="HTTP 529")
    assert f.errors("work") == 2
    assert f.rate("rpm", "work") == 2  # failed calls were still made
    assert f.spend("run") == 0 and f.in_flight("work") == 0
    store.settle(store.reserve(work, tokens=10, cost=0.1), input_tokens=5, output_tokens=5, cost=0.1)
    assert f.errors("work") == 0


def test_settle_and_release_return_the_counters_as_they_left_them(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    meters = store.layout.call_meters(work, clock(), store.run_id)
    other = store.reserve(work, tokens=100, cost=0.01)  # still in flight: its holds show
    after = store.settle(store.reserve(work, tokens=3000, cost=0.5), input_tokens=1000, output_tokens=500, cost=0.4)
    assert set(after) == set(meters.keys)
    assert after == dict(zip(meters.keys, store.read(meters.keys), strict=True))  # what a read sees
    assert meters.quota is not None and after[meters.quota.key] == Counter(1500, 100)
    run = next(m for m in meters.spends if m.name == "run")
    assert after[run.key].used == pytest.approx(0.4) and after[run.key].reserved == pytest.approx(0.01)
    assert after[keys.inflight_key("work")] == Counter(0, 1) and after[keys.errors_key("work")].used == 0
    released = store.release(other, error="HTTP 500")
    assert released[keys.errors_key("work")].used == 1 and released[keys.inflight_key("work")].reserved == 0


def test_a_billed_failure_records_the_spend_and_counts_the_failure(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    f = facts(store)
    store.release(store.reserve(work, tokens=10, cost=0.1), error="HTTP 500")
    store.settle(store.reserve(work, tokens=10, cost=0.1), input_tokens=5, output_tokens=5, cost=0.25, error="broke")
    assert f.errors("work") == 2
    assert f.spend("run") == pytest.approx(0.25)


def test_unsettled_reservations_expire(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(run_usd=1.0)
    store = store_factory(registry, clock=clock, reservation_ttl=60)
    work = deployment(registry, "sonnet@personal")
    lost = store.reserve(work, tokens=10, cost=0.9)  # its process "dies": never settled
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=10, cost=0.5)
    clock.advance(59)
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=10, cost=0.5)
    clock.advance(2)
    ok = store.reserve(work, tokens=10, cost=0.5)  # the expired hold is gone
    assert spend_counter(store, "run") == (0, pytest.approx(0.5))
    assert facts(store).in_flight("personal") == 1
    # a late settle of the expired reservation still records its spend, and frees nothing twice
    store.settle(lost, input_tokens=5, output_tokens=5, cost=0.3)
    assert spend_counter(store, "run") == (pytest.approx(0.3), pytest.approx(0.5))
    store.settle(ok, input_tokens=5, output_tokens=5, cost=0.5)
    assert spend_counter(store, "run") == (pytest.approx(0.8), pytest.approx(0))


def test_reap_on_demand(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock, reservation_ttl=10)
    store.reserve(deployment(registry, "sonnet@work"), tokens=100, cost=0.1)
    assert store.reap() == 0
    clock.advance(11)
    assert store.reap() == 1
    assert quota_counter(store) == (0, pytest.approx(0))
    assert facts(store).in_flight("work") == 0


def test_every_write_drops_the_reservations_whose_lease_has_ended(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock, reservation_ttl=10)
    store.reserve(deployment(registry, "sonnet@work"), tokens=100, cost=0.1)
    clock.advance(11)
    store.cooldown("personal", 5)  # a write that is neither a reserve nor a settle
    assert quota_counter(store) == (0, pytest.approx(0))
    assert facts(store).in_flight("work") == 0


def test_each_reservation_expires_at_its_own_lease(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    store.reserve(work, tokens=100, cost=0.1, lease=30)
    store.reserve(work, tokens=200, cost=0.1, lease=10)
    store.reserve(work, tokens=400, cost=0.1, lease=60)
    clock.advance(11)
    assert store.reap() == 1 and quota_counter(store) == (0, pytest.approx(500))
    clock.advance(20)
    assert store.reap() == 1 and quota_counter(store) == (0, pytest.approx(400))
    store.reserve(work, tokens=800, cost=0.1, lease=5)  # ends before the one still held
    clock.advance(6)
    assert store.reap() == 1 and quota_counter(store) == (0, pytest.approx(400))
    clock.advance(30)
    assert store.reap() == 1 and facts(store).in_flight("work") == 0


def test_a_reservation_is_finished_once(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock)
    r = store.reserve(deployment(registry, "sonnet@work"), tokens=100, cost=0.1)
    store.settle(r, input_tokens=50, output_tokens=50, cost=0.1)
    with pytest.raises(ReservationError, match="already settled"):
        store.settle(r, input_tokens=50, output_tokens=50, cost=0.1)
    with pytest.raises(ReservationError):
        store.release(r)
    assert spend_counter(store, "run")[0] == pytest.approx(0.1)


def test_quota_window_rolls_over(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(work_quota=1000)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    clock.set(datetime(2024, 3, 15, 11, 59, 59, tzinfo=timezone.utc))  # the 07:00-12:00 UTC window
    store.settle(store.reserve(work, tokens=1000, cost=0), input_tokens=900, output_tokens=100, cost=0)
    assert facts(store).quota_left("work") == 0
    with pytest.raises(QuotaExhaustedError):
        store.reserve(work, tokens=1, cost=0)
    clock.advance(1)
    assert facts(store).quota_left("work") == 1.0
    store.reserve(work, tokens=1000, cost=0)


def test_month_budget_rolls_over_at_local_midnight(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(month_usd=10, month_hard=True, run_usd=100)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@personal")
    # 23:59:59 CEST on 31 March (summer time began that morning) is still March
    clock.set(datetime(2024, 3, 31, 21, 59, 59, tzinfo=timezone.utc))
    store.settle(store.reserve(work, tokens=1, cost=9), input_tokens=1, output_tokens=1, cost=9)
    with pytest.raises(BudgetExceededError) as e:
        store.reserve(work, tokens=1, cost=2)
    assert e.value.resets_at == datetime(2024, 3, 31, 22, tzinfo=timezone.utc)
    clock.advance(1)
    assert facts(store).spend("month") == 0 and facts(store).budget_left("month") == 1.0
    store.reserve(work, tokens=1, cost=2)


def test_day_budget_follows_a_25_hour_day(store_factory: StoreFactory, clock: FakeClock) -> None:
    day = Budget("day", 5.0, Window("day"), True)
    registry = make_registry(extra_budgets={"day": day}, run_usd=100)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@personal")
    clock.set(datetime(2024, 10, 26, 22, 30, tzinfo=timezone.utc))  # 00:30 CEST, Sunday 27 October
    store.settle(store.reserve(work, tokens=1, cost=4), input_tokens=1, output_tokens=1, cost=4)
    clock.advance(24 * 3600)  # 23:30 CET: the same local day, which lasts 25 hours
    assert facts(store).spend("day") == 4
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=1, cost=2)
    clock.advance(30 * 60)  # local midnight
    assert facts(store).spend("day") == 0
    store.reserve(work, tokens=1, cost=2)


def test_runs_are_separate_unless_named_the_same(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(run_usd=1.0)
    store = store_factory(registry, clock=clock, run_id="nightly-1")
    work = deployment(registry, "sonnet@personal")
    store.settle(store.reserve(work, tokens=1, cost=0.8), input_tokens=1, output_tokens=1, cost=0.8)
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=1, cost=0.5)
    store.reserve(work, tokens=1, cost=0.5, run_id="nightly-2")  # another run has its own budget
    assert facts(store).spend("run") == pytest.approx(0.8)
    assert facts(store, run_id="nightly-2").spend("run") == 0
    assert facts(store).spend("month") == pytest.approx(0.8)  # calendar windows are shared by runs


def test_cooldown_counts_down(store_factory: StoreFactory, clock: FakeClock) -> None:
    store = store_factory(make_registry(), clock=clock)
    store.cooldown("openai", 30)
    f = facts(store)
    assert f.cooldown("openai") == 30 and f.cooldown("work") == 0
    clock.advance(10)
    assert f.cooldown("openai") == 20
    clock.advance(25)
    assert f.cooldown("openai") == 0
    store.cooldown("openai", 30)
    store.cooldown("openai", 0)  # ends it
    assert f.cooldown("openai") == 0


def test_a_shorter_cooldown_leaves_a_longer_one_as_it_is(store_factory: StoreFactory, clock: FakeClock) -> None:
    # A 429 with `retry-after: 1` that came after a 401's 300 s cooled the provider down for 1 s: the bad
    # key was tried again a second later.
    store = store_factory(make_registry(), clock=clock)
    store.cooldown("work", 300)
    store.cooldown("work", 1)
    f = facts(store)
    assert f.cooldown("work") == 300
    clock.advance(2)  # past the shorter one's expiry: the longer one's counter is still there
    assert f.cooldown("work") == 298
    store.cooldown("work", 600)  # a longer one still lengthens it
    assert f.cooldown("work") == 600


def test_latency_is_the_median_of_recent_calls(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock, latency_samples=3)
    work = deployment(registry, "sonnet@work")
    for latency in (1.0, 2.0, 10.0, 3.0):
        store.settle(store.reserve(work, tokens=1, cost=0), input_tokens=1, output_tokens=1, cost=0, latency=latency)
    assert store.samples(keys.latency_key("work")) == [3.0, 10.0, 2.0]  # the oldest one dropped
    assert facts(store).latency("work") == 3.0


def test_round_robin_positions(store_factory: StoreFactory, clock: FakeClock) -> None:
    store = store_factory(make_registry(), clock=clock)
    assert facts(store).round_robin("sonnet") == 0
    assert [store.advance_round_robin("sonnet") for _ in range(3)] == [1, 2, 3]
    assert facts(store).round_robin("sonnet") == 3 and facts(store).round_robin("gpt-4o") == 0


def test_reset(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry()
    store = store_factory(registry, clock=clock, run_id="r1")
    work = deployment(registry, "sonnet@work")
    store.settle(store.reserve(work, tokens=1, cost=1), input_tokens=1, output_tokens=1, cost=1, latency=2)
    store.release(store.reserve(work, tokens=1, cost=1), error="boom")
    store.cooldown("work", 60)
    f = facts(store)

    assert store.reset(run_id="r1") >= 1
    assert f.spend("run") == 0 and f.spend("month") == 1  # only the run's counters went

    store.reset(provider="work")
    assert (f.errors("work"), f.cooldown("work"), f.latency("work")) == (0, 0, None)
    assert f.quota_left("work") < 1  # quota use is not a provider's health: it stays

    store.reserve(work, tokens=1, cost=1)
    store.reset(everything=True)
    assert (f.spend("month"), f.quota_left("work"), f.in_flight("work")) == (0, 1.0, 0)


def test_a_reset_during_calls_frees_their_holds_with_the_counters(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    # The holds of a call in flight outlived the counters a reset deleted: released later, they came
    # off the counter made anew, which held another call's reservation. `reserved` went negative for
    # good, and the hard run budget let one call too many through.
    registry = make_registry(run_usd=0.05)
    store = store_factory(registry, clock=clock, run_id="r1")
    work = deployment(registry, "sonnet@work")
    before = store.reserve(work, tokens=1, cost=0.01)
    assert store.reset(run_id="r1") >= 1
    after = store.reserve(work, tokens=1, cost=0.01)
    store.release(before, error="boom")
    assert spend_counter(store, "run") == (0, pytest.approx(0.01))  # the hold of the call after the reset
    store.settle(after, input_tokens=1, output_tokens=1, cost=0.01)
    assert spend_counter(store, "run") == (pytest.approx(0.01), pytest.approx(0))
    for _ in range(4):  # $0.04 more fits a $0.05 budget, and not a cent beyond
        store.settle(store.reserve(work, tokens=1, cost=0.01), input_tokens=1, output_tokens=1, cost=0.01)
    with pytest.raises(BudgetExceededError):
        store.reserve(work, tokens=1, cost=0.01)


def test_reservations_belong_to_their_store(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry: Registry = make_registry()
    store = store_factory(registry, clock=clock)
    r = store.reserve(deployment(registry, "sonnet@work"), tokens=1, cost=0)
    r.store = "memory://elsewhere"
    with pytest.raises(ReservationError, match="belongs to"):
        store.settle(r, input_tokens=1, output_tokens=1, cost=0)


def test_a_share_left_at_a_limit_is_that_share(store_factory: StoreFactory, clock: FakeClock) -> None:
    # 1 - 180/200 is 0.09999999999999998 in floats: `budget(month) < 10%` held with 10% left.
    registry = make_registry(run_hard=False)
    store = store_factory(registry, clock=clock)
    work = deployment(registry, "sonnet@work")
    month = registry.budgets["month"].usd
    store.settle(store.reserve(work, tokens=1, cost=0), input_tokens=1, output_tokens=1, cost=month * 0.9)
    assert facts(store).budget_left("month") == 0.1
