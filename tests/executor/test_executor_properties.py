"""Whatever the providers answer, the books come out right.

Hypothesis scripts each provider of the loopback server with a random run of replies (success with
usage, rate limits, server errors, refused keys, billed failures, bad requests, a context window
exceeded, used-up credits) and makes a few calls, sync or async, plain or streamed, some streams
closed early, some dropped for the garbage collector. Then: every call returned or raised one of the
documented errors; nothing is held any more; the spend in the books is the sum of what the events say
was spent; no event holds a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import hi, of_kind, spend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loopback_server import (
    LoopbackLLM,
    bad_request,
    billed_error,
    context_window_exceeded,
    ok,
    out_of_credits,
    rate_limited,
    server_error,
    unauthorized,
)

from policyrouter import CompletionError, DecisionError
from policyrouter.state.status import collect
from policyrouter.streams import LEFTOVERS

REPLIES = {
    "ok": lambda n: ok(prompt_tokens=n, completion_tokens=n // 2 + 1),
    "rate limited": lambda n: rate_limited(retry_after=n % 5 or None),
    "server error": lambda n: server_error(500 + n % 4),
    "unauthorized": lambda n: unauthorized(echo_key=True),
    "billed, then failed": lambda n: billed_error(n, n // 3),
    "bad request": lambda n: bad_request(),
    "context window": lambda n: context_window_exceeded(),
    "out of credits": lambda n: out_of_credits(),
}
SCRIPT = st.lists(st.tuples(st.sampled_from(sorted(REPLIES)), st.integers(1, 5000)), max_size=5)
HOW = [
    "plain",
    "stream",
    "stream closed early",
    "stream dropped",
    "async",
    "async stream",
    "async stream closed early",
    "async stream dropped",
]
CALLS = st.lists(st.sampled_from(HOW), min_size=1, max_size=4)


def call(router: Any, how: str) -> None:
    if how == "plain":
        router.completion("sonnet", hi())
    elif how == "async":
        asyncio.run(router.acompletion("sonnet", hi()))
    elif how == "async stream dropped":
        asyncio.run(read_one_async(router))
    elif how.startswith("async"):
        asyncio.run(read_async(router, early=how.endswith("early")))
    elif how == "stream dropped":  # one chunk read, then left to the garbage collector
        next(router.completion("sonnet", hi(), stream=True))
    else:
        with router.completion("sonnet", hi(), stream=True) as chunks:
            for _ in chunks:
                if how.endswith("early"):
                    break


async def read_async(router: Any, *, early: bool) -> None:
    async with await router.acompletion("sonnet", hi(), stream=True) as chunks:
        async for _ in chunks:
            if early:
                break


async def read_one_async(router: Any) -> None:
    chunks = await router.acompletion("sonnet", hi(), stream=True)
    await chunks.__anext__()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scripts=st.fixed_dictionaries({p: SCRIPT for p in ("work", "personal", "backup")}),
    calls=CALLS,
    store=st.sampled_from(["memory", "sqlite"]),  # SQLite: async calls keep their books on worker threads
)
def test_the_books_are_right_whatever_the_providers_answer(
    make_router: Any,
    llm: LoopbackLLM,
    keys: dict[str, str],
    events: list[dict[str, Any]],
    tmp_path: Path,
    scripts: dict[str, list[tuple[str, int]]],
    calls: list[str],
    store: str,
) -> None:
    llm.reset()
    events.clear()
    for provider, replies in scripts.items():
        llm.script(provider, *(REPLIES[name](n) for name, n in replies))
    state = "memory://" if store == "memory" else f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"
    router = make_router(state=state)

    for how in calls:
        with contextlib.suppress(CompletionError, DecisionError):  # the documented ways to fail
            call(router, how)
    gc.collect()  # the dropped streams: finalized, then settled by a thread of their own
    assert LEFTOVERS.wait(timeout=10)

    for provider in ("work", "personal", "backup"):
        assert router.live_facts.in_flight(provider) == 0
    assert all(usage.reserved == pytest.approx(0, abs=1e-9) for usage in collect(router.registry, router.store).limits)
    booked = [e["cost"] for e in of_kind(events, "success")] + [
        e["cost"] for e in of_kind(events, "failure") if e.get("billed")
    ]
    assert spend(router) == pytest.approx(sum(c or 0.0 for c in booked))
    text = json.dumps(events)
    assert not any(key in text for key in keys.values())
