"""Scripted replies (``script``/``reply_next``/``handler``), on both flavours, over real HTTP."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ai21_emulator import Emulator, Fault, Reply, ToolCall

MODELS = {"ai21": "jamba-mini", "vllm": "ai21labs/AI21-Jamba2-Mini"}
TOOL_IDS = {
    "ai21": re.compile(r"call_[0-9a-f]{24}"),
    "vllm": re.compile(r"chatcmpl-tool-[0-9a-f]{16}"),
}
REASONING_FIELD = {"ai21": "reasoning_content", "vllm": "reasoning"}


@pytest.fixture(scope="module", params=["ai21", "vllm"])
def server(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    with Emulator(flavour=request.param) as emulator:
        yield emulator


@pytest.fixture
def emu(server: Emulator) -> Emulator:
    server.reset()
    return server


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emu.api_key}"} if emu.api_key else {}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=10) as client:
        yield client


def body(emu: Emulator, text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODELS[emu.flavour],
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def chat(http: httpx.Client, emu: Emulator, **extra: Any) -> dict[str, Any]:
    reply = http.post("/chat/completions", json=body(emu, **extra))
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def stream(http: httpx.Client, emu: Emulator, **extra: Any) -> list[dict[str, Any]]:
    reply = http.post("/chat/completions", json=body(emu, stream=True, **extra))
    assert reply.status_code == 200, reply.text
    end = b"\r\n\r\n" if emu.flavour == "ai21" else b"\n\n"
    payloads = [e.removeprefix(b"data: ") for e in reply.content.split(end)[:-1]]
    assert payloads[-1] == b"[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def joined(chunks: list[dict[str, Any]], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def test_reply_next_sends_exactly_that_content(emu: Emulator, http: httpx.Client) -> None:
    emu.reply_next("Paris is the capital of France.")
    emu.reply_next("Streamed, exactly.")
    [choice] = chat(http, emu)["choices"]
    assert choice["message"]["content"] == "Paris is the capital of France."
    assert choice["finish_reason"] == "stop"
    chunks = stream(http, emu)
    assert joined(chunks, "content") == "Streamed, exactly."
    assert emu.pending_replies == 0
    after = chat(http, emu)["choices"][0]["message"]["content"]
    assert "not a real model" in after  # the generator answers again


def test_scripted_tool_calls_get_the_flavours_ids(emu: Emulator, http: httpx.Client) -> None:
    emu.script(
        Reply(
            tool_calls=[
                ToolCall("multiply", {"a": 6, "b": 7}),
                ToolCall("lookup", '{"q": broken', id="my-id"),
            ]
        )
    )
    [choice] = chat(http, emu)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    first, second = choice["message"]["tool_calls"]
    assert TOOL_IDS[emu.flavour].fullmatch(first["id"])
    assert first["function"] == {"name": "multiply", "arguments": '{"a":6,"b":7}'}
    assert second["id"] == "my-id"
    assert second["function"]["arguments"] == '{"q": broken'  # sent as written


def test_scripted_tool_calls_stream(emu: Emulator, http: httpx.Client) -> None:
    emu.reply_next(tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])
    chunks = stream(http, emu)
    pieces = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks[1:]
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert pieces[0]["function"] == {"name": "multiply"}
    assert "".join(p["function"].get("arguments", "") for p in pieces) == '{"a":6,"b":7}'
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"


def test_usage_finish_reason_and_reasoning(emu: Emulator, http: httpx.Client) -> None:
    reply = Reply(
        "cut sh",
        reasoning="Think first.",
        finish_reason="length",
        usage={"prompt_tokens": 11, "completion_tokens": 22},
    )
    emu.script(reply, reply)
    data = chat(http, emu)
    usage = {k: data["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    assert usage == {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}
    [choice] = data["choices"]
    assert choice["finish_reason"] == "length"
    field = REASONING_FIELD[emu.flavour]
    assert choice["message"][field] == "Think first."
    options = {"stream_options": {"include_usage": True}} if emu.flavour == "vllm" else {}
    chunks = stream(http, emu, **options)
    assert joined(chunks, field) == "Think first."
    assert joined(chunks, "content") == "cut sh"
    assert chunks[-1]["usage"]["total_tokens"] == 33
    last_with_choice = [c for c in chunks if c["choices"]][-1]
    assert last_with_choice["choices"][0]["finish_reason"] == "length"


def test_generated_answers_have_no_reasoning_field_on_ai21s_host(
    emu: Emulator, http: httpx.Client
) -> None:
    message = chat(http, emu)["choices"][0]["message"]
    if emu.flavour == "ai21":
        assert "reasoning_content" not in message
    else:
        assert message["reasoning"] is None


def test_faults_come_first_and_invalid_requests_take_no_reply(
    emu: Emulator, http: httpx.Client
) -> None:
    emu.inject(Fault(status=429, retry_after="0"))
    emu.reply_next("after the retry")
    assert http.post("/chat/completions", json=body(emu)).status_code == 429
    invalid = http.post("/chat/completions", json={"model": MODELS[emu.flavour]})
    assert invalid.status_code in (400, 422)
    assert emu.pending_replies == 1
    assert chat(http, emu)["choices"][0]["message"]["content"] == "after the retry"


def test_every_choice_gets_the_scripted_reply(emu: Emulator, http: httpx.Client) -> None:
    emu.reply_next("same")
    choices = chat(http, emu, n=2)["choices"]
    assert [c["message"]["content"] for c in choices] == ["same", "same"]


def test_handler_answers_from_the_request(emu: Emulator, http: httpx.Client) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> Reply | None:
        seen.append(request)
        text = request["messages"][-1]["content"]
        return Reply(text.upper()) if text.startswith("shout") else None

    emu.handler = handler
    emu.reply_next("queued first")
    assert chat(http, emu, text="shout a")["choices"][0]["message"]["content"] == "queued first"
    assert chat(http, emu, text="shout b")["choices"][0]["message"]["content"] == "SHOUT B"
    assert "not a real model" in chat(http, emu, text="quiet")["choices"][0]["message"]["content"]
    assert [r["messages"][-1]["content"] for r in seen] == ["shout b", "quiet"]
    emu.reset()
    assert emu.handler is None  # restored to the constructor's (none)


def test_a_failing_handler_is_a_500_and_logged(
    emu: Emulator, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: dict[str, Any]) -> Reply | None:
        raise RuntimeError("handler bug")

    emu.handler = handler
    with caplog.at_level(logging.ERROR, logger="ai21_emulator"):
        assert http.post("/chat/completions", json=body(emu)).status_code == 500
    assert "handler bug" in caplog.text
    emu.handler = lambda request: "not a Reply"  # type: ignore[assignment,return-value]
    with caplog.at_level(logging.ERROR, logger="ai21_emulator"):
        assert http.post("/chat/completions", json=body(emu)).status_code == 500
    assert "must return a Reply or None" in caplog.text


def test_constructor_handler_survives_reset() -> None:
    with Emulator(flavour="vllm", handler=lambda request: Reply("fixed")) as emu:
        emu.reset()
        reply = httpx.post(f"{emu.base_url}/chat/completions", json=body(emu)).json()
    assert reply["choices"][0]["message"]["content"] == "fixed"


def test_replies_over_the_control_endpoint(emu: Emulator, http: httpx.Client) -> None:
    control = f"{emu.url}/_emulator/replies"
    queued = httpx.post(
        control,
        json=[{"content": "one"}, {"tool_calls": [{"name": "f", "arguments": {"x": 1}}]}],
    )
    assert queued.json() == {"queued": 2}
    assert chat(http, emu)["choices"][0]["message"]["content"] == "one"
    # what is still queued, in the form POST takes, so another process can see it
    pending = {"name": "f", "arguments": {"x": 1}, "id": None}
    assert httpx.get(control).json() == [
        {
            "content": None,
            "tool_calls": [pending],
            "reasoning": None,
            "finish_reason": None,
            "usage": None,
        }
    ]
    assert httpx.post(control, json=httpx.get(control).json()).json() == {"queued": 1}
    assert httpx.delete(control).json() == {"cleared": 2}
    assert httpx.get(control).json() == []
    bad = httpx.post(control, json={"content": "x", "colour": "red"})
    assert bad.status_code == 400
    assert "colour" in bad.json()["detail"]
    assert httpx.put(control).status_code == 405


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": 5}, "content"),
        ({"tool_calls": [{"name": "f"}]}, "ToolCall objects"),
        ({"usage": {"prompt_tokens": -1}}, "usage"),
        ({"usage": {"tokens": 1}}, "usage"),
        ({"finish_reason": 1}, "finish_reason"),
    ],
)
def test_reply_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Reply(**kwargs)


def test_script_takes_replies_only() -> None:
    with pytest.raises(TypeError, match="expected Reply"):
        Emulator().script("hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        ToolCall("")
