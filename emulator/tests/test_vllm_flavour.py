"""The vLLM flavour over real HTTP: what vLLM's OpenAI-compatible server answers, field by field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from schema_check import problems

from ai21_emulator import Emulator, Fault

MINI = "ai21labs/AI21-Jamba2-Mini"
REASONER = "ai21labs/AI21-Jamba-Reasoning-3B"
JAMBA_1 = "ai21labs/AI21-Jamba-Mini-1.7"
HF_IDS = [
    "ai21labs/AI21-Jamba2-Mini",
    "ai21labs/AI21-Jamba2-3B",
    "ai21labs/AI21-Jamba-Reasoning-3B",
    "ai21labs/AI21-Jamba-Mini-1.7",
    "ai21labs/AI21-Jamba-Large-1.7",
]
CHAT_ID = re.compile(r"chatcmpl-[0-9a-f]{16}")
TOOL_ID = re.compile(r"chatcmpl-tool-[0-9a-f]{16}")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
    for name in ("multiply", "add")
]


def body(text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": MINI, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[Emulator]:
    with Emulator(flavour="vllm") as emulator:
        yield emulator


@pytest.fixture
def vllm(vllm_server: Emulator) -> Emulator:
    vllm_server.reset()
    return vllm_server


@pytest.fixture
def http(vllm: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=vllm.base_url, timeout=10) as client:
        yield client


def events(response: httpx.Response) -> list[Any]:
    """The stream's data payloads, checking vLLM's framing: ``data: <json>\\n\\n``, LF only."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.content
    assert b"\r" not in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    out: list[Any] = []
    for event in raw.split(b"\n\n")[:-1]:
        assert event.startswith(b"data: "), event
        payload = event[len(b"data: ") :]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    assert out.pop() == "[DONE]"
    return out


def post_stream(http: httpx.Client, payload: dict[str, Any]) -> list[dict[str, Any]]:
    return events(http.post("/chat/completions", json={**payload, "stream": True}))


# -- routes and auth --------------------------------------------------------------------------


def test_base_url_models_and_health(vllm: Emulator, http: httpx.Client) -> None:
    assert vllm.flavour == "vllm"
    assert vllm.base_url == f"http://127.0.0.1:{vllm.port}/v1"
    assert vllm.api_key is None
    models = http.get("/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == HF_IDS
    assert {m["max_model_len"] for m in models["data"]} == {262144}
    assert {m["object"] for m in models["data"]} == {"model"}
    # each card carries one ModelPermission with vLLM's defaults, as vLLM 0.32 lists them
    for card in models["data"]:
        [permission] = card["permission"]
        assert re.fullmatch(r"modelperm-[0-9a-f]{16}", permission.pop("id"))
        assert permission == {
            "object": "model_permission",
            "created": card["created"],
            "allow_create_engine": False,
            "allow_sampling": True,
            "allow_logprobs": True,
            "allow_search_indices": False,
            "allow_view": True,
            "allow_fine_tuning": False,
            "organization": "*",
            "group": None,
            "is_blocking": False,
        }
    health = httpx.get(f"{vllm.url}/health")
    assert (health.status_code, health.content) == (200, b"")


def test_served_names_and_context_length_are_configurable() -> None:
    with (
        Emulator(flavour="vllm", models="tiny-jamba", max_model_len=2048) as emu,
        httpx.Client(base_url=emu.base_url) as http,
    ):
        [model] = http.get("/models").json()["data"]
        assert (model["id"], model["max_model_len"]) == ("tiny-jamba", 2048)
        reply = http.post("/chat/completions", json={**body(), "model": "tiny-jamba"})
        assert reply.json()["model"] == "tiny-jamba"
        assert http.post("/chat/completions", json=body()).status_code == 404


def test_no_key_configured_means_no_key_needed(http: httpx.Client, vllm: Emulator) -> None:
    reply = http.post("/chat/completions", json=body())
    assert reply.status_code == 200
    assert vllm.last_request.api_key is None


def test_a_configured_key_is_required_on_every_v1_path_before_routing() -> None:
    with Emulator(flavour="vllm", api_keys="sk-local") as emu, httpx.Client() as http:
        assert emu.api_key == "sk-local"
        chat = f"{emu.base_url}/chat/completions"
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic sk-local"}):
            refused = http.post(chat, json=body(), headers=headers)
            assert refused.status_code == 401
            assert refused.content == b'{"error":"Unauthorized"}'
        good = {"Authorization": "Bearer sk-local"}
        assert http.post(chat, json=body(), headers=good).status_code == 200
        # vLLM 0.32 reads the scheme in any case (serve/middleware/authenticate.py)
        lower = {"Authorization": "bearer sk-local"}
        assert http.post(chat, json=body(), headers=lower).status_code == 200
        # ... and guards /v2, /inference and /cohere as it guards /v1
        for prefix in ("/v2", "/inference", "/cohere"):
            assert http.get(f"{emu.url}{prefix}/anything").status_code == 401
            assert http.get(f"{emu.url}{prefix}/anything", headers=good).status_code == 404
        assert http.get(f"{emu.base_url}/models", headers=good).status_code == 200
        # vLLM's key middleware runs before routing: an unknown /v1 path is a 401 without a key
        assert http.get(f"{emu.base_url}/nowhere").status_code == 401
        assert http.get(f"{emu.base_url}/nowhere", headers=good).json() == {"detail": "Not Found"}
        assert http.get(f"{emu.url}/health").status_code == 200  # no key for /health
        assert http.get(chat, headers=good).status_code == 405


# -- non-streaming ------------------------------------------------------------------------------


def test_non_stream_body_has_vllms_fields(http: httpx.Client) -> None:
    data = http.post("/chat/completions", json=body()).json()
    assert CHAT_ID.fullmatch(data["id"])
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == MINI
    # every field of vLLM 0.32's ChatCompletionResponse, null where unset
    nulls = ("service_tier", "system_fingerprint", "prompt_logprobs", "prompt_token_ids")
    nulls += ("prompt_text", "kv_transfer_params", "ec_transfer_params", "metrics")
    assert set(data) == {"id", "object", "created", "model", "choices", "usage", *nulls}
    assert all(data[key] is None for key in nulls)
    [choice] = data["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["stop_reason"] is None
    assert choice["logprobs"] is None
    assert choice["token_ids"] is None
    assert choice["routed_experts"] is None
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"] == (
        f"This is the AI21 emulator ({MINI}), not a real model. You said: Hi"
    )
    # vLLM's ChatMessage serializer drops an empty tool_calls: a client must not expect it
    assert "tool_calls" not in message
    for key in ("refusal", "annotations", "audio", "function_call", "reasoning"):
        assert key in message
        assert message[key] is None
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] is None


def test_stop_reason_names_the_matched_stop_string(http: httpx.Client) -> None:
    [choice] = http.post("/chat/completions", json=body(stop=["emulator"])).json()["choices"]
    assert choice["message"]["content"] == "This is the AI21 "
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", "emulator")


def test_tool_calls_non_stream(http: httpx.Client) -> None:
    payload = body("What is 3 times 4 and 5 plus 6?", tools=TOOLS)
    [choice] = http.post("/chat/completions", json=payload).json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["multiply", "add"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"a": 3, "b": 4},
        {"a": 5, "b": 6},
    ]
    assert all(TOOL_ID.fullmatch(c["id"]) for c in calls)
    assert len({c["id"] for c in calls}) == 2
    assert {c["type"] for c in calls} == {"function"}


@pytest.mark.parametrize(
    ("question", "tool_choice", "called", "finish"),
    [
        ("What is 3 times 4?", "none", [], "stop"),
        ("What is 3 times 4?", "auto", ["multiply"], "tool_calls"),
        ("What is 3 times 4?", {"type": "function", "function": {"name": "add"}}, ["add"], "stop"),
        ("Hello there.", "required", ["multiply"], "tool_calls"),
        ("Hello there.", "auto", [], "stop"),
    ],
)
def test_tool_choice_is_honoured(
    http: httpx.Client, question: str, tool_choice: Any, called: list[str], finish: str
) -> None:
    # OpenAI's finish reasons as vLLM gives them: "tool_calls" for "auto" and "required"
    # calls, "stop" for a named one.
    payload = body(question, tools=TOOLS, tool_choice=tool_choice)
    [choice] = http.post("/chat/completions", json=payload).json()["choices"]
    assert [c["function"]["name"] for c in choice["message"].get("tool_calls", [])] == called
    assert choice["finish_reason"] == finish
    streamed = post_stream(http, payload)
    names = [
        call["function"]["name"]
        for chunk in streamed
        for call in chunk["choices"][0]["delta"].get("tool_calls", [])
        if "name" in call.get("function", {})
    ]
    assert names == called
    assert streamed[-1]["choices"][0]["finish_reason"] == finish


# vLLM's ChatCompletionToolsParam: ``type`` defaults to "function"; FunctionDefinition's
# ``parameters`` is any object or null (vllm/entrypoints/openai/engine/protocol.py).
_WHERE = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ({"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}, {}),
        ({"type": "function", "function": {"name": "ping"}}, {}),
        ({"type": "function", "function": {"name": "ping", "parameters": None}}, {}),
        ({"function": {"name": "ping", "parameters": {}}}, {}),
        (
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {"$defs": {"Where": _WHERE}, "$ref": "#/$defs/Where"},
                },
            },
            {"city": "Paris"},
        ),
    ],
)
def test_tools_are_accepted_as_vllm_accepts_them(
    vllm: Emulator, tool: dict[str, Any], arguments: dict[str, Any]
) -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=vllm.base_url, api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(
            model=MINI,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[tool],
        )
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == tool["function"]["name"]
    assert json.loads(call.function.arguments) == arguments


@pytest.mark.parametrize(
    ("tool", "where", "problem"),
    [
        (
            {"type": "function", "function": {"name": "f", "parameters": "x"}},
            "body.tools.0.function.parameters",
            "Input should be a valid dictionary",
        ),
        ({"type": "tool", "function": {"name": "f"}}, "body.tools.0.type", "Input should be"),
        ({"type": "function", "function": {}}, "body.tools.0.function.name", "Field required"),
        ({"type": "function"}, "body.tools.0.function", "Field required"),
    ],
)
def test_tools_vllm_refuses_get_its_400(
    vllm: Emulator, tool: dict[str, Any], where: str, problem: str
) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=vllm.base_url, api_key="unused", max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MINI, messages=[{"role": "user", "content": "Hi"}], tools=[tool]
        )
    assert refused.value.status_code == 400
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["type"] == "Bad Request"
    assert error["code"] == 400
    assert error["message"].startswith(f"1 validation error: {where}: {problem}")


def test_a_tool_whose_root_is_a_reference_is_chosen_by_its_fields(http: httpx.Client) -> None:
    # Two tools: the one whose (referenced) fields the question names is called.
    where = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"$defs": {"Where": _WHERE}, "$ref": "#/$defs/Where"},
        },
    }
    payload = body("Which city is Paris in?", tools=[TOOLS[0], where])
    [choice] = http.post("/chat/completions", json=payload).json()["choices"]
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_required_with_an_empty_list_of_tools_is_none_as_vllm_reads_it(
    http: httpx.Client,
) -> None:
    payload = body("What is 3 times 4?", tools=[], tool_choice="required")
    reply = http.post("/chat/completions", json=payload)
    assert reply.status_code == 200
    [choice] = reply.json()["choices"]
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["content"].endswith("You said: What is 3 times 4?")


def test_the_hosted_flavour_still_requires_properties() -> None:
    # AI21's API reference documents ``parameters`` as an object with required ``properties``.
    with Emulator() as hosted:
        reply = httpx.post(
            f"{hosted.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {hosted.api_key}"},
            json={
                "model": "jamba-mini",
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            },
        )
    assert reply.status_code == 422
    assert "properties" in reply.text


def test_n_has_no_upper_bound_of_16_as_vllm_has_none(http: httpx.Client) -> None:
    # vLLM's SamplingParams checks only "n must be at least 1"; AI21's host stops at 16.
    reply = http.post("/chat/completions", json=body(n=20))
    assert reply.status_code == 200
    assert [c["index"] for c in reply.json()["choices"]] == list(range(20))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("presence_penalty", 3, "presence_penalty must be in [-2, 2], got 3.0."),
        ("frequency_penalty", -2.5, "frequency_penalty must be in [-2, 2], got -2.5."),
    ],
)
def test_a_penalty_beyond_two_is_vllms_400(
    http: httpx.Client, field: str, value: float, message: str
) -> None:
    # vLLM's SamplingParams._verify_args; the ends of the range pass.
    reply = http.post("/chat/completions", json=body(**{field: value}))
    assert reply.status_code == 400
    assert reply.json()["error"] == {
        "message": message,
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert http.post("/chat/completions", json=body(**{field: 2})).status_code == 200


# -- a server started without the parser flags ------------------------------------------------


@pytest.fixture(scope="module")
def bare_server() -> Iterator[Emulator]:
    with Emulator(flavour="vllm", parsers=False) as emulator:
        yield emulator


@pytest.fixture
def bare(bare_server: Emulator) -> Iterator[httpx.Client]:
    bare_server.reset()
    with httpx.Client(base_url=bare_server.base_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tool_choice", [None, "auto"])
def test_without_the_parser_flags_auto_tool_choice_is_refused_as_vllm_does(
    bare: httpx.Client, stream: bool, tool_choice: str | None
) -> None:
    payload = body("What is 3 times 4?", tools=TOOLS, stream=stream)
    if tool_choice is not None:
        payload["tool_choice"] = tool_choice
    reply = bare.post("/chat/completions", json=payload)
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {
        "error": {
            "message": (
                '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                "to be set"
            ),
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("tool_choice", "message"),
    [
        ("required", 'tool_choice="required" requires --tool-call-parser to be set'),
        (
            {"type": "function", "function": {"name": "multiply"}},
            'tool_choice=function "multiply" requires --tool-call-parser to be set',
        ),
    ],
)
def test_without_the_parser_flags_required_and_named_calls_are_refused_as_vllm_does(
    bare: httpx.Client, stream: bool, tool_choice: Any, message: str
) -> None:
    # vLLM 0.32's render_chat (vllm/renderers/online_renderer.py), since pull request 30613
    payload = body(
        "What is 3 times 4?", tools=TOOLS, tool_choice=tool_choice, model=REASONER, stream=stream
    )
    reply = bare.post("/chat/completions", json=payload)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}
    }


def test_without_the_parser_flags_no_tools_or_tool_choice_none_are_answered(
    bare: httpx.Client,
) -> None:
    for payload in (body("Hi"), body("What is 3 times 4?", tools=TOOLS, tool_choice="none")):
        reply = bare.post("/chat/completions", json=payload)
        assert reply.status_code == 200
        [choice] = reply.json()["choices"]
        assert "tool_calls" not in choice["message"]
        assert choice["message"]["content"].startswith("This is the AI21 emulator")


@pytest.mark.parametrize(
    ("model", "markup"),
    [
        (MINI, '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call>'),
        (JAMBA_1, '<tool_calls>[{"name": "multiply", "arguments": {"a": 3, "b": 4}}]</tool_calls>'),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_server_that_takes_tools_without_a_parser_leaves_calls_in_content(
    model: str, markup: str, stream: bool
) -> None:
    payload = body("What is 3 times 4?", tools=TOOLS, model=model)
    with (
        Emulator(flavour="vllm", parsers=False, unparsed_tool_calls=True) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        if stream:
            chunks = post_stream(client, payload)
            text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
            assert all("tool_calls" not in c["choices"][0]["delta"] for c in chunks)
            assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        else:
            [choice] = client.post("/chat/completions", json=payload).json()["choices"]
            text = choice["message"]["content"]
            assert "tool_calls" not in choice["message"]
            assert choice["finish_reason"] == "stop"
    assert text == markup


def test_unparsed_tool_calls_needs_a_server_without_parsers() -> None:
    with pytest.raises(ValueError, match="parsers=False"):
        Emulator(flavour="vllm", unparsed_tool_calls=True)
    with pytest.raises(ValueError, match="only for flavour='vllm'"):
        Emulator(unparsed_tool_calls=True)


# -- streaming ----------------------------------------------------------------------------------


def test_stream_without_stream_options_has_no_usage(http: httpx.Client) -> None:
    chunks = post_stream(http, body())
    assert all("usage" not in chunk for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert CHAT_ID.fullmatch(chunks[0]["id"])
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {MINI}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish = chunks[-1]["choices"][0]
    assert (finish["delta"], finish["finish_reason"], finish["stop_reason"]) == ({}, "stop", None)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert (
        text
        == http.post("/chat/completions", json=body()).json()["choices"][0]["message"]["content"]
    )


def test_include_usage_adds_one_chunk_with_empty_choices_after_the_finish(
    http: httpx.Client,
) -> None:
    chunks = post_stream(http, body(stream_options={"include_usage": True}))
    *answer, usage_chunk = chunks
    assert usage_chunk["choices"] == []
    assert answer[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in answer)
    expected = http.post("/chat/completions", json=body()).json()["usage"]
    # vLLM writes the last usage without its null details (exclude_none).
    assert (expected.pop("prompt_tokens_details"), expected.pop("completion_tokens_details")) == (
        None,
        None,
    )
    assert usage_chunk["usage"] == expected


@pytest.mark.parametrize("stream", [False, True])
def test_a_reasoning_parser_counts_reasoning_tokens(http: httpx.Client, stream: bool) -> None:
    payload = body(model=REASONER)
    plain = http.post("/chat/completions", json=payload).json()
    reasoning = plain["choices"][0]["message"]["reasoning"]
    counted = len(re.findall(r"\s*\S+|\s+", reasoning))  # the emulator's tokens
    if stream:
        chunks = post_stream(http, {**payload, "stream_options": {"include_usage": True}})
        usage = chunks[-1]["usage"]
    else:
        usage = plain["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": counted}
    assert counted > 5
    assert usage["completion_tokens"] > counted


def test_continuous_usage_counts_reasoning_as_it_goes(http: httpx.Client) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    chunks = post_stream(http, body(model=REASONER, stream_options=options))
    counts = [c["usage"]["completion_tokens_details"]["reasoning_tokens"] for c in chunks]
    assert counts[0] == 0
    assert counts == sorted(counts)
    assert counts[-1] == chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_without_a_reasoning_parser_no_reasoning_tokens_are_reported(
    bare: httpx.Client, http: httpx.Client
) -> None:
    for client, model in ((bare, REASONER), (http, MINI)):
        usage = client.post("/chat/completions", json=body(model=model)).json()["usage"]
        assert usage["completion_tokens_details"] is None


@pytest.mark.parametrize("stream", [False, True])
def test_the_cached_tokens_header_reports_a_prefix_cache_hit(
    http: httpx.Client, stream: bool
) -> None:
    payload = body(stream=stream, **({"stream_options": {"include_usage": True}} if stream else {}))
    headers = {"X-Emulator-Cached-Tokens": "3"}
    reply = http.post("/chat/completions", json=payload, headers=headers)
    usage = events(reply)[-1]["usage"] if stream else reply.json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 3}
    many = http.post("/chat/completions", json=body(), headers={"X-Emulator-Cached-Tokens": "999"})
    usage = many.json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": usage["prompt_tokens"]}
    bad = http.post("/chat/completions", json=body(), headers={"X-Emulator-Cached-Tokens": "x"})
    assert bad.status_code == 400
    assert "X-Emulator-Cached-Tokens" in bad.json()["error"]["message"]


def test_scripted_usage_details_are_sent_as_written(vllm: Emulator, http: httpx.Client) -> None:
    vllm.reply_next("Paris.", reasoning="Think.", usage={"reasoning_tokens": 0, "cached_tokens": 7})
    usage = http.post("/chat/completions", json=body(model=REASONER)).json()["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 7}


def test_continuous_usage_stats_put_usage_on_every_chunk(http: httpx.Client) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    chunks = post_stream(http, body(stream_options=options))
    assert all("usage" in chunk for chunk in chunks)
    assert chunks[0]["choices"] == []
    assert chunks[0]["usage"]["completion_tokens"] == 0
    assert chunks[1]["choices"][0]["delta"]["role"] == "assistant"
    counts = [chunk["usage"]["completion_tokens"] for chunk in chunks]
    assert counts == sorted(counts)
    assert chunks[-1]["choices"] == []
    final = chunks[-1]["usage"]
    assert final["total_tokens"] == final["prompt_tokens"] + final["completion_tokens"]


def test_force_include_usage_sends_usage_unasked() -> None:
    with (
        Emulator(flavour="vllm", force_include_usage=True) as emu,
        httpx.Client(base_url=emu.base_url) as http,
    ):
        chunks = post_stream(http, body())
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert all("usage" not in chunk for chunk in chunks[:-1])


def test_a_length_cut_ends_on_the_last_content_chunk(http: httpx.Client) -> None:
    chunks = post_stream(http, body(max_tokens=3))
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:]]
    assert contents == ["This", " is", " the"]
    last = chunks[-1]["choices"][0]
    assert (last["finish_reason"], last["stop_reason"]) == ("length", None)


def test_streamed_tool_calls_follow_the_jamba_parser(http: httpx.Client) -> None:
    chunks = post_stream(http, body("What is 3 times 4 and 5 plus 6?", tools=TOOLS))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    pieces = [d["tool_calls"] for d in deltas[1:]]
    assert all(len(p) == 1 for p in pieces)
    starts = [p[0] for p in pieces if "id" in p[0]]
    assert [(s["index"], s["type"], s["function"]) for s in starts] == [
        (0, "function", {"name": "multiply"}),
        (1, "function", {"name": "add"}),
    ]
    assert all(TOOL_ID.fullmatch(s["id"]) for s in starts)
    assert starts[0]["id"] != starts[1]["id"]
    for index, expected in ((0, {"a": 3, "b": 4}), (1, {"a": 5, "b": 6})):
        fragments = [
            p[0]["function"]["arguments"]
            for p in pieces
            if p[0]["index"] == index and "id" not in p[0]
        ]
        assert len(fragments) > 1
        assert json.loads("".join(fragments)) == expected
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[-1] == "tool_calls"  # on the chunk with the last fragment
    assert set(finishes[:-1]) == {None}
    assert "arguments" in deltas[-1]["tool_calls"][0]["function"]


def test_n_choices_stream_with_their_own_indexes(http: httpx.Client) -> None:
    chunks = post_stream(http, body(n=2))
    by_index: dict[int, str] = {0: "", 1: ""}
    for chunk in chunks:
        [choice] = chunk["choices"]
        by_index[choice["index"]] += choice["delta"].get("content", "")
    assert by_index[0].endswith("(reply 1 of 2). You said: Hi")
    assert by_index[1].endswith("(reply 2 of 2). You said: Hi")


# -- errors ---------------------------------------------------------------------------------


def test_unknown_model_is_a_404_naming_the_served_ones(http: httpx.Client) -> None:
    reply = http.post("/chat/completions", json={**body(), "model": "jamba-mini"})
    assert reply.status_code == 404
    assert reply.json() == {
        "error": {
            "message": "The model `jamba-mini` does not exist. Valid aliases: "
            + ", ".join(HF_IDS)
            + ".",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


@pytest.mark.parametrize("model", [None, "", "absent"])
def test_a_request_without_a_model_is_the_first_served_models(
    vllm: Emulator, http: httpx.Client, model: str | None
) -> None:
    """vLLM's ``model`` is optional: none, null or "" is answered by the first served model."""
    sent = {key: value for key, value in body().items() if key != "model"}
    if model != "absent":
        sent["model"] = model
    reply = http.post("/chat/completions", json=sent)
    assert reply.status_code == 200
    assert reply.json()["model"] == HF_IDS[0]
    assert f"({HF_IDS[0]})" in reply.json()["choices"][0]["message"]["content"]
    assert "model" not in vllm.last_request.json or vllm.last_request.json["model"] == model


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"model": MINI}, "body.messages: Field required"),
        (body(temperature="hot"), "body.temperature"),
        (body(stream_options={"include_usage": True}), "Stream options can only be defined"),
        (body(documents=[{"text": "x", "metadata": {"k": "v"}}]), "body.documents.0.metadata"),
        (body(documents=[{"text": "x", "page": 3}]), "body.documents.0.page"),
        (body(response_format={"type": "xml"}), "body.response_format.type"),
        (body(max_tokens=0), "body.max_tokens"),
        (body(tool_choice="auto"), "When using `tool_choice`, `tools` must be set."),
        (body(tools=TOOLS, tool_choice="any"), "Invalid value for `tool_choice`: any!"),
        (
            body(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "divide"}}),
            "The tool specified in `tool_choice` does not match any of the specified `tools`",
        ),
        (
            body(tools=TOOLS, tool_choice={"type": "function", "function": {}}),
            "Expected field `name` in `function` in `tool_choice`!",
        ),
        (body(logprobs="yes"), "body.logprobs"),
        (body(logprobs=True, top_logprobs=21), "body.top_logprobs"),
        (body(logprobs=True, top_logprobs=-1), "body.top_logprobs"),
        (body(top_logprobs=2), "when using `top_logprobs`, `logprobs` must be set to true."),
    ],
)
def test_validation_errors_are_400_bad_request(
    http: httpx.Client, payload: dict[str, Any], where: str
) -> None:
    reply = http.post("/chat/completions", json=payload)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("Bad Request", 400, None)
    assert where in error["message"]


def test_a_body_that_is_not_json_is_a_400(http: httpx.Client) -> None:
    reply = http.post("/chat/completions", content=b"{nope", headers={"Content-Type": "x"})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "Bad Request"


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_beyond_max_model_len_is_a_json_400(http: httpx.Client, stream: bool) -> None:
    reply = http.post("/chat/completions", json=body(max_tokens=262144, stream=stream))
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["type"] == "BadRequestError"
    assert "maximum context length is 262144 tokens" in error["message"]


def test_no_4096_cap_and_max_completion_tokens_is_honoured(http: httpx.Client) -> None:
    assert http.post("/chat/completions", json=body(max_tokens=5000)).status_code == 200
    [choice] = http.post("/chat/completions", json=body(max_completion_tokens=2)).json()["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("This is", "length")


def test_a_prompt_that_fills_the_context_is_a_400() -> None:
    with Emulator(flavour="vllm", max_model_len=8) as emu:
        reply = httpx.post(f"{emu.base_url}/chat/completions", json=body("one two three four"))
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "BadRequestError"
    assert "maximum context length is 8 tokens" in reply.json()["error"]["message"]


def test_injected_status_uses_vllms_error_shape(vllm: Emulator, http: httpx.Client) -> None:
    vllm.inject(Fault(status=503, retry_after="2"), Fault(status=401))
    unavailable = http.post("/chat/completions", json=body())
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "2"
    assert unavailable.json() == {
        "error": {
            "message": "ServiceUnavailableError",
            "type": "ServiceUnavailableError",
            "param": None,
            "code": 503,
        }
    }
    unauthorized = http.post("/chat/completions", json=body())
    assert unauthorized.json() == {"error": "Unauthorized"}
    assert [r.path for r in vllm.requests] == ["/v1/chat/completions"] * 2


def test_bad_emulator_headers_are_400s_in_vllms_shape(http: httpx.Client) -> None:
    reply = http.post("/chat/completions", json=body(), headers={"X-Emulator-Fault": "[]"})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith("Invalid X-Emulator-Fault header")
    sized = http.post(
        "/chat/completions", json=body(), headers={"X-Emulator-Answer-Tokens": "7"}
    ).json()
    assert sized["usage"]["completion_tokens"] == 8


# -- documents, structured output, sampling fields --------------------------------------------


def test_documents_of_strings_ground_the_answer(http: httpx.Client) -> None:
    # Jamba 1.x's chat template reads the documents variable.
    documents = [
        {"title": "Paris", "text": "The Eiffel Tower is in Paris. It was completed in 1889."},
        {"title": "Everest", "text": "Mount Everest is 8849 metres tall."},
        {"title": "Only a title: the Amazon spans nine countries."},
    ]
    asked = {
        "When was the Eiffel Tower completed?": (
            "The Eiffel Tower is in Paris. It was completed in 1889."
        ),
        "Which forest spans nine countries?": "Only a title: the Amazon spans nine countries.",
    }
    for question, answer in asked.items():
        payload = body(question, documents=documents, model=JAMBA_1)
        reply = http.post("/chat/completions", json=payload)
        assert reply.json()["choices"][0]["message"]["content"] == answer


@pytest.mark.parametrize(
    ("model", "served"),
    [
        (MINI, None),
        ("ai21labs/AI21-Jamba2-3B", None),
        (REASONER, None),
        ("local-model", ["local-model"]),  # a name the catalogue does not know: Jamba2's template
    ],
)
def test_a_template_without_documents_ignores_the_field(
    model: str, served: list[str] | None
) -> None:
    documents = [{"title": "Paris", "text": "The Eiffel Tower was completed in 1889."}]
    question = "When was the Eiffel Tower completed?"
    with Emulator(flavour="vllm", models=served) as server, httpx.Client() as client:
        url = f"{server.base_url}/chat/completions"
        plain = client.post(url, json=body(question, model=model)).json()
        grounded = client.post(url, json=body(question, model=model, documents=documents)).json()
    assert grounded["choices"] == plain["choices"]
    assert grounded["usage"] == plain["usage"]  # the prompt is the same
    assert grounded["choices"][0]["message"]["content"].startswith("This is the AI21 emulator")


@pytest.mark.parametrize(
    "name",
    [JAMBA_1, "ai21labs/AI21-Jamba-Large-1.7", "jamba-mini-1.7", "/models/AI21-Jamba-1.5-Large"],
)
def test_names_of_jamba_1_read_the_field(name: str) -> None:
    documents = [{"text": "The Eiffel Tower was completed in 1889."}]
    question = "When was the Eiffel Tower completed?"
    with Emulator(flavour="vllm", models=[name]) as server:
        reply = httpx.post(
            f"{server.base_url}/chat/completions",
            json=body(question, model=name, documents=documents),
        ).json()
    assert reply["choices"][0]["message"]["content"] == "The Eiffel Tower was completed in 1889."


def test_documents_in_the_user_turn_ground_the_answer(http: httpx.Client) -> None:
    # As AI21's Jamba2 cards show them, and as the package writes them for such a template.
    prompt = (
        "Context documents:\n\n"
        "Document 1 (title: Paris)\nThe Eiffel Tower is in Paris. It was completed in 1889.\n\n"
        "Document 2\nMount Everest is 8849 metres tall.\n\n"
        "How tall is Mount Everest?"
    )
    reply = http.post("/chat/completions", json=body(prompt)).json()
    assert reply["choices"][0]["message"]["content"] == "Mount Everest is 8849 metres tall."


def test_json_schema_response_format_validates_against_the_schema(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "city": {"type": "string"},
        },
        "required": ["name", "age", "city"],
    }
    payload = body(
        "Alice is 30 years old and lives in Paris.",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "Person", "schema": schema},
        },
    )
    content = http.post("/chat/completions", json=payload).json()["choices"][0]["message"][
        "content"
    ]
    value = json.loads(content)
    assert problems(value, schema) == []
    assert value["age"] == 30
    plain = body("Hi", response_format={"type": "json_object"})
    answer = http.post("/chat/completions", json=plain).json()["choices"][0]["message"]["content"]
    assert json.loads(answer)["answer"].endswith("You said: Hi")


def test_extra_sampling_fields_are_accepted(http: httpx.Client, vllm: Emulator) -> None:
    extra = {"top_k": 5, "seed": 7, "repetition_penalty": 1.1, "min_tokens": 1, "temperature": 3}
    assert http.post("/chat/completions", json=body(**extra)).status_code == 200
    assert vllm.last_request.json["top_k"] == 5


# -- reasoning ----------------------------------------------------------------------------------


def test_the_reasoning_model_sends_reasoning_before_the_answer(http: httpx.Client) -> None:
    payload = {**body("Why is the sky blue?"), "model": REASONER}
    message = http.post("/chat/completions", json=payload).json()["choices"][0]["message"]
    assert message["reasoning"] == (
        "The user asked: Why is the sky blue?. I answer from what the conversation gives me."
    )
    assert "The user asked" not in message["content"]
    deltas = [c["choices"][0]["delta"] for c in post_stream(http, payload)]
    kinds = [next(iter(d)) for d in deltas[1:-1]]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")  # reasoning first
    assert "".join(d.get("reasoning", "") for d in deltas) == message["reasoning"]
    assert "".join(d.get("content", "") for d in deltas) == message["content"]


REASONING = "The user asked: Hi. I answer from what the conversation gives me."  # 12 tokens


@pytest.mark.parametrize(
    ("max_tokens", "reasoning", "content", "finish"),
    [
        (5, "The user asked: Hi. I", "", "length"),  # the reasoning reached max_tokens
        (12, REASONING, "", "length"),
        (15, REASONING, "This is the", "length"),  # the answer gets what is left
        (40, REASONING, "This is the AI21 emulator", "stop"),
    ],
)
def test_max_tokens_bounds_the_reasoning_and_the_answer_together(
    http: httpx.Client, max_tokens: int, reasoning: str, content: str, finish: str
) -> None:
    # vLLM's max_tokens bounds every token the model writes; a reasoning parser only splits
    # them. A reasoning model given too few ends inside its reasoning, with no answer.
    payload = {**body(max_tokens=max_tokens), "model": REASONER}
    choice = http.post("/chat/completions", json=payload).json()["choices"][0]
    assert choice["message"]["reasoning"] == reasoning
    assert choice["message"]["content"].startswith(content)
    assert choice["finish_reason"] == finish
    chunks = post_stream(http, {**payload, "stream_options": {"include_usage": True}})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning", "") for d in deltas) == reasoning
    assert "".join(d.get("content", "") for d in deltas) == choice["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == finish
    assert finishes.count(None) == len(finishes) - 1
    assert (deltas[-1] == {}) is (finish == "stop")  # a cut ends on its last token's chunk
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] <= max_tokens
    assert usage["completion_tokens_details"]["reasoning_tokens"] == min(12, max_tokens)


@pytest.mark.parametrize("stream", [False, True])
def test_a_reasoning_cut_by_max_tokens_never_ends_without_a_parser(
    bare: httpx.Client, stream: bool
) -> None:
    payload = {**body(max_tokens=5), "model": REASONER}
    if stream:
        deltas = [c["choices"][0]["delta"] for c in post_stream(bare, payload)]
        text = "".join(d.get("content", "") for d in deltas)
    else:
        text = bare.post("/chat/completions", json=payload).json()["choices"][0]["message"][
            "content"
        ]
    assert text == "The user asked: Hi. I"  # no "</think>": the model was still reasoning


def test_reasoning_options() -> None:
    with (
        Emulator(flavour="vllm", reasoning=True, reasoning_field="reasoning_content") as emu,
        httpx.Client(base_url=emu.base_url) as http,
    ):
        message = http.post("/chat/completions", json=body()).json()["choices"][0]["message"]
        assert message["reasoning_content"].startswith("The user asked: Hi.")
        assert "reasoning" not in message
        deltas = [c["choices"][0]["delta"] for c in post_stream(http, body())]
        assert any("reasoning_content" in d for d in deltas)
    with (
        Emulator(flavour="vllm", reasoning=False) as emu,
        httpx.Client(base_url=emu.base_url) as http,
    ):
        payload = {**body(), "model": REASONER}
        assert (
            http.post("/chat/completions", json=payload).json()["choices"][0]["message"][
                "reasoning"
            ]
            is None
        )


# -- the in-stream error fault --------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
def test_stream_error_fault(vllm: Emulator, http: httpx.Client, after: int) -> None:
    vllm.inject(Fault(stream_error_after=after, stream_error_code=500))
    chunks = post_stream(http, body())
    *answer, error = chunks
    assert len(answer) == 1 + after
    assert answer[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert error == {
        "error": {
            "message": "The engine failed while generating (injected fault).",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    assert http.post("/chat/completions", json=body()).status_code == 200  # consumed


def test_stream_error_fault_code_and_message_and_non_stream_requests(
    vllm: Emulator, http: httpx.Client
) -> None:
    fault = Fault(stream_error_after=0, stream_error_code=503, stream_error_message="overloaded")
    vllm.inject(fault)
    assert http.post("/chat/completions", json=body()).status_code == 200  # not affected
    vllm.inject(fault)
    error = post_stream(http, body())[-1]["error"]
    assert error == {
        "message": "overloaded",
        "type": "ServiceUnavailableError",
        "param": None,
        "code": 503,
    }
    with pytest.raises(ValueError, match="stream_error_code"):
        Fault(stream_error_after=0, stream_error_code=200)


# -- construction ---------------------------------------------------------------------------------


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match="flavour"):
        Emulator(flavour="openai")
    with pytest.raises(ValueError, match="max_model_len: only for flavour='vllm'"):
        Emulator(max_model_len=1024)
    with pytest.raises(ValueError, match="reasoning_field"):
        Emulator(flavour="vllm", reasoning_field="thoughts")
    with pytest.raises(ValueError, match="api_keys"):
        Emulator(flavour="vllm", api_keys=[""])
    assert repr(Emulator(flavour="vllm", api_keys=[])) == "<Emulator stopped>"


def test_openai_style_content_parts_are_read(http: httpx.Client) -> None:
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]
    payload = {"model": MINI, "messages": [{"role": "user", "content": parts}]}
    content = http.post("/chat/completions", json=payload).json()["choices"][0]["message"]
    assert content["content"].endswith("You said: Hello there")
    image = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    refused = http.post(
        "/chat/completions", json={**payload, "messages": [{"role": "user", "content": image}]}
    )
    assert refused.status_code == 400
    assert "Only text content parts" in refused.json()["error"]["message"]


def test_the_openai_sdk_reads_every_shape(vllm: Emulator) -> None:
    """The openai SDK (what OpenAI-compatible clients use) as the oracle for the wire shapes."""
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=vllm.base_url, api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(
            model=MINI, messages=[{"role": "user", "content": "Hi"}]
        )
        assert reply.choices[0].message.content.endswith("You said: Hi")
        assert reply.usage is not None
        chunks = list(
            client.chat.completions.create(
                model=MINI,
                messages=[{"role": "user", "content": "What is 3 times 4 and 5 plus 6?"}],
                tools=TOOLS,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        calls: dict[int, str] = {}
        for chunk in chunks[:-1]:
            for call in chunk.choices[0].delta.tool_calls or []:
                calls[call.index] = calls.get(call.index, "") + (call.function.arguments or "")
        assert {i: json.loads(a) for i, a in calls.items()} == {
            0: {"a": 3, "b": 4},
            1: {"a": 5, "b": 6},
        }
        vllm.inject(Fault(status=404))
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=MINI, messages=[{"role": "user", "content": "Hi"}])


# -- token log-probabilities ---------------------------------------------------------------------


def test_logprobs_come_only_when_asked(http: httpx.Client) -> None:
    plain = http.post("/chat/completions", json=body()).json()["choices"][0]
    assert plain["logprobs"] is None
    assert all(c["choices"][0]["logprobs"] is None for c in post_stream(http, body()))


@pytest.mark.parametrize("top", [0, 3])
def test_logprobs_cover_every_generated_token_with_its_candidates(
    http: httpx.Client, top: int
) -> None:
    """OpenAI's shape, as vLLM sends it: ``logprobs.content`` holds one entry per generated
    token (the reasoning's first), each with its UTF-8 ``bytes`` and ``top_logprobs``
    candidates, the most likely first; a stream carries each token's in its own chunk."""
    payload = {**body(), "model": REASONER, "logprobs": True, "top_logprobs": top}
    choice = http.post("/chat/completions", json=payload).json()["choices"][0]
    message = choice["message"]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == message["reasoning"] + message["content"]
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode())
        assert entry["logprob"] < 0
        candidates = entry["top_logprobs"]
        assert len(candidates) == top
        if top:
            assert (candidates[0]["token"], candidates[0]["logprob"]) == (
                entry["token"],
                entry["logprob"],
            )
            assert [c["logprob"] for c in candidates] == sorted(
                (c["logprob"] for c in candidates), reverse=True
            )
            assert len({c["token"] for c in candidates}) == top
    chunks = post_stream(http, payload)
    streamed = [
        e
        for c in chunks
        if c["choices"][0]["logprobs"]
        for e in c["choices"][0]["logprobs"]["content"]
    ]
    assert streamed == entries
    for chunk in chunks:
        delta, logprobs = chunk["choices"][0]["delta"], chunk["choices"][0]["logprobs"]
        piece = delta.get("content") or delta.get("reasoning")
        assert (logprobs is None) == (not piece)
        if piece:
            assert [e["token"] for e in logprobs["content"]] == [piece]


@pytest.mark.parametrize("stream", [False, True])
def test_a_scripted_call_cut_at_max_tokens_is_left_in_content_as_cut(stream: bool) -> None:
    # Before, the server failed with a 500 (its json.loads of the cut arguments).
    cut = '{"a": 3, "b": "fo'
    with (
        Emulator(flavour="vllm", parsers=False, unparsed_tool_calls=True) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        server.reply_next(
            tool_calls=[{"name": "multiply", "arguments": cut}], finish_reason="length"
        )
        payload = body("What is 3 times 4?", tools=TOOLS, model=MINI)
        if stream:
            chunks = post_stream(client, payload)
            text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        else:
            text = client.post("/chat/completions", json=payload).json()["choices"][0]["message"][
                "content"
            ]
    assert text == f'<tool_call>\n{{"name": "multiply", "arguments": {cut}}}\n</tool_call>'


@pytest.mark.parametrize(
    "arguments", ['{"title": "Abbey Road", "artist": "The Be', '{"a": "x\\', '{"a": "\\"q', "{}"]
)
def test_streamed_argument_fragments_join_to_the_arguments_even_when_cut(
    http: httpx.Client, vllm: Emulator, arguments: str
) -> None:
    vllm.reply_next(tool_calls=[{"name": "multiply", "arguments": arguments}])
    chunks = post_stream(http, body("What is 3 times 4?", tools=TOOLS))
    pieces = [
        call["function"].get("arguments", "")
        for c in chunks
        for call in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert "".join(pieces) == arguments
