"""The SQLite store's own promises: its file, WAL, foreign and corrupted files, locks, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from state_helpers import FakeClock, deployment, make_registry

from policyrouter.state import StateError, open_store
from policyrouter.state.memory import MemoryStore
from policyrouter.state.redis import RedisStore, redact
from policyrouter.state.sqlite import APPLICATION_ID, SCHEMA_VERSION, SQLiteStore


def test_default_state_lives_under_the_config_dir(tmp_path: Path, clock: FakeClock) -> None:
    registry = make_registry(state="sqlite:///.policyrouter/state.db", path=tmp_path / "registry.yaml")
    store = open_store(registry, clock=clock)
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / ".policyrouter" / "state.db" and store.path.exists()
    store.close()
    absolute = tmp_path / "elsewhere" / "s.db"
    store = open_store(registry, f"sqlite:///{absolute}", clock=clock)
    assert isinstance(store, SQLiteStore) and store.path == absolute
    store.close()


def test_open_store_understands_each_kind(tmp_path: Path) -> None:
    registry = make_registry(path=tmp_path / "registry.yaml")
    assert isinstance(open_store(registry, "memory://"), MemoryStore)
    redis_store = open_store(registry, "redis://:s3cret@127.0.0.1:1/0")
    assert isinstance(redis_store, RedisStore) and "s3cret" not in redis_store.url
    with pytest.raises(StateError, match="unknown kind of state store") as e:
        open_store(registry, "postgres://db/state")
    assert "sqlite:///" in str(e.value)  # help shows what works
    with pytest.raises(StateError, match="PATH"):
        open_store(registry, "sqlite://state.db")


def test_redact_hides_passwords_only() -> None:
    assert redact("redis://u:pw@host:6380/2") == "redis://u:***@host:6380/2"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_spend_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    registry = make_registry()
    path = tmp_path / "state.db"
    store = SQLiteStore(registry, path, clock=clock, run_id="r")
    r = store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=1.25)
    store.settle(r, input_tokens=10, output_tokens=10, cost=1.25)
    store.close()
    store = SQLiteStore(registry, path, clock=clock, run_id="r")
    meter = store.layout.spend("month", clock(), "r")
    assert meter is not None and store.read([meter.key])[0].used == 1.25
    store.close()


def test_file_is_marked_and_in_wal_mode(tmp_path: Path) -> None:
    SQLiteStore(make_registry(), tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError) as e:
        SQLiteStore(make_registry(), path)
    assert "not a policyrouter state database" in str(e.value) and str(path) in str(e.value)
    assert "invoices" in str(e.value)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0  # untouched
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["invoices"]
    conn.close()


def test_another_applications_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="another application"):
        SQLiteStore(make_registry(), path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(make_registry(), path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer policyrouter"):
        SQLiteStore(make_registry(), path)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_corrupted_file_gives_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(content)
    with pytest.raises(StateError) as e:
        SQLiteStore(make_registry(), path)
    message = str(e.value)
    assert "corrupted or not an SQLite database" in message and str(path) in message
    assert "Traceback" not in message and "help: move the file aside" in message


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()
    SQLiteStore(make_registry(), path).close()


def test_a_locked_file_fails_as_configured_and_loses_no_spend(tmp_path: Path, clock: FakeClock) -> None:
    registry = make_registry()
    path = tmp_path / "s.db"
    store = SQLiteStore(registry, path, clock=clock, busy_timeout=0.1, run_id="r")
    r = store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=0.5)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with pytest.raises(StateError, match="is locked") as e:
            store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=0.5)  # hard budget: closed
        assert str(path) in str(e.value)
        free = store.reserve(deployment(registry, "local-coder@local"), tokens=10, cost=0.0)
        assert free.offline  # nothing to overspend: open
        store.settle(r, input_tokens=5, output_tokens=5, cost=0.4)  # does not raise ...
        assert store.pending == 1  # ... the spend waits in this process
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.reserve(deployment(registry, "sonnet@personal"), tokens=10, cost=0.1)  # flushes first
    assert store.pending == 0
    meter = store.layout.spend("run", clock(), "r")
    assert meter is not None and store.read([meter.key])[0].used == pytest.approx(0.4)
    store.close()


def test_close_says_when_spend_could_not_be_recorded(tmp_path: Path, clock: FakeClock) -> None:
    registry = make_registry()
    path = tmp_path / "s.db"
    store = SQLiteStore(registry, path, clock=clock, busy_timeout=0.05)
    r = store.reserve(deployment(registry, "sonnet@work"), tokens=10, cost=0.5)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        store.settle(r, input_tokens=5, output_tokens=5, cost=0.4)
        with pytest.raises(StateError, match="locked"):
            store.close()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_an_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(StateError, match="cannot create the directory"):
        SQLiteStore(make_registry(), blocked / "sub" / "s.db")


def test_latency_samples_stay_bounded(tmp_path: Path, clock: FakeClock) -> None:
    registry = make_registry()
    store = SQLiteStore(registry, tmp_path / "state.db", clock=clock, latency_samples=5)
    work, personal = deployment(registry, "sonnet@work"), deployment(registry, "sonnet@personal")
    for i in range(300):  # two keys taking turns: each key's pushes never land on the same sequence numbers
        d = work if i % 2 else personal
        store.settle(store.reserve(d, tokens=1, cost=0), input_tokens=1, output_tokens=1, cost=0, latency=float(i))
    rows = store._conn().execute("SELECT count(*) FROM samples").fetchone()[0]
    assert rows <= 2 * 5 + 64
    assert store.samples("latency:work") == [299.0, 297.0, 295.0, 293.0, 291.0]
    store.close()
