"""Token log-probabilities (``logprobs=True``, ``top_logprobs=N``): sent as OpenAI's API and
vLLM take them, returned in LlamaIndex's ``logprobs`` (one list per generated token, the token
itself first), streamed chunk by chunk, refused before any request where the server has none,
and never dropped silently. Over real HTTP: the emulator's vLLM and AI21 flavours, and a
scripted server that answers without them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, LogProb

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._convert import token_logprobs
from llama_index.llms.ai21.errors import MalformedResponseError
from tests.calculator import TOOLS
from tests.calls import METHOD_IDS, arg_for, call
from tests.transport.servers import Peer, Server, answers_hi, response

JAMBA2 = "ai21labs/AI21-Jamba2-3B"
REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"


def positions(responses: list[Any]) -> list[list[LogProb]]:
    """Every chunk's logprobs, in order (a whole answer is one chunk)."""
    return [position for r in responses for position in (r.logprobs or [])]


@pytest.mark.parametrize("method", METHOD_IDS)
def test_every_method_returns_each_tokens_logprob_and_its_candidates(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    outcome = call(make_local(), method, arg_for(method), logprobs=True, top_logprobs=2)
    [request] = [r for r in vllm.requests if r.path.endswith("/chat/completions")]
    assert (request.json["logprobs"], request.json["top_logprobs"]) == (True, 2)
    found = positions(outcome.responses)
    assert "".join(position[0].token for position in found) == outcome.text
    for position in found:
        token = position[0]
        assert token.bytes == list(token.token.encode())
        assert len(position) == 2  # the token, then the one other candidate of the two
        assert position[1].token != token.token
        assert position[1].logprob < token.logprob
    if "stream" in method:  # each chunk carries its own token's, as its delta its text
        content = [r for r in outcome.responses if r.delta]
        assert all([p[0].token for p in r.logprobs] == [r.delta] for r in content)


def test_streamed_logprobs_are_the_whole_answers(make_local: Callable[..., AI21]) -> None:
    llm = make_local()
    messages = [ChatMessage(role="user", content="What is Jamba?")]
    whole = llm.chat(messages, logprobs=True, top_logprobs=3).logprobs
    streamed = positions(list(llm.stream_chat(messages, logprobs=True, top_logprobs=3)))
    assert whole is not None
    assert streamed == whole


def test_without_top_logprobs_each_position_is_the_token_alone(
    make_local: Callable[..., AI21],
) -> None:
    """LlamaIndex's OpenAI integration lists only ``top_logprobs``, so it returns nothing for
    ``top_logprobs=0``; here the token itself is always there."""
    response = make_local().complete("Paul Graham is ", logprobs=True)
    assert response.logprobs
    assert all(len(position) == 1 for position in response.logprobs)
    assert "".join(position[0].token for position in response.logprobs) == response.text


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream_chat"])
def test_reasoning_tokens_have_theirs_too(make_local: Callable[..., AI21], stream: bool) -> None:
    """vLLM reports every generated token's, the reasoning's (before ``</think>``) first."""
    llm = make_local(model=REASONING_3B)
    messages = [ChatMessage(role="user", content="What is Jamba?")]
    if stream:
        chunks = list(llm.stream_chat(messages, logprobs=True))
        found, final = positions(chunks), chunks[-1]
    else:
        final = llm.chat(messages, logprobs=True)
        found = positions([final])
    reasoning = final.additional_kwargs["reasoning"] if stream else None
    text = "".join(position[0].token for position in found)
    thinking = "".join(b.content or "" for b in final.message.blocks if b.block_type == "thinking")
    assert thinking
    assert text == thinking + (final.message.content or "")
    assert reasoning in (None, thinking)


def test_tokens_of_text_held_back_reach_the_next_chunk() -> None:
    """A server without a tool-call parser leaves the call in the text; the client holds the
    text back from ``<tool_call>`` on and reads the call at the end: the held tokens'
    logprobs come with the next chunk the caller gets, not lost."""
    with Emulator(flavour="vllm", parsers=False, unparsed_tool_calls=True) as server:
        llm = AI21(base_url=server.base_url, model=JAMBA2, max_retries=0)
        ask = "What is 3 times 4?"
        chunks = list(llm.stream_chat_with_tools(TOOLS, ask, logprobs=True))
        whole = llm.chat_with_tools(TOOLS, ask, logprobs=True)
    assert llm.get_tool_calls_from_response(whole)  # read out of the text
    assert whole.logprobs
    assert any("<tool_call>" in position[0].token for position in whole.logprobs)
    assert positions(chunks) == whole.logprobs


def test_jurassic_2_completions_carry_their_tokens(emulator: Emulator) -> None:
    llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, model="j2-mid")
    response = llm.complete("Paul Graham is ", top_k_return=2)
    assert emulator.requests[-1].json["topKReturn"] == 2
    assert response.logprobs
    tokens = [position[0].token for position in response.logprobs]
    assert tokens[-1] == "<|endoftext|>"  # a natural end, as J2 reports it
    assert "".join(tokens[:-1]).replace("▁", " ") == response.text  # J2's tokenizer's names
    assert all(len(position) == 2 for position in response.logprobs)


# --------------------------------------------------------------------- refused before a request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logprobs": "yes"}, "logprobs must be True or False, got 'yes'"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs must be an integer >= 0, got -1"),
        ({"logprobs": True, "top_logprobs": True}, "top_logprobs must be an integer >= 0"),
        ({"logprobs": True, "top_logprobs": "2"}, "top_logprobs must be an integer >= 0"),
        ({"top_logprobs": 2}, "top_logprobs=2 needs logprobs=True"),
        ({"logprobs": False, "top_logprobs": 2}, "top_logprobs=2 needs logprobs=True"),
    ],
)
def test_bad_logprobs_arguments_are_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_local().complete("Hi", **kwargs)
    assert [r for r in vllm.requests if r.method == "POST"] == []


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("jamba-mini", "AI21's chat API sends no token log-probabilities"),
        ("j2-mid", "Jurassic-2 has no logprobs field"),
    ],
)
@pytest.mark.parametrize("where", ["call", "additional_kwargs"])
def test_ai21s_api_refuses_logprobs_before_any_request(
    emulator: Emulator, model: str, message: str, where: str
) -> None:
    """AI21's chat API has no such field and answers ``"logprobs": null``: asking would get
    nothing, silently."""
    extra = {"logprobs": True}
    llm = AI21(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        model=model,
        additional_kwargs=extra if where == "additional_kwargs" else {},
    )
    with pytest.raises(ValueError, match=message):
        llm.complete("Hi", **(extra if where == "call" else {}))
    assert emulator.requests == []


# --------------------------------------------------------------------- a server without them


@pytest.fixture
def bare_server() -> Iterator[Server]:
    with Server(answers_hi) as server:
        yield server


@pytest.mark.parametrize("method", ["complete", "stream_complete", "achat", "astream_chat"])
def test_logprobs_a_server_does_not_send_are_said_missing_once(
    bare_server: Server, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    llm = AI21(base_url=bare_server.url() + "/v1", model=JAMBA2, deployment="vllm")
    for _ in range(2):
        outcome = call(llm, method, arg_for(method), logprobs=True)
        assert outcome.text == "Hi"
        assert positions(outcome.responses) == []
    [record] = [r for r in caplog.records if "logprobs" in r.getMessage()]
    assert record.getMessage() == (
        "logprobs=True was sent, but the server (deployment 'vllm') answered without token "
        "log-probabilities: the responses' logprobs are None"
    )
    unasked = AI21(base_url=bare_server.url() + "/v1", model=JAMBA2, deployment="vllm")
    call(unasked, method, arg_for(method))
    llm.close()
    unasked.close()
    assert len([r for r in caplog.records if "logprobs" in r.getMessage()]) == 1  # not asked


def test_logprobs_missing_are_said_once_also_with_a_model_per_call(
    bare_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Once per instance, not per dialect: a per-call model= gets one of its own each call."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    llm = AI21(base_url=bare_server.url() + "/v1", model=JAMBA2, deployment="vllm")
    for _ in range(3):
        assert llm.complete("hi", logprobs=True, model="ai21labs/AI21-Jamba2-Mini").text
    llm.close()
    assert len([r for r in caplog.records if "logprobs" in r.getMessage()]) == 1


def _answers_with_broken_logprobs(peer: Peer) -> None:
    """Logprobs whether asked or not, and not in OpenAI's shape."""
    while (head := peer.read_request()) is not None:
        if not head.startswith(b"POST /v1/chat/completions "):
            peer.send(response(status=404, body=b'{"detail":"Not Found"}'))
            continue
        choice = {"index": 0, "logprobs": {"content": "garbage"}, "finish_reason": "stop"}
        if json.loads(peer.last_body).get("stream"):
            chunk = {"id": "c", "choices": [{**choice, "delta": {"content": "Hi"}}]}
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            peer.send(response(body=body, headers=[("Content-Type", "text/event-stream")]))
        else:
            answer = {"id": "c", "choices": [{**choice, "message": {"content": "Hi"}}]}
            peer.send(response(body=json.dumps(answer).encode()))


@pytest.mark.parametrize("method", ["chat", "astream_chat", "complete", "stream_complete"])
def test_logprobs_nobody_asked_for_are_not_read(method: str) -> None:
    """A server's unasked logprobs cost nothing and fail nothing; asked for, they are read and
    checked like the rest of the answer."""
    with Server(_answers_with_broken_logprobs) as server:
        llm = AI21(base_url=server.url() + "/v1", model=JAMBA2, deployment="vllm", max_retries=0)
        outcome = call(llm, method, arg_for(method))
        assert outcome.text == "Hi"
        assert positions(outcome.responses) == []
        with pytest.raises(MalformedResponseError, match=r"logprobs\.content should be list"):
            call(llm, method, arg_for(method), logprobs=True)
        llm.close()


PAD = " " * (1 << 20)  # past 1 MiB, a body (and a stream event) is parsed by the stdlib


def _answers_with_an_enormous_logprob(peer: Peer) -> None:
    """A logprob of 400 digits in an answer past 1 MiB: the stdlib reads it as an integer that
    no float holds (orjson refuses it in a small body); J2's tokens carry one too."""
    lp = {"content": [{"token": "Hi", "logprob": -(10**400)}]}
    while (head := peer.read_request()) is not None:
        if head.startswith(b"POST /studio/v1/j2-mid/complete "):
            token = {"generatedToken": {"token": "Hi", "logprob": -(10**400)}, "topTokens": None}
            data = {"text": "Hi", "tokens": [token], "pad": PAD}
            answer: Any = {"completions": [{"data": data, "finishReason": {"reason": "stop"}}]}
            peer.send(response(body=json.dumps(answer).encode()))
            continue
        if not head.startswith(b"POST /v1/chat/completions "):
            peer.send(response(status=404, body=b'{"detail":"Not Found"}'))
            continue
        choice = {"index": 0, "logprobs": lp, "finish_reason": "stop"}
        if json.loads(peer.last_body).get("stream"):
            chunk = {"id": PAD, "choices": [{**choice, "delta": {"content": "Hi"}}]}
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            peer.send(response(body=body, headers=[("Content-Type", "text/event-stream")]))
        else:
            answer = {"id": PAD, "choices": [{**choice, "message": {"content": "Hi"}}]}
            peer.send(response(body=json.dumps(answer).encode()))


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
def test_a_logprob_no_float_holds_is_malformed(method: str) -> None:
    """Not pydantic's ValidationError from LlamaIndex's LogProb; J2's answer keeps its text,
    without logprobs (J2's are read only when they are in its shape)."""
    with Server(_answers_with_an_enormous_logprob) as server:
        llm = AI21(base_url=server.url() + "/v1", model=JAMBA2, deployment="vllm", max_retries=0)
        with pytest.raises(MalformedResponseError, match="an integer beyond a float's range"):
            call(llm, method, arg_for(method), logprobs=True)
        llm.close()
        j2 = AI21(base_url=server.url() + "/studio/v1", model="j2-mid", api_key="k")
        answer = j2.complete("hi")
        assert (answer.text, answer.logprobs) == ("Hi", None)
        j2.close()


# --------------------------------------------------------------------- the conversion


def _entry(token: str, logprob: float, top: list[tuple[str, float]] | None = None) -> Any:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": None
        if top is None
        else [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
    }


def _lp(token: str, logprob: float) -> LogProb:
    return LogProb(token=token, logprob=logprob, bytes=list(token.encode()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"content": None}, None),
        ({"content": []}, []),
        ({"content": [_entry("Hi", -0.1)]}, [[_lp("Hi", -0.1)]]),
        ({"content": [_entry("Hi", -0.1, [])]}, [[_lp("Hi", -0.1)]]),
        # the token listed among the candidates: first, once
        (
            {"content": [_entry("Hi", -0.1, [("Hi", -0.1), ("Hey", -2.5)])]},
            [[_lp("Hi", -0.1), _lp("Hey", -2.5)]],
        ),
        (
            {"content": [_entry("Hi", -0.9, [("Hey", -0.5), ("Hi", -0.9), ("Yo", -3.0)])]},
            [[_lp("Hi", -0.9), _lp("Hey", -0.5), _lp("Yo", -3.0)]],
        ),
        # llama-server: a token it was made to write at 0, and among the candidates at -3.4e38
        (
            {"content": [_entry("Hi", 0.0, [("Hey", -3.4e38), ("Hi", -3.4e38)])]},
            [[_lp("Hi", 0.0), _lp("Hey", -3.4e38)]],
        ),
        # a sampled token outside the candidates: still first
        (
            {"content": [_entry("Yo", -4.0, [("Hi", -0.1), ("Hey", -2.5)])]},
            [[_lp("Yo", -4.0), _lp("Hi", -0.1), _lp("Hey", -2.5)]],
        ),
        # bytes null (OpenAI: a token that is no whole UTF-8 sequence), an integer logprob
        (
            {"content": [{"token": "\ufffd", "logprob": 0, "bytes": None}]},
            [[LogProb(token="\ufffd", logprob=0.0, bytes=[])]],
        ),
    ],
)
def test_token_logprobs(value: Any, expected: Any) -> None:
    assert token_logprobs(value, "choices[0].logprobs") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], r"choices\[0\].logprobs should be dict, got list"),
        ({"content": {}}, r"choices\[0\].logprobs.content should be list, got dict"),
        ({"content": ["Hi"]}, r"choices\[0\].logprobs.content\[0\] should be dict, got str"),
        ({"content": [{"logprob": -1}]}, r"content\[0\].token should be str, got NoneType"),
        ({"content": [{"token": "Hi"}]}, r"content\[0\].logprob should be a number, got NoneType"),
        (
            {"content": [{"token": "Hi", "logprob": "-1"}]},
            r"content\[0\].logprob should be a number, got str",
        ),
        (
            {"content": [{"token": "Hi", "logprob": True}]},
            r"content\[0\].logprob should be a number, got bool",
        ),
        # what the stdlib's parser reads in a large body or event (orjson refuses both)
        (
            {"content": [{"token": "Hi", "logprob": float("nan")}]},
            r"content\[0\].logprob should be a number, got NaN",
        ),
        (
            {"content": [{"token": "Hi", "logprob": -(10**400)}]},
            r"content\[0\].logprob should be a number, got an integer beyond a float's range",
        ),
        (
            {"content": [{"token": "Hi", "logprob": -(2**1024 - 2**970)}]},  # rounds to -inf
            r"content\[0\].logprob should be a number, got an integer beyond a float's range",
        ),
        (
            {"content": [{"token": "Hi", "logprob": -1, "bytes": [256]}]},
            r"content\[0\].bytes should be a list of byte values",
        ),
        (
            {"content": [{"token": "Hi", "logprob": -1, "top_logprobs": {}}]},
            r"content\[0\].top_logprobs should be list, got dict",
        ),
        (
            {"content": [{"token": "Hi", "logprob": -1, "top_logprobs": [{"token": 1}]}]},
            r"content\[0\].top_logprobs\[0\].token should be str, got int",
        ),
    ],
)
def test_malformed_logprobs_are_named(value: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        token_logprobs(value, "choices[0].logprobs")
