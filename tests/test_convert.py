"""Message conversion, table-driven. Pure functions: no server."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.schema import Document, NodeWithScore, TextNode

from llama_index.llms.ai21._convert import (
    chat_response_from_ai21,
    to_ai21_documents,
    to_ai21_messages,
)
from llama_index.llms.ai21._j2 import completion_from_j2, to_j2_chat, to_j2_prompt
from llama_index.llms.ai21.errors import MalformedResponseError

CALL = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


CASES: list[tuple[str, list[ChatMessage], dict[str, Any], list[dict[str, Any]]]] = [
    ("user", [user("hi")], {}, [{"role": "user", "content": "hi"}]),
    (
        "system first",
        [ChatMessage(role="system", content="be brief"), user("hi")],
        {},
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    ),
    (
        "developer role is a system message",
        [ChatMessage(role="developer", content="be brief"), user("hi")],
        {},
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    ),
    (
        "system_prompt prepended when there is no system message",
        [user("hi")],
        {"system_prompt": "be kind"},
        [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],
    ),
    (
        "system_prompt ignored when the conversation has one",
        [ChatMessage(role="system", content="mine"), user("hi")],
        {"system_prompt": "be kind"},
        [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}],
    ),
    (
        "preamble_override wins over system messages and system_prompt",
        [ChatMessage(role="system", content="mine"), user("hi")],
        {"system_prompt": "be kind", "preamble_override": "You are a pirate"},
        [{"role": "system", "content": "You are a pirate"}, {"role": "user", "content": "hi"}],
    ),
    (
        "assistant text",
        [user("hi"), ChatMessage(role="assistant", content="hello"), user("bye")],
        {},
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
        ],
    ),
    (
        "several text blocks are joined by newlines",
        [ChatMessage(role="user", blocks=[TextBlock(text="a"), TextBlock(text="b")])],
        {},
        [{"role": "user", "content": "a\nb"}],
    ),
    (
        "assistant tool calls from ToolCallBlocks",
        [
            user("add 1"),
            ChatMessage(
                role="assistant",
                blocks=[
                    ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs={"a": 1})
                ],
            ),
            ChatMessage(role="tool", content="2", additional_kwargs={"tool_call_id": "call_1"}),
        ],
        {},
        [
            {"role": "user", "content": "add 1"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "content": "2", "tool_call_id": "call_1"},
        ],
    ),
    (
        "assistant tool calls from additional_kwargs (dicts), text kept",
        [
            user("add 1"),
            ChatMessage(
                role="assistant", content="calling", additional_kwargs={"tool_calls": [CALL]}
            ),
        ],
        {},
        [
            {"role": "user", "content": "add 1"},
            {"role": "assistant", "content": "calling", "tool_calls": [CALL]},
        ],
    ),
]


@pytest.mark.parametrize(
    ("messages", "options", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_to_ai21_messages(
    messages: list[ChatMessage], options: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    before = copy.deepcopy([m.model_dump() for m in messages])
    assert to_ai21_messages(messages, **options) == expected
    assert [m.model_dump() for m in messages] == before, "conversion must not mutate its input"


def test_tool_call_objects_from_other_sdks_are_normalised() -> None:
    class Function:
        name = "add"
        arguments = '{"a": 1}'

    class Call:
        id = "call_1"
        function = Function()

    message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [Call()]})
    assert to_ai21_messages([message]) == [
        {"role": "assistant", "content": None, "tool_calls": [CALL]}
    ]


ERRORS: list[tuple[str, list[ChatMessage], str]] = [
    ("empty", [], "must not be empty"),
    (
        "image",
        [ChatMessage(role="user", blocks=[ImageBlock(url="http://example.invalid/x.png")])],
        "'image' content block",
    ),
    (
        "audio",
        [ChatMessage(role="user", blocks=[AudioBlock(audio=b"RIFF", format="wav")])],
        "'audio' content block",
    ),
    (
        "document block suggests documents=",
        [ChatMessage(role="user", blocks=[DocumentBlock(data=b"%PDF-1.4", title="x")])],
        "documents=",
    ),
    ("tool without id", [ChatMessage(role="tool", content="2")], "tool_call_id"),
    (
        "tool call block without id",
        [ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_name="add")])],
        "without an id",
    ),
]


@pytest.mark.parametrize(("messages", "match"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_unrepresentable_input_is_a_clear_value_error(
    messages: list[ChatMessage], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        to_ai21_messages(messages)


def test_j2_chat_shape() -> None:
    system, messages = to_j2_chat(
        [user("hi"), ChatMessage(role="assistant", content="yo"), user("name?")],
        preamble_override="You are a pirate",
    )
    assert system == "You are a pirate"
    assert messages == [
        {"role": "user", "text": "hi"},
        {"role": "assistant", "text": "yo"},
        {"role": "user", "text": "name?"},
    ]
    with pytest.raises(ValueError, match="no tools"):
        to_j2_chat([ChatMessage(role="tool", content="x", additional_kwargs={"tool_call_id": "1"})])
    assert to_j2_prompt("Q", "Be brief") == "Be brief\n\nQ"
    assert to_j2_prompt("Q") == "Q"


def test_documents_accept_strings_dicts_and_nodes() -> None:
    node = TextNode(text="node text", id_="n1", metadata={"page": 3})
    documents = to_ai21_documents(
        [
            "plain",
            {"content": "dict", "id": 7, "metadata": {"a": "b"}},
            Document(text="doc", id_="d1"),
            NodeWithScore(node=node, score=0.5),
        ]
    )
    assert documents == [
        {"content": "plain"},
        {"content": "dict", "id": "7", "metadata": {"a": "b"}},
        {"content": "doc", "id": "d1"},
        {"content": "node text", "id": "n1", "metadata": {"page": "3"}},
    ]
    for bad in ("just a string", [1], [{"text": "x"}]):
        with pytest.raises(ValueError, match="documents"):
            to_ai21_documents(bad)


RESPONSE = {
    "id": "chat-" + "0" * 32,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "tool_calls": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
}


def test_chat_response_from_ai21() -> None:
    response = chat_response_from_ai21(RESPONSE)
    assert response.message.content == "Hello!"
    assert response.raw is RESPONSE
    assert response.additional_kwargs == {
        "prompt_tokens": 4,
        "completion_tokens": 2,
        "total_tokens": 6,
        "finish_reason": "stop",
    }


def test_tool_calls_round_trip() -> None:
    raw = json.loads(json.dumps(RESPONSE))
    raw["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [CALL]}
    message = chat_response_from_ai21(raw).message
    assert message.additional_kwargs["tool_calls"] == [CALL]
    block = next(b for b in message.blocks if isinstance(b, ToolCallBlock))
    assert (block.tool_call_id, block.tool_name) == ("call_1", "add")
    # The assistant message goes back out exactly as it came in.
    assert to_ai21_messages([message]) == [
        {"role": "assistant", "content": None, "tool_calls": [CALL]}
    ]


MALFORMED = [
    ("not an object", [], "the response body should be dict"),
    ("missing choices", {"id": "x"}, "'choices' should be list"),
    ("empty choices", {"choices": []}, "'choices' is empty"),
    ("message not an object", {"choices": [{"message": "hi"}]}, "choices\\[0\\].message"),
    (
        "content wrong type",
        {"choices": [{"message": {"content": 5}}]},
        "choices\\[0\\].message.content",
    ),
    (
        "usage wrong type",
        {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "4"}},
        "usage.prompt_tokens",
    ),
    (
        "tool call without name",
        {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {}}]}}]},
        "function.name",
    ),
]


@pytest.mark.parametrize(
    ("raw", "match"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_responses_name_the_problem(raw: Any, match: str) -> None:
    with pytest.raises(MalformedResponseError, match=match):
        chat_response_from_ai21(raw)


def test_j2_completion() -> None:
    token = {"generatedToken": {"token": "▁x", "logprob": -1.0, "raw_logprob": -1.0}}
    raw = {
        "id": "u",
        "prompt": {"text": "Hi", "tokens": [token]},
        "completions": [
            {
                "data": {"text": " there", "tokens": [token, token]},
                "finishReason": {"reason": "endoftext"},
            }
        ],
    }
    text, extra = completion_from_j2(raw)
    assert text == " there"
    assert extra == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "finish_reason": "endoftext",
    }
    with pytest.raises(MalformedResponseError, match="'completions' is empty"):
        completion_from_j2({"completions": []})
