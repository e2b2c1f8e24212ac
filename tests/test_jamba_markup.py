"""Raw markup never becomes the answer, for Jamba 1.x too: its ``<tool_calls>[...]</tool_calls>``
text in ``content`` (a server that accepts tools but does not parse them) is read as tool calls,
streamed or not, or refused with the server flags to add; a tool call (Jamba's or Hermes') cut
at ``max_tokens`` says so.

The server is scripted at the socket level (``tests/transport/servers.py``): it sends the exact
bytes of a vLLM answer that leaves the calls in ``content`` (``tool_calls`` empty), a stream's
opening tag split across events, and records what the client sent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCallResult

from llama_index.llms.ai21 import AI21, MalformedResponseError
from llama_index.llms.ai21._markup import JAMBA
from tests.calculator import TOOLS
from tests.transport.servers import Peer, Server

JAMBA_1 = "ai21labs/AI21-Jamba-Mini-1.7"
JAMBA2 = "ai21labs/AI21-Jamba2-3B"
QUESTION = "What is 3 times 4, and 2 plus 5?"
DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested far past Python's recursion limit
# As vLLM's jamba parser tests have Jamba's output (tests/tool_parsers/test_jamba_tool_parser.py):
# text, then one array of calls, with whitespace inside the tags.
BEFORE = " Sure! let me call the tools for you."
TWO_CALLS = (
    f"{BEFORE}<tool_calls>[\n"
    '    {"name": "multiply", "arguments": {"a": 3, "b": 4}},\n'
    '    {"name": "add", "arguments": {"a": 2, "b": 5}}\n'
    "]</tool_calls>"
)
# The same text in the pieces a stream brings it in, the opening tag split across two of them.
TWO_CALLS_PIECES = [
    " Sure! let me",
    " call the tools for you.<tool_",
    'calls>[\n    {"name": "multiply", ',
    '"arguments": {"a": 3, "b": 4}},\n    {"name": "add", "arguments": {"a": 2, "b": 5}}\n]',
    "</tool_calls>",
]
METHODS = [
    "chat_with_tools",
    "achat_with_tools",
    "stream_chat_with_tools",
    "astream_chat_with_tools",
]
USAGE = {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50}


def _http(body: bytes, content_type: str = "application/json") -> bytes:
    """A whole HTTP response; ``Connection: close`` so that no connection the client keeps
    open holds the server's thread when it closes."""
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def _completion(model: str, content: str, finish_reason: str) -> bytes:
    """A non-streamed answer as vLLM sends it when it leaves tool calls in the text."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "tool_calls": [],
        "reasoning": None,
    }
    choice = {"index": 0, "message": message, "finish_reason": finish_reason}
    body = {"id": "chatcmpl-1", "object": "chat.completion", "model": model, "choices": [choice]}
    return _http(json.dumps({**body, "usage": USAGE}).encode())


def _event(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
    return b"data: " + json.dumps({**chunk, "choices": [choice]}).encode() + b"\n\n"


def _stream(model: str, pieces: list[str], finish_reason: str) -> bytes:
    """A streamed answer as vLLM sends it: a role event, one event per piece, the finish
    event, the usage event (``stream_options.include_usage``), ``[DONE]``."""
    events = [_event(model, {"role": "assistant", "content": ""})]
    events += [_event(model, {"content": piece}) for piece in pieces]
    events.append(_event(model, {"content": ""}, finish_reason))
    usage = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}
    events.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    body = b"".join(events) + b"data: [DONE]\n\n"
    return _http(body, "text/event-stream; charset=utf-8")


class Scripted:
    """A vLLM-like server on loopback answering each chat request with the next scripted
    answer (streamed if the request asks), and recording the request bodies."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.answers: list[tuple[list[str], str]] = []  # (content pieces, finish reason)
        self.bodies: list[dict[str, Any]] = []
        self.server = Server(self._serve)

    def answer(self, pieces: str | list[str], finish_reason: str = "stop") -> None:
        self.answers.append(([pieces] if isinstance(pieces, str) else pieces, finish_reason))

    @property
    def base_url(self) -> str:
        return self.server.url() + "/v1"

    def _serve(self, peer: Peer) -> None:
        """One request per connection (each answer closes it)."""
        head = peer.read_request()
        if head is None:
            return
        if head.startswith(b"GET /v1/models"):
            entry = {"id": self.model, "owned_by": "vllm", "max_model_len": 8192}
            peer.send(_http(json.dumps({"object": "list", "data": [entry]}).encode()))
            return
        body = json.loads(peer.last_body)
        self.bodies.append(body)
        pieces, finish_reason = self.answers.pop(0)
        if body.get("stream"):
            peer.send(_stream(self.model, pieces, finish_reason))
        else:
            peer.send(_completion(self.model, "".join(pieces), finish_reason))


@pytest.fixture
def scripted() -> Iterator[Callable[[str], Scripted]]:
    servers: list[Scripted] = []

    def start(model: str) -> Scripted:
        servers.append(Scripted(model))
        return servers[-1]

    yield start
    for server in servers:
        server.server.close()


def run(llm: AI21, method: str) -> list[Any]:
    """Every response ``method`` hands the caller (one, or each chunk of a stream)."""

    async def run_async() -> list[Any]:
        result = await getattr(llm, method)(TOOLS, QUESTION, allow_parallel_tool_calls=True)
        return [chunk async for chunk in result] if "stream" in method else [result]

    if method.startswith("a"):
        return asyncio.run(run_async())
    result = getattr(llm, method)(TOOLS, QUESTION, allow_parallel_tool_calls=True)
    return list(result) if "stream" in method else [result]


def calls(llm: AI21, response: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(s.tool_name, s.tool_kwargs) for s in llm.get_tool_calls_from_response(response)]


@pytest.mark.parametrize("method", METHODS)
def test_jamba_tool_calls_text_becomes_tool_calls(
    scripted: Callable[[str], Scripted], method: str
) -> None:
    server = scripted(JAMBA_1)
    server.answer(TWO_CALLS_PIECES)
    llm = AI21(model=JAMBA_1, base_url=server.base_url, max_retries=0)
    responses = run(llm, method)

    (sent,) = server.bodies
    assert sent["model"] == JAMBA_1
    assert sent["stream"] is ("stream" in method)
    assert [t["function"]["name"] for t in sent["tools"]] == ["multiply", "add"]
    last = responses[-1]
    assert calls(llm, last) == [("multiply", {"a": 3, "b": 4}), ("add", {"a": 2, "b": 5})]
    assert last.message.content == BEFORE  # the text before the calls, as vLLM's parser keeps it
    ids = [c["id"] for c in last.message.additional_kwargs["tool_calls"]]
    assert len(set(ids)) == 2
    assert all(re.fullmatch("call_[0-9a-f]{24}", i) for i in ids)
    assert last.additional_kwargs["finish_reason"] == "stop"
    if "stream" in method:  # the text before the tag as it came; nothing from "<" on
        deltas = [r.delta for r in responses]
        assert "".join(deltas) == BEFORE
        assert " call the tools for you." in deltas  # the piece up to the split tag, at once


@pytest.mark.parametrize("stream", [False, True])
def test_hermes_text_from_a_jamba_1_model_and_jamba_text_without_tools_are_left_alone(
    scripted: Callable[[str], Scripted], stream: bool
) -> None:
    """Each model's own format only, and only when tools were offered."""
    server = scripted(JAMBA_1)
    hermes = '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call>'
    server.answer(hermes)
    server.answer(TWO_CALLS)
    llm = AI21(model=JAMBA_1, base_url=server.base_url, max_retries=0)
    if stream:
        response = list(llm.stream_chat_with_tools(TOOLS, QUESTION))[-1]
        plain = list(llm.stream_complete("Show me Jamba's format."))[-1]
    else:
        response = llm.chat_with_tools(TOOLS, QUESTION)
        plain = llm.complete("Show me Jamba's format.")
    assert response.message.content == hermes
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    assert plain.text == TWO_CALLS
    assert "tools" not in server.bodies[1]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "content",
    [
        '<tool_calls>{"name": "multiply", "arguments": {"a": 3, "b": 4}}</tool_calls>',  # no array
        '<tool_calls>[{"arguments": {"a": 3, "b": 4}}]</tool_calls>',  # no name
        "<tool_calls>[multiply(a=3, b=4)]</tool_calls>",  # not JSON
        '<tool_calls>[{"name": "multiply", "arguments": {"a": 3, "b": 4}}]',  # never closed
        f"<tool_calls>{DEEP}</tool_calls>",  # the stdlib's parser: a RecursionError
        f'<tool_calls>[{{"name": "multiply", "arguments": "{DEEP}"}}]</tool_calls>',
    ],
    ids=["object", "no-name", "not-json", "unclosed", "deep", "deep-arguments"],
)
def test_unreadable_jamba_text_names_the_server_flags(
    scripted: Callable[[str], Scripted], method: str, content: str
) -> None:
    server = scripted(JAMBA_1)
    server.answer([content[:5], content[5:]])  # the tag split, when streamed
    llm = AI21(model=JAMBA_1, base_url=server.base_url, max_retries=0)
    with pytest.raises(MalformedResponseError) as caught:
        run(llm, method)
    message = str(caught.value)
    assert "start the server with --enable-auto-tool-choice --tool-call-parser jamba" in message
    assert "AI21's recipe for Jamba 1.5-1.7" in message
    assert "max_tokens" not in message


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("model", "content"),
    [
        (JAMBA_1, '<tool_calls>[\n    {"name": "multiply", "arguments": {"a": 3, "b'),
        (JAMBA_1, '<tool_calls>[{"name": "multiply", "arguments": {"a": 3, "b": 4}}]'),
        (JAMBA2, 'Let me compute.\n<tool_call>\n{"name": "multiply", "arguments": {"a": 3'),
    ],
    ids=["jamba-mid-json", "jamba-before-closing-tag", "hermes-mid-json"],
)
def test_a_tool_call_cut_at_max_tokens_says_so(
    scripted: Callable[[str], Scripted], method: str, model: str, content: str
) -> None:
    server = scripted(model)
    server.answer([content[:20], content[20:]], finish_reason="length")
    llm = AI21(model=model, base_url=server.base_url, max_retries=0, max_tokens=30)
    with pytest.raises(MalformedResponseError) as caught:
        run(llm, method)
    message = str(caught.value)
    assert message.startswith(
        "the answer was cut at max_tokens (finish_reason 'length') inside a tool call"
    )
    # Also where no max_tokens was sent: the limit is then the server's (window less prompt).
    assert message.endswith(
        "): raise max_tokens (per call or on the instance), or, where none was set, leave the "
        "answer more of the context window (a shorter prompt, or a server with a longer "
        "context: the server's own limit is what the window leaves after the prompt)"
    )
    assert "--tool-call-parser" not in message
    assert server.bodies[0]["max_tokens"] == 30


# llama-index-workflows finds an agent's steps with inspect.getmembers, which touches every
# deprecated pydantic attribute of the agent (warnings from their code, not ours).
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
async def test_a_function_agent_runs_the_calls_jamba_wrote_as_text(
    scripted: Callable[[str], Scripted],
) -> None:
    server = scripted(JAMBA_1)
    server.answer(TWO_CALLS_PIECES)
    server.answer(["3 times 4 is 12,", " and 2 plus 5 is 7."])
    llm = AI21(model=JAMBA_1, base_url=server.base_url, max_retries=0)
    handler = FunctionAgent(tools=TOOLS, llm=llm).run(QUESTION)  # streams by default
    events = [event async for event in handler.stream_events()]
    assert str(await handler) == "3 times 4 is 12, and 2 plus 5 is 7."

    # The agent runs both calls at once: their results come (and go back) as they finish.
    results = sorted(
        (e for e in events if isinstance(e, ToolCallResult)),
        key=lambda r: ["multiply", "add"].index(r.tool_name),
    )
    assert [(r.tool_name, r.tool_output.content) for r in results] == [
        ("multiply", "12"),
        ("add", "7"),
    ]
    assert "<" not in "".join(e.delta for e in events if isinstance(e, AgentStream))
    first, second = server.bodies
    assert first["stream"] is second["stream"] is True
    ids = [r.tool_id for r in results]
    assert all(i.startswith("call_") for i in ids)
    assistant, *tool_messages = second["messages"][len(first["messages"]) :]
    tool_messages.sort(key=lambda m: ids.index(m.get("tool_call_id")))
    assert [assistant, *tool_messages] == [
        {
            "role": "assistant",
            "content": BEFORE,
            "tool_calls": [
                {
                    "id": ids[0],
                    "type": "function",
                    "function": {"name": "multiply", "arguments": '{"a": 3, "b": 4}'},
                },
                {
                    "id": ids[1],
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 5}'},
                },
            ],
        },
        {"role": "tool", "content": "12", "tool_call_id": ids[0]},
        {"role": "tool", "content": "7", "tool_call_id": ids[1]},
    ]


@pytest.mark.parametrize(
    ("text", "expected_calls", "expected_rest"),
    [
        # vLLM's jamba parser tests: a leading space, the array spread over lines
        (
            ' <tool_calls>[\n    {"name": "f", "arguments": {"city": "Dallas"}}\n]</tool_calls>',
            [("f", {"city": "Dallas"})],
            "",
        ),
        # arguments as a JSON string (as the Hermes reading takes them), and none at all
        (
            '<tool_calls>[{"name": "f", "arguments": "{\\"a\\": 1}"}, {"name": "g"}]</tool_calls>',
            [("f", {"a": 1}), ("g", {})],
            "",
        ),
        ("Nothing to call.<tool_calls>[]</tool_calls>", [], "Nothing to call."),
        # text after the block, and a second block: kept and read (vLLM reads the first only)
        (
            '<tool_calls>[{"name": "f", "arguments": {}}]</tool_calls>\nThen:\n'
            '<tool_calls>[{"name": "g", "arguments": {}}]</tool_calls>\n',
            [("f", {}), ("g", {})],
            "\nThen:",
        ),
    ],
    ids=["vllm-test-output", "string-or-no-arguments", "empty-array", "two-blocks-and-text"],
)
def test_jamba_markup_table(
    text: str, expected_calls: list[tuple[str, dict[str, Any]]], expected_rest: str
) -> None:
    rest, found = JAMBA.read(text, "stop")
    assert rest == expected_rest
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in found] == (
        expected_calls
    )
