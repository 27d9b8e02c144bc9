"""Streams and the async path: the books settle when a stream ends, is closed early, or breaks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
from typing import Any

import pytest
from executor_helpers import hi, of_kind, spend
from loopback_server import Handler, LoopbackLLM, ok, rate_limited, server_error, stream, tool_call

from policyrouter import AllDeploymentsFailed
from policyrouter.streams import LEFTOVERS

PRICE_IN, PRICE_OUT = 3.00, 15.00  # sonnet's price in the test registry


def cost(prompt: int, completion: int) -> float:
    return (prompt * PRICE_IN + completion * PRICE_OUT) / 1e6


def test_a_stream_passes_every_chunk_and_settles_the_final_usage_at_the_end(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script("work", stream("one two three", prompt_tokens=40, completion_tokens=30))
    router = make_router()
    chunks = router.completion("sonnet", hi(), stream=True)

    assert spend(router) == 0  # nothing settled before the stream is read
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert text == "one two three"
    assert llm.calls()[0].body["stream_options"] == {"include_usage": True}
    assert spend(router) == pytest.approx(cost(40, 30))
    (success,) = of_kind(events, "success")
    assert success["tokens"] == {"input": 40, "output": 30, "reasoning": 0}
    assert success["stream"] is True and success["closed_early"] is False


ARGUMENTS = '{"path": "' + "x" * 79 + '"}'  # with the name `read_file`, 100 characters: 25 tokens


def test_a_stream_whose_provider_sends_no_usage_is_estimated_and_says_so(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # litellm ends the stream with a usage chunk of its own counting: it was booked as reported
    llm.script("work", stream("x" * 400, pieces=4, include_usage=False))
    router = make_router()
    for _ in router.completion("sonnet", hi(), stream=True, tokens=60):
        pass
    (success,) = of_kind(events, "success")
    assert success["tokens"] == {"input": 60, "output": 100, "reasoning": 0, "estimated": True}
    assert spend(router) == pytest.approx(cost(60, 100))


def test_a_tool_call_without_usage_is_estimated_from_its_name_and_arguments(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    """An agent's reply is often a tool call and nothing else: without usage, its arguments are what
    the provider bills as output. (litellm stands zeros in for the usage a provider did not send.)"""
    llm.script("work", tool_call("read_file", ARGUMENTS))
    router = make_router()
    response = router.completion("sonnet", hi(), tokens=100)

    assert response.choices[0].message.tool_calls[0].function.arguments == ARGUMENTS
    (success,) = of_kind(events, "success")
    assert success["tokens"] == {"input": 100, "output": 25, "reasoning": 0, "estimated": True}
    assert spend(router) == pytest.approx(cost(100, 25))


def test_a_tool_call_stream_closed_early_counts_the_arguments_received(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script("work", tool_call("read_file", ARGUMENTS))  # the arguments in chunks of 31 characters
    router = make_router()
    with router.completion("sonnet", hi(), stream=True, tokens=100) as chunks:
        assert next(chunks).choices[0].delta.tool_calls[0].function.name == "read_file"
        assert next(chunks).choices[0].delta.tool_calls[0].function.arguments == ARGUMENTS[:31]

    (success,) = of_kind(events, "success")
    assert success["closed_early"] is True
    assert success["tokens"] == {"input": 100, "output": 10, "reasoning": 0, "estimated": True}  # (9 + 31) / 4


def test_a_stream_closed_early_settles_what_was_received(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script("work", stream("x" * 400, pieces=4))
    router = make_router()
    with router.completion("sonnet", hi(), stream=True, tokens=100) as chunks:
        first = next(chunks)
        assert first.choices[0].delta.content == "x" * 100

    (success,) = of_kind(events, "success")
    assert success["closed_early"] is True
    assert success["tokens"] == {"input": 100, "output": 25, "reasoning": 0, "estimated": True}  # 100 chars / 4
    assert spend(router) == pytest.approx(cost(100, 25))
    assert router.live_facts.in_flight("work") == 0
    # and the provider's HTTP response is closed now, not whenever the garbage collector gets to it
    assert chunks.raw.completion_stream.response.is_closed


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_stream_closed_unread_books_the_chunk_the_executor_read(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], asynchronous: bool
) -> None:
    # The executor reads the first chunk itself, to fall back on a stream that fails at once; closed
    # before the caller read it, the stream booked 0 output tokens.
    llm.script("work", stream("x" * 400, pieces=4))
    router = make_router()
    if asynchronous:

        async def close_unread() -> None:
            chunks = await router.acompletion("sonnet", hi(), stream=True, tokens=100)
            await chunks.aclose()

        asyncio.run(close_unread())
    else:
        router.completion("sonnet", hi(), stream=True, tokens=100).close()
    (success,) = of_kind(events, "success")
    assert success["closed_early"] is True
    assert success["tokens"]["output"] == 25  # the first 100 characters ≈ 25 tokens


def test_close_settles_a_stream_dropped_unread(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # Left in a reference cycle with its generator, it was found only by a later collection: after the
    # `with` block, nothing was spent and a call was still in flight.
    llm.script("work", stream("x" * 400, pieces=4))
    gc.disable()  # no collection of its own may come first
    try:
        with make_router() as router:
            for _ in router.completion("sonnet", hi(), stream=True, tokens=100):
                break  # stop reading: the stream is dropped, not closed
            store = router.store
    finally:
        gc.enable()
    assert [e["event"] for e in events] == ["decision", "attempt", "success"]
    assert store.read([store.layout.spend("run", store.now(), store.run_id).key])[0].used == pytest.approx(
        cost(100, 25)
    )


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_stream_left_to_the_garbage_collector_is_settled_without_a_deadlock(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], asynchronous: bool
) -> None:
    """The collector finalizes a dropped stream wherever it happens to run: also inside the state
    store's lock, which settling takes. Settled right there, the thread would wait on itself forever."""
    llm.script("work", stream("x" * 400, pieces=4))
    router = make_router()
    gc.disable()  # the collection below is the one that finalizes the stream
    try:
        if asynchronous:

            async def read_one() -> Any:
                chunks = await router.acompletion("sonnet", hi(), stream=True, tokens=100)
                await chunks.__anext__()
                return chunks

            chunks = asyncio.run(read_one())
        else:
            chunks = router.completion("sonnet", hi(), stream=True, tokens=100)
            next(chunks)
        cycle: list[Any] = [chunks]
        cycle.append(cycle)  # only the collector frees it now
        del chunks, cycle

        def collect_inside_the_stores_lock() -> None:
            with router.store._lock:  # as the store's own reserve holds it when an allocation starts a collection
                gc.collect()

        collector = threading.Thread(target=collect_inside_the_stores_lock, daemon=True)
        collector.start()
        collector.join(timeout=10)
    finally:
        gc.enable()
    assert not collector.is_alive(), "the finalizer waited on the store's lock, held by its own thread"
    assert LEFTOVERS.wait(timeout=10)  # settled by a thread of its own, soon after
    (success,) = of_kind(events, "success")
    assert success["closed_early"] is True
    assert success["tokens"] == {"input": 100, "output": 25, "reasoning": 0, "estimated": True}
    assert spend(router) == pytest.approx(cost(100, 25))
    assert router.live_facts.in_flight("work") == 0


def test_a_stream_that_fails_at_once_falls_back_like_any_call(make_router: Any, llm: LoopbackLLM) -> None:
    llm.script("work", rate_limited(retry_after=3))
    llm.script("personal", stream("from personal"))
    router = make_router()
    chunks = router.completion("sonnet", hi(), stream=True)

    assert chunks.deployment == "sonnet@personal"
    assert "".join((c.choices[0].delta.content or "") for c in chunks if c.choices) == "from personal"


def broken_stream(h: Handler, body: dict[str, Any]) -> None:
    """One chunk of content, then the connection drops."""
    h.send_response(200)
    h.send_header("content-type", "text/event-stream")
    h.send_header("transfer-encoding", "chunked")
    h.end_headers()
    chunk = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "delta": {"content": "y" * 80}}],
    }
    h._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
    h.close_connection = True
    h.connection.shutdown(2)


def silent_stream(h: Handler, body: dict[str, Any]) -> None:
    """One chunk of content, then nothing until the server stops."""
    h.send_response(200)
    h.send_header("content-type", "text/event-stream")
    h.send_header("transfer-encoding", "chunked")
    h.end_headers()
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
    h._chunk(f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': {'content': 'y' * 80}}]})}\n\n".encode())
    h.llm.released.wait(10)


def test_a_stream_that_goes_quiet_is_a_timeout_with_no_status(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # litellm raises it as a 500: the failure event said `server_error`, status 500, which no server sent
    llm.script("work", silent_stream)
    router = make_router()
    chunks = router.completion("sonnet", hi(), stream=True, tokens=60, timeout=0.5)
    with pytest.raises(Exception, match=r"(?i)time"):
        for _ in chunks:
            pass
    (failure,) = of_kind(events, "failure")
    assert (failure["error"], failure["status"], failure["billed"]) == ("timeout", None, True)


def test_a_stream_closed_from_another_thread_settles_and_the_reader_stops(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # close() raised "generator already executing" while another thread waited for the next chunk,
    # and the books waited for that thread.
    go_on = threading.Event()

    def paused_stream(h: Handler, body: dict[str, Any]) -> None:
        """A chunk, a wait until the test says go on, a second chunk, the end."""
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        h._chunk(
            f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': {'content': 'y' * 80}}]})}\n\n".encode()
        )
        go_on.wait(10)
        with contextlib.suppress(OSError):  # the client may have closed the connection
            h._chunk(
                f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': {'content': 'z'}}]})}\n\n".encode()
            )
            h._chunk(b"data: [DONE]\n\n")
            h._chunk(b"")
        h.close_connection = True

    llm.script("work", paused_stream)
    router = make_router()
    chunks = router.completion("sonnet", hi(), stream=True, tokens=60, timeout=10)
    got: list[Any] = []
    failed: list[BaseException] = []
    first = threading.Event()

    def read() -> None:
        try:
            for chunk in chunks:
                got.append(chunk)
                first.set()
        except BaseException as e:  # whatever the reader sees is what the test checks
            failed.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10)
    chunks.close()
    assert spend(router) == pytest.approx(cost(60, 20))  # settled by close(), with the 80 characters read
    assert router.live_facts.in_flight("work") == 0
    go_on.set()  # the next chunk comes: the reader stops there
    reader.join(10)
    assert not reader.is_alive() and failed == [] and len(got) == 1
    assert [e["event"] for e in events if e["event"] in ("attempt", "success", "failure")] == ["attempt", "success"]


def test_a_stream_broken_mid_way_keeps_what_the_provider_billed_and_raises(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script("work", broken_stream)
    router = make_router()
    chunks = router.completion("sonnet", hi(), stream=True, tokens=60)
    with pytest.raises(Exception, match=r"connection|peer closed"):
        for _ in chunks:
            pass

    assert spend(router) == pytest.approx(cost(60, 20))  # 80 chars of output ≈ 20 tokens
    failures = of_kind(events, "failure")
    assert failures and failures[0]["billed"] is True
    assert "status" in failures[0]  # as in every failure event: None when there was no HTTP status
    assert router.live_facts.in_flight("work") == 0
    router.live_facts.clear()
    assert router.live_facts.errors("work") == 1  # a broken connection is the provider's


# -- async --------------------------------------------------------------------------------------


def test_acompletion_falls_back_and_settles(make_router: Any, llm: LoopbackLLM) -> None:
    llm.script("work", server_error(), server_error(), server_error())
    llm.script("personal", ok(prompt_tokens=10, completion_tokens=10))
    router = make_router()
    response = asyncio.run(router.acompletion("sonnet", hi()))

    assert response._hidden_params["policyrouter"]["deployment"] == "sonnet@personal"
    assert [c.provider for c in llm.calls()] == ["work", "work", "work", "personal"]
    assert spend(router) == pytest.approx(cost(10, 10))


def test_acompletion_streams(make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]) -> None:
    llm.script("work", stream("async chunks", prompt_tokens=7, completion_tokens=3))
    router = make_router()

    async def read() -> str:
        chunks = await router.acompletion("sonnet", hi(), stream=True)
        return "".join([(c.choices[0].delta.content or "") async for c in chunks if c.choices])

    assert asyncio.run(read()) == "async chunks"
    assert spend(router) == pytest.approx(cost(7, 3))
    assert of_kind(events, "success")[0]["stream"] is True


def test_concurrent_async_calls_each_keep_their_own_books(make_router: Any, llm: LoopbackLLM) -> None:
    router = make_router()

    async def many() -> list[Any]:
        return await asyncio.gather(*(router.acompletion("sonnet", hi(f"q{i}")) for i in range(8)))

    responses = asyncio.run(many())
    assert len({r._hidden_params["policyrouter"]["request_id"] for r in responses}) == 8
    assert spend(router) == pytest.approx(8 * cost(12, 5))  # the loopback's default usage
    assert router.live_facts.in_flight("work") == 0


def test_acompletion_raises_one_error_when_everything_fails(make_router: Any, llm: LoopbackLLM) -> None:
    for provider in ("work", "personal", "backup"):
        llm.default(provider, server_error(503))
    router = make_router()
    with pytest.raises(AllDeploymentsFailed) as caught:
        asyncio.run(router.acompletion("sonnet", hi()))
    assert len(caught.value.attempts) == 9  # three deployments, three tries each
