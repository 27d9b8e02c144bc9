"""The Redis store's own promises, against a real server: one round trip per reserve and per settle,
keys that expire with their windows, outages that lose no settled spend."""

from __future__ import annotations

import time

import pytest
import redis
from state_helpers import FakeClock, RedisServer, deployment, free_port, make_registry

from policyrouter.state import StateError, open_store
from policyrouter.state.layout import RUN_TTL
from policyrouter.state.redis import RedisStore


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def test_one_round_trip_per_reserve_and_per_settle(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = make_registry()
    store = RedisStore(registry, redis_server.url, key_prefix="rt:", clock=FakeClock())
    work = deployment(registry, "sonnet@work")
    store.settle(store.reserve(work, tokens=1, cost=0.01), input_tokens=1, output_tokens=1, cost=0.01)  # load
    sent: list[bytes] = []
    original = redis.connection.Connection.send_packed_command

    def counting(self: redis.connection.Connection, command: object, check_health: bool = True) -> None:
        sent.append(command[0] if isinstance(command, list) else command)  # type: ignore[index]
        original(self, command, check_health)  # type: ignore[arg-type]

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    r = store.reserve(work, tokens=100, cost=0.01)
    assert len(sent) == 1 and b"EVALSHA" in sent[0]
    store.settle(r, input_tokens=50, output_tokens=50, cost=0.01, latency=0.5)
    assert len(sent) == 2 and b"EVALSHA" in sent[1]
    store.release(store.reserve(work, tokens=100, cost=0.01), error="x")
    assert len(sent) == 4
    store.close()


def test_counters_expire_with_their_windows(redis_server: RedisServer, client: redis.Redis) -> None:
    registry = make_registry()
    clock = FakeClock()  # 10:00 UTC: the 5h quota window ends at 12:00, the minute at 10:01
    store = RedisStore(registry, redis_server.url, key_prefix="ttl:", clock=clock, run_id="r")
    work = deployment(registry, "sonnet@work")
    store.settle(store.reserve(work, tokens=100, cost=0.01), input_tokens=50, output_tokens=50, cost=0.01)
    now = clock()
    quota = store.layout.quota("work", now, "r")
    rpm = store.layout.rate("rpm", "work", now)
    run = store.layout.spend("run", now, "r")
    assert quota is not None and run is not None
    assert client.pttl("ttl:" + quota.key) / 1000 == pytest.approx(2 * 3600 + 3600, abs=5)  # end + 1h margin
    assert client.pttl("ttl:" + rpm.key) / 1000 == pytest.approx(60 + 60, abs=5)  # end + one window
    assert client.pttl("ttl:" + run.key) / 1000 == pytest.approx(RUN_TTL, abs=5)
    assert client.ttl("ttl:errors:work") == -1  # not windowed: kept
    assert client.zcard("ttl:reservations") == 0  # settled reservations leave nothing behind
    assert client.keys("ttl:res:*") == []
    store.close()


def test_an_unreachable_server_fails_fast_and_names_the_store() -> None:
    registry = make_registry()
    url = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisStore(registry, url, socket_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StateError) as e:
        store.reserve(deployment(registry, "sonnet@work"), tokens=1, cost=0.1)
    assert time.monotonic() - started < 3
    assert f"state store `{url}`" in str(e.value) and "help: is the Redis server running" in str(e.value)


def test_settled_spend_survives_an_outage() -> None:
    server = RedisServer()
    server.start()
    try:
        registry = make_registry()
        clock = FakeClock()
        store = RedisStore(registry, server.url, clock=clock, run_id="r", socket_timeout=0.3)
        r = store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=0.5)
        server.stop()
        store.settle(r, input_tokens=5, output_tokens=5, cost=0.4)  # the server is gone: kept
        assert store.pending == 1
        with pytest.raises(StateError):
            store.flush()
        server.start()  # back (empty: this server keeps nothing on disk)
        store.flush()
        assert store.pending == 0
        meter = store.layout.spend("run", clock(), "r")
        assert meter is not None and store.read([meter.key])[0].used == pytest.approx(0.4)
        store.flush()  # replaying again would not count twice
        assert store.read([meter.key])[0].used == pytest.approx(0.4)
        store.close()
    finally:
        server.stop()


def test_a_retried_settle_counts_once(redis_server: RedisServer) -> None:
    registry = make_registry()
    clock = FakeClock()
    store = RedisStore(registry, redis_server.url, key_prefix="dup:", clock=clock, run_id="r")
    r = store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=0.5)
    ops_run_twice = store._finish  # as if the reply of the first call had been lost
    store.settle(r, input_tokens=5, output_tokens=5, cost=0.4)
    ops_run_twice(clock().timestamp(), r.id, [], [])  # the retry finds the reservation done: no effect
    meter = store.layout.spend("run", clock(), "r")
    assert meter is not None and store.read([meter.key])[0].used == pytest.approx(0.4)
    store.close()


def test_a_password_comes_from_the_environment(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`${NAME}` in the state URL is the variable's value. (`redis_server`: skips without redis-server.)"""
    password = "pw/from@the:environment#1"  # what a URL must percent-encode
    server = RedisServer(password=password)
    server.start()
    try:
        registry = make_registry(state=f"redis://:${{PR_TEST_REDIS_PASSWORD}}@127.0.0.1:{server.port}/0")
        with pytest.raises(StateError, match="`PR_TEST_REDIS_PASSWORD`"):
            open_store(registry)
        monkeypatch.setenv("PR_TEST_REDIS_PASSWORD", password)
        store = open_store(registry, run_id="r")
        work = deployment(registry, "sonnet@work")
        store.settle(store.reserve(work, tokens=100, cost=0.5), input_tokens=50, output_tokens=50, cost=0.25)
        assert store.read([store.layout.spend_key("run", store.clock(), "r") or ""])[0].used == pytest.approx(0.25)
        assert "environment" not in store.url and "***" in store.url
        store.close()
        monkeypatch.setenv("PR_TEST_REDIS_PASSWORD", "not-the-password")
        with pytest.raises(StateError):
            open_store(registry).read(["k"])
    finally:
        server.stop()


def test_a_store_closed_under_a_request_says_so(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # a request still running when its router closed got redis-py's TypeError from hiredis, or "is the
    # Redis server running and reachable?" about a server that was fine
    registry = make_registry()
    store = RedisStore(registry, redis_server.url, key_prefix="closed:", clock=FakeClock())
    work = deployment(registry, "sonnet@work")
    store.close()

    def what_a_closed_connection_meets(*args: object, **kwargs: object) -> None:
        raise TypeError("argument must be an int, or have a fileno() method.")

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", what_a_closed_connection_meets)
    with pytest.raises(StateError, match="the store was closed while a request used it"):
        store.read(["quota:work"])
    with pytest.raises(StateError, match="closed while a request used it"):
        store.reserve(work, tokens=1, cost=0.01)  # a hard budget: refused, not let through
