"""What a stream refuses, a whole answer refuses too, and a stream never folds two tool calls
into one: answers scripted byte for byte on a loopback server, read through the public API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.tools import FunctionTool

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.errors import MalformedResponseError
from tests.transport.servers import Peer, Server, response

ADD = FunctionTool.from_defaults(fn=lambda x: x + 1, name="add", description="add one")
MUL = FunctionTool.from_defaults(fn=lambda x: x * 2, name="mul", description="double")
USAGE = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def _event(delta: dict[str, Any], finish: Any = None, usage: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        event["usage"] = usage
    return event


def _sse(*events: dict[str, Any]) -> bytes:
    lines = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    return b"".join(lines) + b"data: [DONE]\n\n"


def _whole(finish: Any = "stop", usage: Any = None) -> bytes:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "hi"},
        "finish_reason": finish,
    }
    return json.dumps({"id": "chatcmpl-1", "choices": [choice], "usage": usage or USAGE}).encode()


@contextmanager
def _answering(body: bytes) -> Iterator[AI21]:
    """An instance whose server answers every chat request with ``body`` (a stream if it is
    one) and ``/models`` with 404."""
    kind = "text/event-stream" if body.startswith(b"data:") else "application/json"

    def handler(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            if b"/models" in head.split(b"\r\n", 1)[0]:
                peer.send(response(404, b'{"detail": "Not Found"}'))
            else:
                peer.send(response(body=body, headers=[("Content-Type", kind)]))

    with Server(handler) as server:
        llm = AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", max_retries=0)
        try:
            yield llm
        finally:
            llm.close()


def _last(llm: AI21, method: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """The last response of ``call`` (a chat method, sync or async, stream or not)."""
    if not method.startswith("a"):
        result = call(*args, **kw)
        return list(result)[-1] if "stream" in method else result

    async def run() -> Any:
        result = await call(*args, **kw)
        if "stream" in method:
            return [r async for r in result][-1]
        return result

    return asyncio.run(run())


def _with_tools(llm: AI21, method: str) -> ChatResponse:
    return _last(  # type: ignore[no-any-return]
        llm, method, getattr(llm, method), [ADD, MUL], user_msg="hi", allow_parallel_tool_calls=True
    )


STREAMS = ["stream_chat_with_tools", "astream_chat_with_tools"]


def _call(index: int, arguments: str, **named: Any) -> dict[str, Any]:
    """A tool-call fragment: ``named`` gives ``id`` and ``name`` (as a first fragment has)."""
    function: dict[str, Any] = {"arguments": arguments}
    if "name" in named:
        function["name"] = named.pop("name")
    return {"index": index, **named, "function": function}


# ------------------------------------------------------------------- two calls on one index


@pytest.mark.parametrize("method", STREAMS)
@pytest.mark.parametrize(
    ("second", "named"),
    [
        ({"id": "call_B", "type": "function", "name": "mul"}, "id 'call_B' and name 'mul'"),
        ({"id": "call_B"}, "id 'call_B'"),
        ({"name": "mul"}, "name 'mul'"),
    ],
    ids=["another-call", "another-id", "another-name"],
)
def test_a_second_call_on_the_same_stream_index_is_malformed(
    method: str, second: dict[str, Any], named: str
) -> None:
    body = _sse(
        _event({"tool_calls": [_call(0, '{"x": 1}', id="call_A", type="function", name="add")]}),
        _event({"tool_calls": [_call(0, '{"x": 2}', **second)]}),
        _event({}, "tool_calls", USAGE),
    )
    with _answering(body) as llm, pytest.raises(MalformedResponseError) as caught:
        _with_tools(llm, method)
    assert str(caught.value) == (
        f"malformed AI21 stream event: a fragment of tool call 0 has {named}, but tool call 0 "
        "is 'call_A' to 'add': two calls on one index"
    )


@pytest.mark.parametrize("method", STREAMS)
@pytest.mark.parametrize(
    "later",
    [
        {},  # OpenAI, vLLM, llama.cpp: the first fragment names the call, no later one does
        {"id": ""},  # an empty id after the first
        {"id": "call_A", "type": "function", "name": "add"},  # SGLang; vLLM's last fragment
    ],
    ids=["unnamed", "empty-id", "repeated"],
)
def test_later_fragments_that_name_the_same_call_or_none_build_one_call(
    method: str, later: dict[str, Any]
) -> None:
    body = _sse(
        _event({"tool_calls": [_call(0, "", id="call_A", type="function", name="add")]}),
        _event({"tool_calls": [_call(0, '{"x": ', **later)]}),
        _event({"tool_calls": [_call(0, "1}", **later)]}),
        _event({}, "tool_calls", USAGE),
    )
    with _answering(body) as llm:
        last = _with_tools(llm, method)
        selections = llm.get_tool_calls_from_response(last)
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in selections] == [
        ("call_A", "add", {"x": 1})
    ]


# -------------------------------------------------- whole answers refuse what streams refuse

WHOLE = ["chat", "achat", "complete", "acomplete"]
BOTH = ["chat", "acomplete", "stream_chat", "astream_chat"]


def _answer(llm: AI21, method: str) -> Any:
    if "complete" in method:
        return _last(llm, method, getattr(llm, method), "hi")
    return _last(llm, method, getattr(llm, method), [ChatMessage(role="user", content="hi")])


def _body(method: str, finish: Any = "stop", usage: Any = None) -> bytes:
    if "stream" not in method:
        return _whole(finish, usage)
    return _sse(_event({"content": "hi"}), _event({}, finish, usage or USAGE))


@pytest.mark.parametrize("method", WHOLE)
@pytest.mark.parametrize("finish", [7, ["stop"]])
def test_a_finish_reason_that_is_not_a_string_is_malformed_in_a_whole_answer(
    method: str, finish: Any
) -> None:
    with _answering(_whole(finish)) as llm, pytest.raises(MalformedResponseError) as caught:
        _answer(llm, method)
    assert str(caught.value) == (
        "malformed AI21 response: choices[0].finish_reason should be str, "
        f"got {type(finish).__name__}"
    )


@pytest.mark.parametrize("method", ["chat", "acomplete"])
def test_a_null_finish_reason_is_still_read(method: str) -> None:
    with _answering(_whole(None)) as llm:
        answer = _answer(llm, method)
    assert answer.additional_kwargs == {**USAGE, "finish_reason": None}


@pytest.mark.parametrize("method", BOTH)
@pytest.mark.parametrize(("count", "got"), [(True, "bool"), (-5, "-5")])
def test_a_token_count_that_is_not_a_non_negative_int_is_malformed(
    method: str, count: Any, got: str
) -> None:
    usage = {**USAGE, "completion_tokens": count}
    with (
        _answering(_body(method, usage=usage)) as llm,
        pytest.raises(MalformedResponseError) as caught,
    ):
        _answer(llm, method)
    assert str(caught.value).endswith(
        f"usage.completion_tokens should be a non-negative int, got {got}"
    )


@pytest.mark.parametrize("method", BOTH)
def test_a_detail_count_that_is_not_a_non_negative_int_is_left_out(method: str) -> None:
    usage = {
        **USAGE,
        "completion_tokens_details": {"reasoning_tokens": -3},
        "prompt_tokens_details": {"cached_tokens": True},
    }
    with _answering(_body(method, usage=usage)) as llm:
        answer = _answer(llm, method)
    assert answer.additional_kwargs == {**USAGE, "finish_reason": "stop"}
