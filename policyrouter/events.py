"""What the executor reports: one JSON object per event, sent to sinks (a file, a stream, a callback).

Every event has the same keys, `null` where they do not apply, plus a few of its own kind:

    {"event": "success", "ts": "2026-01-05T10:00:00.123Z", "request_id": "…", "run_id": "…",
     "model": "sonnet", "provider": "work", "deployment": "sonnet@work",
     "tokens": {"input": 1800, "output": 350, "reasoning": 0}, "cost": 0.0107, "latency": 1.42,
     "reason": null, …}

Secrets never leave: every line is scrubbed of the values of the API-key variables the registry names
(`Redactor`), and message content is included only when `Events(include_content=True)` asks for it.
See docs/executor.md for the schema of each kind.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Union

from policyrouter.forks import renew_locks_after_fork

log = logging.getLogger("policyrouter.events")

EVENT_KINDS = (
    "decision",
    "attempt",
    "success",
    "failure",
    "fallback",
    "throttled",
    "budget_warning",
    "budget_exceeded",
)
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values are not scrubbed: they would blank out ordinary words

Sink = Callable[[dict[str, Any]], None]
SinkSpec = Union[str, os.PathLike, IO[str], Sink, "Events", Iterable[Any], None]


class Redactor:
    """Scrubs the current values of some environment variables (the API keys) from text.

    Values are read at each call, so a key set after loading is scrubbed too.
    """

    def __init__(self, env_names: Iterable[str]) -> None:
        self.env_names = tuple(dict.fromkeys(n for n in env_names if n))

    def secrets(self) -> list[str]:
        environ = os.environ
        values = (environ.get(name) for name in self.env_names)
        return [v for v in values if v and len(v) >= MIN_SECRET_LENGTH]

    def __call__(self, text: str) -> str:
        for secret in self.secrets():
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class FileSink:
    """Appends one JSON line per event to a file (created with its directory when missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._new_locks()
        renew_locks_after_fork(self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        self.write_line(_encode(record))

    def write_line(self, line: str) -> None:
        """Append one event, already encoded as one line of JSON."""
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __repr__(self) -> str:
        return f"<FileSink {self.path}>"


class StreamSink:
    """Writes one JSON line per event to a text stream (`sys.stderr`, a socket file, …)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._new_locks()
        renew_locks_after_fork(self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        self.write_line(_encode(record))

    def write_line(self, line: str) -> None:
        """Write one event, already encoded as one line of JSON."""
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Events:
    """Sends events to sinks. With no sink, `emit` returns at once (callers check `enabled` first to
    skip building the event at all).

    `redact` scrubs secrets from every event; `include_content` adds the request's messages to
    `attempt` events and the reply's text to `success` events (off by default).
    """

    def __init__(
        self,
        sinks: SinkSpec = None,
        *,
        include_content: bool = False,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if not isinstance(include_content, bool):  # "false" would log every prompt
            raise TypeError(f"`include_content` is True or False, got {include_content!r}")
        self.include_content = include_content
        self.redact = redact
        self._sinks: list[Sink] = list(_sinks(sinks))
        self._broken: set[int] = set()

    @property
    def enabled(self) -> bool:
        return bool(self._sinks)

    def add(self, sink: SinkSpec) -> None:
        """Add a sink: a path (JSON lines appended), a text stream, a callable taking a dict, or a list."""
        self._sinks.extend(_sinks(sink))

    def close(self) -> None:
        for sink in self._sinks:
            close = getattr(sink, "close", None)
            if isinstance(sink, FileSink) and close is not None:
                close()

    def emit(
        self,
        kind: str,
        *,
        request_id: str,
        run_id: str,
        model: str | None = None,
        provider: str | None = None,
        deployment: str | None = None,
        tokens: Mapping[str, Any] | None = None,
        cost: float | None = None,
        latency: float | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        if not self._sinks:
            return
        record: dict[str, Any] = {
            "event": kind,
            "ts": _timestamp(),
            "request_id": request_id,
            "run_id": run_id,
            "model": model,
            "provider": provider,
            "deployment": deployment,
            "tokens": dict(tokens) if tokens is not None else None,
            "cost": None if cost is None else round(cost, 9),
            "latency": None if latency is None else round(latency, 6),
            "reason": reason,
            **extra,
        }
        # Encoded once, and scrubbed as text: what the file and stream sinks write as it is, and what
        # callbacks get decoded (JSON-safe: datetimes and other objects as strings).
        line = _encode(record)
        if self.redact is not None:
            line = self.redact(line)
        decoded: dict[str, Any] | None = None
        for sink in self._sinks:
            try:
                if isinstance(sink, (FileSink, StreamSink)):
                    sink.write_line(line)
                else:
                    if decoded is None:
                        decoded = json.loads(line)
                    sink(decoded)
            except Exception as e:  # a broken sink must not break the call it reports on
                if id(sink) not in self._broken:
                    self._broken.add(id(sink))
                    log.warning("event sink %r failed: %s", sink, e)


def _encode(record: Mapping[str, Any]) -> str:
    return json.dumps(record, default=str, separators=(",", ":"))


def _timestamp() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _sinks(spec: SinkSpec) -> Iterable[Sink]:
    if spec is None:
        return
    if isinstance(spec, Events):
        yield from spec._sinks
    elif isinstance(spec, (str, os.PathLike)):
        if not str(spec) or os.path.isdir(spec):  # `""` is the working directory: every event would be lost
            what = "an empty path" if not str(spec) else "a directory"
            raise ValueError(f"an events file is the path of a file; got {what}, {str(spec)!r}")
        yield FileSink(spec)
    elif hasattr(spec, "write"):
        if isinstance(spec, (io.RawIOBase, io.BufferedIOBase)) or "b" in str(getattr(spec, "mode", "")):
            raise TypeError("an event stream takes text: open it without `b`, such as open(path, 'a')")
        if getattr(spec, "closed", False):
            raise ValueError("the event stream is closed")
        yield StreamSink(spec)  # type: ignore[arg-type]
    elif callable(spec):
        yield spec
    elif isinstance(spec, Iterable) and not isinstance(spec, (Mapping, bytes)):  # a dict's keys are no sinks
        for item in spec:
            yield from _sinks(item)
    else:
        raise TypeError(
            f"an event sink is a path, a text stream, a callable or a list of them, not {type(spec).__name__}"
        )
