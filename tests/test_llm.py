"""The AI21 LLM over real HTTP against the emulator: every public method, exact payloads."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import ai21.errors
import pytest
from llama_index.core.base.llms.types import CacheControl, CachePoint, ChatMessage, TextBlock
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.prompts import PromptTemplate

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, call
from tests.statuses import IDS as STATUS_IDS
from tests.statuses import STATUSES, Status

PIRATE = "You are a pirate with a colorful personality"
SEED_MESSAGES = [
    ChatMessage(role="user", content="hello there"),
    ChatMessage(role="assistant", content="Arrrr, matey! How can I help ye today?"),
    ChatMessage(role="user", content="What is your name"),
]
UNAUTHORIZED_BODY = '{"detail":"Forbidden: Bad or missing API token."}'


# --------------------------------------------------------------------------- payloads


@pytest.mark.parametrize("method", METHOD_IDS)
def test_every_method_sends_the_exact_payload(llm: AI21, emulator: Emulator, method: str) -> None:
    emulator.reply_next("an essayist and investor.")
    outcome = call(llm, method, arg_for(method), temperature=0.5, max_tokens=64)
    request = emulator.last_request
    assert request.method == "POST"
    assert request.path == "/studio/v1/chat/completions"
    assert request.json == {
        "model": "jamba-mini",
        "messages": [{"role": "user", "content": "Paul Graham is "}],
        "temperature": 0.5,
        "max_tokens": 64,
        "stream": method.startswith(("stream", "astream")),
    }
    assert request.api_key == emulator.api_key
    assert request.headers["User-Agent"].endswith("via: llama-index")
    assert outcome.text == "an essayist and investor."


@pytest.mark.parametrize("method", METHOD_IDS)
def test_responses_carry_raw_dict_and_ai21_token_counts(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    emulator.reply_next(
        "Four tokens, as counted.", usage={"prompt_tokens": 11, "completion_tokens": 4}
    )
    outcome = call(llm, method, arg_for(method))
    last = outcome.responses[-1]
    assert last.raw["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    assert last.additional_kwargs == {
        "prompt_tokens": 11,
        "completion_tokens": 4,
        "total_tokens": 15,
        "finish_reason": "stop",
    }


@pytest.mark.parametrize("method", [m for m in METHOD_IDS if "stream" in m])
def test_stream_deltas_concatenate_to_the_final_text(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    story = "The keeper lit the lamp at dusk and watched the ships."
    emulator.reply_next(story)
    outcome = call(llm, method, arg_for(method, "Tell me a story about a lighthouse keeper."))
    deltas = [chunk.delta for chunk in outcome.responses]
    assert None not in deltas, "the role-only first event must not yield a None delta"
    assert "".join(deltas) == outcome.text == story
    assert len(outcome.responses) > 3, "one chunk per token"
    assert all("finish_reason" not in c.additional_kwargs for c in outcome.responses[:-1])


def test_configured_fields_and_call_keywords_reach_the_payload(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    llm = make_llm(
        model="jamba-large",
        max_tokens=100,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        additional_kwargs={"seed": 7},
        default_headers={"X-Team": "search"},
        system_prompt="Be brief.",
    )
    llm.chat(
        [ChatMessage(role="user", content="hi")],
        n=2,
        response_format={"type": "text"},
        documents=["Jamba has a 256K context window."],
        top_p=0.5,
    )
    request = emulator.last_request
    assert request.json == {
        "model": "jamba-large",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 0.2,
        "max_tokens": 100,
        "top_p": 0.5,
        "stop": ["END"],
        "seed": 7,
        "n": 2,
        "response_format": {"type": "text"},
        "stream": False,
        "documents": [{"content": "Jamba has a 256K context window."}],
    }
    assert request.headers["X-Team"] == "search"


# ------------------------------------------------------------------------------ seeds


def test_seed_complete(emulator: Emulator) -> None:
    emulator.reply_next("an essayist.")
    resp = AI21(api_key=emulator.api_key, base_url=emulator.base_url).complete("Paul Graham is ")
    assert str(resp) == "an essayist."
    assert emulator.last_request.json["messages"] == [
        {"role": "user", "content": "Paul Graham is "}
    ]


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_seed_chat_with_preamble_override(emulator: Emulator, method: str) -> None:
    llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, system_prompt="ignored")
    emulator.reply_next("Cap'n Jamba, at yer service!")
    outcome = call(llm, method, SEED_MESSAGES, preamble_override=PIRATE)
    body = emulator.last_request.json
    assert body["messages"] == [
        {"role": "system", "content": PIRATE},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "Arrrr, matey! How can I help ye today?"},
        {"role": "user", "content": "What is your name"},
    ]
    assert "preamble_override" not in body
    assert outcome.text == "Cap'n Jamba, at yer service!"


def test_preamble_override_on_complete(llm: AI21, emulator: Emulator) -> None:
    llm.complete("Paul Graham is ", preamble_override=PIRATE)
    assert emulator.last_request.json["messages"][0] == {"role": "system", "content": PIRATE}


def test_seed_j2_mid_complete(emulator: Emulator) -> None:
    llm = AI21(model="j2-mid", api_key=emulator.api_key, base_url=emulator.base_url)
    resp = llm.complete("Paul Graham is ")
    assert resp.text == J2_ECHO.format(model="j2-mid")
    request = emulator.last_request
    assert request.path == "/studio/v1/j2-mid/complete"
    assert request.json == {"prompt": "Paul Graham is ", "maxTokens": 512}


def test_seed_per_instance_keys_bad_key_is_unauthorized(emulator: Emulator) -> None:
    llm_good = AI21(api_key=emulator.api_key, base_url=emulator.base_url)
    llm_bad = AI21(model="j2-mid", api_key="BAD_KEY", base_url=emulator.base_url)
    emulator.reply_next("an essayist.")
    assert llm_good.complete("Paul Graham is ").text == "an essayist."
    with pytest.raises(ai21.errors.Unauthorized) as caught:
        llm_bad.complete("Paul Graham is ")
    assert str(caught.value).endswith(UNAUTHORIZED_BODY)
    assert str(caught.value) == (
        f"Failed with http status code: 401 (Unauthorized). Details: {UNAUTHORIZED_BODY}"
    )
    emulator.reply_next("still an essayist.")
    assert llm_good.complete("Paul Graham is ").text == "still an essayist.", "still working"


# --------------------------------------------------------------------------- legacy J2


J2_COMMON = {"temperature": 0.3, "maxTokens": 40, "stopSequences": ["##"], "topP": 0.8}
J2_CHAT = (
    "/studio/v1/j2-ultra/chat",
    {"system": "", "messages": [{"role": "user", "text": "Paul Graham is "}], **J2_COMMON},
)
J2_COMPLETE = ("/studio/v1/j2-ultra/complete", {"prompt": "Paul Graham is ", **J2_COMMON})
# The emulator's documented echo (docs/emulator.md, "How it answers"): J2 routes take no
# scripted replies.
J2_ECHO = "This is the AI21 emulator ({model}), not a real model. You said: Paul Graham is"
J2_ROUTES = {
    "chat": J2_CHAT,
    "stream_chat": J2_CHAT,
    "achat": J2_CHAT,
    "astream_chat": J2_CHAT,
    "complete": J2_COMPLETE,
    "stream_complete": J2_COMPLETE,
    "acomplete": J2_COMPLETE,
    "astream_complete": J2_COMPLETE,
}


@pytest.mark.parametrize("method", METHOD_IDS)
def test_j2_routes_and_payloads(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    llm = make_llm(model="j2-ultra", max_tokens=40, temperature=0.3, stop=["##"])
    outcome = call(llm, method, arg_for(method), top_p=0.8)
    request = emulator.last_request
    assert (request.path, request.json) == J2_ROUTES[method]
    assert outcome.text == J2_ECHO.format(model="j2-ultra")


@pytest.mark.parametrize("method", [m for m in METHOD_IDS if "stream" in m])
def test_j2_streams_as_one_chunk(make_llm: Callable[..., AI21], method: str) -> None:
    outcome = call(make_llm(model="j2-ultra"), method, arg_for(method))
    assert [chunk.delta for chunk in outcome.responses] == [J2_ECHO.format(model="j2-ultra")]


def test_j2_rejects_tools_and_documents(make_llm: Callable[..., AI21], emulator: Emulator) -> None:
    llm = make_llm(model="j2-mid")
    with pytest.raises(ValueError, match="Jurassic-2"):
        llm.complete("x", documents=["doc"])
    assert emulator.requests == []


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("model", "context_window", "num_output", "is_chat", "is_tools"),
    [
        ("jamba-mini", 256_000, 4096, True, True),
        ("jamba-large", 256_000, 4096, True, True),
        ("jamba-large-1.7-2025-07", 256_000, 4096, True, True),
        ("jamba-mini-2-2026-01", 256_000, 4096, True, True),
        ("j2-light", 8192, 1024, False, False),
        ("j2-mid", 8192, 1024, False, False),
        ("j2-ultra", 8192, 1024, False, False),
    ],
)
def test_model_table(
    model: str, context_window: int, num_output: int, is_chat: bool, is_tools: bool
) -> None:
    metadata = AI21(model=model, api_key="k").metadata
    assert metadata.context_window == context_window
    assert metadata.num_output == num_output
    assert metadata.is_chat_model is is_chat
    assert metadata.is_function_calling_model is is_tools
    assert metadata.model_name == model


def _model_warnings(caplog: pytest.LogCaptureFixture, model: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llama_index.llms.ai21"
        and r.levelno == logging.WARNING
        and model in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("model", "guess", "context_window", "num_output", "is_tools"),
    [
        ("jamba-3-ultra-2027", "Jamba figures (context window 256000)", 256_000, 4096, True),
        ("j2-colossal", "Jurassic-2 figures (context window 8192)", 8192, 1024, False),
        ("mystery-model", "conservative default figures (context window 8192)", 8192, 1024, False),
    ],
)
def test_unknown_models_never_fail_and_warn_once_per_instance_at_construction(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    model: str,
    guess: str,
    context_window: int,
    num_output: int,
    is_tools: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    llm = make_llm(model=model)
    assert _model_warnings(caplog, model) == [
        f"Model {model!r} is not in llama-index-llms-ai21's model table; assuming {guess}. "
        "Pass context_window=..., is_function_calling_model=... to set them."
    ]
    for _ in range(2):  # using the instance does not warn again
        assert llm.metadata.context_window == context_window
        assert llm.metadata.num_output == num_output
        assert llm.metadata.is_function_calling_model is is_tools
    assert len(_model_warnings(caplog, model)) == 1
    make_llm(model=model)  # per instance, not once per process: no state between tests
    assert len(_model_warnings(caplog, model)) == 2


def test_known_models_do_not_warn(
    make_llm: Callable[..., AI21], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    for model in ("jamba-mini", "j2-ultra", "ai21labs/AI21-Jamba-Mini-1.7"):
        make_llm(model=model)
    assert caplog.records == []


def test_a_query_wrapper_prompt_that_llamaindex_will_not_apply_is_warned_about(
    make_llm: Callable[..., AI21], emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # LlamaIndex wraps predict()'s prompt in query_wrapper_prompt only for non-chat models.
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    wrapper = PromptTemplate("[INST] {query_str} [/INST]")
    llm = make_llm(model="jamba-mini", query_wrapper_prompt=wrapper)
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "query_wrapper_prompt= is applied by LlamaIndex only to completion models"
    )
    assert "'jamba-mini' is a chat model, so it changes no request" in record.getMessage()
    llm.predict(PromptTemplate("Tell me about {topic}."), topic="Jamba")
    assert emulator.last_request.json["messages"] == [
        {"role": "user", "content": "Tell me about Jamba."}
    ]
    caplog.clear()
    make_llm(model="j2-ultra", query_wrapper_prompt=wrapper)  # a completion model: applied
    make_llm(model="jamba-mini")
    assert caplog.records == []


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
@pytest.mark.parametrize("status", STATUSES, ids=STATUS_IDS)
def test_sdk_errors_reach_the_caller_unchanged(
    llm: AI21, emulator: Emulator, method: str, status: Status
) -> None:
    emulator.inject(Fault(status=status.code))
    with pytest.raises(status.error) as caught:
        call(llm, method, arg_for(method))
    assert type(caught.value) is status.error
    assert caught.value.status_code == status.code  # type: ignore[attr-defined]
    # The real error body, also on async streams (where the bare SDK loses it).
    assert caught.value.details.startswith('{"detail"')  # type: ignore[attr-defined]
    assert len(emulator.requests) == 1


@pytest.mark.parametrize("status", STATUSES, ids=STATUS_IDS)
def test_each_status_is_retried_or_not_as_the_table_says(
    make_llm: Callable[..., AI21], emulator: Emulator, status: Status
) -> None:
    emulator.inject(Fault(status=status.code, count=2, retry_after="0"))
    with pytest.raises(status.error):
        make_llm(max_retries=1).complete("hi")
    assert len(emulator.requests) == (2 if status.retried else 1)


def test_missing_key_names_the_environment_variable() -> None:
    with pytest.raises(ValueError, match="AI21_API_KEY"):
        AI21()


def test_key_and_host_from_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI21_API_KEY", emulator.api_key)
    monkeypatch.setenv("AI21_API_HOST", emulator.base_url)
    llm = AI21()
    assert llm.base_url == emulator.base_url
    emulator.reply_next("Hello from the environment.")
    assert llm.complete("hi").text == "Hello from the environment."
    assert emulator.last_request.api_key == emulator.api_key


BAD_CALLS = [
    ({"temperature": 2.5}, "temperature must be in"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"top_p": 0}, "top_p must be in"),
    ({"max_tokens": 5000}, "max_tokens must be in"),
    ({"max_tokens": 1.5}, "max_tokens must be an integer"),
    ({"n": 0}, "n must be in"),
    ({"stop": [1]}, "stop must be"),
    ({"seed": object()}, "seed must be JSON-serializable"),
    ({"documents": "not a list"}, "documents must be a list"),
    ({"preamble_override": 3}, "preamble_override must be a string"),
    ({"response_format": {"type": "xml"}}, "response_format must be"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_CALLS, ids=[m for _, m in BAD_CALLS])
@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_bad_input_fails_before_any_request(
    llm: AI21, emulator: Emulator, method: str, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        call(llm, method, arg_for(method), **kwargs)
    assert emulator.requests == []


def test_streaming_with_n_greater_than_one_is_refused(llm: AI21, emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="n must be 1 when streaming"):
        list(llm.stream_chat(arg_for("chat"), n=2))
    assert emulator.requests == []


@pytest.mark.parametrize("field", ["temperature", "top_p", "max_tokens", "timeout", "max_retries"])
def test_constructor_ranges(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AI21(api_key="k", **{field: -1})


# ------------------------------------------------------------------ concurrency and keys


def test_per_instance_keys_across_threads(emulator: Emulator) -> None:
    alt_key = "second-key"
    with Emulator(api_keys=(emulator.api_key, alt_key)) as server:
        llms = {
            key: AI21(api_key=key, base_url=server.base_url, max_retries=0)
            for key in (emulator.api_key, alt_key)
        }
        barrier = threading.Barrier(8)

        def work(key: str) -> None:
            barrier.wait()
            for _ in range(5):
                llms[key].complete(f"key {key}")

        threads = [threading.Thread(target=work, args=(k,)) for k in list(llms) * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for request in server.requests:
            assert request.json["messages"][0]["content"] == f"key {request.api_key}"
        assert len(server.requests) == 40


def test_per_instance_keys_across_tasks(emulator: Emulator) -> None:
    alt_key = "second-key"
    with Emulator(api_keys=(emulator.api_key, alt_key)) as server:
        llms = {
            key: AI21(api_key=key, base_url=server.base_url, max_retries=0)
            for key in (emulator.api_key, alt_key)
        }

        async def main() -> None:
            await asyncio.gather(
                *(llms[k].acomplete(f"key {k}") for k in list(llms) * 20),
                *(_astream_text(llms[k], f"key {k}") for k in list(llms) * 5),
            )

        asyncio.run(main())
        for request in server.requests:
            assert request.json["messages"][0]["content"] == f"key {request.api_key}"
        assert len(server.requests) == 50


async def _astream_text(llm: AI21, prompt: str) -> str:
    return "".join([c.delta or "" async for c in await llm.astream_complete(prompt)])


# --------------------------------------------------------------------------- callbacks


@pytest.mark.parametrize("method", METHOD_IDS)
def test_callbacks_fire_for_every_method(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    handler = LlamaDebugHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    emulator.reply_next("Reported to the callback.")
    call(llm, method, arg_for(method))
    pairs = handler.get_event_pairs(CBEventType.LLM)
    assert len(pairs) == 1, "exactly one LLM event (completion methods do not nest a chat event)"
    start, end = pairs[0]
    if method.lstrip("a").startswith(("chat", "stream_chat")):
        assert start.payload[EventPayload.MESSAGES] == arg_for(method)
        assert end.payload[EventPayload.RESPONSE].message.content == "Reported to the callback."
    else:
        assert start.payload[EventPayload.PROMPT] == "Paul Graham is "
        assert end.payload[EventPayload.COMPLETION].text == "Reported to the callback."


def test_settings_changed_after_creation_take_effect(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    llm = make_llm(max_retries=0)
    llm.complete("before")
    llm.default_headers = {"X-Changed": "yes"}
    llm.temperature = 0.7
    llm.complete("after")
    assert emulator.last_request.headers["X-Changed"] == "yes"
    assert emulator.last_request.json["temperature"] == 0.7


@pytest.mark.parametrize(
    ("keyword", "meant"),
    [
        ("max_token", "max_tokens"),
        ("temprature", "temperature"),
        ("document", "documents"),
        ("top-p", "top_p"),
        ("logprob", "logprobs"),  # the keywords of docs/configuration.md's table, all of them
        ("top_logprob", "top_logprobs"),
        ("stream_option", "stream_options"),
        ("extra_header", "extra_headers"),
        ("extrabody", "extra_body"),
        ("formated", "formatted"),
        ("seed", None),  # real request fields: sent without a word
        ("prompt_logprobs", None),
        ("top_k", None),
        ("min_tokens", None),
    ],
)
def test_a_per_call_keyword_close_to_a_known_one_is_warned_about_and_still_sent(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    keyword: str,
    meant: str | None,
) -> None:
    """Unknown per-call keywords are sent as they are (docs/configuration.md), and a server
    ignores a field it does not know: a misspelt max_tokens would silently do nothing."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    make_llm(model="jamba-mini").complete("hi", **{keyword: 3})
    assert emulator.last_request.json[keyword] == 3
    said = [r.getMessage() for r in caplog.records]
    if meant is None:
        assert said == []
    else:
        assert said == [
            f"{keyword}= is not a keyword this package knows: it is sent to the server as a "
            f"request field as it is, which the server may ignore. Did you mean {meant}=?"
        ]


def test_a_near_miss_keyword_is_warned_about_once_per_instance(
    make_llm: Callable[..., AI21], emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop of calls with the same typo logs it once, not once a call; still sent each time."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    llm = make_llm(model="jamba-mini")
    for _ in range(3):
        llm.complete("hi", temprature=0.5)
    llm.complete("hi", max_token=3)
    make_llm(model="jamba-mini").complete("hi", temprature=0.5)  # another instance says it too
    assert emulator.last_request.json["temprature"] == 0.5
    said = [r.getMessage().split(":")[0] for r in caplog.records]
    assert said == [
        "temprature= is not a keyword this package knows",
        "max_token= is not a keyword this package knows",
        "temprature= is not a keyword this package knows",
    ]


# --------------------------------------------------------------------------- prompt caching


@pytest.mark.parametrize("flavour", ["ai21", "vllm"])
def test_a_prompt_caching_marker_is_not_sent(
    flavour: str, llm: AI21, make_local: Callable[..., AI21], vllm: Emulator, emulator: Emulator
) -> None:
    """LlamaIndex's CachePoint (prompt caching on Anthropic's and Bedrock's APIs) in a message
    written for them: vLLM caches prefixes by itself, so the text goes as it would without it."""
    server, model = (emulator, llm) if flavour == "ai21" else (vllm, make_local())
    cached = [
        ChatMessage(
            role="system",
            blocks=[
                TextBlock(text="A long, stable preamble."),
                CachePoint(cache_control=CacheControl(type="ephemeral")),
            ],
        ),
        ChatMessage(role="user", content="hi"),
    ]
    model.chat(cached)
    with_marker = server.requests[-1].json["messages"]
    model.chat([ChatMessage(role="system", content="A long, stable preamble."), cached[1]])
    assert with_marker == server.requests[-1].json["messages"]
    assert with_marker[0] == {"role": "system", "content": "A long, stable preamble."}
