"""The unmodified ai21 SDK (sync and async) against the emulator over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from ai21 import AI21APIError, AI21Client, AsyncAI21Client
from ai21.errors import Unauthorized, UnprocessableEntity
from ai21.models import ChatMessage as J2ChatMessage
from ai21.models import ChatResponse, RoleType
from ai21.models.chat import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionResponse,
    SystemMessage,
    ToolCall,
    ToolFunction,
    ToolMessage,
    UserMessage,
)
from schema_check import problems

from ai21_emulator import Emulator

# ai21 4.3.0 parses every stream chunk with its own deprecated ``from_dict``.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'from_dict' method is deprecated:DeprecationWarning"
)

Create = Callable[..., Awaitable[Any]]
UNAUTHORIZED_BODY = '{"detail":"Forbidden: Bad or missing API token."}'


@pytest.fixture(params=["sync", "async"])
def create(request: pytest.FixtureRequest, client: AI21Client, aclient: AsyncAI21Client) -> Create:
    """``chat.completions.create`` of the sync or the async client, awaited; streams collected."""

    async def call(**kwargs: Any) -> Any:
        if request.param == "sync":
            result = client.chat.completions.create(**kwargs)
            return list(result) if kwargs.get("stream") else result
        result = await aclient.chat.completions.create(**kwargs)
        return [chunk async for chunk in result] if kwargs.get("stream") else result

    return call


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks)


async def test_chat_roundtrip_and_recorded_request(create: Create, emu: Emulator) -> None:
    reply = await create(
        model="jamba-mini",
        messages=[SystemMessage(content="Be brief."), UserMessage(content="Hello")],
        temperature=0.2,
    )
    assert isinstance(reply, ChatCompletionResponse)
    assert reply.choices[0].message.content == (
        "[system: Be brief.] "
        "This is the AI21 emulator (jamba-mini), not a real model. You said: Hello"
    )
    # chatcmpl-<uuid4 with dashes>, as the live API answered in 2025
    assert re.fullmatch(
        r"chatcmpl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", reply.id
    )
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    record = emu.last_request
    assert record.method == "POST"
    assert record.path == "/studio/v1/chat/completions"
    assert record.api_key == emu.api_key
    assert "authorization" not in {k.lower() for k in record.headers}
    assert record.headers["User-Agent"].startswith("AI21 studio SDK")
    assert record.json == {
        "model": "jamba-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 0.2,
        "stream": False,
    }
    assert json.loads(record.raw_body) == record.json


async def test_streaming_matches_non_streaming(create: Create) -> None:
    kwargs: dict[str, Any] = {
        "model": "jamba-large",
        "messages": [UserMessage(content="Where is the Eiffel Tower?")],
        "documents": [{"content": "The Eiffel Tower is in Paris."}, {"content": "Rome is old."}],
    }
    whole = await create(**kwargs)
    chunks = await create(**kwargs, stream=True)
    for chunk in chunks:
        assert isinstance(chunk, ChatCompletionChunk)
        ChatCompletionChunk.model_validate(chunk.model_dump())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == whole.choices[0].message.content == "The Eiffel Tower is in Paris."
    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].usage == whole.usage
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


async def test_bad_key_is_unauthorized_with_the_live_body(emu: Emulator) -> None:
    async with httpx.AsyncClient() as transport:
        client = AsyncAI21Client(api_key="wrong", api_host=emu.base_url, http_client=transport)
        with pytest.raises(Unauthorized) as caught:
            await client.chat.completions.create(
                model="jamba-mini", messages=[UserMessage(content="Hi")]
            )
    assert caught.value.details == UNAUTHORIZED_BODY
    assert emu.last_request.api_key == "wrong"


def test_bad_key_on_a_stream_is_unauthorized_before_any_chunk(emu: Emulator) -> None:
    with httpx.Client() as transport:
        client = AI21Client(api_key="wrong", api_host=emu.base_url, http_client=transport)
        with pytest.raises(Unauthorized) as caught:
            client.chat.completions.create(
                model="jamba-mini", messages=[UserMessage(content="Hi")], stream=True
            )
    assert caught.value.details == UNAUTHORIZED_BODY


def test_missing_key_is_unauthorized(http: httpx.Client) -> None:
    response = http.post("/studio/v1/chat/completions", json={"model": "jamba-mini"})
    assert response.status_code == 401
    assert response.text == UNAUTHORIZED_BODY
    response = http.get("/studio/v1/models", headers={"Authorization": "Basic emulator-key"})
    assert response.status_code == 401


async def test_validation_error_reaches_the_sdk(create: Create) -> None:
    with pytest.raises(UnprocessableEntity) as caught:
        await create(model="jamba-mini", messages=[UserMessage(content="Hi")], top_p=0)
    assert json.loads(caught.value.details) == {
        "detail": [
            {
                "loc": ["body", "top_p"],
                "msg": "Input should be greater than 0",
                "type": "greater_than",
            }
        ]
    }


async def test_n_stop_and_max_tokens(create: Create) -> None:
    many = await create(model="jamba-mini", messages=[UserMessage(content="Hi")], n=3)
    assert [c.index for c in many.choices] == [0, 1, 2]
    stopped = await create(model="jamba-mini", messages=[UserMessage(content="Hi")], stop=["AI21"])
    assert stopped.choices[0].message.content == "This is the "
    assert stopped.choices[0].finish_reason == "stop"
    cut = await create(model="jamba-mini", messages=[UserMessage(content="Hi")], max_tokens=2)
    assert cut.choices[0].message.content == "This is"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 2


async def test_json_mode(create: Create) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    reply = await create(
        model="jamba-mini",
        messages=[UserMessage(content=f"Lyon has 522250 people. Schema: {json.dumps(schema)}")],
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content) == {"city": "Lyon", "population": 522250}


TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "multiply",
            "description": "Multiply two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "description": "Look up the delivery status of an order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "The order id"}},
                "required": ["order_id"],
            },
        },
    },
]


async def test_tool_call_then_tool_result(create: Create) -> None:
    question = UserMessage(content="Where is my order 'order_12345'?")
    reply = await create(model="jamba-large", messages=[question], tools=TOOLS)
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    [call] = message.tool_calls
    assert isinstance(call, ToolCall)
    assert call.function.name == "get_order_status"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"order_id": "order_12345"}
    assert problems(arguments, TOOLS[1]["function"]["parameters"]) == []

    follow_up = await create(
        model="jamba-large",
        messages=[
            question,
            AssistantMessage(content=None, tool_calls=[call]),
            ToolMessage(tool_call_id=call.id, content="Shipped on Monday."),
        ],
        tools=TOOLS,
    )
    assert (
        follow_up.choices[0].message.content
        == "The result of get_order_status is Shipped on Monday."
    )
    assert follow_up.choices[0].message.tool_calls is None


async def test_streamed_tool_calls(create: Create) -> None:
    chunks = await create(
        model="jamba-mini",
        messages=[UserMessage(content="Multiply 2.5 by 4")],
        tools=TOOLS,
        stream=True,
    )
    starts = [c.choices[0].delta.tool_calls[0] for c in chunks[1:-1]]
    assert starts[0]["function"] == {"name": "multiply"}
    arguments = "".join(d["function"].get("arguments", "") for d in starts[1:])
    assert json.loads(arguments) == {"a": 2.5, "b": 4}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_sdk_serialised_assistant_message_with_nulls_is_accepted(client: AI21Client) -> None:
    call = ToolCall(id="call_1", function=ToolFunction(name="multiply", arguments='{"a":1,"b":2}'))
    reply = client.chat.completions.create(
        model="jamba-mini",
        messages=[
            UserMessage(content="1 times 2"),
            AssistantMessage(tool_calls=[call]),
            ToolMessage(tool_call_id="call_1", content="2"),
        ],
    )
    assert reply.choices[0].message.content == "The result of multiply is 2."


def test_j2_complete_through_execute_http_request(client: AI21Client, emu: Emulator) -> None:
    response = client.execute_http_request(
        "POST", path="/j2-mid/complete", body={"prompt": "Once upon a time", "maxTokens": 5}
    )
    data = response.json()
    assert data["completions"][0]["data"]["text"] == "This is the AI21 emulator"
    assert data["completions"][0]["finishReason"] == {"reason": "length", "length": 5}
    assert emu.last_request.path == "/studio/v1/j2-mid/complete"


def test_j2_chat_through_the_sdk(client: AI21Client) -> None:
    reply = client.chat.create(
        model="j2-ultra",
        system="You are helpful.",
        messages=[J2ChatMessage(role=RoleType.USER, text="Hi")],
    )
    assert isinstance(reply, ChatResponse)
    assert reply.outputs[0].text.endswith("You said: Hi")
    assert reply.outputs[0].finish_reason is not None
    assert reply.outputs[0].finish_reason.reason == "endoftext"


def test_jamba_model_on_a_j2_route_is_not_found(client: AI21Client) -> None:
    with pytest.raises(AI21APIError) as caught:
        client.execute_http_request("POST", path="/jamba-mini/complete", body={"prompt": "x"})
    assert caught.value.status_code == 404
    assert caught.value.details == '{"detail":"Not Found"}'


def test_models_listing(client: AI21Client) -> None:
    data = client.execute_http_request("GET", path="/models").json()
    ids = [m["id"] for m in data["data"]]
    assert {"jamba-mini", "jamba-large", "jamba-mini-2", "j2-ultra"} <= set(ids)
    for model in data["data"]:
        assert set(model) == {
            "id",
            "name",
            "updated",
            "context_length",
            "quantization",
            "max_completion_tokens",
            "pricing",
        }
        assert set(model["pricing"]) == {"prompt", "completion"}


def test_routes_without_prefix_and_unknown_routes(http: httpx.Client, emu: Emulator) -> None:
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    body = {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}
    assert http.post("/chat/completions", json=body, headers=auth).status_code == 200
    missing = http.post("/studio/v1/chat/complete", json=body, headers=auth)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong = http.get("/studio/v1/chat/completions", headers=auth)
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    garbled = http.post(
        "/studio/v1/chat/completions",
        content=b"{not json",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert garbled.status_code == 422
    assert garbled.json()["detail"][0]["type"] == "json_invalid"


async def test_same_request_same_answer_new_id(create: Create) -> None:
    kwargs = {"model": "jamba-mini", "messages": [UserMessage(content="Same again")]}
    first, second = await create(**kwargs), await create(**kwargs)
    assert first.choices == second.choices
    assert first.usage == second.usage
    assert first.id != second.id
