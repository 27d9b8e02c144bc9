"""Streamed replies: litellm's stream, passed through chunk by chunk, with the books settled at the end.

The executor reads the first chunk itself (so a provider that fails at once is still retried or
skipped like any other failure), then hands the caller a `RoutedStream` (or `AsyncRoutedStream`). The
books are settled exactly once: when the stream ends, when the caller closes it early (`close()`,
`with`, or the object being collected), or when it breaks mid-way. Usage comes from the final usage
chunk (the executor asks for one with `stream_options={"include_usage": True}`); without one, it is
estimated from the text received.

A stream nobody closed is settled by `_Leftovers`' thread, not by the finalizer itself: the garbage
collector runs a finalizer wherever this thread happens to be, also inside the state store's or the
live facts' lock, which settling takes: there it would wait on itself forever.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import queue
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

from policyrouter.accounting import Usage, message_chars, text_tokens, usage_of

Finish = Callable[["Tally", "BaseException | None"], None]

log = logging.getLogger("policyrouter.executor")


class _Leftovers:
    """Settles the streams the garbage collector finalizes, on a thread of its own, in turn.

    A finalizer only puts work on a `SimpleQueue`, which takes no lock that the interrupted code could
    hold. The thread is started by the code that makes a stream, never by a finalizer (starting a thread
    takes locks too). It is a daemon, so it never keeps a process alive; at exit, or while the
    interpreter shuts down, what is left is settled before the end, so no spend is lost.
    """

    def __init__(self) -> None:
        self._reset()
        atexit.register(self.wait, timeout=30.0)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)  # a child settles none of its parent's streams

    def _reset(self) -> None:
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()  # every stream not yet collected

    def unsettled(self) -> bool:
        """Whether a stream made here may still be unsettled: read in part, or dropped unread and
        waiting for the cyclic collector, as it sits in a cycle with its generator."""
        try:
            return any(getattr(s, "_finish", None) is not None for s in list(self._streams))
        except RuntimeError:  # the set changed while it was copied: a stream is being made
            return True

    def ready(self, stream: Any) -> None:
        """Make sure the thread runs (from the code that makes a stream), and keep the stream in view."""
        self._streams.add(stream)
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="policyrouter-stream-books", daemon=True)
                self._thread.start()

    def put(self, settle: Callable[[], None]) -> None:
        """Settle later, elsewhere (from a finalizer); at once when the interpreter is shutting down."""
        if sys.is_finalizing():
            _run(settle)
        else:
            self._work.put(settle)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until what was queued so far is settled: by the thread, in turn (a marker queued after
        it says when), or here when the thread does not run. False if `timeout` ran out first."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            done = threading.Event()
            self._work.put(done.set)
            return done.wait(timeout)
        while True:
            try:
                settle = self._work.get_nowait()
            except queue.Empty:
                return True
            _run(settle)

    def _serve(self) -> None:
        while True:
            _run(self._work.get())


def _run(settle: Callable[[], None]) -> None:
    try:
        settle()
    except Exception:  # a finalized stream's books must not end the thread that settles them
        log.exception("could not settle a stream that was not closed")


LEFTOVERS = _Leftovers()


class Tally:
    """What a stream has delivered so far: chunks, characters of text, the usage it reported."""

    __slots__ = ("chars", "chunks", "closed_early", "model", "usage")

    def __init__(self) -> None:
        self.chunks = 0
        self.chars = 0
        self.usage: Usage | None = None
        self.model: str | None = None
        self.closed_early = False

    def add(self, chunk: Any) -> None:
        self.chunks += 1
        model = getattr(chunk, "model", None)
        if model:
            self.model = model
        usage = usage_of(chunk)
        if usage is not None:
            self.usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            self.chars += message_chars(getattr(choice, "delta", None))

    def as_delivered_by(self, raw: Any) -> Tally:
        """The tally without a usage litellm counted itself. Its stream ends with a usage chunk whether
        or not the provider sent one; its `chunks` hold the provider's usage only when there was one.
        What litellm counted is no report: the books estimate it and say so, as for any reply without."""
        chunks = getattr(raw, "chunks", None)
        if self.usage is not None and isinstance(chunks, list) and not any(usage_of(c) for c in chunks):
            self.usage = None
        return self

    def usage_or_estimate(self, prompt_tokens: int) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(prompt_tokens, text_tokens(self.chars), estimated=True)


class RoutedStream:
    """Iterate it like litellm's stream. `deployment` is who serves it; `raw` is litellm's stream."""

    def __init__(self, raw: Any, first: Any, finish: Finish, deployment: str, request_id: str) -> None:
        self.raw = raw
        self.deployment = deployment
        self.request_id = request_id
        self.tally = Tally()
        if first is not None:  # read by the executor already: counted even if the stream is closed unread
            self.tally.add(first)
        self._finish: Finish | None = finish
        self._finishing = threading.Lock()  # `close()` from another thread settles while a chunk is read
        self._closed = False
        self._chunks = self._run(raw, first)
        self._pid = os.getpid()  # a forked child's copy is not its stream to settle
        LEFTOVERS.ready(self)

    def _run(self, raw: Any, first: Any) -> Generator[Any, None, None]:
        try:
            if first is not None:
                yield first
            for chunk in raw:
                if self._closed:  # by `close()` in another thread while this one waited for the chunk
                    _close_provider_stream(raw)  # here: a socket closed under another thread's read is unsafe
                    return
                self.tally.add(chunk)
                yield chunk
        except GeneratorExit:
            # Closed before its end: by `close()`, which settles the books, or by the garbage collector,
            # wherever it runs, which must not (the finalizer below has `close()` called elsewhere).
            self.tally.closed_early = True
            raise
        except BaseException as e:
            self._done(e)
            raise
        self._done(None)

    def _done(self, error: BaseException | None) -> None:
        with self._finishing:
            finish, self._finish = self._finish, None
        if finish is not None:
            finish(self.tally.as_delivered_by(self.raw), error)

    def __iter__(self) -> RoutedStream:
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def close(self) -> None:
        """Stop reading (settling the books with what was received) and close litellm's stream."""
        if self._finish is not None:
            self.tally.closed_early = True
        self._closed = True
        try:
            self._chunks.close()
        except ValueError:  # "generator already executing": another thread is reading it
            self._done(None)  # that thread stops at its next chunk and closes the provider's stream there
            return
        self._done(None)
        _close_provider_stream(self.raw)

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_finish", None) is not None and self._pid == os.getpid():
            LEFTOVERS.put(self.close)


class AsyncRoutedStream:
    """The async form of `RoutedStream`: `async for chunk in stream`, `await stream.aclose()`."""

    def __init__(
        self, raw: Any, first: Any, finish: Finish, deployment: str, request_id: str, *, blocking: bool = False
    ) -> None:
        self.raw = raw
        self.deployment = deployment
        self.request_id = request_id
        self.tally = Tally()
        if first is not None:  # as in `RoutedStream`
            self.tally.add(first)
        self._finish: Finish | None = finish
        self._first = first
        self._has_first = first is not None
        self._blocking = blocking  # settle on a worker thread: the store may wait on a file or a socket
        self._pid = os.getpid()
        LEFTOVERS.ready(self)

    def _done(self, error: BaseException | None) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(self.tally.as_delivered_by(self.raw), error)

    async def _settle(self, error: BaseException | None) -> None:
        finish, self._finish = self._finish, None
        if finish is None:
            return
        tally = self.tally.as_delivered_by(self.raw)
        if self._blocking:  # shielded: cancelled, the books are still settled (see `executor._step`)
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, finish, tally, error))
        else:
            finish(tally, error)

    def __aiter__(self) -> AsyncRoutedStream:
        return self

    async def __anext__(self) -> Any:
        if self._finish is None:
            raise StopAsyncIteration
        if self._has_first:
            self._has_first = False
            chunk, self._first = self._first, None
            return chunk
        try:
            chunk = await _anext(self.raw)
        except StopAsyncIteration:
            await self._settle(None)
            raise
        except BaseException as e:
            await self._settle(e)
            raise
        self.tally.add(chunk)
        return chunk

    async def aclose(self) -> None:
        """Stop reading (settling the books with what was received) and close litellm's stream."""
        if self._finish is not None:
            self.tally.closed_early = True
            await self._settle(None)
        close = getattr(self.raw, "aclose", None)
        if callable(close):
            with contextlib.suppress(Exception):
                await close()

    async def __aenter__(self) -> AsyncRoutedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_finish", None) is not None and self._pid == os.getpid():
            LEFTOVERS.put(self._closed_early)

    def _closed_early(self) -> None:
        self.tally.closed_early = True
        self._done(None)


def _close_provider_stream(raw: Any) -> None:
    """Close litellm's stream, or (its sync stream has no `close`) the provider's stream beneath it.

    Left open, the provider's stream holds its HTTP connection until the garbage collector finalizes
    it, at whatever moment a collection runs: once inside httpx's connection pool, whose lock the
    finalizer then waits for in the same thread, forever. Closing is best effort: the books are
    already settled."""
    for stream in (raw, getattr(raw, "completion_stream", None)):
        close = getattr(stream, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
            return


async def _anext(iterator: AsyncIterator[Any]) -> Any:
    return await iterator.__anext__()
