"""Property-based: any input either becomes a payload the server accepts, or a ValueError first.

Never an ``AttributeError``, ``KeyError`` or ``TypeError`` from inside the adapter, and never a
request the (emulated) API rejects with 422.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from pydantic import ValidationError

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

text = st.text(max_size=30)
json_scalar = st.none() | st.booleans() | st.integers(-5, 5000) | text
numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-3, 5000)
    | st.booleans()
    | text
    | st.none()
)
weird = st.sampled_from([object(), b"bytes", {1: "x"}, {"nested": [float("nan")]}, (1, 2)])

blocks = st.lists(
    st.one_of(
        st.builds(TextBlock, text=text),
        st.builds(
            ToolCallBlock,
            tool_call_id=st.none() | st.just("call_1"),
            tool_name=st.sampled_from(["add", "search"]),
            tool_kwargs=st.just({"a": 1}) | st.just('{"a": 1}'),
        ),
    ),
    min_size=0,
    max_size=3,
)
roles = st.sampled_from(
    [MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM]
) | st.sampled_from(list(MessageRole))
message = st.builds(
    ChatMessage,
    role=roles,
    blocks=blocks,
    additional_kwargs=st.sampled_from([{}, {"tool_call_id": "call_1"}, {"tool_call_id": 5}]),
)


def valid_or_not(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly values the API takes, sometimes anything at all."""
    return valid | valid | numbers | weird


call_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "temperature": valid_or_not(st.floats(0, 2)),
        "top_p": valid_or_not(st.floats(0.01, 1)),
        "max_tokens": valid_or_not(st.integers(0, 4096)),
        "n": valid_or_not(st.integers(1, 16)),
        "stop": valid_or_not(text.filter(bool) | st.lists(text.filter(bool), max_size=3)),
        "seed": json_scalar | weird,
        "preamble_override": valid_or_not(text),
        "documents": valid_or_not(
            st.lists(text | st.fixed_dictionaries({"content": text}), max_size=3)
        ),
        "response_format": st.sampled_from(
            [{"type": "text"}, {"type": "json_object"}, {"type": "xml"}, "json", {}]
        ),
    },
)


def _acceptable(exc: BaseException) -> bool:
    return isinstance(exc, ValueError | ValidationError)


@pytest.fixture(scope="module")
def property_llm(ai21_emulator_server: Emulator) -> AI21:
    return AI21(
        api_key=ai21_emulator_server.api_key,
        base_url=ai21_emulator_server.base_url,
        max_retries=0,
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(message, max_size=4), kwargs=call_kwargs, stream=st.booleans())
def test_any_input_is_sent_whole_or_refused_first(
    property_llm: AI21,
    ai21_emulator_server: Emulator,
    messages: list[ChatMessage],
    kwargs: dict[str, Any],
    stream: bool,
) -> None:
    emulator = ai21_emulator_server
    emulator.reset()
    refused: Exception | None = None
    try:
        if stream:
            assert list(property_llm.stream_chat(messages, **kwargs))
        else:
            property_llm.chat(messages, **kwargs)
    except Exception as exc:
        if not _acceptable(exc):
            raise
        refused = exc
    expected_requests = 0 if refused else 1
    assert len(emulator.requests) == expected_requests, f"refused with {refused!r} after sending"


valid_messages = st.lists(
    st.builds(
        ChatMessage,
        role=st.sampled_from([MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM]),
        blocks=st.lists(st.builds(TextBlock, text=text), min_size=1, max_size=2),
    ),
    min_size=1,
    max_size=4,
)
valid_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0.01, 1),
        "max_tokens": st.integers(0, 4096),
        "stop": text.filter(bool) | st.lists(text.filter(bool), max_size=3),  # none empty
        "seed": st.integers(0, 2**31),
        "preamble_override": text,
        "documents": st.lists(text | st.fixed_dictionaries({"content": text}), max_size=3),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    },
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=valid_messages, kwargs=valid_kwargs, stream=st.booleans())
def test_valid_input_is_always_accepted(
    property_llm: AI21,
    ai21_emulator_server: Emulator,
    messages: list[ChatMessage],
    kwargs: dict[str, Any],
    stream: bool,
) -> None:
    ai21_emulator_server.reset()
    if stream:
        text_out = list(property_llm.stream_chat(messages, **kwargs))[-1].message.content
    else:
        text_out = property_llm.chat(messages, **kwargs).message.content
    assert isinstance(text_out, str)
    assert len(ai21_emulator_server.requests) == 1


@settings(max_examples=60, deadline=None)
@given(temperature=numbers, max_tokens=numbers, top_p=numbers)
def test_constructor_rejects_bad_settings_with_validation_errors(
    temperature: Any, max_tokens: Any, top_p: Any
) -> None:
    try:
        llm = AI21(api_key="k", temperature=temperature, max_tokens=max_tokens, top_p=top_p)
    except ValidationError:
        return
    for value in (llm.temperature, llm.top_p):
        assert value is None or (isinstance(value, float) and math.isfinite(value))
