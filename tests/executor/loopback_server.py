"""A small OpenAI-compatible server on 127.0.0.1, scripted per request, for the executor's tests.

Each provider of a test registry points its `base_url` at its own path prefix
(`http://127.0.0.1:PORT/work/v1`), so one server plays every provider and a test scripts each one:

    server.script("work", rate_limited(retry_after=2), ok(content="hi"))

A provider answers with its scripted replies in turn, then with its default (`ok()` unless set with
`server.default(provider, reply)`). Every request is recorded (provider, path, headers, JSON body).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[["Handler", dict[str, Any]], None]


@dataclass
class Recorded:
    provider: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Script:
    replies: deque[Reply] = field(default_factory=deque)
    default: Reply | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or close early are part of the tests: say nothing about them."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackLLM:
    """The server. `url(provider)` is the `base_url` for a provider; `requests` is what it received."""

    def __init__(self) -> None:
        self._scripts: dict[str, _Script] = {}
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.released = threading.Event()  # set at shutdown: ends every `hang`
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.llm = self  # type: ignore[attr-defined]
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-llm", daemon=True)

    def start(self) -> LoopbackLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}/v1"

    def script(self, provider: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(provider, _Script()).replies.extend(replies)

    def default(self, provider: str, reply: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(provider, _Script()).default = reply

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()

    def calls(self, provider: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if provider is None or r.provider == provider]

    def _next(self, provider: str, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            script = self._scripts.get(provider)
            if script is None:
                return ok()
            if script.replies:
                return script.replies.popleft()
            return script.default or ok()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def llm(self) -> LoopbackLLM:
        return self.server.llm  # type: ignore[attr-defined,no-any-return]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        body = json.loads(raw or b"{}")
        parts = self.path.strip("/").split("/")
        provider = parts[0] if parts else ""
        recorded = Recorded(provider, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.llm._next(provider, recorded)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: fine
            reply(self, body)

    # -- writing answers ------------------------------------------------------------------------

    def send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events:
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


# -- replies ------------------------------------------------------------------------------------


def usage_dict(prompt: int, completion: int, reasoning: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def ok(
    content: str = "hello from loopback",
    *,
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
    reasoning_tokens: int = 0,
    model: str | None = None,
) -> Reply:
    """200 with a chat completion and its usage; `model` defaults to the model asked for."""

    def reply(h: Handler, body: dict[str, Any]) -> None:
        if body.get("stream"):
            stream(content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, model=model)(h, body)
            return
        h.send_json(
            200,
            {
                "id": "chatcmpl-loopback",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model or body.get("model", "unknown"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": usage_dict(prompt_tokens, completion_tokens, reasoning_tokens),
            },
        )

    return reply


def stream(
    content: str = "hello from loopback",
    *,
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
    model: str | None = None,
    pieces: int = 3,
    include_usage: bool = True,
) -> Reply:
    """200 as server-sent events: the content in `pieces` chunks, then (when the client asked for it
    with `stream_options.include_usage`) a final chunk with the usage."""

    def reply(h: Handler, body: dict[str, Any]) -> None:
        name = model or body.get("model", "unknown")
        size = max(1, -(-len(content) // pieces))
        base = {"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "created": 0, "model": name}
        events = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content[i : i + size]}}]}
            for i in range(0, len(content), size)
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if include_usage and wants_usage:
            events.append({**base, "choices": [], "usage": usage_dict(prompt_tokens, completion_tokens)})
        h.send_events(events)

    return reply


def tool_call(name: str, arguments: str, *, usage: tuple[int, int] | None = None, pieces: int = 3) -> Reply:
    """200 with a reply that calls a tool and has no text (as a stream when asked, the arguments in
    `pieces` chunks); with `usage` (prompt, completion tokens) reported, else none, as some servers do."""

    def reply(h: Handler, body: dict[str, Any]) -> None:
        base = {"id": "chatcmpl-loopback", "created": 0, "model": body.get("model", "unknown")}
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        reported = {"usage": usage_dict(*usage)} if usage is not None else {}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            h.send_json(200, {**base, "object": "chat.completion", "choices": [choice], **reported})
            return
        size = max(1, -(-len(arguments) // pieces))
        first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
        deltas = [{"role": "assistant", "content": None, "tool_calls": [first]}]
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + size]}}]}
            for i in range(0, len(arguments), size)
        ]
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [{**chunk, "choices": [{"index": 0, "delta": delta}]} for delta in deltas]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        if reported:
            events.append({**chunk, "choices": [], **reported})
        h.send_events(events)

    return reply


def error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Reply:
    """An OpenAI-style error body with this status; `extra` goes into the error object."""

    def reply(h: Handler, body: dict[str, Any]) -> None:
        h.send_json(status, {"error": {"message": message, "type": kind, "code": code, **extra}}, headers)

    return reply


def rate_limited(retry_after: float | None = None) -> Reply:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    return error(429, "Rate limit reached for requests", code="rate_limit_exceeded", kind="requests", headers=headers)


def server_error(status: int = 500) -> Reply:
    return error(status, "The server had an error while processing your request", kind="server_error")


def unauthorized(echo_key: bool = True) -> Reply:
    """401; with `echo_key`, the message repeats the bearer token, as a careless proxy might."""

    def reply(h: Handler, body: dict[str, Any]) -> None:
        token = h.headers.get("authorization", "").removeprefix("Bearer ")
        text = f"Incorrect API key provided: {token}" if echo_key else "Incorrect API key provided"
        error(401, text, code="invalid_api_key")(h, body)

    return reply


def out_of_credits() -> Reply:
    return error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        code="insufficient_quota",
        kind="insufficient_quota",
    )


def bad_request(message: str = "Invalid value for 'temperature': must be between 0 and 2") -> Reply:
    return error(400, message, code="invalid_value")


def content_policy() -> Reply:
    return error(400, "Your request was rejected as a result of our safety system.", code="content_policy_violation")


def context_window_exceeded() -> Reply:
    return error(
        400,
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        code="context_length_exceeded",
    )


def hang(seconds: float = 5.0) -> Reply:
    """Say nothing for `seconds` (or until the server stops), then answer normally."""

    def reply(h: Handler, body: dict[str, Any]) -> None:
        h.llm.released.wait(seconds)
        ok()(h, body)

    return reply


def billed_error(prompt_tokens: int, completion_tokens: int) -> Reply:
    """A 500 whose error still reports the usage the provider billed (a failure after generating)."""
    return error(
        500,
        "The server had an error after generating the response",
        kind="server_error",
        usage=usage_dict(prompt_tokens, completion_tokens),
    )
