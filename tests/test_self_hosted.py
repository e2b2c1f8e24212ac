"""Self-hosted Jamba on an OpenAI-compatible server (vLLM): every behaviour that differs from
AI21's hosted API, over real HTTP against the emulator's vLLM flavour. The same behaviours are
checked against a real vLLM server in ``tests/vllm`` (``./dev test-vllm``)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import ai21.errors
import pytest
from llama_index.core import Document
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import NodeWithScore, TextNode
from pydantic import BaseModel

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, assert_notes, call

MODEL = "ai21labs/AI21-Jamba-Mini-1.7"
USER = [ChatMessage(role="user", content="What is Jamba?")]


@pytest.fixture
def vllm(ai21_emulator_vllm: Emulator) -> Emulator:
    return ai21_emulator_vllm


@pytest.fixture
def make_local(vllm: Emulator) -> Callable[..., AI21]:
    def make(**kwargs: Any) -> AI21:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("base_url", vllm.base_url)
        kwargs.setdefault("max_retries", 0)
        return AI21(**kwargs)

    return make


@pytest.fixture
def local(make_local: Callable[..., AI21]) -> AI21:
    return make_local()


def chat_requests(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("method", METHOD_IDS)
def test_every_method_works_keyless_and_streams_carry_token_counts(
    local: AI21, vllm: Emulator, method: str
) -> None:
    outcome = call(local, method, arg_for(method))
    assert outcome.text.startswith("This is the AI21 emulator")
    sent = vllm.last_request
    assert sent.api_key is None  # no Authorization header at all
    streamed = "stream" in method
    assert sent.json["stream"] is streamed
    assert ("stream_options" in sent.json) is streamed
    if streamed:
        assert sent.json["stream_options"] == {"include_usage": True}
    final = outcome.responses[-1].additional_kwargs
    assert final["completion_tokens"] > 0
    assert final["total_tokens"] == final["prompt_tokens"] + final["completion_tokens"]


def test_streamed_usage_equals_the_non_streamed_count(local: AI21) -> None:
    whole = local.chat(USER).additional_kwargs
    *_, last = local.stream_chat(USER)
    assert {k: last.additional_kwargs[k] for k in whole} == whole


@pytest.mark.parametrize(
    "stream_options",
    [{"include_usage": True, "continuous_usage_stats": True}, {"include_usage": False}],
)
def test_the_callers_stream_options_win(
    local: AI21, vllm: Emulator, stream_options: dict[str, Any]
) -> None:
    chunks = list(local.stream_chat(USER, stream_options=stream_options))
    assert vllm.last_request.json["stream_options"] == stream_options
    assert chunks[-1].additional_kwargs["finish_reason"] == "stop"
    assert ("total_tokens" in chunks[-1].additional_kwargs) is stream_options["include_usage"]


def test_a_server_that_always_sends_usage() -> None:
    with Emulator(flavour="vllm", force_include_usage=True) as server:
        llm = AI21(model=MODEL, base_url=server.base_url)
        *_, last = llm.stream_complete("hi", stream_options={"include_usage": False})
        assert last.additional_kwargs["total_tokens"] > 0


def test_a_key_is_sent_as_a_bearer_token_when_given() -> None:
    with Emulator(flavour="vllm", api_keys=("local-secret",)) as server:
        good = AI21(model=MODEL, base_url=server.base_url, api_key="local-secret")
        assert good.complete("hi").text
        assert server.last_request.api_key == "local-secret"
        with pytest.raises(ai21.errors.Unauthorized, match="Unauthorized"):
            AI21(model=MODEL, base_url=server.base_url, api_key="wrong").complete("hi")
        with pytest.raises(ai21.errors.Unauthorized):
            AI21(model=MODEL, base_url=server.base_url, max_retries=0).complete("hi")


def test_an_unknown_model_is_a_404_with_the_servers_message(
    make_local: Callable[..., AI21],
) -> None:
    with pytest.raises(ai21.errors.AI21APIError) as caught:
        make_local(model="ai21labs/AI21-Jamba-Nope").complete("hi")
    assert caught.value.status_code == 404
    assert "The model `ai21labs/AI21-Jamba-Nope` does not exist" in str(caught.value)


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat", "stream_complete"])
def test_several_answers_are_not_streamed_into_one(
    local: AI21, vllm: Emulator, method: str
) -> None:
    # vLLM streams n answers as interleaved chunks (each names its choice's index); folded into
    # one streamed response they made one answer of all of them, mixed.
    with pytest.raises(ValueError, match="n must be 1 when streaming"):
        call(local, method, arg_for(method), n=2)
    assert [r.path for r in vllm.requests if r.path.endswith("/chat/completions")] == []
    several = local.chat([ChatMessage(role="user", content="Hi")], n=2)
    assert len(several.raw["choices"]) == 2
    assert "reply 2 of 2" not in several.message.content  # the first answer, alone


def test_the_servers_own_limit_answers_long_max_tokens(local: AI21, vllm: Emulator) -> None:
    assert local.complete("hi", max_tokens=8000).text  # no 4096 cap client-side
    assert vllm.last_request.json["max_tokens"] == 8000
    with pytest.raises(ai21.errors.BadRequest, match="max_tokens"):
        local.complete("hi", max_tokens=10_000_000)


def test_extra_sampling_fields_pass_through(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    llm = make_local(additional_kwargs={"repetition_penalty": 1.1})
    llm.complete("hi", top_k=5, seed=7, min_tokens=1)
    sent = vllm.last_request.json
    assert (sent["top_k"], sent["seed"], sent["min_tokens"]) == (5, 7, 1)
    assert sent["repetition_penalty"] == 1.1


@pytest.mark.parametrize(
    "function",
    [
        {"name": "ping", "parameters": {"type": "object"}},
        {"name": "ping"},
    ],
    ids=["object-only", "no-parameters"],
)
def test_a_tool_vllm_takes_without_properties_is_sent_and_called(
    local: AI21, vllm: Emulator, function: dict[str, Any]
) -> None:
    # vLLM's FunctionDefinition takes any ``parameters`` object, or none; so does the emulator.
    tool = {"type": "function", "function": function}
    reply = local.chat([ChatMessage(role="user", content="Ping the server.")], tools=[tool])
    assert vllm.last_request.json["tools"] == [tool]
    [call] = local.get_tool_calls_from_response(reply)
    assert (call.tool_name, call.tool_kwargs) == ("ping", {})


# ------------------------------------------------------------------------------- documents


def test_documents_are_flat_strings_for_jambas_chat_template(local: AI21, vllm: Emulator) -> None:
    documents = [
        "Jamba is a hybrid SSM-Transformer model.",
        {"text": "Jamba 1.7 has a 256K context window.", "title": "Model card"},
        {"content": "AI21 shape", "id": 3, "metadata": {"source": "wiki", "year": 2026}},
        Document(text="Jamba2 arrived in 2026.", metadata={"title": "News", "page": 2}),
        NodeWithScore(node=TextNode(text="A node.", metadata={"tags": ["a", "b"]}), score=0.5),
    ]
    local.chat(
        [ChatMessage(role="user", content="How long is Jamba's context?")], documents=documents
    )
    assert vllm.last_request.json["documents"] == [
        {"text": "Jamba is a hybrid SSM-Transformer model."},
        {"text": "Jamba 1.7 has a 256K context window.", "title": "Model card"},
        {"text": "AI21 shape", "source": "wiki", "year": "2026", "id": "3"},
        {"text": "Jamba2 arrived in 2026.", "title": "News", "page": "2"},
        {"text": "A node.", "tags": '["a", "b"]'},
    ]


# ------------------------------------------------------------------------------ structured


class City(BaseModel):
    name: str
    country: str


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_structured_predict_uses_json_schema(local: AI21, vllm: Emulator, use_async: bool) -> None:
    vllm.reply_next(json.dumps({"name": "Lima", "country": "Peru"}))
    prompt = PromptTemplate("Name the capital of {country}.")
    if use_async:
        city = asyncio.run(local.astructured_predict(City, prompt, country="Peru"))
    else:
        city = local.structured_predict(City, prompt, country="Peru")
    assert city == City(name="Lima", country="Peru")
    sent = vllm.last_request.json
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": City.model_json_schema()},
    }
    assert "tools" not in sent
    assert sent["messages"][-1]["content"] == "Name the capital of Peru."


def test_structured_predict_says_what_was_wrong_with_invalid_output(
    local: AI21, vllm: Emulator
) -> None:
    vllm.reply_next('{"name": "Lima"}')
    with pytest.raises(ValueError, match="not a valid City"):
        local.structured_predict(City, PromptTemplate("Capital of Peru?"))


def test_as_structured_llm_uses_json_schema(local: AI21, vllm: Emulator) -> None:
    vllm.reply_next(json.dumps({"name": "Lima", "country": "Peru"}))
    reply = local.as_structured_llm(City).complete("Lima is the capital of Peru.")
    assert City.model_validate_json(reply.text) == City(name="Lima", country="Peru")
    assert vllm.last_request.json["response_format"]["type"] == "json_schema"


# ------------------------------------------------------------------------------- reasoning


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_reasoning_is_a_thinking_block_not_answer_text(
    local: AI21, vllm: Emulator, method: str
) -> None:
    vllm.reply_next("4", reasoning="Two plus two is four.")
    outcome = call(local, method, USER)
    message = outcome.responses[-1].message
    assert message.content == outcome.text == "4"
    assert [b.content for b in message.blocks if isinstance(b, ThinkingBlock)] == [
        "Two plus two is four."
    ]
    if "stream" in method:
        pieces = [r.additional_kwargs.get("thinking_delta") for r in outcome.responses]
        assert "".join(p for p in pieces if p) == "Two plus two is four."
        assert "".join(r.delta or "" for r in outcome.responses) == "4"


def test_reasoning_from_a_reasoning_model_by_default(make_local: Callable[..., AI21]) -> None:
    llm = make_local(model="ai21labs/AI21-Jamba-Reasoning-3B")
    message = llm.chat(USER).message
    assert any(isinstance(b, ThinkingBlock) and b.content for b in message.blocks)


def test_earlier_reasoning_is_not_sent_back(local: AI21, vllm: Emulator) -> None:
    vllm.reply_next("4", reasoning="2 + 2 = 4")
    first = local.chat(USER).message
    local.chat([*USER, first, ChatMessage(role="user", content="And 3+3?")])
    assert vllm.last_request.json["messages"][1] == {"role": "assistant", "content": "4"}


# --------------------------------------------------------------------- in-stream errors


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_an_error_event_before_any_answer_is_retried_like_its_status(
    make_local: Callable[..., AI21], vllm: Emulator, method: str, waits: list[float]
) -> None:
    vllm.inject(Fault(stream_error_after=0, stream_error_code=503, path_contains="/chat/"))
    outcome = call(make_local(max_retries=2), method, USER)
    assert outcome.text.startswith("This is the AI21 emulator")
    assert len(chat_requests(vllm)) == 2
    assert len(waits) == 1  # the backoff before the second attempt, recorded, not slept


@pytest.mark.parametrize(
    ("code", "cls"), [(400, ai21.errors.BadRequest), (500, ai21.errors.AI21ServerError)]
)
def test_an_error_event_raises_the_sdk_class_with_the_servers_message(
    make_local: Callable[..., AI21], vllm: Emulator, code: int, cls: type[Exception]
) -> None:
    vllm.inject(
        Fault(
            stream_error_after=3,
            stream_error_code=code,
            stream_error_message="boom!",
            path_contains="/chat/",
        )
    )
    with pytest.raises(cls, match="boom!") as raised:
        list(make_local(max_retries=2).stream_chat(USER))
    assert len(chat_requests(vllm)) == 1, "part of the answer had arrived: never retried"
    # Not raised while handling the failed lookup of choices[0]: a traceback that shows a
    # KeyError('choices') first ("During handling of the above exception") misleads.
    assert raised.value.__context__ is None


# -------------------------------------------------------------------------------- metadata


def test_the_context_window_is_the_servers_read_once(
    vllm: Emulator, make_local: Callable[..., AI21]
) -> None:
    with Emulator(flavour="vllm", max_model_len=2048) as small:
        llm = AI21(model=MODEL, base_url=small.base_url)
        assert [llm.metadata.context_window for _ in range(3)] == [2048] * 3
        assert [r.path for r in small.requests] == ["/v1/models"]
        assert llm.metadata.is_function_calling_model


def test_overrides_need_no_request(vllm: Emulator, make_local: Callable[..., AI21]) -> None:
    llm = make_local(context_window=4096, num_output=256, is_function_calling_model=False)
    metadata = llm.metadata
    assert (metadata.context_window, metadata.num_output) == (4096, 256)
    assert metadata.is_function_calling_model is False
    assert vllm.requests == []


def test_a_model_the_server_does_not_list_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    with Emulator(flavour="vllm", models=[MODEL], max_model_len=2048) as server:
        llm = AI21(model="ai21labs/AI21-Jamba2-Mini", base_url=server.base_url)
        assert llm.metadata.context_window == 256_000  # the model table's
    assert "does not list model 'ai21labs/AI21-Jamba2-Mini'" in caplog.text
    assert MODEL in caplog.text, "the warning names what the server does serve"


def test_observability_payloads_never_ask_the_server(local: AI21, vllm: Emulator) -> None:
    """LlamaIndex builds ``to_payload()`` on every call: it must not cost a request. The
    server is asked what it is once, before the first request (a ``.../v1`` URL)."""
    local.complete("hi")
    local.complete("hi")
    assert [r.path for r in vllm.requests] == [
        "/v1/models",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]
    assert local.deployment == "vllm"  # recognised from owned_by


def test_a_refused_model_listing_is_logged_with_its_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    with Emulator(flavour="vllm", api_keys=["right"], models=[MODEL]) as server:
        llm = AI21(model=MODEL, base_url=server.base_url, api_key="wrong", max_retries=0)
        assert llm.metadata.context_window == 256_000  # the model table's
        assert [r.path for r in server.requests] == ["/v1/models"]
        listing = f"GET {server.base_url}/models: HTTP 401"
    assert "Could not read the context window" in caplog.text
    assert listing in caplog.text
    assert "does not list" not in caplog.text


def test_a_context_window_given_needs_no_word_about_the_servers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    with Emulator(flavour="vllm", models=[MODEL]) as server:
        given = AI21(model="local-name", base_url=server.base_url, context_window=4096)
        assert given.metadata.context_window == 4096
        assert [r.path for r in server.requests] == ["/v1/models"]  # asked: which server
    assert "Could not read the context window" not in caplog.text
    assert "does not list model 'local-name'" in caplog.text  # still said: a name it lacks
    with Emulator(flavour="vllm", api_keys=["right"], models=[MODEL]) as server:
        refused = AI21(
            model="local-name", base_url=server.base_url, api_key="wrong", context_window=4096
        )
        assert refused.metadata.context_window == 4096
        listing = f"GET {server.base_url}/models: HTTP 401"
    assert "Could not read the context window" not in caplog.text
    assert listing in caplog.text  # still said: the key was refused


def test_an_unreachable_server_does_not_break_metadata(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    llm = AI21(model=MODEL, base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    assert llm.metadata.context_window == 256_000
    assert (
        "The server at http://127.0.0.1:9 is not ready (GET "
        "http://127.0.0.1:9/v1/models: ConnectError): the model table's figures apply until "
        "it answers (it is asked again at the next need); a query or chat engine built "
        "meanwhile keeps them (LlamaIndex reads the context window once): build it once the "
        "server answers, or pass context_window=..."
    ) in caplog.text


# ---------------------------------------------------------------------------- tools, agents


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_tool_calls_arrive_whole_or_in_fragments(local: AI21, vllm: Emulator, stream: bool) -> None:
    from tests.calculator import TOOLS

    vllm.reply_next(
        tool_calls=[
            {"name": "multiply", "arguments": {"a": 3, "b": 4}, "id": "chatcmpl-tool-1"},
            {"name": "add", "arguments": {"a": 1, "b": 2}, "id": "chatcmpl-tool-2"},
        ]
    )
    if stream:
        *_, response = local.stream_chat_with_tools(
            TOOLS, "3 times 4, and 1 plus 2?", allow_parallel_tool_calls=True
        )
    else:
        response = local.chat_with_tools(
            TOOLS, "3 times 4, and 1 plus 2?", allow_parallel_tool_calls=True
        )
    calls = local.get_tool_calls_from_response(response)
    assert [(c.tool_id, c.tool_name, c.tool_kwargs) for c in calls] == [
        ("chatcmpl-tool-1", "multiply", {"a": 3, "b": 4}),
        ("chatcmpl-tool-2", "add", {"a": 1, "b": 2}),
    ]
    assert response.additional_kwargs["finish_reason"] == "tool_calls"
    assert [t["function"]["name"] for t in vllm.last_request.json["tools"]] == ["multiply", "add"]


@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
def test_a_function_agent_calls_the_tool_and_answers(
    local: AI21, vllm: Emulator, streaming: bool
) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from tests.calculator import TOOLS

    vllm.reply_next(tool_calls=[{"name": "multiply", "arguments": {"a": 3, "b": 4}}])
    vllm.reply_next("3 times 4 is 12.")
    agent = FunctionAgent(tools=TOOLS, llm=local, streaming=streaming)

    async def run() -> str:
        return str(await agent.run("What is 3 times 4?"))

    assert asyncio.run(run()) == "3 times 4 is 12."
    second = chat_requests(vllm)[1].json["messages"]
    assert second[-1]["role"] == "tool"
    assert second[-1]["content"] == "12"
    assert second[-2]["tool_calls"][0]["function"] == {
        "name": "multiply",
        "arguments": '{"a":3,"b":4}',
    }


@pytest.mark.parametrize("method", ["complete", "astream_chat"])
@pytest.mark.parametrize(
    ("key", "model", "root", "status", "advice"),
    [
        (
            None,
            MODEL,
            "/v1",
            401,
            "answered 401: the server wants a key (it was started with --api-key): pass "
            "api_key=... (AI21_API_KEY is never sent to a server of your own).",
        ),
        ("wrong", MODEL, "/v1", 401, "answered 401: the server refused the api_key given."),
        (
            "right",
            "ai21labs/AI21-Jamba2-3b",  # a typo: vLLM's 404 names the model
            "/v1",
            404,
            "answered 404: is base_url the server's /v1 URL, and model= a name it serves "
            "(GET <base_url>/models lists them)?",
        ),
        (
            "right",
            MODEL,
            "",  # the server's root, not its /v1: every route is a 404
            404,
            "answered 404: is base_url the server's /v1 URL, and model= a name it serves "
            "(GET <base_url>/models lists them)?",
        ),
    ],
)
def test_a_bare_401_or_404_from_your_server_gets_a_note_saying_what_to_check(
    key: str | None,
    model: str,
    root: str,
    status: int,
    advice: str,
    method: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's exception, class and message unchanged, with a note naming the request and
    the likely cause: vLLM's 401 body is just {"error": "Unauthorized"}."""
    monkeypatch.setenv("AI21_API_KEY", "right")  # AI21's variable: not sent to vLLM
    with Emulator(["right"], flavour="vllm", models=[MODEL]) as server:
        base_url = server.base_url.removesuffix("/v1") + root
        llm = AI21(model=model, base_url=base_url, api_key=key, deployment="vllm", max_retries=0)
        with pytest.raises(ai21.errors.AI21APIError) as caught:
            call(llm, method, arg_for(method))
    assert caught.value.status_code == status
    assert str(caught.value).startswith(f"Failed with http status code: {status} ")
    assert_notes(caught.value, [f"AI21: POST {base_url}/chat/completions {advice}"])


@pytest.mark.parametrize(
    ("deployment", "why"),
    [
        ("llamacpp", "it was started with --api-key"),
        ("sglang", "it was started with --api-key"),
        (
            "lmstudio",
            '"Require authentication" is on in its server settings, where the token is made',
        ),
        ("ollama", "Ollama itself takes no key: a proxy in front of it asks for one"),
        (
            "openai-compatible",
            "vLLM, SGLang and llama-server want one when started with --api-key, LM Studio with "
            '"Require authentication" on',
        ),
    ],
)
def test_a_401_without_a_key_says_why_for_the_server_kind(deployment: str, why: str) -> None:
    """--api-key is a flag of vLLM's, SGLang's and llama-server's, not of LM Studio's or
    Ollama's: the note said "it was started with --api-key" whatever the kind."""
    with Emulator(["right"], flavour="vllm", models=[MODEL]) as server:
        base_url = server.base_url
        llm = AI21(model=MODEL, base_url=base_url, deployment=deployment, max_retries=0)
        with pytest.raises(ai21.errors.AI21APIError) as caught:
            llm.complete("hi")
    assert_notes(
        caught.value,
        [
            f"AI21: POST {base_url}/chat/completions answered 401: the server wants a key "
            f"({why}): pass api_key=... (AI21_API_KEY is never sent to a server of your own)."
        ],
    )


def test_a_404_on_a_url_taken_for_ai21s_api_names_both_roots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AI21_API_KEY left in the environment and a vLLM URL without /v1: AI21's API is assumed,
    the key is sent, vLLM answers 404 to /chat/completions."""
    monkeypatch.setenv("AI21_API_KEY", "an-old-ai21-key")
    with Emulator(flavour="vllm", models=[MODEL]) as server:
        root = server.base_url.removesuffix("/v1")
        llm = AI21(model=MODEL, base_url=root, max_retries=0)
        with pytest.raises(ai21.errors.AI21APIError) as caught:
            llm.complete("hi")
    assert caught.value.status_code == 404
    assert_notes(
        caught.value,
        [
            f"AI21: POST {root}/chat/completions answered 404: is base_url the API's root (AI21's "
            "API: .../studio/v1; a server of your own: its /v1 URL), and model= a name it serves?"
        ],
    )
