"""Events: their schema, their sinks, replaying a decision from one, and no secret ever in them."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import hi, of_kind
from loopback_server import Handler, LoopbackLLM, ok, rate_limited, server_error, stream, unauthorized

from policyrouter import AllDeploymentsFailed, Events, RequestRejected
from policyrouter.events import EVENT_KINDS, Redactor
from policyrouter.facts import nest_facts

COMMON = {
    "event",
    "ts",
    "request_id",
    "run_id",
    "model",
    "provider",
    "deployment",
    "tokens",
    "cost",
    "latency",
    "reason",
}


def test_every_event_has_the_common_keys(make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]) -> None:
    llm.script("work", rate_limited(retry_after=2))
    router = make_router()
    router.completion("sonnet", hi())

    assert events
    for event in events:
        assert set(event) >= COMMON, event
        assert event["event"] in EVENT_KINDS
        assert event["ts"].endswith("Z")
    success = of_kind(events, "success")[0]
    assert (success["model"], success["provider"], success["deployment"]) == ("sonnet", "personal", "sonnet@personal")


def test_a_decision_event_carries_the_request_and_facts_and_replays_to_the_same_order(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    policy = "route sonnet when quota(work) > 20% prefer work else personal\n"
    router = make_router(policy=policy)
    llm.default("work", ok(prompt_tokens=90_000, completion_tokens=0))
    router.completion("sonnet", hi())  # uses up 90% of work's quota
    events.clear()
    router.completion("sonnet", hi(), tags=["batch"], requires=["tools"])

    (decision,) = of_kind(events, "decision")
    assert decision["request"]["tags"] == ["batch"]
    assert decision["request"]["requires"] == ["tools"]
    assert decision["facts"]["quota.work"] == pytest.approx(0.1)
    assert decision["order"][0] == "sonnet@personal"

    request = decision["request"]
    replayed = router.decide(
        request["model"],
        requires=request["requires"],
        tokens=request["tokens"],
        tags=request["tags"],
        facts=nest_facts(decision["facts"]),
    )
    assert [d.key for d in replayed.order] == decision["order"]


def test_a_refused_decision_is_reported_too(make_router: Any, events: list[dict[str, Any]]) -> None:
    router = make_router()
    with pytest.raises(Exception, match="unknown model"):
        router.completion("sonet", hi())
    (decision,) = events
    assert decision["event"] == "decision"
    assert decision["error"]["code"] == "unknown_model"


def test_sinks_file_stream_and_callback_get_the_same_lines(make_router: Any, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    buffer = io.StringIO()
    seen: list[dict[str, Any]] = []
    router = make_router(events=[str(path), buffer, seen.append])
    router.completion("sonnet", hi())
    router.close()

    from_file = [json.loads(line) for line in path.read_text().splitlines()]
    from_stream = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [e["event"] for e in from_file] == ["decision", "attempt", "success"]
    assert from_file == from_stream == seen


@pytest.mark.parametrize(
    ("sink", "error", "words"),
    [
        ("", ValueError, "got an empty path"),  # was the working directory: one warning, then every event lost
        (".", ValueError, "got a directory"),
        ({"path": "events.jsonl"}, TypeError, "not dict"),  # was a file named `path`
        (b"events.jsonl", TypeError, "not bytes"),
    ],
    ids=["empty path", "a directory", "a mapping", "bytes"],
)
def test_a_sink_that_cannot_take_events_is_refused_when_the_router_is_made(
    sink: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        Events(sink)  # type: ignore[arg-type]


def test_a_stream_that_cannot_take_text_is_refused_when_the_router_is_made(tmp_path: Path) -> None:
    # each was taken, and every event then failed to write, said only on stderr
    with open(tmp_path / "events.bin", "wb") as binary, pytest.raises(TypeError, match="takes text"):
        Events(binary)
    closed = open(tmp_path / "events.jsonl", "a")  # noqa: SIM115 - closed on the next line, on purpose
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        Events(closed)


def test_include_content_is_a_bool() -> None:
    with pytest.raises(TypeError, match="`include_content` is True or False"):
        Events(include_content="false")  # type: ignore[arg-type]  # was truthy: every prompt logged


def test_a_broken_sink_does_not_break_the_call(make_router: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("disk full")

    router = make_router(events=broken)
    response = router.completion("sonnet", hi())
    assert response.choices[0].message.content
    assert "disk full" in caplog.text


def test_message_content_only_when_asked(make_router: Any, llm: LoopbackLLM) -> None:
    secret_prompt = "the launch code is 0000"
    quiet: list[dict[str, Any]] = []
    make_router(events=quiet.append).completion("sonnet", hi(secret_prompt))
    assert secret_prompt not in json.dumps(quiet)
    assert "hello from loopback" not in json.dumps(quiet)

    loud: list[dict[str, Any]] = []
    make_router(events=Events(loud.append, include_content=True)).completion("sonnet", hi(secret_prompt))
    assert of_kind(loud, "attempt")[0]["messages"] == hi(secret_prompt)
    assert of_kind(loud, "success")[0]["content"] == ["hello from loopback"]


def test_no_api_key_in_any_event_or_log_line(
    make_router: Any,
    llm: LoopbackLLM,
    keys: dict[str, str],
    events: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "events.jsonl"
    router = make_router(events=[events.append, str(path)])
    llm.script("work", rate_limited(retry_after=1))
    router.completion("sonnet", hi())  # a fallback
    llm.script("personal", server_error(), stream("streamed"))
    list(router.completion("sonnet", hi(), stream=True))  # a retry, then a stream
    llm.script("personal", unauthorized(echo_key=False))
    router.completion("sonnet", hi())  # an authentication failure
    router.close()

    planted = list(keys.values())
    assert len(events) > 15
    lines = [json.dumps(e) for e in events] + path.read_text().splitlines()
    lines += [r.getMessage() for r in caplog.records] + [caplog.text]
    for line in lines:
        for key in planted:
            assert key not in line


def test_a_provider_echoing_the_key_is_scrubbed_from_events_errors_and_our_logs(
    make_router: Any,
    llm: LoopbackLLM,
    keys: dict[str, str],
    events: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="policyrouter")
    for provider in ("work", "personal", "backup"):
        llm.default(provider, unauthorized(echo_key=True))
    router = make_router()
    with pytest.raises(AllDeploymentsFailed) as caught:
        router.completion("sonnet", hi())

    assert keys["work"] in llm.calls("work")[0].headers["authorization"]  # the server did see it
    text = json.dumps(events) + str(caught.value) + json.dumps(caught.value.to_dict())
    text += "".join(r.getMessage() for r in caplog.records if r.name.startswith("policyrouter"))
    assert "Incorrect API key provided: [redacted]" in text
    for key in keys.values():
        assert key not in text


def test_a_rejected_request_carries_no_error_of_litellm_that_echoes_the_key(
    make_router: Any, llm: LoopbackLLM, keys: dict[str, str]
) -> None:
    # RequestRejected was raised inside the `except` that caught litellm's error, so that error, the
    # key in its message, was its `__context__`: hidden from tracebacks, there for any code that reads it.
    def echoing_bad_request(h: Handler, body: dict[str, Any]) -> None:
        said = f"Invalid value for 'temperature' with key {h.headers['authorization']}"
        h.send_json(400, {"error": {"message": said, "type": "invalid_request_error", "code": "invalid_value"}})

    llm.script("work", echoing_bad_request)
    with pytest.raises(RequestRejected) as caught:
        make_router().completion("sonnet", hi())
    assert "[redacted]" in str(caught.value)
    chained, seen = caught.value.__cause__ or caught.value.__context__, []
    while chained is not None:
        seen.append(repr(chained) + str(getattr(chained, "message", "")))
        chained = chained.__cause__ or chained.__context__
    assert not any(keys["work"] in text for text in seen)


def test_the_redactor_reads_keys_set_after_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    redact = Redactor(["PR_LATE_KEY"])
    assert redact("token sk-late-123456") == "token sk-late-123456"
    monkeypatch.setenv("PR_LATE_KEY", "sk-late-123456")
    assert redact("token sk-late-123456") == "token [redacted]"
