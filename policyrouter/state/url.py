"""`settings.state` → a store: `sqlite:///PATH` (default), `redis://HOST:PORT/DB`, `memory://`; a
`${NAME}` in the URL (a password, say) is the environment variable's value."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from policyrouter.registry import ENV_REFERENCE, Registry
from policyrouter.state.errors import StateError
from policyrouter.state.store import StateStore

SCHEMES = ("sqlite", "redis", "rediss", "unix", "memory")


def sqlite_path(url: str, config_dir: Path) -> Path:
    """`sqlite:///rel/state.db` is relative to the config directory; `sqlite:////abs/state.db` is absolute."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise StateError(url, "an SQLite state URL is `sqlite:///PATH`", "e.g. `sqlite:///.policyrouter/state.db`")
    if "?" in rest:  # it would be part of the file's name
        raise StateError(url, "an SQLite state URL takes no options", "write the path alone: `sqlite:///PATH`")
    if rest == "/:memory:":  # SQLite's name for a database in memory: here it would be a file of that name
        raise StateError(url, "an SQLite state URL names a file", "for a state kept in memory, write `memory://`")
    path = Path(rest[1:]).expanduser()
    return path if path.is_absolute() else config_dir / path


def state_file(registry: Registry) -> Path | None:
    """The SQLite file `settings.state` names (made when the store is first opened), or None when the
    state is kept elsewhere."""
    url = _with_environment(registry.settings.state)
    if url.partition("://")[0].lower() != "sqlite":
        return None
    return sqlite_path(url, registry.config_dir)


def _with_environment(url: str) -> str:
    """`url` with each `${NAME}` replaced by that environment variable's value. In the user and
    password, and in the query (`?password=`), the value is percent-encoded, as a URL needs a
    password with `@`, `/` or `:` in it to be; in a path it goes in as it is."""

    def expand(text: str, encode: bool) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise StateError(
                    url,
                    f"the state URL names `${{{name}}}`, which is not set",
                    f"set the environment variable `{name}`",
                )
            return quote(os.environ[name], safe="") if encode else os.environ[name]

        return ENV_REFERENCE.sub(value, text)

    scheme, separator, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    path, mark, query = tail.partition("?")
    return (
        f"{scheme}{separator}{expand(userinfo, True)}{at}{expand(host, False)}"
        f"{slash}{expand(path, False)}{mark}{expand(query, True)}"
    )


def open_store(registry: Registry, url: str | None = None, **options: Any) -> StateStore:
    """Open the store `url` names (default: `registry.settings.state`).

    `options` go to the store: `clock`, `run_id`, `reservation_ttl`, `latency_samples`, and per
    backend `busy_timeout` (SQLite), `key_prefix` and `socket_timeout` (Redis).
    """
    url = _with_environment(url or registry.settings.state)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        from policyrouter.state.memory import MemoryStore

        return MemoryStore(registry, url, **options)
    if scheme == "sqlite":
        from policyrouter.state.sqlite import SQLiteStore

        return SQLiteStore(registry, sqlite_path(url, registry.config_dir), **options)
    if scheme in ("redis", "rediss", "unix"):
        from policyrouter.state.redis import RedisStore

        return RedisStore(registry, url, **options)
    raise StateError(
        url,
        "unknown kind of state store",
        "use `sqlite:///.policyrouter/state.db`, `redis://127.0.0.1:6379/0` or `memory://`",
    )
