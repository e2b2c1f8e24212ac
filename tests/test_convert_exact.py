"""Conversions, to the letter: every error message whole, every response field, documents in
both shapes (AI21's and the flat one for a server of one's own). Pure: no server."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.schema import Document, NodeWithScore, TextNode

from llama_index.llms.ai21._convert import (
    assistant_message,
    chat_response_from_ai21,
    completion_response_from_ai21,
    parse_tool_calls,
    to_ai21_documents,
    to_ai21_message,
    to_ai21_messages,
    to_flat_documents,
    usage_kwargs,
)
from llama_index.llms.ai21.errors import MalformedResponseError


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


class SdkFunction:
    def __init__(self, name: Any, arguments: Any) -> None:
        self.name = name
        self.arguments = arguments


class SdkCall:
    """A tool call object as another SDK returns it (attributes, not keys)."""

    def __init__(self, id: Any, function: Any) -> None:
        self.id = id
        self.function = function

    def __repr__(self) -> str:
        return "SdkCall()"


def assistant_with(calls: Any) -> ChatMessage:
    return ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": calls})


# ----------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("call", "arguments"),
    [
        ({"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}, '{"a":1}'),
        ({"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}, '{"a": 1}'),
        ({"id": "c1", "function": {"name": "f"}}, "{}"),
        ({"id": "c1", "function": {"name": "f", "arguments": None}}, "{}"),
        (SdkCall("c1", SdkFunction("f", '{"a":1}')), '{"a":1}'),
        (SdkCall("c1", SdkFunction("f", {"a": 1})), '{"a": 1}'),
        (SdkCall("c1", SdkFunction("f", None)), "{}"),
    ],
)
def test_tool_calls_in_kwargs_are_normalised(call: Any, arguments: str) -> None:
    assert to_ai21_message(assistant_with([call]), 3) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
        ],
    }


class NoAttributes:
    def __repr__(self) -> str:
        return "NoAttributes()"


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        ({"id": "c1", "function": "f"}, "{'id': 'c1', 'function': 'f'}"),
        (
            {"id": "c1", "function": {"arguments": "{}"}},
            "{'id': 'c1', 'function': {'arguments': '{}'}}",
        ),
        ({"function": {"name": "f"}}, "{'function': {'name': 'f'}}"),
        ({"id": 1, "function": {"name": "f"}}, "{'id': 1, 'function': {'name': 'f'}}"),
        (SdkCall(None, SdkFunction("f", "{}")), "SdkCall()"),
        (SdkCall("c1", SdkFunction(None, "{}")), "SdkCall()"),
        (SdkCall("c1", None), "SdkCall()"),
        (NoAttributes(), "NoAttributes()"),
    ],
)
def test_a_tool_call_without_id_or_name_is_refused(call: Any, shown: str) -> None:
    message = f"messages[3] has a tool call without a string 'id' and 'function.name': {shown}"
    with pytest.raises(ValueError, match=exact(message)):
        to_ai21_message(assistant_with([call]), 3)


def test_arguments_that_cannot_be_json_are_refused_naming_the_call() -> None:
    call = {"id": "c1", "function": {"name": "f", "arguments": {"a": {1, 2}}}}
    with pytest.raises(
        ValueError,
        match=r"^messages\[2\] has a tool call to 'f' whose arguments are not "
        r"JSON-serializable \(Object of type set is not JSON serializable\)$",
    ) as caught:
        to_ai21_message(assistant_with([call]), 2)
    assert caught.value.__cause__ is None
    block = ToolCallBlock(tool_call_id="c1", tool_name="g", tool_kwargs={"x": object()})
    with pytest.raises(ValueError, match=r"^messages\[4\] has a tool call to 'g' whose arguments"):
        to_ai21_message(ChatMessage(role="assistant", blocks=[block]), 4)


@pytest.mark.parametrize("calls", ["not a list", b"bytes", {"id": "c1"}, 3])
def test_tool_calls_in_kwargs_must_be_a_list(calls: Any) -> None:
    message = "messages[5].additional_kwargs['tool_calls'] must be a list"
    with pytest.raises(ValueError, match=exact(message)):
        to_ai21_message(assistant_with(calls), 5)


@pytest.mark.parametrize("calls", [None, [], ()])
def test_no_tool_calls_is_a_plain_answer(calls: Any) -> None:
    assert to_ai21_message(assistant_with(calls), 0) == {"role": "assistant", "content": ""}


def test_tool_call_blocks_win_over_kwargs_and_keep_string_arguments() -> None:
    blocks = [
        TextBlock(text="Let me add."),
        ThinkingBlock(content="an earlier answer's reasoning is not sent back"),
        ToolCallBlock(tool_call_id="b1", tool_name="add", tool_kwargs='{"a": 1}'),
        ToolCallBlock(tool_call_id="b2", tool_name="mul", tool_kwargs={"a": 2}),
    ]
    message = ChatMessage(
        role="assistant",
        blocks=blocks,
        additional_kwargs={"tool_calls": [{"id": "k", "function": {"name": "x"}}]},
    )
    assert to_ai21_message(message) == {
        "role": "assistant",
        "content": "Let me add.",
        "tool_calls": [
            {"id": "b1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}},
            {"id": "b2", "type": "function", "function": {"name": "mul", "arguments": '{"a": 2}'}},
        ],
    }


def test_a_tool_call_block_without_an_id_is_refused() -> None:
    message = ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_name="add")])
    with pytest.raises(
        ValueError,
        match=exact(
            "messages[1] has a tool call to 'add' without an id; "
            "AI21 needs the id to match the tool result"
        ),
    ):
        to_ai21_message(message, 1)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (ChatMessage(role="system", content="S"), {"role": "system", "content": "S"}),
        (ChatMessage(role="developer", content="S"), {"role": "system", "content": "S"}),
        (ChatMessage(role="user", content="U"), {"role": "user", "content": "U"}),
        (ChatMessage(role="chatbot", content="A"), {"role": "assistant", "content": "A"}),
        (ChatMessage(role="model", content="A"), {"role": "assistant", "content": "A"}),
        (
            ChatMessage(role="user", blocks=[TextBlock(text="a"), TextBlock(text="b")]),
            {"role": "user", "content": "a\nb"},
        ),
        (
            ChatMessage(role="tool", content="12", additional_kwargs={"tool_call_id": "c"}),
            {"role": "tool", "content": "12", "tool_call_id": "c"},
        ),
        (
            ChatMessage(role="function", content="12", additional_kwargs={"tool_call_id": "c"}),
            {"role": "tool", "content": "12", "tool_call_id": "c"},
        ),
    ],
)
def test_roles(message: ChatMessage, expected: dict[str, Any]) -> None:
    assert to_ai21_message(message) == expected


@pytest.mark.parametrize("call_id", [None, "", 7])
def test_a_tool_result_needs_its_call_id(call_id: Any) -> None:
    message = ChatMessage(role="tool", content="2", additional_kwargs={"tool_call_id": call_id})
    with pytest.raises(
        ValueError,
        match=exact(
            "messages[2] is a tool result without additional_kwargs['tool_call_id']; "
            "AI21 needs it to match the result to the assistant's tool call"
        ),
    ):
        to_ai21_message(message, 2)


@pytest.mark.parametrize("role", ["system", "user", "tool"])
def test_reasoning_blocks_only_on_assistant_messages(role: str) -> None:
    message = ChatMessage(
        role=role, blocks=[ThinkingBlock(content="t")], additional_kwargs={"tool_call_id": "c"}
    )
    with pytest.raises(
        ValueError,
        match=exact(
            f"messages[0] ({role}) contains a 'thinking' content block, which the AI21 API "
            "cannot represent; only text is supported"
        ),
    ):
        to_ai21_message(message)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            ChatMessage(role="assistant", blocks=[ImageBlock(url="http://example.invalid/x.png")]),
            "messages[2] (assistant) contains a 'image' content block, which the AI21 API "
            "cannot represent; only text is supported",
        ),
        (
            ChatMessage(role="user", blocks=[ToolCallBlock(tool_call_id="c", tool_name="f")]),
            "messages[2] (user) contains a 'tool_call' content block, which the AI21 API "
            "cannot represent; only text is supported",
        ),
        (
            ChatMessage(role="user", blocks=[DocumentBlock(data=b"%PDF-1.4", title="x")]),
            "messages[2] (user) contains a 'document' content block, which the AI21 API "
            "cannot represent (pass documents=[...] for grounding, or put it in a user message); "
            "only text is supported",
        ),
    ],
)
def test_blocks_only_assistant_messages_may_carry_are_refused_elsewhere(
    message: ChatMessage, error: str
) -> None:
    with pytest.raises(ValueError, match=exact(error)):
        to_ai21_message(message, 2)


def test_text_after_a_tool_call_block_is_kept() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            ToolCallBlock(tool_call_id="c", tool_name="f", tool_kwargs="{}"),
            TextBlock(text="after the call"),
        ],
    )
    assert to_ai21_message(message)["content"] == "after the call"


def test_a_content_block_error_names_index_role_and_kind() -> None:
    message = ChatMessage(role="user", blocks=[ImageBlock(url="http://example.invalid/x.png")])
    with pytest.raises(
        ValueError,
        match=exact(
            "messages[1] (user) contains a 'image' content block, which the AI21 API cannot "
            "represent; only text is supported"
        ),
    ):
        to_ai21_messages([ChatMessage(role="user", content="hi"), message])


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ("hi", "messages must be a list of ChatMessage, got str"),
        (b"hi", "messages must be a list of ChatMessage, got bytes"),
        ({"role": "user"}, "messages must be a list of ChatMessage, got dict"),
        (None, "messages must be a list of ChatMessage, got NoneType"),
        ([], "messages must not be empty: AI21 needs at least one message"),
        (
            [ChatMessage(role="user", content="x"), {"role": "user", "content": "x"}],
            "messages[1] is a dict, not a ChatMessage (build it with "
            "ChatMessage(role=..., content=...))",
        ),
        (["x"], "messages[0] is a str, not a ChatMessage"),
    ],
)
def test_the_conversation_itself_is_checked(messages: Any, message: str) -> None:
    with pytest.raises(ValueError, match=exact(message)):
        to_ai21_messages(messages)


def test_preamble_override_replaces_every_system_message_and_must_be_a_string() -> None:
    messages = [
        ChatMessage(role="system", content="S1"),
        ChatMessage(role="user", content="U"),
        ChatMessage(role="developer", content="S2"),
    ]
    assert to_ai21_messages(messages, system_prompt="X", preamble_override="P") == [
        {"role": "system", "content": "P"},
        {"role": "user", "content": "U"},
    ]
    assert to_ai21_messages(messages[1:2], system_prompt="") == [{"role": "user", "content": "U"}]
    with pytest.raises(ValueError, match=exact("preamble_override must be a string, got int")):
        to_ai21_messages(messages, preamble_override=3)  # type: ignore[arg-type]


def test_a_bad_message_after_an_override_keeps_its_own_index() -> None:
    messages = [ChatMessage(role="user", content="U"), ChatMessage(role="tool", content="x")]
    with pytest.raises(ValueError, match=r"^messages\[1\] is a tool result"):
        to_ai21_messages(messages, preamble_override="P")


# ---------------------------------------------------------------------------- responses


def body(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"choices": [{"message": message, "finish_reason": "stop"}], **extra}


@pytest.mark.parametrize(
    ("usage", "counts"),
    [
        (None, {}),
        ({}, {}),
        ({"prompt_tokens": 3}, {"prompt_tokens": 3}),
        (
            {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "other": "x"},
            {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        ),
        ({"prompt_tokens": 0}, {"prompt_tokens": 0}),
        (
            {
                "completion_tokens_details": {"reasoning_tokens": 4},
                "prompt_tokens_details": {"cached_tokens": 0},
            },
            {"reasoning_tokens": 4, "cached_tokens": 0},
        ),
        (  # a detail that is not a count is left out, as one not reported is
            {
                "completion_tokens_details": {"reasoning_tokens": -3},
                "prompt_tokens_details": {"cached_tokens": True},
            },
            {},
        ),
    ],
)
def test_usage_kwargs(usage: Any, counts: dict[str, int]) -> None:
    assert usage_kwargs(usage) == counts


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ([], "'usage' should be dict, got list"),
        (
            {"completion_tokens": 2.0},
            "usage.completion_tokens should be a non-negative int, got float",
        ),
        ({"total_tokens": None}, "usage.total_tokens should be a non-negative int, got NoneType"),
        ({"prompt_tokens": True}, "usage.prompt_tokens should be a non-negative int, got bool"),
        ({"prompt_tokens": -5}, "usage.prompt_tokens should be a non-negative int, got -5"),
    ],
)
def test_bad_usage(usage: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=exact(f"malformed AI21 response: {message}")):
        usage_kwargs(usage)


def test_parse_tool_calls_defaults_type_and_arguments() -> None:
    assert parse_tool_calls(None, "w") == []
    assert parse_tool_calls([{"id": "c", "function": {"name": "f"}}], "w") == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    ]
    assert parse_tool_calls([{"id": "c", "type": "x", "function": {"name": "f"}}], "w") == [
        {"id": "c", "type": "x", "function": {"name": "f", "arguments": ""}}
    ]


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ({}, "w should be list, got dict"),
        (["c"], "w[0] should be dict, got str"),
        ([{"id": "c"}], "w[0].function should be dict, got NoneType"),
        ([{"function": {"name": "f"}}], "w[0].id should be str, got NoneType"),
        ([{"id": "c", "function": {"name": 1}}], "w[0].function.name should be str, got int"),
        (
            [{"id": "c", "function": {"name": "f", "arguments": {}}}],
            "w[0].function.arguments should be str, got dict",
        ),
        (
            [
                {"id": "c", "function": {"name": "f"}},
                {"id": "d", "function": {"name": "g", "arguments": None}},
            ],
            "w[1].function.arguments should be str, got NoneType",
        ),
    ],
)
def test_bad_tool_calls(calls: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=exact(f"malformed AI21 response: {message}")):
        parse_tool_calls(calls, "w")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "the response body should be dict, got NoneType"),
        ({"choices": {}}, "'choices' should be list, got dict"),
        ({"choices": []}, "'choices' is empty"),
        ({"choices": ["x"]}, "choices[0] should be dict, got str"),
        ({"choices": [{}]}, "choices[0].message should be dict, got NoneType"),
        (body({"content": 1}), "choices[0].message.content should be str, got int"),
        (
            body({"content": "", "tool_calls": "x"}),
            "choices[0].message.tool_calls should be list, got str",
        ),
        (
            body({"content": "", "reasoning": 1}),
            "choices[0].message.reasoning should be str, got int",
        ),
        (
            body({"content": "", "reasoning_content": ["x"]}),
            "choices[0].message.reasoning should be str, got list",
        ),
        (body({"content": ""}, usage=[]), "'usage' should be dict, got list"),
        (
            {"choices": [{"message": {"content": ""}, "finish_reason": 7}]},
            "choices[0].finish_reason should be str, got int",
        ),
        (
            {"choices": [{"message": {"content": ""}, "finish_reason": ["stop"]}]},
            "choices[0].finish_reason should be str, got list",
        ),
    ],
)
@pytest.mark.parametrize("parse", [chat_response_from_ai21, completion_response_from_ai21])
def test_malformed_answers_are_named_exactly(raw: Any, message: str, parse: Any) -> None:
    with pytest.raises(MalformedResponseError, match=exact(f"malformed AI21 response: {message}")):
        parse(raw)


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_a_chat_answer_with_reasoning_and_calls() -> None:
    raw = body({"content": "Hi", "tool_calls": [CALL], "reasoning_content": "thought"}, usage=USAGE)
    response = chat_response_from_ai21(raw)
    assert response.raw is raw
    assert response.additional_kwargs == {**USAGE, "finish_reason": "stop"}
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.blocks == [
        ThinkingBlock(content="thought"),
        TextBlock(text="Hi"),
        ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs="{}"),
    ]
    assert response.message.additional_kwargs == {"tool_calls": [CALL]}


@pytest.mark.parametrize(
    ("message", "reasoning"),
    [
        ({"content": None, "reasoning": "vLLM's name"}, "vLLM's name"),
        ({"content": None, "reasoning_content": "AI21's", "reasoning": "vLLM's"}, "AI21's"),
        ({"content": None, "reasoning_content": None, "reasoning": "vLLM's"}, "vLLM's"),
        ({"content": None, "reasoning_content": "", "reasoning": None}, None),
    ],
)
def test_reasoning_under_either_name(message: dict[str, Any], reasoning: str | None) -> None:
    response = completion_response_from_ai21(body(message))
    assert response.text == ""
    expected = {"finish_reason": "stop"}
    if reasoning is not None:
        expected["reasoning"] = reasoning
    assert response.additional_kwargs == expected


def test_a_completion_answer_keeps_calls_and_reasoning_in_kwargs() -> None:
    raw = body({"content": "T", "tool_calls": [CALL], "reasoning": "r"}, usage=USAGE)
    response = completion_response_from_ai21(raw)
    assert response.text == "T"
    assert response.raw is raw
    assert response.additional_kwargs == {
        **USAGE,
        "finish_reason": "stop",
        "tool_calls": [CALL],
        "reasoning": "r",
    }
    assert completion_response_from_ai21(body({"content": "T"})).additional_kwargs == {
        "finish_reason": "stop"
    }


def test_assistant_message_copies_the_calls() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    message = assistant_message("", calls)
    message.additional_kwargs["tool_calls"][0]["function"]["name"] = "changed"
    assert calls[0]["function"]["name"] == "f"
    assert message.blocks[0] == TextBlock(text="")
    assert assistant_message("x", []).additional_kwargs == {}


# ---------------------------------------------------------------------------- documents


def test_ai21_documents_in_every_shape() -> None:
    node = TextNode(text="node", id_="n1", metadata={"page": 3, "tags": ["a"]})
    assert to_ai21_documents(
        [
            "plain",
            {"content": "c", "id": None, "metadata": {}},
            {"content": "c", "id": 0, "metadata": {"k": None, 1: {"x": 1}}},
            Document(text="doc", id_="d1", metadata={}),
            NodeWithScore(node=node, score=0.5),
        ]
    ) == [
        {"content": "plain"},
        {"content": "c"},
        {"content": "c", "id": "0", "metadata": {"k": "null", "1": '{"x": 1}'}},
        {"content": "doc", "id": "d1"},
        {"content": "node", "id": "n1", "metadata": {"page": "3", "tags": '["a"]'}},
    ]
    assert to_ai21_documents(()) == []


def test_metadata_values_json_cannot_write_are_strings() -> None:
    day = datetime.date(2024, 1, 2)
    assert to_ai21_documents([{"content": "c", "metadata": {"day": day}}]) == [
        {"content": "c", "metadata": {"day": '"2024-01-02"'}}
    ]
    assert to_flat_documents([{"text": "t", "day": day}]) == [{"text": "t", "day": '"2024-01-02"'}]


def test_a_flat_document_with_text_and_content_keeps_both() -> None:
    assert to_flat_documents([{"text": "t", "content": "c"}]) == [{"text": "t", "content": "c"}]


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ("s", "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        (b"s", "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        ({"content": "x"}, "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        (None, "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        (["ok", {"text": "x"}], "documents[1] needs a string 'content'"),
        ([{"content": 1}], "documents[0] needs a string 'content'"),
        (
            ["ok", "ok", {"content": "x", "title": "t", "url": "u"}],
            "documents[2] has unknown keys ['title', 'url']; "
            "AI21 documents take content, id and metadata",
        ),
        (["ok", {"content": "x", "metadata": "m"}], "documents[1].metadata must be a mapping"),
        (
            ["ok", 3],
            "documents[1] is a int; pass strings, {'content': ..., 'id': ..., 'metadata': {...}} "
            "dicts, or LlamaIndex Documents/Nodes",
        ),
    ],
)
def test_bad_ai21_documents(documents: Any, message: str) -> None:
    with pytest.raises(ValueError, match=exact(message)):
        to_ai21_documents(documents)


def test_a_node_with_bad_metadata_names_its_index() -> None:
    class Node:
        node_id = "n"
        metadata = ["not", "a", "mapping"]

        def get_content(self) -> str:
            return "x"

    with pytest.raises(ValueError, match=exact("documents[1].metadata must be a mapping")):
        to_ai21_documents(["ok", Node()])


def test_flat_documents_in_every_shape() -> None:
    node = TextNode(text="node", id_="n1", metadata={"page": 3, "text": "shadowed", "k": None})
    assert to_flat_documents(
        [
            "plain",
            {"content": "c"},
            {"content": "c", "id": 7, "metadata": {"page": 2, "id": "mine", "text": "t"}},
            {"text": "t", "title": "T", "n": 1, "gone": None},
            {"text": "t", "metadata": {"a": 1, "title": "from metadata"}, "title": "T"},
            {"text": "t", "extra": {"nested": True}},
            Document(text="doc", id_="d1"),
            NodeWithScore(node=node),
        ]
    ) == [
        {"text": "plain"},
        {"text": "c"},
        {"text": "c", "page": "2", "id": "mine"},
        {"text": "t", "title": "T", "n": "1"},
        {"a": "1", "title": "T", "text": "t"},
        {"text": "t", "extra": '{"nested": true}'},
        {"text": "doc"},
        {"text": "node", "page": "3"},
    ]
    assert to_flat_documents([{"content": "c", "id": 7}]) == [{"text": "c", "id": "7"}]
    assert to_flat_documents([]) == []


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ("s", "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        (b"s", "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        ({"text": "x"}, "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        (3, "documents must be a list (of strings, dicts or LlamaIndex Documents)"),
        (["ok", {"title": "x"}], "documents[1] needs a string 'text' (or 'content')"),
        ([{"text": 1}], "documents[0] needs a string 'text' (or 'content')"),
        (["ok", {"content": 1}], "documents[1] needs a string 'content'"),
        (
            ["ok", 3.5],
            "documents[1] is a float; pass strings, {'text': ..., 'title': ...} dicts, "
            "or LlamaIndex Documents/Nodes",
        ),
    ],
)
def test_bad_flat_documents(documents: Any, message: str) -> None:
    with pytest.raises(ValueError, match=exact(message)):
        to_flat_documents(documents)
