"""The AI21 LLM over real HTTP against the emulator: every public method, exact payloads."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import ai21.errors
import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.emulator import Emulator, Fault
from tests.calls import METHOD_IDS, arg_for, call

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
    assert "llama-index" in request.headers["User-Agent"]
    assert outcome.text


@pytest.mark.parametrize("method", METHOD_IDS)
def test_responses_carry_raw_dict_and_ai21_token_counts(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    outcome = call(llm, method, arg_for(method))
    last = outcome.responses[-1]
    assert isinstance(last.raw, dict)
    usage = last.raw["usage"]
    assert last.additional_kwargs["prompt_tokens"] == usage["prompt_tokens"] > 0
    assert last.additional_kwargs["completion_tokens"] == usage["completion_tokens"] > 0
    assert last.additional_kwargs["total_tokens"] == usage["total_tokens"]
    assert last.additional_kwargs["finish_reason"] == "stop"


@pytest.mark.parametrize("method", [m for m in METHOD_IDS if "stream" in m])
def test_stream_deltas_concatenate_to_the_final_text(llm: AI21, method: str) -> None:
    outcome = call(llm, method, arg_for(method, "Tell me a story about a lighthouse keeper."))
    deltas = [chunk.delta for chunk in outcome.responses]
    assert None not in deltas, "the role-only first event must not yield a None delta"
    assert "".join(deltas) == outcome.text
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
    resp = AI21(api_key=emulator.api_key, base_url=emulator.base_url).complete("Paul Graham is ")
    assert str(resp)
    assert emulator.last_request.json["messages"] == [
        {"role": "user", "content": "Paul Graham is "}
    ]


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_seed_chat_with_preamble_override(emulator: Emulator, method: str) -> None:
    llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, system_prompt="ignored")
    outcome = call(llm, method, SEED_MESSAGES, preamble_override=PIRATE)
    body = emulator.last_request.json
    assert body["messages"] == [
        {"role": "system", "content": PIRATE},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "Arrrr, matey! How can I help ye today?"},
        {"role": "user", "content": "What is your name"},
    ]
    assert "preamble_override" not in body
    assert outcome.text


def test_preamble_override_on_complete(llm: AI21, emulator: Emulator) -> None:
    llm.complete("Paul Graham is ", preamble_override=PIRATE)
    assert emulator.last_request.json["messages"][0] == {"role": "system", "content": PIRATE}


def test_seed_j2_mid_complete(emulator: Emulator) -> None:
    llm = AI21(model="j2-mid", api_key=emulator.api_key, base_url=emulator.base_url)
    resp = llm.complete("Paul Graham is ")
    assert resp.text
    request = emulator.last_request
    assert request.path == "/studio/v1/j2-mid/complete"
    assert request.json == {"prompt": "Paul Graham is ", "maxTokens": 512}


def test_seed_per_instance_keys_bad_key_is_unauthorized(emulator: Emulator) -> None:
    llm_good = AI21(api_key=emulator.api_key, base_url=emulator.base_url)
    llm_bad = AI21(model="j2-mid", api_key="BAD_KEY", base_url=emulator.base_url)
    assert llm_good.complete("Paul Graham is ").text
    with pytest.raises(ai21.errors.Unauthorized) as caught:
        llm_bad.complete("Paul Graham is ")
    assert str(caught.value).endswith(UNAUTHORIZED_BODY)
    assert str(caught.value) == (
        f"Failed with http status code: 401 (Unauthorized). Details: {UNAUTHORIZED_BODY}"
    )
    assert llm_good.complete("Paul Graham is ").text, "the good instance keeps working"


# --------------------------------------------------------------------------- legacy J2


@pytest.mark.parametrize("method", METHOD_IDS)
def test_j2_routes_and_streams_as_one_chunk(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    llm = make_llm(model="j2-ultra", max_tokens=40, temperature=0.3, stop=["##"])
    outcome = call(llm, method, arg_for(method), top_p=0.8)
    request = emulator.last_request
    common = {"temperature": 0.3, "maxTokens": 40, "stopSequences": ["##"], "topP": 0.8}
    if method.lstrip("a").startswith(("chat", "stream_chat")):
        assert request.path == "/studio/v1/j2-ultra/chat"
        assert request.json == {
            "system": "",
            "messages": [{"role": "user", "text": "Paul Graham is "}],
            **common,
        }
    else:
        assert request.path == "/studio/v1/j2-ultra/complete"
        assert request.json == {"prompt": "Paul Graham is ", **common}
    assert outcome.text
    if "stream" in method:
        assert len(outcome.responses) == 1
        assert outcome.responses[0].delta == outcome.text


def test_j2_rejects_tools_and_documents(make_llm: Callable[..., AI21], emulator: Emulator) -> None:
    llm = make_llm(model="j2-mid")
    with pytest.raises(ValueError, match="Jurassic-2"):
        llm.complete("x", documents=["doc"])
    assert emulator.requests == []


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("model", "context_window", "is_chat", "is_tools"),
    [
        ("jamba-mini", 256_000, True, True),
        ("jamba-large", 256_000, True, True),
        ("jamba-large-1.7-2025-07", 256_000, True, True),
        ("jamba-mini-2-2026-01", 256_000, True, True),
        ("j2-light", 8192, False, False),
        ("j2-mid", 8192, False, False),
        ("j2-ultra", 8192, False, False),
    ],
)
def test_model_table(model: str, context_window: int, is_chat: bool, is_tools: bool) -> None:
    metadata = AI21(model=model, api_key="k").metadata
    assert metadata.context_window == context_window
    assert metadata.is_chat_model is is_chat
    assert metadata.is_function_calling_model is is_tools
    assert metadata.model_name == model
    assert metadata.num_output > 0


def test_unknown_models_never_fail_and_warn_once(
    make_llm: Callable[..., AI21], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llama_index.llms.ai21._models"):
        future = AI21(model="jamba-3-ultra-2027", api_key="k")
        assert future.metadata.context_window == 256_000
        assert future.metadata.is_function_calling_model
        assert future.metadata.context_window == 256_000
        other = AI21(model="mystery-model", api_key="k").metadata
    assert other.context_window > 0
    warnings = [r for r in caplog.records if "jamba-3-ultra-2027" in r.getMessage()]
    assert len(warnings) == 1


# --------------------------------------------------------------------------- errors

STATUS_ERRORS = [
    (400, ai21.errors.BadRequest),
    (401, ai21.errors.Unauthorized),
    (403, ai21.errors.AI21APIError),
    (404, ai21.errors.AI21APIError),
    (422, ai21.errors.UnprocessableEntity),
    (424, ai21.errors.AI21APIError),
    (429, ai21.errors.TooManyRequestsError),
    (500, ai21.errors.AI21ServerError),
    (502, ai21.errors.AI21APIError),
    (503, ai21.errors.ServiceUnavailable),
    (504, ai21.errors.AI21APIError),
]


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
@pytest.mark.parametrize(("status", "error"), STATUS_ERRORS, ids=[str(s) for s, _ in STATUS_ERRORS])
def test_sdk_errors_reach_the_caller_unchanged(
    llm: AI21, emulator: Emulator, method: str, status: int, error: type[Exception]
) -> None:
    emulator.inject(Fault(status=status))
    with pytest.raises(error) as caught:
        call(llm, method, arg_for(method))
    assert type(caught.value) is error
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    # The real error body, also on async streams (where the bare SDK loses it).
    assert caught.value.details.startswith('{"detail"')  # type: ignore[attr-defined]
    assert len(emulator.requests) == 1


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
    assert llm.complete("hi").text
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
def test_callbacks_fire_for_every_method(make_llm: Callable[..., AI21], method: str) -> None:
    handler = LlamaDebugHandler()
    llm = make_llm(callback_manager=CallbackManager([handler]))
    call(llm, method, arg_for(method))
    pairs = handler.get_event_pairs(CBEventType.LLM)
    assert len(pairs) == 1, "exactly one LLM event (completion methods do not nest a chat event)"
    _start, end = pairs[0]
    assert end.payload is not None


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
