"""`Router.acompletion` with a store that waits on a file or a socket: the event loop goes on meanwhile.

The SQLite file's write lock is held by a connection of the test's own, as another process's
transaction would hold it, so that the store's reserve has to wait.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import hi, of_kind
from loopback_server import LoopbackLLM, ok, stream

from policyrouter import Router


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def write_lock(state_file: Path) -> Iterator[sqlite3.Connection]:
    """A connection that takes the state file's write lock with `BEGIN IMMEDIATE`; the test commits."""
    holder = sqlite3.connect(state_file, isolation_level=None)
    yield holder
    if holder.in_transaction:
        holder.execute("COMMIT")
    holder.close()


def sqlite_router(make_router: Any, state_file: Path, **options: Any) -> Router:
    router: Router = make_router(state=f"sqlite:///{state_file}", **options)
    router.decide("sonnet")  # creates the file and its tables
    return router


def in_flight(router: Router) -> float:
    router.live_facts.clear()  # type: ignore[attr-defined]
    return router.live_facts.in_flight("work")


def test_the_loop_goes_on_while_the_store_waits_for_a_lock(
    make_router: Any, llm: LoopbackLLM, state_file: Path, write_lock: sqlite3.Connection
) -> None:
    router = sqlite_router(make_router, state_file)
    write_lock.execute("BEGIN IMMEDIATE")

    async def main() -> Any:
        call = asyncio.create_task(router.acompletion("sonnet", hi()))
        for _ in range(10):  # other tasks run while the call's reserve waits for the lock ...
            await asyncio.sleep(0.01)
        assert not call.done()  # ... and the call still waits (with the loop blocked, it gave up after 5 s)
        write_lock.execute("COMMIT")
        return await call

    response = asyncio.run(main())
    assert response._hidden_params["policyrouter"]["deployment"] == "sonnet@work"
    assert in_flight(router) == 0


def test_a_request_cancelled_while_it_reserves_holds_nothing(
    make_router: Any,
    llm: LoopbackLLM,
    state_file: Path,
    write_lock: sqlite3.Connection,
    events: list[dict[str, Any]],
) -> None:
    router = sqlite_router(
        make_router, state_file, events=lambda e: events.append({**e, "thread": threading.get_ident()})
    )
    write_lock.execute("BEGIN IMMEDIATE")

    async def main() -> int:
        call = asyncio.create_task(router.acompletion("sonnet", hi()))
        while not of_kind(events, "decision"):  # the first call imports litellm first
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the call has decided, and waits for the lock to reserve
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        write_lock.execute("COMMIT")  # now the worker thread's reserve goes through
        for _ in range(500):
            if of_kind(events, "failure") and in_flight(router) == 0:
                break
            await asyncio.sleep(0.01)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert of_kind(events, "attempt"), "the reservation was made"
    assert in_flight(router) == 0, "and released"
    assert llm.calls() == []
    (failure,) = of_kind(events, "failure")  # released on a worker thread, as every store step (it held the loop)
    assert failure["thread"] != loop_thread


def test_a_request_cancelled_while_it_reserves_as_the_loop_ends_holds_nothing(
    make_router: Any, llm: LoopbackLLM, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `asyncio.run` ending (Ctrl-C, the main task cancelled) shuts its executor down while the reserve
    # runs: the release could not be handed to it, and the hold stayed until its lease ended
    router = sqlite_router(make_router, state_file)
    reserve = router.store.reserve

    def slow_reserve(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return reserve(*args, **kwargs)

    monkeypatch.setattr(router.store, "reserve", slow_reserve)

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.25, asyncio.current_task().cancel)  # type: ignore[union-attr]
        await router.acompletion("sonnet", hi())

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert in_flight(router) == 0
    assert llm.calls() == []


@pytest.mark.parametrize("streaming", [False, True], ids=["reply", "stream closed early"])
def test_a_request_cancelled_while_its_books_wait_for_a_worker_still_keeps_them(
    make_router: Any, llm: LoopbackLLM, state_file: Path, events: list[dict[str, Any]], streaming: bool
) -> None:
    # The settle queued behind other work on the loop's executor was dropped when the request was
    # cancelled: no outcome event, the spend lost, the reservation held until its lease ended.
    router = sqlite_router(make_router, state_file)
    reply = (
        stream("chunks", prompt_tokens=7, completion_tokens=3)
        if streaming
        else ok(prompt_tokens=7, completion_tokens=3)
    )
    loop: asyncio.AbstractEventLoop | None = None

    def while_the_workers_are_busy(h: Any, body: dict[str, Any]) -> None:
        assert loop is not None
        loop.call_soon_threadsafe(loop.run_in_executor, None, time.sleep, 0.5)  # other work of the program
        time.sleep(0.05)
        reply(h, body)

    async def main() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        if streaming:
            llm.script("work", reply)
            chunks = await router.acompletion("sonnet", hi(), stream=True)
            await chunks.__anext__()
            loop.run_in_executor(None, time.sleep, 0.5)  # other work of the program
            with pytest.raises(asyncio.TimeoutError):  # aclose's settle waits behind it
                await asyncio.wait_for(chunks.aclose(), 0.3)
        else:
            llm.script("work", while_the_workers_are_busy)
            with pytest.raises(asyncio.TimeoutError):  # the settle waits behind the other work
                await asyncio.wait_for(router.acompletion("sonnet", hi()), 0.3)
        await asyncio.sleep(0.5)

    asyncio.run(main())
    assert [e["event"] for e in events] == ["decision", "attempt", "success"]
    assert in_flight(router) == 0
    assert router.live_facts.spend("run") > 0


@pytest.mark.parametrize("streaming", [False, True], ids=["reply", "stream"])
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_store_steps_run_on_a_worker_thread_only_for_a_blocking_store(
    make_router: Any, llm: LoopbackLLM, state_file: Path, store: str, streaming: bool
) -> None:
    threads: dict[str, int] = {}
    record = lambda event: threads.setdefault(event["event"], threading.get_ident())  # noqa: E731
    blocking = store == "sqlite"
    router = sqlite_router(make_router, state_file, events=record) if blocking else make_router(events=record)
    if streaming:
        llm.script("work", stream("chunks", prompt_tokens=7, completion_tokens=3))

    async def main() -> int:
        reply = await router.acompletion("sonnet", hi(), stream=streaming)
        if streaming:
            assert "".join([(c.choices[0].delta.content or "") async for c in reply if c.choices]) == "chunks"
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    on_loop = {event: thread == loop_thread for event, thread in threads.items()}
    assert on_loop["decision"] is not blocking
    assert on_loop["attempt"] is not blocking
    assert on_loop["success"] is not blocking  # the settle, at the end of the stream when streaming
    assert in_flight(router) == 0


def test_a_call_cancelled_in_flight_ends_its_attempt_with_a_failure_event(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # The `attempt` event had no event after it: a log reader could not tell how the call ended.
    from loopback_server import hang

    llm.script("work", hang(1.0))
    router = make_router()

    async def main() -> None:
        call = asyncio.create_task(router.acompletion("sonnet", hi()))
        await asyncio.sleep(0.3)  # the call is waiting on the server
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    assert [e["event"] for e in events] == ["decision", "attempt", "failure"]
    (failure,) = of_kind(events, "failure")
    assert (failure["error"], failure["next"], failure["status"]) == ("CancelledError", "fail", None)
    assert in_flight(router) == 0
