"""JSON nested past Python's recursion limit (100,000 brackets) is malformed, never a
``RecursionError``: in a 200 body the stdlib parses (over 1 MiB), and in a tool call's arguments.

Tool calls the model wrote as text are covered in ``test_hermes_markup.py`` and
``test_jamba_markup.py``, stream events in ``test_stream_scale.py``. The two cases here are read
by ``_http.decode_json`` and ``base._parse_arguments``, which catch ``ValueError`` only: they
are expected to fail, strictly, until those catch ``RecursionError`` too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from llama_index.core.tools import FunctionTool

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.errors import MalformedResponseError
from tests.transport.servers import Peer, Server, response

DEEP = "[" * 100_000 + "]" * 100_000
TOOL = FunctionTool.from_defaults(fn=lambda x: str(x), name="f", description="f")


def _answering(body: bytes) -> Callable[[Peer], None]:
    def handler(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(response(body=body))

    return handler


@contextmanager
def _llm(server: Server) -> Iterator[AI21]:
    llm = AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", max_retries=0)
    try:
        yield llm
    finally:
        llm.close()  # the server's connection thread ends with the connection


def test_a_large_body_nested_too_deeply_is_malformed() -> None:
    body = b'{"pad": "' + b" " * (1 << 20) + b'", "choices": ' + DEEP.encode() + b"}"
    with (
        Server(_answering(body)) as server,
        _llm(server) as llm,
        pytest.raises(MalformedResponseError, match="not valid JSON"),
    ):
        llm.complete("hi")


def test_tool_arguments_nested_too_deeply_are_not_a_json_object() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": DEEP}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    body = json.dumps({"choices": [{"message": message, "finish_reason": "tool_calls"}]})
    with Server(_answering(body.encode())) as server:
        with _llm(server) as llm:
            answer = llm.chat_with_tools([TOOL], user_msg="hi")
        for error_on_no_tool_call in (True, False):  # a whole answer's call is never skipped
            with pytest.raises(ValueError, match="arguments that are not a JSON object"):
                llm.get_tool_calls_from_response(
                    answer, error_on_no_tool_call=error_on_no_tool_call
                )
