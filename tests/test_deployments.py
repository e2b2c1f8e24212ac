"""Deployment kinds and the model table, without a server: pure, table-driven."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from llama_index.llms.ai21._deployments import Deployment, choose, parse_base_url
from llama_index.llms.ai21._deployments.ai21 import AI21Studio
from llama_index.llms.ai21._deployments.llamacpp import LlamaCpp
from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._deployments.vllm import VLLM
from llama_index.llms.ai21._dialect import JambaChat
from llama_index.llms.ai21._http import user_agent
from llama_index.llms.ai21._j2 import J2
from llama_index.llms.ai21._models import (
    JAMBA_CONTEXT_WINDOW,
    describe_guess,
    is_j2,
    is_known,
    model_info,
)

# ------------------------------------------------------------------------- choosing one


@pytest.mark.parametrize(
    ("kind", "base_url", "chosen"),
    [
        (None, None, AI21Studio),
        ("ai21", "http://localhost:8000/v1", AI21Studio),  # explicit wins over the URL
        ("vllm", None, VLLM),
        ("llama.cpp", "http://localhost:8080/v1", LlamaCpp),
        ("openai-compatible", None, OpenAICompatible),
        (None, "https://api.ai21.com/studio/v1", AI21Studio),
        (None, "https://AI21.COM/v1", AI21Studio),  # the host, in any case
        (None, "https://eu.api.ai21.com/v1", AI21Studio),
        (None, "https://notai21.com/v1", OpenAICompatible),  # a lookalike host is not AI21's
        (None, "http://127.0.0.1:9/studio/v1", AI21Studio),
        (None, "http://127.0.0.1:9/studio/v1/", AI21Studio),
        (None, "http://127.0.0.1:9/studio", AI21Studio),
        (None, "http://127.0.0.1:9/v1", OpenAICompatible),
        (None, "http://127.0.0.1:9/v1/", OpenAICompatible),
        (None, "http://127.0.0.1:9/api/v1", OpenAICompatible),
        (None, "http://127.0.0.1:9/v10", AI21Studio),  # nobody claims it: the default
        (None, "http://127.0.0.1:9/v1/chat", AI21Studio),
        (None, "http://127.0.0.1:9", AI21Studio),
    ],
)
def test_choose(kind: str | None, base_url: str | None, chosen: type) -> None:
    assert choose(kind, base_url) is chosen


def test_an_unknown_kind_names_the_known_ones() -> None:
    message = (
        "deployment='bedrock' is not a known deployment kind ('ai21', 'llama-server', "
        "'llama.cpp', 'llamacpp', 'lm-studio', 'lmstudio', 'ollama', 'openai-compatible', "
        "'sglang', 'vllm')"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        choose("bedrock", None)


@pytest.mark.parametrize(
    ("kind", "meant"),
    [
        ("vLLM", "vllm"),
        ("vlm", "vllm"),
        ("llama-cpp", "llamacpp"),
        ("Ollama", "ollama"),
        ("lm_studio", "lmstudio"),
    ],
)
def test_an_unknown_deployment_close_to_a_known_one_is_named(kind: str, meant: str) -> None:
    with pytest.raises(ValueError, match=rf"\): did you mean {meant!r}\?$"):
        choose(kind, None)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        (
            "localhost:8000/v1",
            "base_url 'localhost:8000/v1' must be an http:// or https:// URL with a host, "
            "e.g. https://api.ai21.com/studio/v1 or http://localhost:8000/v1",
        ),
        (
            "http:///v1",
            "base_url 'http:///v1' must be an http:// or https:// URL with a host, "
            "e.g. https://api.ai21.com/studio/v1 or http://localhost:8000/v1",
        ),
        ("http://h/v1?a=1", "base_url 'http://h/v1?a=1' must not have a query or fragment"),
        ("http://h/v1#top", "base_url 'http://h/v1#top' must not have a query or fragment"),
        (
            "http://u:pw@h/v1?a=1",
            "base_url 'http://u:[secure]@h/v1?a=1' must not have a query or fragment",
        ),
        # A route pasted from a server's docs or a curl line, not the API's root.
        (
            "http://localhost:8000/v1/chat/completions",
            "base_url 'http://localhost:8000/v1/chat/completions' ends in the route "
            "/chat/completions: give the API's root, base_url='http://localhost:8000/v1' "
            "(requests add /chat/completions to it)",
        ),
        (
            "https://api.ai21.com/studio/v1/chat/completions/",
            "base_url 'https://api.ai21.com/studio/v1/chat/completions/' ends in the route "
            "/chat/completions: give the API's root, base_url='https://api.ai21.com/studio/v1' "
            "(requests add /chat/completions to it)",
        ),
        (
            "http://u:pw@h/v1/models",
            "base_url 'http://u:[secure]@h/v1/models' ends in the route /models: give the "
            "API's root, base_url='http://u:[secure]@h/v1' (requests add /chat/completions to it)",
        ),
        (
            "http://h/v1/completions",
            "base_url 'http://h/v1/completions' ends in the route /completions: give the "
            "API's root, base_url='http://h/v1' (requests add /chat/completions to it)",
        ),
    ],
)
def test_parse_base_url_says_what_is_wrong(base_url: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_base_url(base_url)


def test_parse_base_url_chains_the_parse_error() -> None:
    with pytest.raises(ValueError, match=r"^base_url .* is not a valid URL: ") as caught:
        parse_base_url("http://[::1/v1")
    assert isinstance(caught.value.__cause__, httpx.InvalidURL)
    with pytest.raises(ValueError, match=r"^base_url must be a string, got int$"):
        parse_base_url(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "hosted", "self_hosted"),
    [
        ("/studio/v1", True, False),
        ("/studio/v1/", True, False),
        ("/studio", True, False),
        ("/v1", False, True),
        ("/v1X", False, False),
        ("/gw/studio/v1", True, False),
    ],
)
def test_which_kind_claims_a_path(path: str, hosted: bool, self_hosted: bool) -> None:
    url = httpx.URL(f"http://127.0.0.1:9{path}")
    assert AI21Studio.claims(url) is hosted
    assert OpenAICompatible.claims(url) is self_hosted


def test_a_kind_claims_no_url_unless_it_says_so() -> None:
    class Plain(Deployment):
        kind = "plain"

    assert Plain.claims(httpx.URL("https://api.ai21.com/studio/v1")) is False


def test_parse_base_url_returns_the_url() -> None:
    assert parse_base_url("https://h:8443/v1/") == httpx.URL("https://h:8443/v1/")


# ----------------------------------------------------------------------------- requests


@pytest.mark.parametrize("deployment", [AI21Studio(), OpenAICompatible()])
def test_headers_json_user_agent_codings_key_then_extras(deployment: Any) -> None:
    assert deployment.headers("k1", {"X-Team": "a", "User-Agent": "mine"}) == {
        "Content-Type": "application/json",
        "User-Agent": "mine",
        "Accept-Encoding": "gzip, deflate",
        "Authorization": "Bearer k1",
        "X-Team": "a",
    }
    assert deployment.headers(None, {}) == {
        "Content-Type": "application/json",
        "User-Agent": user_agent(),
        "Accept-Encoding": "gzip, deflate",
    }
    assert "Authorization" not in deployment.headers("", {})


def test_what_each_kind_adds_and_accepts() -> None:
    hosted, local = AI21Studio(), OpenAICompatible()
    assert hosted.stream_fields() == {}
    assert local.stream_fields() == {"stream_options": {"include_usage": True}}
    assert (hosted.kind, hosted.aliases, local.kind, local.aliases) == (
        "ai21",
        (),
        "openai-compatible",
        (),
    )
    assert hosted.default_base_url == "https://api.ai21.com/studio/v1"
    assert local.default_base_url is None
    assert (hosted.api_key_env, hosted.api_key_required) == ("AI21_API_KEY", True)
    assert (local.api_key_env, local.api_key_required) == (None, False)
    assert (hosted.model_required, local.model_required) == (False, False)
    assert (hosted.lists_models, local.lists_models) == (False, True)
    assert hosted.limits.max_tokens == 4096
    assert hosted.limits.response_formats == {"text", "json_object"}
    assert hosted.limits.n_max == 16
    assert local.limits.max_tokens is None
    assert local.limits.response_formats == {"text", "json_object", "json_schema"}
    assert local.limits.n_max is None


def test_documents_take_each_kinds_shape() -> None:
    documents = [{"content": "Jamba is fast.", "id": "d1", "metadata": {"page": 3}}]
    assert AI21Studio().documents(documents) == [
        {"content": "Jamba is fast.", "id": "d1", "metadata": {"page": "3"}}
    ]
    assert OpenAICompatible().documents(documents) == [
        {"text": "Jamba is fast.", "id": "d1", "page": "3"}
    ]


def test_dialects() -> None:
    assert isinstance(AI21Studio().dialect("j2-ultra"), J2)
    assert isinstance(AI21Studio().dialect("jamba-mini"), JambaChat)
    assert isinstance(OpenAICompatible().dialect("ai21labs/AI21-Jamba-Mini-1.7"), JambaChat)


def test_a_server_of_ones_own_refuses_jurassic_2_only() -> None:
    message = (
        "model 'j2-mid' is a Jurassic-2 model, which only AI21's hosted API served; "
        "an OpenAI-compatible server speaks Jamba chat"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        OpenAICompatible().check("j2-mid")
    OpenAICompatible().check("ai21labs/AI21-Jamba-Mini-1.7")
    AI21Studio().check("j2-mid")


# --------------------------------------------------------------------------- model table


@pytest.mark.parametrize(
    ("model", "known", "family", "window", "output", "tools"),
    [
        ("jamba-mini", True, "jamba", JAMBA_CONTEXT_WINDOW, 4096, True),
        ("ai21labs/AI21-Jamba-Mini-1.7", True, "jamba", 256_000, 4096, True),
        ("/models/AI21-Jamba-Mini-1.7/", True, "jamba", 256_000, 4096, True),  # a local path
        ("ai21-jamba-large-1.7", True, "jamba", 256_000, 4096, True),  # lower-cased
        ("j2-ultra", True, "j2", 8192, 2048, False),
        ("J2-MID", True, "j2", 8192, 2048, False),  # matched lower-cased
        ("org/j2-custom", False, "j2", 8192, 2048, False),
        ("my-jamba-finetune", False, "jamba", 256_000, 4096, True),
        ("serving/My-JAMBA", False, "jamba", 256_000, 4096, True),
        ("gpt-4o", False, "jamba", 8192, 1024, False),
        ("xj2-thing", False, "jamba", 8192, 1024, False),
        ("org/team/j2-custom", False, "j2", 8192, 2048, False),  # the last part counts
        ("org/j2-custom/", False, "j2", 8192, 2048, False),  # a trailing slash too
        ("/srv/my-jamba/", False, "jamba", 256_000, 4096, True),
        ("ai21labs/AI21-Jamba-Mini-1.7X", False, "jamba", 256_000, 4096, True),  # a near miss
    ],
)
def test_model_info(
    model: str, known: bool, family: str, window: int, output: int, tools: bool
) -> None:
    info = model_info(model)
    assert is_known(model) is known
    assert (info.family, info.context_window, info.max_output) == (family, window, output)
    assert info.is_function_calling_model is tools
    assert info.is_chat_model is (family == "jamba")
    assert is_j2(model) is (family == "j2")


@pytest.mark.parametrize(
    ("model", "guess"),
    [
        ("jamba-9", "Jamba figures (context window 256000)"),
        ("j2-colossal", "Jurassic-2 figures (context window 8192)"),
        ("gpt-4o", "conservative default figures (context window 8192)"),
    ],
)
def test_describe_guess(model: str, guess: str) -> None:
    assert describe_guess(model) == guess
