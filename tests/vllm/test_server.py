"""What the server decides: its limits, sampling fields, context window, keys and errors."""

from __future__ import annotations

from collections.abc import Callable

import ai21.errors
import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21
from tests.calls import arg_for, call
from tests.vllm.conftest import MAX_MODEL_LEN, MODEL, Servers, require_servers

require_servers()

CHAT_METHODS = ["chat", "stream_chat", "achat", "astream_chat"]


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_max_tokens_above_4096_goes_to_the_server_which_refuses_it(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    refused = servers.requests_seen("/v1/chat/completions", "4xx")
    with pytest.raises(ai21.errors.BadRequest) as raised:
        call(make_llm(), method, arg_for(method, "Hi"), max_tokens=5000)
    assert "max_tokens=5000 cannot be greater than max_model_len=2048" in str(raised.value)
    assert servers.requests_seen("/v1/chat/completions", "4xx") == refused + 1  # no retry


def test_max_tokens_above_4096_is_accepted_as_a_field(make_llm: Callable[..., AI21]) -> None:
    llm = make_llm(max_tokens=8192)
    with pytest.raises(ai21.errors.BadRequest, match="max_tokens=8192 cannot be greater"):
        llm.chat([ChatMessage(role="user", content="Hi")])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"top_k": -5}, "top_k must be 0 (disable), or at least 1, got -5."),
        ({"repetition_penalty": -1.0}, "repetition_penalty must be greater than zero"),
        ({"min_tokens": 5, "max_tokens": 2}, "min_tokens must be less than or equal to max_tokens"),
    ],
)
@pytest.mark.parametrize("where", ["call", "additional_kwargs"])
def test_extra_sampling_fields_reach_the_server(
    make_llm: Callable[..., AI21], fields: dict[str, float], message: str, where: str
) -> None:
    llm = make_llm(additional_kwargs=fields) if where == "additional_kwargs" else make_llm()
    kwargs = fields if where == "call" else {}
    with pytest.raises(ai21.errors.BadRequest) as raised:
        llm.chat([ChatMessage(role="user", content="Hi")], **kwargs)
    assert message in str(raised.value)


def test_seed_and_top_k_steer_sampling(make_llm: Callable[..., AI21], servers: Servers) -> None:
    # min_tokens holds back the end token, so the model must sample past its answer: with
    # every other token equally likely, only the seed makes that tail repeatable.
    llm = make_llm(max_tokens=16, temperature=1.0)
    messages = [ChatMessage(role="user", content="Hi")]

    def tail(**kwargs: int) -> str:
        text = llm.chat(messages, min_tokens=12, **kwargs).message.content or ""
        assert text.startswith(servers.answer)
        return text.removeprefix(servers.answer)

    assert tail(seed=7) == tail(seed=7) != tail(seed=8)
    assert tail(seed=7, top_k=1) == tail(seed=8, top_k=1)  # top-1: the seed no longer matters
    assert llm.chat(messages, top_k=1, seed=3).message.content == servers.answer


# --------------------------------------------------------------------------- metadata


def test_metadata_reads_the_served_context_window_once_when_asked(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    before = servers.requests_seen("/v1/models")
    llm = make_llm()
    assert servers.requests_seen("/v1/models") == before  # nothing asked at construction
    metadata = llm.metadata
    assert llm.metadata.context_window == metadata.context_window == MAX_MODEL_LEN
    assert servers.requests_seen("/v1/models") == before + 1
    assert metadata.is_function_calling_model
    assert metadata.is_chat_model
    assert metadata.model_name == MODEL


def test_user_overrides_win_over_the_server(make_llm: Callable[..., AI21]) -> None:
    metadata = make_llm(context_window=1000, is_function_calling_model=False).metadata
    assert metadata.context_window == 1000
    assert not metadata.is_function_calling_model


# --------------------------------------------------------------------------- deployment and keys


@pytest.mark.parametrize("deployment", [None, "vllm", "openai-compatible"])
def test_deployment_is_named_or_inferred_from_the_v1_url(
    servers: Servers, deployment: str | None
) -> None:
    extra = {} if deployment is None else {"deployment": deployment}
    llm = AI21(model=MODEL, base_url=servers.url, api_key=servers.key, max_tokens=16, **extra)
    assert llm.complete("Hi").text == servers.answer


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_no_key_is_needed_by_a_server_without_one(servers: Servers, method: str) -> None:
    llm = AI21(model=MODEL, base_url=servers.open_url, max_tokens=16)
    assert call(llm, method, arg_for(method, "Hi")).text == servers.answer
    assert llm.metadata.context_window == MAX_MODEL_LEN


@pytest.mark.parametrize("method", CHAT_METHODS)
@pytest.mark.parametrize("key", ["wrong-key", None], ids=["wrong", "missing"])
def test_a_bad_or_missing_key_is_unauthorized(
    make_llm: Callable[..., AI21], method: str, key: str | None
) -> None:
    with pytest.raises(ai21.errors.Unauthorized) as raised:
        call(make_llm(api_key=key), method, arg_for(method, "Hi"))
    assert raised.value.status_code == 401
    assert "Unauthorized" in str(raised.value)


# --------------------------------------------------------------------------- server errors


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_an_unknown_model_is_a_404_with_the_servers_message(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    refused = servers.requests_seen("/v1/chat/completions", "4xx")
    with pytest.raises(ai21.errors.AI21APIError) as raised:
        call(make_llm(model="ai21labs/AI21-Jamba2-Mini"), method, arg_for(method, "Hi"))
    assert raised.value.status_code == 404
    assert "The model `ai21labs/AI21-Jamba2-Mini` does not exist" in str(raised.value)
    assert servers.requests_seen("/v1/chat/completions", "4xx") == refused + 1  # no retry
