"""Fixtures for the live-state tests: a clock, a registry, a real `redis-server` (session-wide), and
one `store_factory` parametrized over memory, SQLite and Redis, so one contract suite runs on all three."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from state_helpers import FakeClock, RedisServer, StoreFactory, Stores


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI installs it")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    _require_redis_server()
    server = RedisServer()
    server.start()
    yield server
    server.stop()


# -- one factory over the three stores ----------------------------------------------------------

STORE_KINDS = ["memory", "sqlite", "redis"]


def _factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    server: RedisServer | None = request.getfixturevalue("redis_server") if kind == "redis" else None
    stores = Stores(kind, tmp_path / "state.db", server.url if server else None)
    yield stores
    for store in stores.opened:
        store.close()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        _require_redis_server()
    return str(request.param)


@pytest.fixture
def store_factory(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """`make(registry, **options)` opens a store of the parametrized kind; stores made by one test
    share their data (same file / key prefix), except memory stores, which are per object."""
    yield from _factory(store_kind, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def shared_store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Like `store_factory`, for the stores that several processes share."""
    if request.param == "redis":
        _require_redis_server()
    yield from _factory(str(request.param), request, tmp_path)
