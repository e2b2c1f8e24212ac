"""The pure pipeline (``_core.handle``) for both flavours, and the hosted flavour's wire details
that recordings of the live API show (CRLF framing, ``chatcmpl-<uuid4>`` ids, ``request-id``)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from ai21_emulator import Emulator, Fault
from ai21_emulator._core import Incoming, handle
from ai21_emulator._flavour_ai21 import AI21Flavour
from ai21_emulator._flavour_vllm import VllmFlavour
from ai21_emulator._script import Script
from ai21_emulator._state import EmulatorState

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
HOSTED_BODY = {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}
VLLM_BODY = {**HOSTED_BODY, "model": "ai21labs/AI21-Jamba2-Mini"}


# -- the hosted flavour on the wire ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_hosted_ids_and_request_id_header(emu: Emulator, http: httpx.Client, stream: bool) -> None:
    reply = http.post(
        "/studio/v1/chat/completions",
        json={**HOSTED_BODY, "stream": stream},
        headers={"Authorization": f"Bearer {emu.api_key}"},
    )
    if stream:
        reply_id = json.loads(reply.content.split(b"\r\n\r\n")[0].removeprefix(b"data: "))["id"]
    else:
        reply_id = reply.json()["id"]
    match = re.fullmatch(f"chatcmpl-({UUID4})", reply_id)
    assert match is not None
    assert reply.headers["request-id"] == match.group(1)


def test_hosted_bodies_have_the_recorded_shape(emu: Emulator, http: httpx.Client) -> None:
    """Key order, spacing, nulls and the token count of the live API's recorded answers (a 2025
    capture with the ai21 SDK): compact JSON for a whole answer; ``json.dumps`` spacing in a
    stream, a role event, one event per token, an empty closing piece that carries the finish
    reason and the usage (counted as a token), then ``[DONE]``."""
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    whole = http.post("/studio/v1/chat/completions", json=HOSTED_BODY, headers=headers)
    assert whole.headers["content-type"] == "application/json"
    assert re.fullmatch(
        rb'\{"id":"chatcmpl-[-0-9a-f]{36}","choices":\[\{"index":0,"message":\{"role":"assistant",'
        rb'"content":"[^"]+","tool_calls":null\},"logprobs":null,"finish_reason":"stop"\}\],'
        rb'"usage":\{"prompt_tokens":\d+,"completion_tokens":\d+,"total_tokens":\d+\}\}',
        whole.content,
    )
    streamed = http.post(
        "/studio/v1/chat/completions", json={**HOSTED_BODY, "stream": True}, headers=headers
    )
    assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8"
    first, *pieces, last, done = streamed.content.split(b"\r\n\r\n")[:-1]
    reply_id = json.loads(first.removeprefix(b"data: "))["id"]
    head = b'data: {"id": "' + reply_id.encode() + b'", "choices": [{"index": 0, "delta": '
    assert first == head + b'{"role": "assistant"}, "logprobs": null, "finish_reason": null}]}'
    piece_shape = rb'\{"content": "[^"]+"\}, "logprobs": null, "finish_reason": null\}\]\}'
    assert all(re.fullmatch(re.escape(head) + piece_shape, piece) for piece in pieces)
    usage = whole.json()["usage"]
    assert usage["completion_tokens"] == len(pieces) + 1
    assert last == head + (
        b'{"content": ""}, "logprobs": null, "finish_reason": "stop"}], "usage": '
        b'{"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d}}'
        % (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])
    )
    assert done == b"data: [DONE]"


@pytest.mark.parametrize("value", ["-1", "x", "12345678", "1e3"])
def test_a_bad_token_count_header_is_a_400_naming_the_limit(http: httpx.Client, value: str) -> None:
    reply = http.post(
        "/studio/v1/chat/completions",
        json=HOSTED_BODY,
        headers={"Authorization": "Bearer emulator-key", "X-Emulator-Answer-Tokens": value},
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "detail": "Invalid X-Emulator-Answer-Tokens header: "
        "expected a whole number of tokens up to 9999999"
    }


def test_hosted_stream_events_end_with_crlf_crlf(emu: Emulator, http: httpx.Client) -> None:
    reply = http.post(
        "/studio/v1/chat/completions",
        json={**HOSTED_BODY, "stream": True},
        headers={"Authorization": f"Bearer {emu.api_key}"},
    )
    raw = reply.content
    assert raw.endswith(b"data: [DONE]\r\n\r\n")
    events = raw.split(b"\r\n\r\n")[:-1]
    assert all(e.startswith(b"data: ") and b"\n" not in e and b"\r" not in e for e in events)
    assert raw.count(b"\n") == 2 * len(events)  # no bare LF anywhere


def test_hosted_stream_error_fault_and_truncation_keep_crlf(
    emu: Emulator, http: httpx.Client
) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    emu.inject(Fault(stream_error_after=1))
    raw = http.post(
        "/studio/v1/chat/completions", json={**HOSTED_BODY, "stream": True}, headers=headers
    ).content
    events = raw.split(b"\r\n\r\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    error = json.loads(events[-3].removeprefix(b"data: "))
    assert error == {
        "error": {
            "message": "The engine failed while generating (injected fault).",
            "type": "InternalServerError",
            "code": 500,
        }
    }
    assert len(events) == 2 + 3  # role event, one content event, error, [DONE], ""


# -- the pure pipeline ----------------------------------------------------------------------------


def state(flavour: Any, keys: tuple[str, ...] = ("k",)) -> EmulatorState:
    return EmulatorState(keys, flavour, Script())


def request(path: str, body: Any = None, method: str = "POST", **headers: str) -> Incoming:
    """A request as an HTTP client sends it: a JSON body goes with its Content-Type."""
    raw = b"" if body is None else json.dumps(body).encode()
    sent = {} if body is None else {"Content-Type": "application/json"}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return Incoming(method, path, sent, raw)


def test_hosted_routes_before_auth_and_vllm_authenticates_first() -> None:
    hosted, vllm = state(AI21Flavour()), state(VllmFlavour())
    assert handle(hosted, request("/studio/v1/nowhere")).response.status == 404
    assert handle(vllm, request("/v1/nowhere")).response.status == 401
    assert handle(vllm, request("/v1/nowhere", Authorization="Bearer k")).response.status == 404
    keyless = state(VllmFlavour(), keys=())
    assert handle(keyless, request("/v1/chat/completions", VLLM_BODY)).response.status == 200


def test_pipeline_records_then_applies_faults_before_routing() -> None:
    hosted = state(AI21Flavour())
    hosted.faults.push([Fault(status=503, retry_after="1")])
    outcome = handle(hosted, request("/nowhere", {"model": "m"}, Authorization="Bearer k"))
    assert outcome.response.status == 503
    assert outcome.fault is not None
    assert outcome.fault.retry_after == "1"
    assert outcome.model == "m"
    [record] = hosted.records()
    assert (record.path, record.api_key, record.json) == ("/nowhere", "k", {"model": "m"})


def test_fault_header_is_read_case_insensitively() -> None:
    vllm = state(VllmFlavour(), keys=())
    header = {"x-emulator-fault": json.dumps({"status": 429})}
    incoming = Incoming("POST", "/v1/chat/completions", header, json.dumps(VLLM_BODY).encode())
    outcome = handle(vllm, incoming)
    assert outcome.response.status == 429
    assert json.loads(outcome.response.body)["error"]["type"] == "TooManyRequestsError"


@pytest.mark.parametrize("flavour", [AI21Flavour(), VllmFlavour()], ids=["ai21", "vllm"])
def test_malformed_and_stream_error_are_applied_in_the_flavours_framing(flavour: Any) -> None:
    pipeline = state(flavour)
    body = {**(VLLM_BODY if flavour.name == "vllm" else HOSTED_BODY), "stream": True}
    path = flavour.api_root + "/chat/completions"
    whole = handle(pipeline, request(path, body, Authorization="Bearer k")).response.events
    assert whole is not None
    pipeline.faults.push([Fault(malformed_after=2)])
    cut = handle(pipeline, request(path, body, Authorization="Bearer k")).response.events
    assert cut is not None
    assert len(cut) == 3
    assert cut[2].endswith(b'"choi' + flavour.event_end)
    pipeline.faults.push([Fault(stream_error_after=10_000)])
    late = handle(pipeline, request(path, body, Authorization="Bearer k")).response.events
    assert late is not None
    # never past the last data event: the answer, then the error, then [DONE]
    assert len(late) == len(whole) + 1
    assert late[-2].startswith(b'data: {"error":')
    assert late[-1] == flavour.done()


def test_a_bug_in_the_pipeline_is_a_500_in_the_flavours_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(body: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    vllm = EmulatorState((), VllmFlavour(), Script(broken))
    with caplog.at_level("ERROR"):
        outcome = handle(vllm, request("/v1/chat/completions", VLLM_BODY))
    assert outcome.response.status == 500
    assert json.loads(outcome.response.body)["error"]["code"] == 500
    assert "boom" in caplog.text
