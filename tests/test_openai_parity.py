"""What code written for LlamaIndex's ``OpenAILike`` (llama-index-llms-openai-like, on
llama-index-llms-openai's ``OpenAI``) relies on, on a self-hosted server: ``extra_body``
fields, ``stream_options``, ``strict`` tools, ``completion_to_prompt``, ``None`` for its
dict settings, and its constructor names. Over real HTTP against the emulator's vLLM flavour,
with ``OpenAILike`` itself as the oracle where both should send the same."""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core import Document
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock
from llama_index.core.extractors import DocumentContextExtractor
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.base import OPENAI_LIKE_NAMES, _near_miss
from llama_index.llms.ai21.errors import DOCS_URL, MIGRATION_DOCS
from tests.calls import METHOD_IDS, arg_for, call
from tests.transport.servers import Peer, Server, answers_hi, chat_answer, response

JAMBA2 = "ai21labs/AI21-Jamba2-3B"
HI = [ChatMessage(role="user", content="hi")]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


ADD = FunctionTool.from_defaults(add)


@pytest.fixture
def openai_like(vllm: Emulator) -> Iterator[Callable[..., OpenAILike]]:
    """The oracle, on a client that loads no CA bundle (the emulator is plain HTTP): building
    openai-python's default client costs half a second."""
    with httpx.Client(verify=False) as client:

        def make(**kwargs: Any) -> OpenAILike:
            return OpenAILike(
                model=JAMBA2,
                api_base=vllm.base_url,
                api_key="none",
                is_chat_model=True,
                max_retries=0,
                http_client=client,
                **kwargs,
            )

        yield make


def sent(vllm: Emulator) -> dict[str, Any]:
    """The body of the one chat request made (discovery's GETs aside)."""
    [request] = [r for r in vllm.requests if r.path.endswith("/chat/completions")]
    body: dict[str, Any] = request.json
    return body


def chat_requests(vllm: Emulator) -> int:
    return sum(r.path.endswith("/chat/completions") for r in vllm.requests)


# ------------------------------------------------------------------ extra_body


@pytest.mark.parametrize("method", METHOD_IDS)
def test_extra_body_entries_are_sent_as_request_fields_by_every_method(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    extra = {"top_k": 3, "chat_template_kwargs": {"thinking": False}}
    call(make_local(), method, arg_for(method), extra_body=extra)
    body = sent(vllm)
    assert "extra_body" not in body
    assert (body["top_k"], body["chat_template_kwargs"]) == (3, {"thinking": False})


def test_extra_body_reaches_the_server_as_openai_like_sends_it(
    make_local: Callable[..., AI21], vllm: Emulator, openai_like: Callable[..., OpenAILike]
) -> None:
    extra = {"top_k": 3, "repetition_penalty": 1.1, "chat_template_kwargs": {"x": 1}}
    openai_like().chat(HI, extra_body=extra)
    theirs = sent(vllm)
    vllm.reset()
    make_local().chat(HI, extra_body=extra)
    ours = sent(vllm)
    assert {k: ours[k] for k in extra} == {k: theirs[k] for k in extra} == extra


def test_extra_body_in_additional_kwargs_and_per_call_add_up(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    llm = make_local(
        additional_kwargs={"extra_body": {"top_k": 5, "min_tokens": 2}},
        chat_template_kwargs={"a": 1},
    )
    llm.chat(HI, extra_body={"top_k": 7, "chat_template_kwargs": {"b": 2}}, seed=1)
    body = sent(vllm)
    # per call over the instance's; chat_template_kwargs add to the field's, as documented
    assert (body["top_k"], body["min_tokens"], body["seed"]) == (7, 2, 1)
    assert body["chat_template_kwargs"] == {"a": 1, "b": 2}
    assert "extra_body" not in body


@pytest.mark.parametrize(
    ("extra", "got"),
    [
        (["top_k", 3], "list"),
        ("api_key=sk-extra-7c1e", "str"),  # what was passed is not quoted: it may be a secret
        ({1: "sk-extra-7c1e"}, "dict with a key that is not a string"),
    ],
)
def test_an_extra_body_that_is_not_a_dict_of_fields_is_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator, extra: Any, got: str
) -> None:
    message = f"extra_body must be a dict of request fields (e.g. {{'top_k': 20}}), got {got}"
    with pytest.raises(ValueError, match=re.escape(message)) as per_call:
        make_local().chat(HI, extra_body=extra)
    with pytest.raises(ValueError, match=re.escape(message)) as field:
        make_local(additional_kwargs={"extra_body": extra})
    assert chat_requests(vllm) == 0
    for caught in (per_call, field):
        assert "sk-extra" not in f"{caught.value} {caught.value!r}"


def test_an_extra_body_of_none_sends_nothing(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    make_local().chat(HI, extra_body=None)
    assert "extra_body" not in sent(vllm)


# ------------------------------------------------------------------ openai-python's options


@pytest.mark.parametrize("method", METHOD_IDS)
def test_extra_headers_are_sent_as_headers_of_that_request_by_every_method(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    llm = make_local(default_headers={"X-Team": "search", "X-Trace": "instance"})
    call(llm, method, arg_for(method), extra_headers={"X-Trace": "call-7"})
    [request] = [r for r in vllm.requests if r.path.endswith("/chat/completions")]
    assert "extra_headers" not in request.json
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert (headers["x-team"], headers["x-trace"]) == ("search", "call-7")
    vllm.reset()
    call(llm, method, arg_for(method))  # one call's: not the next one's
    [request] = [r for r in vllm.requests if r.path.endswith("/chat/completions")]
    assert {name.lower(): value for name, value in request.headers.items()}["x-trace"] == "instance"


def test_llamaindexs_document_context_extractor_runs_with_its_extra_headers(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    """LlamaIndex's own DocumentContextExtractor calls achat(..., extra_headers=...)."""
    text = "Jamba is a hybrid SSM-Transformer model by AI21. " * 12
    document = Document(text=text)
    store = SimpleDocumentStore()
    store.add_documents([document])
    nodes = SentenceSplitter(chunk_size=64, chunk_overlap=0).get_nodes_from_documents([document])
    extractor = DocumentContextExtractor(
        docstore=store, llm=make_local(), max_context_length=10_000, num_workers=1
    )
    [context] = asyncio.run(extractor.aextract(nodes[:1]))
    assert context["context"]
    headers = {name.lower(): value for name, value in vllm.last_request.headers.items()}
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"X-Trace": "a\nb"}, r"extra_headers\['X-Trace'\] is not a valid HTTP header value"),
        ({"X Trace": "1"}, "extra_headers has a name 'X' followed by a space, and more not"),
        ([("X-Trace", "1")], "extra_headers must be a dict"),
        # A credential pasted into the name: only the name of the pasted line is quoted.
        (
            {"Authorization: Bearer sk-call-4d2e": "x"},
            "extra_headers has a name 'Authorization' followed by a colon, and more not shown",
        ),
        ({b"sk-call-4d2e": "x"}, "extra_headers has a name of type bytes, which is not"),
    ],
)
def test_extra_headers_that_cannot_be_sent_are_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator, headers: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        list(make_local().stream_complete("hi", extra_headers=headers))
    assert chat_requests(vllm) == 0
    assert "sk-call" not in f"{caught.value} {caught.value!r}"


@pytest.mark.parametrize(
    ("name", "value", "advice"),
    [
        ("extra_query", {"api-version": "1"}, r"httpx.Client\(params=...\)"),
        ("timeout", 5, r"AI21\(timeout=...\)"),
        ("strict", True, "chat_with_tools"),
    ],
)
@pytest.mark.parametrize("method", ["chat", "astream_complete"])
def test_an_option_of_openai_pythons_create_is_refused_before_any_request(
    make_local: Callable[..., AI21],
    vllm: Emulator,
    name: str,
    value: Any,
    advice: str,
    method: str,
) -> None:
    """openai-python takes these as options of the request; as body fields the server would
    ignore them (vLLM ignores what it does not know), so they are refused, saying what to do."""
    with pytest.raises(ValueError, match=rf"{name}= is not a request field.*{advice}"):
        call(make_local(), method, arg_for(method), **{name: value})
    assert chat_requests(vllm) == 0


@pytest.mark.parametrize(
    ("name", "value", "advice"),
    [
        ("extra_headers", {"X-Trace": "1"}, "default_headers= field"),
        ("extra_query", {"api-version": "1"}, r"httpx.Client\(params=...\)"),
        ("timeout", 5, r"AI21\(timeout=...\)"),
        ("strict", True, "chat_with_tools"),
    ],
)
@pytest.mark.parametrize("nested", [False, True])
def test_an_option_of_openai_pythons_create_in_additional_kwargs_is_refused(
    name: str, value: Any, advice: str, nested: bool
) -> None:
    extra = {"extra_body": {name: value}} if nested else {name: value}
    with pytest.raises(ValueError, match=rf"{name}= is not a request field.*{advice}"):
        AI21(model=JAMBA2, base_url="http://127.0.0.1:9/v1", additional_kwargs=extra)


# ------------------------------------------------------------------ stream_options


@pytest.mark.parametrize("method", METHOD_IDS)
def test_stream_options_in_additional_kwargs_leave_calls_that_do_not_stream_alone(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    """The OpenAILike way to get usage in streams; vLLM refuses stream_options on a call that
    does not stream, which every chat() then was (400)."""
    llm = make_local(additional_kwargs={"stream_options": {"include_usage": True}})
    outcome = call(llm, method, arg_for(method))
    body = sent(vllm)
    if body["stream"]:
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream_options" not in body
    assert outcome.responses[-1].additional_kwargs["total_tokens"] > 0


@pytest.mark.parametrize("method", ["stream_chat", "astream_complete"])
def test_stream_options_given_add_to_the_usage_the_package_asks_for(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    outcome = call(
        make_local(), method, arg_for(method), stream_options={"continuous_usage_stats": True}
    )
    assert sent(vllm)["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    final = outcome.responses[-1].additional_kwargs
    assert final["total_tokens"] == final["prompt_tokens"] + final["completion_tokens"] > 0


def test_stream_options_that_are_not_a_dict_are_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    with pytest.raises(ValueError, match="stream_options must be a dict"):
        list(make_local().stream_chat(HI, stream_options=True))
    assert chat_requests(vllm) == 0


# ------------------------------------------------------------------ strict tools


def tools_sent(vllm: Emulator) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = sent(vllm)["tools"]
    return tools


@pytest.mark.parametrize(
    "method", ["chat_with_tools", "astream_chat_with_tools", "predict_and_call"]
)
@pytest.mark.parametrize(("field", "per_call"), [(False, True), (True, None)])
def test_strict_marks_every_tool_strict_as_openai_does(
    make_local: Callable[..., AI21],
    vllm: Emulator,
    method: str,
    field: bool,
    per_call: bool | None,
) -> None:
    llm = make_local(strict=field)
    kwargs: dict[str, Any] = {} if per_call is None else {"strict": per_call}

    async def drain() -> None:
        async for _ in await llm.astream_chat_with_tools([ADD], user_msg="add 1 2", **kwargs):
            pass

    if method == "astream_chat_with_tools":
        asyncio.run(drain())
    else:
        getattr(llm, method)([ADD], user_msg="add 1 2", **kwargs)
    [tool] = tools_sent(vllm)
    assert tool["function"]["strict"] is True
    assert tool["function"]["parameters"]["additionalProperties"] is False
    assert "strict" not in sent(vllm)  # a tool's setting, not a request field


def test_strict_tools_are_the_ones_openai_like_sends(
    make_local: Callable[..., AI21], vllm: Emulator, openai_like: Callable[..., OpenAILike]
) -> None:
    make_local().chat_with_tools([ADD], user_msg="add 1 2", strict=True)
    ours = tools_sent(vllm)
    vllm.reset()
    oracle = openai_like(is_function_calling_model=True)
    oracle.chat_with_tools([ADD], user_msg="add 1 2", strict=True)
    assert tools_sent(vllm) == ours


def test_without_strict_no_strict_key_is_sent(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    """OpenAILike sends "strict": false on every tool, which vLLM writes into the model's prompt
    (vllm-project/vllm issue 52741); here strict=False (the default) adds nothing."""
    make_local(strict=True).chat_with_tools([ADD], user_msg="add 1 2", strict=False)
    [tool] = tools_sent(vllm)
    assert tool == ADD.metadata.to_openai_tool()


@pytest.mark.parametrize("strict", ["yes", 1])
def test_a_strict_that_is_not_a_bool_is_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator, strict: Any
) -> None:
    with pytest.raises(ValueError, match="strict must be True or False"):
        make_local().chat_with_tools([ADD], user_msg="add 1 2", strict=strict)
    assert chat_requests(vllm) == 0


# ------------------------------------------------------------------ completion_to_prompt


@pytest.mark.parametrize("method", [m for m in METHOD_IDS if "complete" in m])
def test_completion_to_prompt_shapes_the_prompt_unless_formatted(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    llm = make_local(completion_to_prompt=lambda prompt: f"Answer briefly: {prompt}")
    call(llm, method, "hi")
    assert sent(vllm)["messages"] == [{"role": "user", "content": "Answer briefly: hi"}]
    vllm.reset()
    call(llm, method, "hi", formatted=True)
    assert sent(vllm)["messages"] == [{"role": "user", "content": "hi"}]


# ------------------------------------------------------------------ construction


def test_none_for_default_headers_and_additional_kwargs_is_empty(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    llm = make_local(default_headers=None, additional_kwargs=None)
    assert (llm.default_headers, llm.additional_kwargs) == ({}, {})
    llm.chat(HI)
    assert set(sent(vllm)) == {"model", "messages", "stream"}


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("api_base", "http://localhost:8000/v1", "base_url="),
        ("is_chat_model", True, "leave it out"),
        ("reuse_client", False, "one per event loop"),
        ("reasoning_effort", "low", "per call"),
        ("max_new_tokens", 5, "max_tokens="),
        ("default_query", {"api-version": "1"}, r"httpx.Client\(params=...\)"),
    ],
)
def test_an_openai_like_setting_names_what_to_write_instead(
    name: str, value: Any, hint: str
) -> None:
    with pytest.raises(
        ValueError, match=rf"{name}= is a setting of .*OpenAILike.*{hint}"
    ) as caught:
        AI21(model=JAMBA2, base_url="http://127.0.0.1:9/v1", **{name: value})
    assert str(caught.value).endswith(f"See {MIGRATION_DOCS}")


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("timout", "timeout"),
        ("max_token", "max_tokens"),
        ("base_uri", "base_url"),
        ("apikey", "api_key"),
    ],
)
def test_a_misspelt_setting_names_the_one_meant(name: str, meant: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^{name}= is not a setting of AI21: did you mean {meant}=\?$"
    ):
        AI21(model=JAMBA2, base_url="http://127.0.0.1:9/v1", **{name: 1})


def test_a_setting_near_no_field_is_pydantics_error() -> None:
    with pytest.raises(ValueError, match=r"Extra inputs are not permitted"):
        AI21(model=JAMBA2, base_url="http://127.0.0.1:9/v1", colour="blue")


def test_the_migration_address_is_a_section_of_the_docs() -> None:
    page, anchor = MIGRATION_DOCS.removeprefix(f"{DOCS_URL}/").split("#")
    text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text(encoding="utf-8")
    assert anchor == "from-openailike"
    assert "\n## From `OpenAILike`\n" in text


def test_every_openai_like_setting_is_a_field_here_or_says_what_to_write_instead() -> None:
    """As llama-index-llms-openai(-like) grows, a setting it gains fails here until it is
    a field of AI21 or has a hint."""
    fields = set(OpenAILike.model_fields) | set(inspect.signature(OpenAI.__init__).parameters)
    fields -= {"self", "kwargs", "api_key"}  # api_key is AI21's __init__ argument
    missing = sorted(fields - set(AI21.model_fields) - set(OPENAI_LIKE_NAMES))
    assert missing == []


def test_stream_options_never_reach_jurassic_2_which_never_streams(
    ai21_emulator: Emulator,
) -> None:
    llm = AI21(
        model="j2-mid",
        api_key=ai21_emulator.api_key,
        base_url=ai21_emulator.base_url,
        additional_kwargs={"stream_options": {"include_usage": True}},
    )
    assert llm.complete("hi").text
    assert list(llm.stream_complete("hi"))[-1].text
    assert [r.json.get("stream_options", "absent") for r in ai21_emulator.requests] == [
        "absent",
        "absent",
    ]


# ------------------------------------------------------------------ streamed tool calls


def now() -> str:
    """The time now."""
    return "noon"


@pytest.mark.parametrize(
    ("tool", "whole"), [(ADD, {"a": 1, "b": 2}), (FunctionTool.from_defaults(now), {})]
)
def test_a_streamed_call_is_not_shown_without_arguments_and_then_taken_back(
    make_local: Callable[..., AI21], vllm: Emulator, tool: FunctionTool, whole: dict[str, Any]
) -> None:
    """What agents put in each AgentStream: a chunk's calls with error_on_no_tool_call=False. The
    chunk naming the call before its arguments showed it as a call without arguments ({}),
    which the following chunks took back; a call that takes none still ends with {}."""
    llm = make_local()
    seen = [
        [
            (s.tool_name, s.tool_kwargs)
            for s in llm.get_tool_calls_from_response(c, error_on_no_tool_call=False)
        ]
        for c in llm.stream_chat_with_tools([tool], user_msg="add 1 2")
    ]
    assert seen[-1] == [(tool.metadata.name, whole)]
    assert all(calls == [] for calls in seen[:-1])


# ------------------------------------------------------------------ your clients' query


@pytest.mark.parametrize("method", ["complete", "stream_chat", "achat", "astream_complete"])
def test_your_clients_query_goes_with_every_request(method: str) -> None:
    """What extra_query= and default_query= are refused in favour of: openai-python builds its
    requests on the client it is given, query included; here the query of the client given
    went only with discovery's GETs."""
    params = {"api-version": "1"}
    with Server(answers_hi) as server:
        url = server.url() + "/v1"
        if method.startswith("a"):

            async def run() -> str:
                async with httpx.AsyncClient(params=params) as client:
                    llm = AI21(
                        base_url=url, model=JAMBA2, deployment="vllm", async_http_client=client
                    )
                    if method == "achat":
                        return (await llm.achat(arg_for(method))).message.content or ""
                    return "".join([c.delta async for c in await llm.astream_complete("hi")])

            text = asyncio.run(run())
        else:
            with httpx.Client(params=params) as client:
                llm = AI21(base_url=url, model=JAMBA2, deployment="vllm", http_client=client)
                text = call(llm, method, arg_for(method)).text
    assert text == "Hi"
    [post] = [head.split(b" ")[1] for head in server.heads if head.startswith(b"POST")]
    assert post == b"/v1/chat/completions?api-version=1"


def sticky(peer: Peer) -> None:
    """A load balancer's sticky session: its first answer sets the cookie that routes the
    client's next requests to the same replica (where its prompt's prefix is cached)."""
    while (head := peer.read_request()) is not None:
        if not head.startswith(b"POST"):  # discovery's GETs
            peer.send(response(status=404, body=b'{"detail":"Not Found"}'))
            continue
        first = not any(h.startswith(b"POST") for h in peer.server.heads[:-1])
        cookie = [("Set-Cookie", "replica=2; Path=/")] if first else []
        peer.send(response(body=chat_answer("Hi"), headers=cookie))


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
def test_a_sticky_session_cookie_your_client_was_given_is_sent_back(method: str) -> None:
    with Server(sticky) as server:
        url = server.url() + "/v1"
        if method == "chat":
            with httpx.Client() as client:
                llm = AI21(base_url=url, model=JAMBA2, deployment="vllm", http_client=client)
                for _ in range(2):
                    llm.chat(HI)
        else:

            async def run() -> None:
                async with httpx.AsyncClient() as client:
                    llm = AI21(
                        base_url=url, model=JAMBA2, deployment="vllm", async_http_client=client
                    )
                    for _ in range(2):
                        await llm.achat(HI)

            asyncio.run(run())
    first, second = [head for head in server.heads if head.startswith(b"POST")]
    assert b"cookie:" not in first.lower()
    assert b"Cookie: replica=2" in second.split(b"\r\n")


def test_the_packages_own_clients_keep_no_cookie(vllm: Emulator) -> None:
    """Its own clients send none and keep none (the key authenticates; httpx's cookie jar costs
    45 µs a request even when it keeps nothing): documented with http_client=."""
    with Server(sticky) as server:
        llm = AI21(base_url=server.url() + "/v1", model=JAMBA2, deployment="vllm")
        for _ in range(2):
            llm.chat(HI)
        llm.close()  # its pooled connection: else the server waits for it at its stop
    assert not any(b"cookie:" in head.lower() for head in server.heads)


def test_a_field_passed_through_on_every_call_is_compared_with_known_keywords_once(
    make_local: Callable[..., AI21], vllm: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """seed=, user= and an extra_body's entries go out on every call; telling whether each is a
    misspelt keyword (difflib, about 10 µs a name) is done once per name, not once per call."""
    compared: list[str] = []
    real = difflib.get_close_matches

    def counting(word: str, *args: Any, **kwargs: Any) -> list[str]:
        compared.append(word)
        return real(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    _near_miss.cache_clear()  # as in a fresh process
    llm = make_local()
    for _ in range(3):
        llm.chat(HI, seed=7, extra_body={"top_k_parity": 3, "temprature_parity": 0.2})
    assert sorted(compared) == ["seed", "temprature_parity", "top_k_parity"]
    assert all(r.json["seed"] == 7 for r in vllm.requests if r.path.endswith("/completions"))


def test_the_misspelling_check_keeps_at_most_512_names(make_local: Callable[..., AI21]) -> None:
    """It is kept by name only (never a value), and names a program makes up (an
    extra_body's keys, say) cannot grow it without bound."""
    _near_miss.cache_clear()
    make_local()._params({"extra_body": {f"field_{i}": i for i in range(600)}})
    assert _near_miss.cache_info().currsize == 512


# ------------------------------------------------------------------ a per-call model=

JAMBA_1_7 = "ai21labs/AI21-Jamba-Mini-1.7"
REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
SKY = "The sky over Tel Aviv is green today."


@pytest.mark.parametrize("method", METHOD_IDS)
def test_a_per_call_model_writes_the_request_by_that_models_recipe(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    """OpenAI's LLMs take model= per call. The call is the model's own: Reasoning 3B's template
    reads no documents field, so its documents go into the prompt, even on an instance of a
    Jamba 1.x model, whose template does read the field."""
    llm = make_local(model=JAMBA_1_7)
    call(
        llm, method, arg_for(method, "What colour is the sky?"), model=REASONING_3B, documents=[SKY]
    )
    body = sent(vllm)
    assert body["model"] == REASONING_3B
    assert "documents" not in body
    assert SKY in body["messages"][0]["content"]


def test_a_per_call_jamba_1_x_model_gets_its_documents_field_on_any_instance(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    llm = make_local(model=REASONING_3B)
    llm.chat(HI, model=JAMBA_1_7, documents=[SKY])
    assert sent(vllm)["documents"] == [{"text": SKY}]
    vllm.reset()
    llm.chat(HI, model=REASONING_3B, documents=[SKY])  # the instance's own, named: the same
    assert "documents" not in sent(vllm)


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
def test_a_per_call_models_answer_is_read_by_its_recipe(method: str) -> None:
    """On a server without a reasoning parser, Reasoning 3B's reasoning arrives in the text,
    ending in </think>: asked for per call, it is split off as for an instance of it."""
    with Emulator(flavour="vllm", parsers=False, reasoning=True) as server:
        llm = AI21(base_url=server.base_url, model="ai21labs/AI21-Jamba2-3B", max_retries=0)
        outcome = call(llm, method, HI, model=REASONING_3B)
    assert (
        outcome.text
        == f"This is the AI21 emulator ({REASONING_3B}), not a real model. You said: hi"
    )
    message = outcome.responses[-1].message
    assert [b.content for b in message.blocks if isinstance(b, ThinkingBlock)] == [
        "The user asked: hi. I answer from what the conversation gives me."
    ]


@pytest.mark.parametrize("method", ["complete", "stream_chat", "astream_complete"])
def test_a_per_call_jurassic_2_model_takes_its_own_route(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    """On AI21's API a J2 model has routes of its own and never streams (one chunk)."""
    llm = make_llm(model="jamba-mini", max_retries=0)
    outcome = call(llm, method, arg_for(method, "hi"), model="j2-mid")
    [request] = emulator.requests
    assert request.path == f"/studio/v1/j2-mid/{'chat' if method == 'stream_chat' else 'complete'}"
    assert len(outcome.responses) == 1
    assert outcome.text.startswith("This is the AI21 emulator (j2-mid)")


@pytest.mark.parametrize("model", ["", "  ", 3, ["jamba-mini"]])
def test_a_per_call_model_that_names_no_model_is_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator, model: Any
) -> None:
    with pytest.raises(ValueError, match=r"model= must name a model"):
        make_local().chat(HI, model=model)
    assert chat_requests(vllm) == 0


@pytest.mark.parametrize("method", ["chat", "stream_complete", "astream_chat"])
def test_a_per_call_jurassic_2_model_on_your_own_server_is_refused_before_any_request(
    make_local: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    """As the constructor refuses it: only AI21's hosted API served J2 (the server would have
    answered a 404 for a name it never serves)."""
    with pytest.raises(ValueError, match=r"'j2-mid' is a Jurassic-2 model"):
        call(make_local(), method, arg_for(method, "hi"), model="j2-mid")
    assert chat_requests(vllm) == 0


@pytest.mark.parametrize("method", ["chat", "astream_chat", "complete"])
def test_one_server_many_models_an_instance_without_a_model_takes_one_per_call(
    vllm: Emulator, method: str
) -> None:
    """LM Studio, Ollama or a router in front of several vLLMs: one base_url, a model per
    call. Without one (per call or on the instance) it is still the ValueError naming them."""
    llm = AI21(base_url=vllm.base_url, max_retries=0)
    outcome = call(llm, method, arg_for(method, "hi"), model=REASONING_3B)
    assert (
        outcome.text
        == f"This is the AI21 emulator ({REASONING_3B}), not a real model. You said: hi"
    )
    assert sent(vllm)["model"] == REASONING_3B
    with pytest.raises(
        ValueError, match=r"model= was not given and the server .* serves more than one"
    ):
        llm.chat(HI)
    assert chat_requests(vllm) == 1


def test_one_server_many_models_and_no_model_is_warned_about_once_with_the_reason(
    vllm: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The server lists a window for each model: with none chosen, the warning says that (it
    said "it did not say"), and the calls that fail for it, each asking the server again, do
    not repeat it."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    llm = AI21(base_url=vllm.base_url, max_retries=0)
    for _ in range(3):
        with pytest.raises(ValueError, match="serves more than one model"):
            llm.chat(HI)
    assert llm.metadata.context_window > 0
    assert [r.getMessage() for r in caplog.records] == [
        f"Could not read the context window from the server at {vllm.url} (vllm: model= was "
        "not given and it serves 5 models, each with its own window: pass model=... naming "
        "one); using the model table's. Pass context_window=... to set it."
    ]
    caplog.clear()  # a window given: nothing to say about the server's (a model per call)
    AI21(base_url=vllm.base_url, context_window=8192).chat(HI, model=REASONING_3B)
    assert caplog.records == []
