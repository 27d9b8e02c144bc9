"""`sqlite:///PATH`: state shared by every process on one machine, surviving restarts.

WAL mode (readers never wait for the writer), `BEGIN IMMEDIATE` for every update (check and hold in
one transaction, so concurrent processes queue instead of both passing a check), `busy_timeout` for
how long to wait for the lock. The file is marked with an application id and a schema version, so a
foreign or corrupted file is refused with a clear `StateError` instead of being written to.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from policyrouter.registry import Registry
from policyrouter.state.errors import StateError
from policyrouter.state.model import Check, Counter, Hold, Op
from policyrouter.state.store import SWEEP_EVERY, StateStore, fits, forgets

APPLICATION_ID = 0x50525354  # "PRST" in the file header: a policyrouter state file
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's transaction

SCHEMA = """
CREATE TABLE counters (
    key TEXT PRIMARY KEY,
    used REAL NOT NULL DEFAULT 0,
    reserved REAL NOT NULL DEFAULT 0,
    expires_at REAL
) WITHOUT ROWID;
CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    lease_until REAL NOT NULL,
    holds TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX reservations_lease ON reservations (lease_until);
CREATE TABLE samples (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX samples_key ON samples (key, seq);
"""

MIN_SQLITE = (3, 35, 0)  # DELETE … RETURNING

# Expired counters are deleted at most once a minute (`SWEEP_EVERY`), by a scan: an index on
# `expires_at` would be rewritten by every write. Until then reads skip them, and a write starts one
# afresh, as if it had been deleted. `?{now}` is the transaction's instant.
_FRESH = "expires_at <= ?{now}"
_EXPIRY = f"expires_at = iif({_FRESH}, excluded.expires_at, coalesce(excluded.expires_at, expires_at))"
_WRITE = {
    action: "INSERT INTO counters (key, used, expires_at) VALUES {rows} ON CONFLICT (key) DO UPDATE SET "
    f"used = {used}, reserved = iif({_FRESH}, 0, reserved), {_EXPIRY}"
    for action, used in (("add", f"iif({_FRESH}, 0, used) + excluded.used"), ("set", "excluded.used"))
}
# the larger value, with its own expiry: a smaller one changes nothing (`WHERE` leaves the row as it is)
_WRITE["max"] = (
    "INSERT INTO counters (key, used, expires_at) VALUES {rows} ON CONFLICT (key) DO UPDATE SET "
    f"used = excluded.used, reserved = iif({_FRESH}, 0, reserved), {_EXPIRY} "
    f"WHERE {_FRESH} OR excluded.used > used"
)
_HOLD = f"""INSERT INTO counters (key, reserved, expires_at) VALUES {{rows}}
ON CONFLICT (key) DO UPDATE SET used = iif({_FRESH}, 0, used),
    reserved = iif({_FRESH}, 0, reserved) + excluded.reserved, {_EXPIRY}"""
_UNHOLD = """UPDATE counters SET reserved = reserved - held.amount
FROM (SELECT column1 AS key, column2 AS amount FROM (VALUES {rows})) AS held WHERE counters.key = held.key"""
_TRIM_EVERY = 64  # every key's latency samples are trimmed to the newest N every this many pushes
_TRIM = """DELETE FROM samples WHERE seq NOT IN (SELECT seq FROM
    (SELECT seq, row_number() OVER (PARTITION BY key ORDER BY seq DESC) AS newer FROM samples) WHERE newer <= ?)"""


@cache
def _sql(template: str, rows: int, width: int) -> str:
    """`template` for `rows` rows of `width` values, numbered `?1`…, and `?{now}` the one after them."""
    marks = ",".join("(" + ",".join(f"?{r * width + c + 1}" for c in range(width)) + ")" for r in range(rows))
    return template.format(rows=marks, now=rows * width + 1)


class SQLiteStore(StateStore):
    def __init__(
        self, registry: Registry, path: str | Path, *, busy_timeout: float = BUSY_TIMEOUT, **options: Any
    ) -> None:
        self.path = Path(path)
        super().__init__(registry, options.pop("url", None) or f"sqlite:///{self.path.resolve()}", **options)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[_Opened] = []
        self._next_sweep = -math.inf  # store time of the next deletion of expired counters
        self._conn()  # open and check the file now: a foreign file fails here, not mid-request

    def _new_locks(self) -> None:
        super()._new_locks()
        self._conns_lock = threading.Lock()

    # -- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread (and per process: a forked child opens its own)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _connect(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StateError(
                self.url,
                f"the state file needs SQLite {'.'.join(map(str, MIN_SQLITE))} or later; "
                f"this Python's sqlite3 module has {sqlite3.sqlite_version}",
                "use a Python built with a newer SQLite, or a `redis://` or `memory://` store",
            )
        with self._errors():
            try:
                if not self.path.parent.exists():
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    _keep_out_of_git(self.path.parent)
            except OSError as e:
                raise StateError(
                    self.url,
                    f"cannot create the directory `{self.path.parent}`: {e.strerror}",
                    "point `settings.state` in registry.yaml at a place you can write (or `memory://`); "
                    "`explain --fact …` decides without the live state",
                ) from e
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
        with self._conns_lock:
            self._conns = [*_still_used(self._conns), _Opened(os.getpid(), threading.current_thread(), conn)]
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check the file is ours (or empty: then create the schema), then switch to WAL."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id == 0:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._initialize(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif app_id != APPLICATION_ID:
            raise StateError(
                self.url,
                f"`{self.path}` is an SQLite database of another application (application_id {app_id:#x})",
                "point `settings.state` at a file of its own, e.g. `sqlite:///.policyrouter/state.db`",
            )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                self.url,
                f"`{self.path}` was written by a newer policyrouter "
                f"(schema {version}, this one reads {SCHEMA_VERSION})",
                "upgrade policyrouter, or use another state file",
            )
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'counters_expiry'").fetchone():
            conn.execute("DROP INDEX IF EXISTS counters_expiry")  # files of the first layout had one
        self._use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (a mode the file keeps). The switch needs the file to itself, and
        while another connection writes SQLite fails it at once rather than wait (waiting could
        deadlock): processes that open a fresh file together meet this. So wait here, as
        `busy_timeout` waits for other statements."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def _initialize(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
            return  # another process created it meanwhile
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if tables:
            raise StateError(
                self.url,
                f"`{self.path}` is not a policyrouter state database (it holds tables {', '.join(tables[:5])})",
                "point `settings.state` at a file of its own, e.g. `sqlite:///.policyrouter/state.db`",
            )
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every sqlite3 error leaves as a `StateError` naming the file and saying what to do."""
        try:
            yield
        except sqlite3.Error as e:
            raise self._state_error(e) from e

    def _state_error(self, e: sqlite3.Error) -> StateError:
        text = str(e)
        if "locked" in text or "busy" in text:
            return StateError(
                self.url,
                f"`{self.path}` is locked: another process held it longer than {self.busy_timeout:g}s",
                "retry, or find the process that keeps a transaction open",
            )
        if isinstance(e, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
            return StateError(
                self.url,
                f"`{self.path}` is corrupted or not an SQLite database ({text})",
                "move the file aside; policyrouter creates a fresh one (spend recorded in it is lost)",
            )
        if "unable to open" in text or "readonly" in text:
            return StateError(self.url, f"cannot write `{self.path}` ({text})", "check the path and permissions")
        return StateError(self.url, f"{text} (`{self.path}`)")

    @contextmanager
    def _tx(self, now: float) -> Iterator[sqlite3.Connection]:
        """A write transaction, its lock taken up front; now and then starts by deleting expired counters."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                if now >= self._next_sweep:
                    conn.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
                    self._next_sweep = now + SWEEP_EVERY
                yield conn
                conn.execute("COMMIT")  # in the `try`: a commit that fails leaves no transaction open
            except BaseException:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    # -- primitives ---------------------------------------------------------------------------

    def _end_in(self, conn: sqlite3.Connection, now: float, rid: str | None = None) -> list[str]:
        """Delete the reservations whose lease has ended, and `rid`, freeing what they hold, in one
        statement. Returns the ids deleted."""
        rows = conn.execute(
            "DELETE FROM reservations WHERE lease_until <= ? OR id = ? RETURNING id, holds", (now, rid)
        ).fetchall()
        amounts: dict[str, float] = {}
        for _, holds in rows:
            for key, amount in json.loads(holds):
                amounts[key] = amounts.get(key, 0.0) + amount
        if amounts:
            conn.execute(_sql(_UNHOLD, len(amounts), 2), [v for item in amounts.items() for v in item])
        return [r[0] for r in rows]

    def _reserve(
        self, now: float, rid: str, lease_until: float, checks: Sequence[Check], holds: Sequence[Hold]
    ) -> tuple[int | None, list[Counter]]:
        with self._tx(now) as conn:
            self._end_in(conn, now)
            counters = self._read_in(conn, now, [c.key for c in checks])
            for i, (check, c) in enumerate(zip(checks, counters, strict=True)):
                if check.limit is not None and not fits(c.total, check.amount, check.limit):
                    return i, counters
            if holds:
                values = [v for h in holds for v in (h.key, h.amount, _expiry(now, h.ttl))]
                conn.execute(_sql(_HOLD, len(holds), 3), [*values, now])
            conn.execute(
                "INSERT INTO reservations (id, lease_until, holds) VALUES (?, ?, ?)",
                (rid, lease_until, json.dumps([[h.key, h.amount] for h in holds])),
            )
            return None, counters

    def _finish(self, now: float, rid: str, ops: Sequence[Op], read: Sequence[str]) -> tuple[bool, list[Counter]]:
        with self._tx(now) as conn:
            live = rid in self._end_in(conn, now, rid)
            self._write_in(conn, now, ops)
            return live, self._read_in(conn, now, read)

    def _apply(self, now: float, ops: Sequence[Op]) -> list[float]:
        with self._tx(now) as conn:
            self._end_in(conn, now)
            return self._apply_in(conn, now, ops)

    def _apply_in(self, conn: sqlite3.Connection, now: float, ops: Sequence[Op]) -> list[float]:
        self._write_in(conn, now, ops)
        written = self._read_in(conn, now, [op.key for op in ops if op.action != "push"])
        values = iter(written)
        return [op.value if op.action == "push" else next(values).used for op in ops]

    def _write_in(self, conn: sqlite3.Connection, now: float, ops: Sequence[Op]) -> None:
        """Each run of adds or sets in one statement (a settle is one), samples one by one."""
        i = 0
        while i < len(ops):
            op = ops[i]
            if op.action == "push":
                seq = conn.execute("INSERT INTO samples (key, value) VALUES (?, ?)", (op.key, op.value)).lastrowid
                if seq is not None and seq % _TRIM_EVERY == 0:  # reads take the newest N: trimming can wait
                    conn.execute(_TRIM, (self.latency_samples,))
                i += 1
                continue
            run = [op]
            while i + len(run) < len(ops) and ops[i + len(run)].action == op.action:
                run.append(ops[i + len(run)])
            values = [v for o in run for v in (o.key, o.value, _expiry(now, o.ttl))]
            conn.execute(_sql(_WRITE[op.action], len(run), 3), [*values, now])
            i += len(run)

    def _read(self, now: float, keys: Sequence[str]) -> list[Counter]:
        with self._errors():
            return self._read_in(self._conn(), now, keys)

    def _read_in(self, conn: sqlite3.Connection, now: float, keys: Sequence[str]) -> list[Counter]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"SELECT key, used, reserved FROM counters WHERE key IN ({marks})"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (*keys, now),
        ).fetchall()
        found = {k: Counter(u, r) for k, u, r in rows}
        return [found.get(k, Counter()) for k in keys]

    def _samples(self, key: str) -> list[float]:
        with self._errors():
            rows = self._conn().execute(
                "SELECT value FROM samples WHERE key = ? ORDER BY seq DESC LIMIT ?",
                (key, self.latency_samples),
            )
            return [r[0] for r in rows]

    def _delete(self, keys: Sequence[str] | None, suffix: str | None) -> int:
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                if keys is None and suffix is None:
                    n = sum(conn.execute(f"DELETE FROM {t}").rowcount for t in ("counters", "reservations"))
                    conn.execute("DELETE FROM samples")
                else:
                    where, args = ("key GLOB ?", ["*" + (suffix or "")]) if suffix else ("0", [])
                    n = conn.execute(f"DELETE FROM counters WHERE {where}", args).rowcount
                    for k in keys or ():
                        n += conn.execute("DELETE FROM counters WHERE key = ?", (k,)).rowcount
                        n += min(1, conn.execute("DELETE FROM samples WHERE key = ?", (k,)).rowcount)
                    for rid, held in conn.execute("SELECT id, holds FROM reservations").fetchall():
                        holds = json.loads(held)
                        kept = [h for h in holds if not forgets(h[0], keys, suffix)]
                        if len(kept) < len(holds):  # their holds go with the counters
                            conn.execute("UPDATE reservations SET holds = ? WHERE id = ?", (json.dumps(kept), rid))
                conn.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return n

    def _keys(self, prefix: str) -> list[str]:
        with self._errors():
            rows = self._conn().execute("SELECT key FROM counters WHERE substr(key, 1, length(?1)) = ?1", (prefix,))
            return [r[0] for r in rows]

    def _reap(self, now: float) -> int:
        conn = self._conn()
        with self._errors():
            if conn.execute("SELECT 1 FROM reservations WHERE lease_until <= ? LIMIT 1", (now,)).fetchone() is None:
                return 0  # the common case: no write lock taken
        with self._tx(now) as conn:
            return len(self._end_in(conn, now))

    def _close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for opened in conns:
            if opened.pid == os.getpid():
                with suppress(sqlite3.Error):
                    opened.conn.close()
        self._local = threading.local()


class _Opened(NamedTuple):
    """A connection, with the process and the thread that opened it (each thread has its own)."""

    pid: int
    thread: threading.Thread
    conn: sqlite3.Connection


def _still_used(conns: list[_Opened]) -> list[_Opened]:
    """The connections whose threads still run; the others are closed. So a program that starts a
    thread per request (or a new event loop, with new worker threads, per `asyncio.run`) keeps one
    open file per live thread, not one per thread it ever ran. In a forked child the parent's are
    dropped unclosed: SQLite must not touch a parent's connection there."""
    kept = []
    for opened in conns:
        if opened.pid != os.getpid():
            continue
        if opened.thread.is_alive():
            kept.append(opened)
        else:
            with suppress(sqlite3.Error):
                opened.conn.close()
    return kept


def _keep_out_of_git(directory: Path) -> None:
    """A `.gitignore` in the state directory policyrouter made (as pytest and ruff do in their caches):
    the state file of a config kept in a repository must not be committed with it."""
    with suppress(OSError):
        (directory / ".gitignore").write_text("# policyrouter's live state: not for version control\n*\n")


def _expiry(now: float, ttl: float | None) -> float | None:
    return None if ttl is None else now + ttl
