"""The three stores, side by side: random runs of reserves, settles, releases, cooldowns and the clock
moving on (across leases, rate windows, quota windows and days) give the same answers on memory,
SQLite and Redis: which reserve is refused and why, and every fact a policy can read, after each step.
The contract suite pins each behaviour; this looks for the combinations it does not list.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from state_helpers import FakeClock, RedisServer, Stores, deployment, make_registry

from policyrouter.state import LimitExceededError, LiveFacts, Reservation, StateStore

DEPLOYMENTS = ["sonnet@work", "sonnet@personal", "gpt-4o@openai"]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.sampled_from(DEPLOYMENTS), st.integers(0, 6000), st.sampled_from([0, 1.5, 4])),
        st.tuples(st.just("settle"), st.integers(0, 9), st.integers(0, 4000), st.sampled_from([0, 0.5, 3])),
        st.tuples(st.just("release"), st.integers(0, 9), st.booleans()),
        st.tuples(st.just("cooldown"), st.sampled_from(["work", "openai"]), st.sampled_from([1, 45])),
        st.tuples(st.just("wait"), st.sampled_from([0.5, 30, 61, 3600, 5 * 3600, 86400])),
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def redis(request: pytest.FixtureRequest) -> RedisServer | None:
    return request.getfixturevalue("redis_server") if shutil.which("redis-server") else None


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_every_store_gives_the_same_answers(redis: RedisServer | None, steps: list[tuple[Any, ...]]) -> None:
    clock = FakeClock()
    registry = make_registry(work_quota=20_000, run_usd=8.0, work_rpm=6)
    kinds = ["memory", "sqlite"] + (["redis"] if redis is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        url = redis.url if redis is not None else None
        stores = [
            Stores(kind, Path(tmp) / "state.db", url)(registry, clock=clock, reservation_ttl=120) for kind in kinds
        ]
        try:
            held: list[list[Reservation | None]] = [[] for _ in stores]
            for step in steps:
                if step[0] == "wait":
                    clock.advance(step[1])
                    continue
                answers = [_apply(store, held[i], step) for i, store in enumerate(stores)]
                assert all(a == answers[0] for a in answers), (step, answers)
                reads = [_facts(store) for store in stores]
                assert all(r == pytest.approx(reads[0], abs=1e-9) for r in reads), (step, reads)
        finally:
            for store in stores:
                store.close()


def _apply(store: StateStore, held: list[Reservation | None], step: tuple[Any, ...]) -> object:
    """Carry out one step; returns what a caller would see of it."""
    kind = step[0]
    if kind == "reserve":
        _, key, tokens, cost = step
        try:
            held.append(store.reserve(deployment(store.registry, key), tokens=tokens, cost=cost))
        except LimitExceededError as e:
            return ("refused", e.kind, e.name)
        return ("held", tuple(sorted(u.name for u in held[-1].warnings if held[-1] is not None)))
    if kind == "cooldown":
        store.cooldown(step[1], step[2])
        return "cooled"
    index = step[1]
    if index >= len(held) or held[index] is None:
        return "nothing held"
    reservation, held[index] = held[index], None
    assert reservation is not None
    if kind == "settle":
        _, _, tokens, cost = step
        store.settle(reservation, input_tokens=tokens, output_tokens=tokens // 4, cost=cost, latency=0.25)
        return "settled"
    store.release(reservation, error="boom" if step[2] else None)
    return "released"


def _facts(store: StateStore) -> list[float | None]:
    """Every fact a policy can read of this state, read from the store now. (Counters themselves may
    differ: Redis expires keys on its own clock, the others on the store's.)"""
    live = LiveFacts(store, ttl=0)
    out: list[float | None] = []
    for provider in ("work", "personal", "openai"):
        out += [live.quota_left(provider), live.errors(provider), live.cooldown(provider), live.in_flight(provider)]
        out += [live.rate("rpm", provider), live.rate("tpm", provider), live.latency(provider)]
    out += [live.spend(scope) for scope in ("run", "day", "week", "month", "openai")]
    out += [live.budget_left(scope) for scope in ("run", "month", "openai")]
    return out
