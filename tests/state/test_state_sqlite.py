"""The SQLite store's own promises: its file, WAL, foreign and corrupted files, locks, restarts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from state_helpers import FakeClock, deployment, make_registry

from policyrouter.state import StateError, open_store
from policyrouter.state.memory import MemoryStore
from policyrouter.state.model import Check, Counter, Hold, Op
from policyrouter.state.redis import RedisStore, redact
from policyrouter.state.sqlite import APPLICATION_ID, SCHEMA, SCHEMA_VERSION, SQLiteStore
from policyrouter.state.store import SWEEP_EVERY


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


def test_a_state_directory_it_makes_is_kept_out_of_git(tmp_path: Path) -> None:
    registry = make_registry(state="sqlite:///.policyrouter/state.db", path=tmp_path / "registry.yaml")
    open_store(registry).close()
    ignore = tmp_path / ".policyrouter" / ".gitignore"
    assert ignore.read_text().splitlines()[-1] == "*"
    (tmp_path / "mine").mkdir()  # a directory of the user's own is left as it is
    open_store(registry, f"sqlite:///{tmp_path / 'mine' / 'state.db'}").close()
    assert (tmp_path / "mine" / "state.db").exists() and not (tmp_path / "mine" / ".gitignore").exists()


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


# (URL, what the error says): each was taken as it came, then misread or raised from urllib or redis-py
BAD_URLS = [
    ("sqlite:///:memory:", "`memory://`"),  # was a file named `:memory:` in the config directory
    ("sqlite:///state.db?mode=ro", "no options"),  # was a file named `state.db?mode=ro`
    ("redis://localhost:notaport", "port"),
    ("redis://localhost:99999", "port"),
    ("redis://127.0.0.1:6390/abc", "database `abc`"),  # was database 0
    ("redis://127.0.0.1:6390/0?socket_timeout=abc", "socket_timeout"),
    ("redis://127.0.0.1:6390/0?key_prefix=team-a:", "key_prefix"),  # failed on the first command
]


@pytest.mark.parametrize(("url", "words"), BAD_URLS, ids=[url for url, _ in BAD_URLS])
def test_a_state_url_that_cannot_be_used_is_a_state_error(tmp_path: Path, url: str, words: str) -> None:
    registry = make_registry(path=tmp_path / "registry.yaml")
    with pytest.raises(StateError) as e:
        open_store(registry, url).close()
    assert words in str(e.value) and str(e.value).startswith(f"state store `{url}`")
    assert not list(tmp_path.glob("*:memory:*")) and not list(tmp_path.glob("*mode=ro*"))


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


def test_a_file_another_process_is_writing_is_opened_once_it_is_done(tmp_path: Path) -> None:
    """Switching a file to WAL fails at once while another connection writes (SQLite will not wait,
    which could deadlock); processes that open a fresh file together meet this. The store waits."""
    registry = make_registry()
    path = tmp_path / "s.db"
    SQLiteStore(registry, path).close()
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)  # as a fresh file is
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO counters (key, used, reserved, expires_at) VALUES ('other', 1, 0, 1e18)")
    done = threading.Timer(0.2, writer.execute, ("COMMIT",))
    done.start()
    store = SQLiteStore(registry, path)
    done.join()
    writer.close()
    assert store.read(["other"]) == [Counter(1.0, 0.0)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()


def test_the_connection_of_a_thread_that_ended_is_closed(tmp_path: Path) -> None:
    """One connection per thread; a program that starts a thread per request must not keep one open
    file per request it ever served."""
    registry = make_registry()
    store = SQLiteStore(registry, tmp_path / "s.db")
    work = deployment(registry, "sonnet@work")
    used: list[sqlite3.Connection] = []

    def request() -> None:
        store.settle(store.reserve(work, tokens=10, cost=0.01), input_tokens=5, output_tokens=5, cost=0.01)
        used.append(store._conn())

    for _ in range(3):
        thread = threading.Thread(target=request)
        thread.start()
        thread.join()
    first, second, last = used
    for ended in (first, second):  # closed when a later thread opened its own
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            ended.execute("SELECT 1")
    assert last.execute("SELECT 1").fetchone() == (1,)  # its thread has ended too, but no thread came after
    meter = store.layout.spend("run", store.now(), store.run_id)
    assert meter is not None and store.read([meter.key])[0].used == pytest.approx(0.03)
    store.close()


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
    with pytest.raises(StateError, match="cannot create the directory") as raised:
        SQLiteStore(make_registry(), blocked / "sub" / "s.db")
    assert raised.value.help is not None and "settings.state" in raised.value.help


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


def _rows(store: SQLiteStore, key: str) -> int:
    return store._conn().execute("SELECT count(*) FROM counters WHERE key = ?", (key,)).fetchone()[0]


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ([Op("add", "k", 5.0, 10.0), Op("add", "k", 2.0, 10.0)], Counter(2.0, 0.0)),
        ([Op("set", "k", 5.0, 10.0), Op("set", "k", 2.0, 10.0)], Counter(2.0, 0.0)),
        ([Op("add", "k", 5.0, 10.0), Op("add", "k", 2.0)], Counter(2.0, 0.0)),
    ],
)
def test_an_expired_counter_not_yet_swept_starts_afresh(
    tmp_path: Path, clock: FakeClock, writes: list[Op], expected: Counter
) -> None:
    store = SQLiteStore(make_registry(), tmp_path / "s.db", clock=clock)
    first, second = writes
    store._apply(clock().timestamp(), [first])
    clock.advance(11)  # past the counter's expiry, well before the next sweep
    assert store.read(["k"]) == [Counter()] and _rows(store, "k") == 1
    store._apply(clock().timestamp(), [second])
    assert store.read(["k"]) == [expected]
    if second.ttl is None:  # started afresh: no expiry of its own, none inherited from the old row
        clock.advance(3600)
        assert store.read(["k"]) == [expected]
    store.close()


def test_a_hold_on_an_expired_counter_starts_it_afresh(tmp_path: Path, clock: FakeClock) -> None:
    store = SQLiteStore(make_registry(), tmp_path / "s.db", clock=clock)
    now = clock().timestamp()
    store._apply(now, [Op("add", "k", 5.0, 10.0)])
    store._reserve(now, "r0", now + 3600, [], [Hold("k", 2.0, 10.0)])  # its lease outlives the counter
    clock.advance(11)
    now = clock().timestamp()
    failed, _ = store._reserve(now, "r1", now + 60, [Check("k", 1.0, 3.0)], [Hold("k", 1.0, 10.0)])
    assert failed is None  # what was used and held before it expired no longer counts against the limit
    assert store.read(["k"]) == [Counter(0.0, 1.0)]
    store.close()


def test_expired_counters_are_swept_from_the_file(tmp_path: Path, clock: FakeClock) -> None:
    store = SQLiteStore(make_registry(), tmp_path / "s.db", clock=clock)
    store._apply(clock().timestamp(), [Op("add", "short", 1.0, 10.0), Op("add", "long", 1.0, 7200.0)])
    clock.advance(SWEEP_EVERY + 1)
    store._apply(clock().timestamp(), [Op("add", "other", 1.0)])  # any write transaction may sweep
    assert (_rows(store, "short"), _rows(store, "long")) == (0, 1)
    store.close()


def test_a_file_of_the_first_layout_keeps_working(tmp_path: Path, clock: FakeClock) -> None:
    """Files created with an expiry index and AUTOINCREMENT samples: the index goes, the rest stays."""
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA.replace("seq INTEGER PRIMARY KEY,", "seq INTEGER PRIMARY KEY AUTOINCREMENT,"))
    conn.execute("CREATE INDEX counters_expiry ON counters (expires_at) WHERE expires_at IS NOT NULL")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.close()
    registry = make_registry()
    store = SQLiteStore(registry, path, clock=clock)
    d = deployment(registry, "sonnet@work")
    for latency in (0.5, 0.25):
        store.settle(store.reserve(d, tokens=1, cost=0), input_tokens=1, output_tokens=1, cost=0, latency=latency)
    assert store.samples("latency:work") == [0.25, 0.5]
    indexes = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "counters_expiry" not in indexes and "samples_key" in indexes
    store.close()


def test_an_sqlite_too_old_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(StateError, match=r"needs SQLite 3\.35\.0 or later; this Python's sqlite3 module has 3\.31\.1"):
        SQLiteStore(make_registry(), tmp_path / "s.db")
