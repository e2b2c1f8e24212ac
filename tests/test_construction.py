"""Choosing the deployment, and bad input: a clear ValueError before any request.

Every case here asserts that nothing reached the server: a mistake the client can see is
never sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import ai21.errors
import pytest
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._deployments import kinds
from tests.calls import METHOD_IDS, arg_for, call

SELF_HOSTED = "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("base_url", "kind"),
    [
        ("https://api.ai21.com/studio/v1", "ai21"),
        ("https://eu.api.ai21.com/studio/v1/", "ai21"),
        ("http://127.0.0.1:9999/studio/v1", "ai21"),  # the emulator, a proxy: AI21's layout
        ("http://localhost:8000/v1", "openai-compatible"),
        ("https://jamba.internal.example/v1/", "openai-compatible"),
        ("https://gateway.example/ai21", "ai21"),  # not unambiguous: today's default
    ],
)
def test_the_deployment_is_inferred_from_base_url(base_url: str, kind: str) -> None:
    llm = AI21(api_key="k", base_url=base_url, model="ai21labs/AI21-Jamba-Mini-1.7")
    assert llm.deployment == kind


def test_an_explicit_deployment_wins_and_each_server_has_its_kind() -> None:
    llm = AI21(model="m", deployment="vllm", base_url="http://127.0.0.1:8000/anything")
    assert llm.deployment == "vllm"
    assert set(kinds()) == {
        *("ai21", "openai-compatible", "vllm", "sglang", "ollama"),
        *("llamacpp", "llama.cpp", "llama-server", "lmstudio", "lm-studio"),
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deployment": "bedrock"}, "deployment='bedrock' is not a known deployment kind"),
        ({"deployment": "vllm"}, "needs base_url"),
        ({"base_url": SELF_HOSTED, "model": "j2-mid"}, "Jurassic-2"),
        ({"base_url": "not a url"}, "base_url 'not a url' must be an http:// or https:// URL"),
        ({"base_url": "ftp://example.org/v1"}, "must be an http:// or https:// URL"),
        ({"base_url": "http://[::1/v1"}, "is not a valid URL"),
        ({"base_url": "http://h/studio/v1?x=1"}, "must not have a query"),
        ({"temprature": 0.2}, "temprature"),  # a typo is an error, not silently dropped
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"context_window": 0}, "context_window"),
        ({"additional_kwargs": {"x": float("nan")}}, "additional_kwargs['x'] must be a finite"),
        (
            {"base_url": "http://h:0/v1"},
            "base_url 'http://h:0/v1' has port 0; a port is 1 to 65535",
        ),
        (
            {"base_url": "http://u:[secure]@127.0.0.1:8000/v1"},  # copied from a repr or log
            "base_url's password is '[secure]', the mask this package (like httpx) shows in "
            "place of a password: pass the URL with the real password",
        ),
        (
            {"rate_limiter": 3},
            "rate_limiter must be a LlamaIndex rate limiter (acquire and async_acquire, e.g. "
            "TokenBucketRateLimiter), got int",
        ),
    ],
)
def test_bad_construction_is_a_value_error(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("api_key", "k")
    with pytest.raises(ValueError, match=re.escape(message)):
        AI21(**kwargs)


def test_a_deeply_nested_constructor_value_is_refused_at_construction() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"k": deep}
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        AI21(api_key="k", additional_kwargs={"extra": deep})


def test_ai21s_api_still_needs_a_key_but_a_self_hosted_server_does_not() -> None:
    with pytest.raises(ValueError, match="AI21_API_KEY"):
        AI21()
    assert AI21(model="m", base_url=SELF_HOSTED)._secrets.api_key is None


def test_ai21_api_key_is_never_sent_to_your_own_server(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator
) -> None:
    """The un-prefixed routes of the emulator stand in for a server of one's own here."""
    monkeypatch.setenv("AI21_API_KEY", "sk-ai21-account-key")
    llm = AI21(model="jamba-mini", deployment="openai-compatible", base_url=emulator.url)
    with pytest.raises(ai21.errors.Unauthorized):  # the hosted flavour wants a key
        llm.complete("hi")
    assert emulator.last_request.api_key is None  # no Authorization header at all


BAD_CALLS: list[tuple[str, Callable[[AI21], Any], str]] = [
    (
        "dict message",
        lambda llm: llm.chat([{"role": "user", "content": "hi"}]),
        "not a ChatMessage",
    ),
    ("str messages", lambda llm: llm.chat("hi"), "Input should be a valid list"),
    ("None prompt", lambda llm: llm.complete(None), "prompt must be a string"),
    ("None prompt, stream", lambda llm: llm.stream_complete(None), "prompt must be a string"),
    (
        "non-JSON tool arguments",
        lambda llm: llm.chat(
            [
                ChatMessage(
                    role="assistant",
                    blocks=[
                        ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs={"x": {1, 2}})
                    ],
                ),
                ChatMessage(role="tool", content="1", additional_kwargs={"tool_call_id": "c1"}),
            ]
        ),
        "not JSON-serializable",
    ),
    ("deep keyword", lambda llm: llm.complete("hi", extra=_deep(5000)), "nested more than 64"),
    ("max_tokens over 4096", lambda llm: llm.complete("hi", max_tokens=5000), "max_tokens"),
    (
        "json_schema on AI21's API",
        lambda llm: llm.complete("hi", response_format={"type": "json_schema", "json_schema": {}}),
        "response_format must be",
    ),
]


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(("case", "bad_call", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_fail_before_any_request(
    llm: AI21, emulator: Emulator, case: str, bad_call: Callable[[AI21], Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        bad_call(llm)
    assert emulator.requests == []


@pytest.mark.parametrize("method", METHOD_IDS)
def test_self_hosted_limits_are_the_servers(method: str, emulator: Emulator) -> None:
    """No 4096 cap and json_schema allowed: the request is sent (the server decides)."""
    llm = AI21(
        model="jamba-mini", deployment="openai-compatible", base_url=emulator.url, max_retries=0
    )
    with pytest.raises(ai21.errors.AI21APIError):  # the stand-in (AI21's emulator) refuses
        call(llm, method, arg_for(method), max_tokens=100_000, top_k=5)
    sent = emulator.last_request.json
    assert sent["max_tokens"] == 100_000
    assert sent["top_k"] == 5


def test_a_new_deployment_kind_is_one_module(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, emulator: Emulator
) -> None:
    """A module in the deployments package that names a ``DEPLOYMENT`` is a kind: nothing
    else changes. This one is a host that takes its key in a header of its own."""
    import llama_index.llms.ai21._deployments as deployments

    (tmp_path / "keyheader.py").write_text(
        "from llama_index.llms.ai21._deployments import Deployment\n"
        "from llama_index.llms.ai21._deployments.ai21 import AI21Studio\n"
        "class KeyHeader(AI21Studio):\n"
        "    kind = 'key-header'\n"
        "    api_key_env = None\n"
        "    def headers(self, api_key, extra):\n"
        "        headers = super().headers(None, extra)\n"
        "        headers['X-Service-Key'] = api_key\n"
        "        return headers\n"
        "DEPLOYMENT = KeyHeader\n"
    )
    monkeypatch.setattr(deployments, "__path__", [*deployments.__path__, str(tmp_path)])
    deployments.kinds.cache_clear()
    try:
        llm = AI21(
            api_key="k-123", deployment="key-header", base_url=emulator.base_url, max_retries=0
        )
        with pytest.raises(ai21.errors.Unauthorized):  # the emulator wants a bearer key
            llm.complete("hi")
        assert emulator.last_request.headers["X-Service-Key"] == "k-123"
        assert emulator.last_request.api_key is None
    finally:
        deployments.kinds.cache_clear()


def test_a_pickled_copy_builds_its_own_clients(emulator: Emulator) -> None:
    import pickle

    import httpx

    with httpx.Client() as mine:
        llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, http_client=mine)
        copy = pickle.loads(pickle.dumps(llm))
    assert copy.http_client is None
    assert copy.complete("hi").text  # its own pool, not the closed client of the original


def test_pickling_leaves_the_instance_pickled_whole(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """What does not pickle (your own client, a lambda) is left out of the pickle, not out of
    the instance: LlamaIndex's BaseComponent deleted it from the instance's own fields (an
    AttributeError on its next call) and said so through the root logger."""
    import pickle

    import httpx

    caplog.set_level(logging.WARNING)
    with httpx.Client() as mine:
        llm = AI21(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            http_client=mine,
            completion_to_prompt=lambda prompt: f"Q: {prompt}",
        )
        copy = pickle.loads(pickle.dumps(llm))
        assert llm.complete("hi").text
        assert llm.http_client is mine
    assert emulator.last_request.json["messages"][-1]["content"] == "Q: hi"
    assert copy.completion_to_prompt("hi") == "hi"  # LlamaIndex's default
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        (
            "llama_index.llms.ai21",
            "completion_to_prompt cannot be pickled (function): the pickled copy has the default",
        )
    ]
