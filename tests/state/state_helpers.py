"""Helpers for the live-state tests: a registry built in code, a clock the test moves, a real
`redis-server` child process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from policyrouter.registry import Budget, Deployment, Model, Price, Provider, Quota, Registry, Settings, Window
from policyrouter.state import StateStore
from policyrouter.state.memory import MemoryStore
from policyrouter.state.redis import RedisStore
from policyrouter.state.sqlite import SQLiteStore

T0 = datetime(2024, 3, 15, 10, 0, tzinfo=timezone.utc)  # a Friday in mid-March


class FakeClock:
    """An aware clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, t: datetime) -> None:
        with self._lock:
            self._now = t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


def _deployment(model: str, provider: str, price: Price | None, index: int, **kw: Any) -> Deployment:
    return Deployment(
        model=model,
        provider=provider,
        model_id=f"{model}-id",
        litellm_model=f"{provider}/{model}-id",
        capabilities=frozenset({"tools"}),
        context_window=200_000,
        price=price,
        price_source="registry" if price else None,
        index=index,
        **kw,
    )


def make_registry(
    *,
    tz: str = "Europe/Berlin",
    state: str = "memory://",
    run_usd: float = 5.0,
    run_hard: bool = True,
    month_usd: float = 200.0,
    month_hard: bool = False,
    work_quota: float = 10_000,
    work_quota_unit: str = "tokens",
    work_quota_hard: bool = True,
    work_quota_window: Window | None = None,
    work_rpm: float | None = None,
    work_tpm: float | None = None,
    openai_usd: float = 10.0,
    extra_budgets: dict[str, Budget] | None = None,
    on_state_error: str | None = None,
    path: Path | None = None,
) -> Registry:
    """A small registry: `work` and `personal` serve `sonnet`; `openai` has a provider budget;
    `local` is free. Budgets `run` (hard) and `month` (soft) unless told otherwise."""
    sonnet_price = Price(3.0, 15.0)
    providers = {
        "work": Provider(
            "work",
            "anthropic",
            quota=Quota(
                work_quota, work_quota_unit, work_quota_window or Window("5h", seconds=5 * 3600), work_quota_hard
            ),  # type: ignore[arg-type]
            rpm=work_rpm,
            tpm=work_tpm,
        ),
        "personal": Provider("personal", "anthropic", quota=Quota(2_000_000, "tokens", Window("5h", seconds=18000))),
        "openai": Provider(
            "openai", "openai", budget=Budget("openai", openai_usd, Window("month"), True, scope="provider")
        ),
        "local": Provider("local", "ollama"),
    }
    models = {
        "sonnet": Model(
            "sonnet",
            frozenset({"tools"}),
            200_000,
            64_000,
            sonnet_price,
            (
                _deployment("sonnet", "work", sonnet_price, 0),
                _deployment("sonnet", "personal", sonnet_price, 1),
            ),
        ),
        "gpt-4o": Model(
            "gpt-4o",
            frozenset({"tools"}),
            128_000,
            None,
            Price(2.5, 10.0),
            (_deployment("gpt-4o", "openai", Price(2.5, 10.0), 0, rpm=60),),
        ),
        "local-coder": Model(
            "local-coder",
            frozenset({"tools"}),
            32_000,
            None,
            Price(0, 0),
            (_deployment("local-coder", "local", Price(0, 0), 0),),
        ),
    }
    budgets = {
        "run": Budget("run", run_usd, Window("run"), run_hard),
        "month": Budget("month", month_usd, Window("month"), month_hard),
        "openai": providers["openai"].budget,
        **(extra_budgets or {}),
    }
    settings = Settings(
        timezone=ZoneInfo(tz),
        timezone_name=tz,
        state=state,
        on_state_error=on_state_error,  # type: ignore[arg-type]
    )
    return Registry(settings, providers, models, budgets, path=path)  # type: ignore[arg-type]


def deployment(registry: Registry, key: str) -> Deployment:
    model, _, provider = key.partition("@")
    return next(d for d in registry.models[model].deployments if d.provider == provider)


StoreFactory = Callable[..., StateStore]  # `make(registry, **options)` → a store


class Stores:
    """`stores(registry, **options)` opens a store of one kind. The stores it opens share their data
    (one SQLite file, one Redis key prefix), except memory stores. It pickles, so a child process can
    open its own; each process closes what it opened."""

    def __init__(self, kind: str, path: Path, url: str | None) -> None:
        self.kind, self.path, self.url = kind, path, url
        self.prefix = f"test-{uuid.uuid4().hex[:8]}:"
        self.opened: list[StateStore] = []

    def __call__(self, registry: Registry, **options: Any) -> StateStore:
        store: StateStore
        if self.kind == "memory":
            store = MemoryStore(registry, **options)
        elif self.kind == "sqlite":
            store = SQLiteStore(registry, self.path, **options)
        else:
            assert self.url is not None
            store = RedisStore(registry, self.url, key_prefix=self.prefix, **options)
        self.opened.append(store)
        return store

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "opened": []}


# -- a real redis-server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A `redis-server` child on 127.0.0.1, no persistence; `stop()`/`start()` simulate an outage."""

    def __init__(self, port: int | None = None, password: str | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"  # without the password, which clients must add
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            argv + (["--requirepass", self.password] if self.password else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
