"""Knowing the server: llama.cpp, LM Studio, Ollama, SGLang and vLLM recognised from their own
answers, the context they accept, the served model as the default ``model``, and what each
server would silently lose, over real HTTP against scripted loopback servers
(``tests/local_servers.py``) and the emulator's vLLM flavour."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import pickle
import socket
import sys
from typing import Any

import httpx
import pytest
from ai21.errors import AI21APIError
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock
from llama_index.core.indices.prompt_helper import PromptHelper
from llama_index.core.prompts import PromptTemplate

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._deployments import kinds
from llama_index.llms.ai21._deployments.llamacpp import LlamaCpp
from llama_index.llms.ai21._deployments.lmstudio import LMStudio
from llama_index.llms.ai21._deployments.ollama import Ollama
from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._discovery import MAX_ANSWER_BYTES
from llama_index.llms.ai21._models import model_info
from tests import local_servers as ls

USER = [ChatMessage(role="user", content="What is Jamba?")]
REASONING_3B = model_info("ai21labs/AI21-Jamba-Reasoning-3B")


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    return caplog


# ------------------------------------------------------------------------ recognition


@pytest.mark.parametrize(
    ("script", "kind", "model", "window", "asked"),
    [
        (ls.llamacpp(), "llamacpp", ls.GGUF, 4096, ["GET /v1/models", "GET /props"]),
        (
            ls.lmstudio(),
            "lmstudio",
            ls.LMS_KEY,
            8192,
            ["GET /v1/models", "GET /api/v1/models"],
        ),
        (
            ls.lmstudio_03(),
            "lmstudio",
            ls.LMS_KEY,
            4096,
            ["GET /v1/models", "GET /api/v1/models", "GET /api/v0/models"],
        ),
        (
            ls.ollama(),
            "ollama",
            ls.OLLAMA_MODEL,
            4096,
            ["GET /v1/models", "GET /api/version", "GET /api/ps", "POST /api/show"],
        ),
        (ls.sglang(), "sglang", "ai21labs/AI21-Jamba2-3B", 32768, ["GET /v1/models"]),
    ],
    ids=["llamacpp", "lmstudio", "lmstudio-0.3", "ollama", "sglang"],
)
def test_a_server_is_recognised_and_its_context_and_model_read_once(
    script: ls.Script, kind: str, model: str, window: int, asked: list[str]
) -> None:
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url)  # no model, no deployment: both learned
        assert server.seen == [], "nothing is asked at construction"
        metadata = [llm.metadata for _ in range(3)]
        assert (llm.deployment, llm.model) == (kind, model)
        assert {(m.context_window, m.num_output, m.model_name) for m in metadata} == {
            (window, min(4096, window // 8), model)
        }
        assert llm.complete("hi").text == "Hello from a laptop."
        assert server.chats()[0].json["model"] == model
        assert server.paths() == [*asked, "POST /v1/chat/completions"]


def test_vllm_is_recognised_from_owned_by() -> None:
    with Emulator(flavour="vllm", models=["ai21labs/AI21-Jamba2-3B"], max_model_len=8192) as vllm:
        llm = AI21(base_url=vllm.base_url)
        assert llm.complete("hi").text
        assert (llm.deployment, llm.model, llm.metadata.context_window) == (
            "vllm",
            "ai21labs/AI21-Jamba2-3B",
            8192,
        )
        assert [r.path for r in vllm.requests] == ["/v1/models", "/v1/chat/completions"]


@pytest.mark.parametrize("deployment", [None, "vllm"], ids=["recognised", "named"])
def test_the_weights_behind_a_served_name_decide_its_recipe(deployment: str | None) -> None:
    # vllm serve ai21labs/AI21-Jamba2-3B --served-model-name jamba-mini: the table knows
    # "jamba-mini" as a name whose template reads documents; Jamba2's does not, so the
    # documents must go into the prompt, or the model never sees them.
    script = ls.vllm_served_as("jamba-mini", "ai21labs/AI21-Jamba2-3B")
    with ls.serving(script) as server:
        llm = AI21(model="jamba-mini", base_url=server.base_url, deployment=deployment)
        llm.chat([ChatMessage(role="user", content="What is Jamba?")], documents=["A model."])
        [chat] = server.chats()
        assert "documents" not in chat.json
        assert chat.json["messages"][-1]["content"].startswith("Context documents:")
        assert llm.metadata.context_window == 32768


def test_an_unrecognised_server_works_as_a_generic_one(warnings: pytest.LogCaptureFixture) -> None:
    with ls.serving(ls.unknown_server()) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.complete("hi").text == "Hello from a laptop."
        llm.complete("hi")
        assert (llm.deployment, llm.model) == ("openai-compatible", "local-model")
        # Asked once (with Ollama's probe), never again per call.
        assert server.paths() == [
            "GET /v1/models",
            "GET /api/version",
            "POST /v1/chat/completions",
            "POST /v1/chat/completions",
        ]
        assert llm.metadata.context_window == 8192  # the table's guess, said in the log
    assert "Could not read the context window" in warnings.text


def test_an_explicit_kind_is_not_probed_but_asked_once_what_it_serves() -> None:
    # The first request depends on the answers (here: llama.cpp's template opens <think>, so
    # reasoning left in the text is split off); the kind is taken as given, never probed.
    with ls.serving(ls.llamacpp()) as server:
        llm = AI21(model="anything", deployment="llamacpp", base_url=server.base_url)
        llm.complete("hi")
        llm.complete("hi")
        assert llm.metadata.context_window == 4096
        assert server.paths() == [
            "GET /v1/models",
            "GET /props",
            "POST /v1/chat/completions",
            "POST /v1/chat/completions",
        ]


# ------------------------------------------------------------------------ context window


def test_the_context_in_effect_not_the_trained_length() -> None:
    with ls.serving(ls.llamacpp(n_ctx=2048, n_ctx_train=262_144)) as server:
        metadata = AI21(base_url=server.base_url).metadata
        assert (metadata.context_window, metadata.num_output) == (2048, 256)


def test_llamacpp_falls_back_to_the_models_meta_when_props_is_refused() -> None:
    refused = (404, {"error": {"code": 404, "message": "This server does not support props"}})
    with ls.serving(ls.llamacpp(n_ctx=3072, props=refused)) as server:
        assert AI21(base_url=server.base_url).metadata.context_window == 3072


@pytest.mark.parametrize("context_window", [4096, 2048])
def test_num_output_leaves_a_query_engine_room(context_window: int) -> None:
    llm = AI21(model="jamba-mini", api_key="k", context_window=context_window)
    assert llm.metadata.num_output == context_window // 8
    helper = PromptHelper.from_llm_metadata(llm.metadata)
    prompt = PromptTemplate("Context: {context_str}\nQuestion: {query_str}\nAnswer: ")
    chunks = helper.repack(prompt, ["Jamba is a hybrid model. " * 400], llm=llm)
    assert chunks
    assert all(chunk for chunk in chunks)


def test_num_output_is_capped_by_the_models_output_limit_and_overrides_win() -> None:
    assert AI21(model="jamba-mini", api_key="k").metadata.num_output == 4096
    assert AI21(model="jamba-mini", api_key="k", max_tokens=300).metadata.num_output == 300
    assert AI21(model="jamba-mini", api_key="k", num_output=99).metadata.num_output == 99


# ------------------------------------------------------------------------ model=


def test_a_name_the_server_reports_is_not_an_unknown_model(
    warnings: pytest.LogCaptureFixture,
) -> None:
    with ls.serving(ls.unknown_server()) as server:
        AI21(model="local-model", base_url=server.base_url).complete("hi")
        assert "not in llama-index-llms-ai21's model table" not in warnings.text
        AI21(model="other-model", base_url=server.base_url).complete("hi")
        assert warnings.text.count("'other-model' is not in llama-index-llms-ai21's") == 1


def test_no_unknown_model_warning_at_construction_on_a_server(
    warnings: pytest.LogCaptureFixture,
) -> None:
    AI21(model="local-model", base_url="http://127.0.0.1:9/v1")
    assert warnings.text == ""


def test_several_models_and_no_model_is_a_clear_error_before_any_chat() -> None:
    models = (ls.OLLAMA_MODEL, "llama3.2:latest")
    with ls.serving(ls.ollama(loaded_context=None, models=models)) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.metadata.model_name == ""  # metadata never fails
        with pytest.raises(ValueError, match="model= was not given") as caught:
            llm.complete("hi")
        assert "llama3.2:latest" in str(caught.value)
        assert "serves more than one model" in str(caught.value)
        assert server.chats() == []
        llm.model = "llama3.2:latest"
        assert llm.complete("hi").text


def test_without_a_model_a_server_that_did_not_answer_is_asked_again() -> None:
    server = ls.ScriptedServer(ls.llamacpp())  # listening, not answering yet
    try:
        llm = AI21(base_url=server.base_url, timeout=0.3, max_retries=0)
        with pytest.raises(ValueError, match="could not be asked which model it serves"):
            llm.complete("hi")
        server.thread.start()
        assert llm.complete("hi").text
        assert llm.model == ls.GGUF
    finally:
        if server.thread.is_alive():
            server.httpd.shutdown()
        server.httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize(
    ("server", "said", "advice"),
    [
        (
            "nothing listening",
            "/v1/models: ConnectError)",
            "nothing accepted the connection: is the server running (and done loading its "
            "model), at that host and port?",
        ),
        (
            "wants a key",
            "/v1/models: HTTP 401)",
            "the server wants a key: pass api_key=... (AI21_API_KEY is never sent to a server "
            "of your own).",
        ),
        (
            "no such route",
            "/v1/models: HTTP 404)",
            "is base_url the server's /v1 URL (e.g. http://localhost:8000/v1)? Or pass model=...",
        ),
        (
            "loading",  # llama-server while it loads the model
            "/v1/models: HTTP 503)",
            "the server is not ready (still loading its model?): try again when it is.",
        ),
    ],
)
def test_without_a_model_the_error_says_why_the_server_could_not_be_asked(
    server: str, said: str, advice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "pass model=..." for a server that is down or wants a key: the reason and the fix."""
    monkeypatch.setenv("AI21_API_KEY", "sk-not-for-self-hosted")  # never sent to /v1 servers
    with contextlib.ExitStack() as stack:
        if server == "nothing listening":
            base_url = _closed_port_url()
        elif server == "wants a key":
            base_url = stack.enter_context(Emulator(["k"], flavour="vllm")).base_url
        elif server == "loading":
            loading = (503, {"error": {"code": 503, "message": "Loading model"}})
            base_url = stack.enter_context(ls.serving(ls.Script({}, loading))).base_url
        else:  # AI21's flavour has no /v1/models
            base_url = stack.enter_context(Emulator()).base_url.replace("/studio/v1", "/v1")
        llm = AI21(base_url=base_url, max_retries=0)
        with pytest.raises(ValueError, match=r"^model= was not given") as caught:
            llm.complete("hi")
    message = str(caught.value)
    assert message.startswith("model= was not given and the server at http://127.0.0.1:")
    assert said in message
    assert message.endswith(advice)


def test_a_server_not_yet_listening_is_asked_again_once_it_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A first call while vLLM still loads its model (connection refused) does not leave the
    instance on the model table's figures for good: the next need asks again."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    base_url = _closed_port_url()
    llm = AI21(model="ai21labs/AI21-Jamba2-3B", base_url=base_url, max_retries=0)
    table = model_info("ai21labs/AI21-Jamba2-3B").context_window
    assert (llm.metadata.context_window, llm.deployment) == (table, "openai-compatible")
    assert llm.metadata.context_window == table  # asked again: still refused, not re-reported
    assert len([r for r in caplog.records if "is not ready" in r.getMessage()]) == 1
    port = httpx.URL(base_url).port
    with Emulator(flavour="vllm", port=port, max_model_len=4096) as server:
        assert (llm.metadata.context_window, llm.deployment) == (4096, "vllm")
        assert llm.complete("hi").text
        assert [r.path for r in server.requests].count("/v1/models") == 1  # then known


def test_a_llama_server_still_loading_its_model_is_asked_again_once_loaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """llama-server answers every route 503 "Loading model" while it loads: the instance
    does not keep the model table's context window (256K) for a server run with -c 4096."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    loading = (
        503,
        {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
    )
    chat = ("POST", "/v1/chat/completions")
    with ls.serving(ls.Script(routes={chat: loading}, unknown=loading)) as server:
        llm = AI21(model=ls.GGUF, base_url=server.base_url, max_retries=0)
        assert llm.metadata.context_window == model_info(ls.GGUF).context_window
        assert llm.metadata.context_window == model_info(ls.GGUF).context_window
        said = [r.getMessage() for r in caplog.records if "is not ready" in r.getMessage()]
        [line] = said
        assert "/v1/models: HTTP 503" in line
        server.script = ls.llamacpp(n_ctx=4096)  # loaded
        assert (llm.metadata.context_window, llm.deployment) == (4096, "llamacpp")


def test_a_changed_base_url_is_asked_again() -> None:
    with ls.serving(ls.llamacpp()) as first, ls.serving(ls.lmstudio()) as second:
        llm = AI21(base_url=first.base_url)
        assert (llm.metadata.context_window, llm.deployment) == (4096, "llamacpp")
        llm.base_url = second.base_url
        assert (llm.metadata.context_window, llm.deployment) == (8192, "lmstudio")
        assert llm.model == ls.LMS_KEY


def test_a_copy_keeps_what_was_learned() -> None:
    with ls.serving(ls.llamacpp()) as server:
        llm = AI21(base_url=server.base_url)
        llm.complete("hi")
        for twin in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
            assert (twin.deployment, twin.model) == ("llamacpp", ls.GGUF)
            assert twin.complete("hi").text
        unasked = AI21(base_url=server.base_url)
        for twin in (pickle.loads(pickle.dumps(unasked)), copy.deepcopy(unasked)):
            assert twin.metadata.context_window == 4096  # each copy asks on its own


# ------------------------------------------------------------------------ what each says


@pytest.mark.parametrize("tool_calls", [True, False])
def test_llamacpp_tool_support_comes_from_its_template_caps(tool_calls: bool) -> None:
    props = {"chat_template_caps": {"supports_tool_calls": tool_calls}}
    script = ls.llamacpp(model="/models/my-finetune.gguf", props=(200, props))
    with ls.serving(script) as server:
        metadata = AI21(base_url=server.base_url).metadata
        assert metadata.is_function_calling_model is tool_calls


def test_lmstudio_says_when_a_model_is_not_trained_for_tools() -> None:
    with ls.serving(ls.lmstudio(tools=False)) as server:
        llm = AI21(model="my-local-model", deployment="lmstudio", base_url=server.base_url)
        llm.model = ls.LMS_KEY  # a name the table knows keeps the table's answer
        assert llm.metadata.is_function_calling_model


def test_ollama_not_loaded_reads_a_modelfile_num_ctx_or_assumes_the_smallest_default(
    warnings: pytest.LogCaptureFixture,
) -> None:
    script = ls.ollama(loaded_context=None, parameters='num_ctx 16384\nstop "<|im_end|>"')
    with ls.serving(script) as server:
        assert AI21(base_url=server.base_url).metadata.context_window == 16384
    with ls.serving(ls.ollama(loaded_context=None)) as server:
        assert AI21(base_url=server.base_url).metadata.context_window == 4096
    assert "is not loaded and sets no num_ctx" in warnings.text
    with ls.serving(ls.ollama(loaded_context=None, version="0.6.2")) as server:
        assert AI21(base_url=server.base_url).metadata.context_window == 2048


@pytest.mark.parametrize("tools", [True, False])
def test_ollama_tool_support_from_its_capabilities(tools: bool) -> None:
    capabilities = ("completion", "tools") if tools else ("completion",)
    with ls.serving(ls.ollama(models=("mymodel:latest",), capabilities=capabilities)) as server:
        assert AI21(base_url=server.base_url).metadata.is_function_calling_model is tools


def test_ollama_warns_before_sending_a_prompt_it_would_cut(
    warnings: pytest.LogCaptureFixture,
) -> None:
    with ls.serving(ls.ollama(loaded_context=4096)) as server:
        llm = AI21(base_url=server.base_url)
        llm.complete("Short question?")
        assert "drops the oldest messages" not in warnings.text
        history = [ChatMessage(role="user", content="Tell me about Jamba. " * 300)] * 4
        llm.chat([*history, *USER])
        assert "drops the oldest messages" in warnings.text
        assert "over the 4096-token context" in warnings.text
        assert len(server.chats()) == 2, "said, not refused"


# ------------------------------------------------------------------------ never fails


def test_lmstudio_error_bodies_on_200_are_never_answers(
    warnings: pytest.LogCaptureFixture,
) -> None:
    with ls.serving(ls.lmstudio_03()) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.metadata.context_window == 4096  # from /api/v0, after /api/v1's error body
    oldest = ls.lmstudio_03()
    del oldest.routes[("GET", "/api/v0/models")]  # before 0.3.6: neither REST API
    with ls.serving(oldest) as server:
        assert AI21(base_url=server.base_url).metadata.context_window == 256_000
    assert "/api/v1/models: HTTP 200 with an error body: 'Unexpected endpoint" in warnings.text


PROPS_9999 = {"default_generation_settings": {"n_ctx": 9999}}


def test_a_slow_answer_is_given_up_and_the_rest_still_read() -> None:
    script = ls.llamacpp(n_ctx=3072, props=(200, PROPS_9999))
    script.delays["/props"] = 2.0
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url, timeout=0.5)
        assert llm.metadata.context_window == 3072  # /v1/models meta.n_ctx, not /props


@pytest.mark.parametrize("method", ["achat", "astream_chat", "acomplete", "astream_complete"])
def test_the_first_async_call_asks_the_server_off_the_event_loop(method: str) -> None:
    """Without model=, the first async call asks the server which model it serves before its
    request: on a worker thread, so the caller's event loop keeps running meanwhile."""
    script = ls.llamacpp()
    script.delays["/v1/models"] = 0.25
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url, max_retries=0)

        async def call_while_ticking() -> tuple[str, int]:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            if method in ("achat", "astream_chat"):
                messages = [ChatMessage(role="user", content="Hi")]
                answer = await getattr(llm, method)(messages)
            else:
                answer = await getattr(llm, method)("Hi")
            if method.startswith("astream"):
                answer = [chunk async for chunk in answer][-1]
            ticker.cancel()
            return str(answer), ticks

        text, ticks = asyncio.run(call_while_ticking())
        assert "Hello from a laptop." in text
        assert ticks >= 10  # about 25 in the quarter second; a blocked loop ticks once or twice
        models = [seen for seen in server.seen if seen.path == "/v1/models"]
        chats = [seen for seen in server.seen if seen.path == "/v1/chat/completions"]
    assert len(models) == 1
    assert chats[0].json["model"] == ls.GGUF  # the served model, learned before the request


def test_an_oversized_answer_is_not_read() -> None:
    huge = (200, {**PROPS_9999, "chat_template": "x" * MAX_ANSWER_BYTES})
    with ls.serving(ls.llamacpp(n_ctx=3072, props=huge)) as server:
        assert AI21(base_url=server.base_url).metadata.context_window == 3072


def test_a_refused_key_falls_back_and_the_log_has_no_secret(
    warnings: pytest.LogCaptureFixture,
) -> None:
    with ls.serving(ls.llamacpp(api_key="right-key")) as server:
        url = server.base_url.replace("http://", "http://user:url-secret@")
        llm = AI21(model="m", base_url=url, api_key="wrong-key", max_retries=0)
        assert llm.metadata.context_window == 8192
        right = AI21(base_url=server.base_url, api_key="right-key")
        assert right.metadata.context_window == 4096
        assert server.seen[-1].headers["Authorization"] == "Bearer right-key"
    assert "HTTP 401" in warnings.text
    assert "url-secret" not in warnings.text
    assert "wrong-key" not in warnings.text


@pytest.mark.parametrize(
    ("script", "deployment", "origin"),
    [
        (ls.llamacpp, "llamacpp", "(it was started with --api-key)"),
        (ls.lmstudio, "lmstudio", '("Require authentication" is on in its server settings'),
        # a server whose kind the 401 hid: the note names both ways a key is asked for
        (
            ls.lmstudio,
            None,
            "(vLLM, SGLang and llama-server want one when started with --api-key, LM Studio "
            'with "Require authentication" on)',
        ),
    ],
)
def test_a_missing_key_is_explained_in_the_servers_own_terms(
    script: Any, deployment: str | None, origin: str
) -> None:
    """LM Studio asks for a token by a server setting, not by a flag: the 401's note says which."""
    with ls.serving(script(api_key="k")) as server:
        llm = AI21(model="m", base_url=server.base_url, deployment=deployment, max_retries=0)
        with pytest.raises(AI21APIError) as raised:
            llm.complete("hi")
    assert raised.value.status_code == 401
    if sys.version_info < (3, 11):  # no exception notes (PEP 678): the same exception
        assert not hasattr(raised.value, "__notes__")
        return
    notes = "\n".join(raised.value.__notes__)
    assert f"answered 401: the server wants a key {origin}" in notes


# ------------------------------------------------------------------------ modules


@pytest.mark.parametrize(
    ("kind", "fields", "tool_choice", "documents", "formats"),
    [
        ("openai-compatible", ("reasoning", "reasoning_content"), "native", False, None),
        ("vllm", ("reasoning",), "native", True, None),
        ("sglang", ("reasoning", "reasoning_content"), "native", False, None),
        ("llamacpp", ("reasoning_content",), "required_only", False, None),
        ("lmstudio", ("reasoning_content",), "required_only", False, {"text", "json_schema"}),
        ("ollama", ("reasoning",), "ignored", False, None),
    ],
)
def test_each_server_module_states_its_servers_facts(
    kind: str, fields: tuple[str, ...], tool_choice: str, documents: bool, formats: Any
) -> None:
    cls: Any = kinds()[kind]
    assert (cls.reasoning_fields, cls.tool_choice_support, cls.reads_documents) == (
        fields,
        tool_choice,
        documents,
    )
    expected = formats or {"text", "json_object", "json_schema"}
    assert set(cls.limits.response_formats) == expected


@pytest.mark.parametrize("kind", ["lmstudio", "ollama"])
def test_servers_that_ignore_n_refuse_it_before_sending(kind: str) -> None:
    llm = AI21(model="m", deployment=kind, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="n must be in"):
        llm.complete("hi", n=2)


def test_lmstudio_refuses_json_object_before_sending() -> None:
    llm = AI21(model="m", deployment="lmstudio", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="response_format"):
        llm.complete("hi", response_format={"type": "json_object"})


@pytest.mark.parametrize(
    ("deployment", "name"),
    [
        (LlamaCpp(), "ai21labs/AI21-Jamba-Reasoning-3B-GGUF:F16"),  # llama serve -hf ...
        (LlamaCpp(), "/models/AI21-Jamba-Reasoning-3B-F16.gguf"),
        (LlamaCpp(), "/models/jamba-reasoning-3b-Q4_K_M.gguf"),
        (Ollama(), "hf.co/bartowski/ai21labs_AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M"),
        (LMStudio(), "ai21labs/jamba-reasoning-3b"),
    ],
)
def test_local_names_get_the_table_facts_of_the_model_they_package(
    deployment: OpenAICompatible, name: str
) -> None:
    assert deployment.knows(name)
    assert deployment.model_info(name) == REASONING_3B


@pytest.mark.parametrize(
    ("script", "sent_choice"),
    [
        (ls.llamacpp, "required"),  # a named choice would become "auto" on llama-server
        (ls.lmstudio, "required"),
        (ls.ollama, None),  # Ollama drops the field: never sent
        (ls.sglang, {"type": "function", "function": {"name": "multiply"}}),
    ],
    ids=["llamacpp", "lmstudio", "ollama", "sglang"],
)
def test_a_named_tool_choice_reaches_each_server_as_it_honours_it(
    script: Any, sent_choice: Any
) -> None:
    from tests.calculator import TOOLS

    with ls.serving(script()) as server:
        llm = AI21(base_url=server.base_url)  # recognised on the first request
        llm.chat_with_tools(TOOLS, "3 times 4?", tool_choice="multiply")
        body = server.chats()[0].json
        assert body.get("tool_choice") == sent_choice
        offered = [t["function"]["name"] for t in body["tools"]]
        assert offered == (["multiply", "add"] if script is ls.sglang else ["multiply"])


def test_bad_input_is_refused_before_the_server_is_asked() -> None:
    with ls.serving(ls.llamacpp()) as server:
        llm = AI21(base_url=server.base_url)
        with pytest.raises(ValueError, match="temperature"):
            llm.complete("hi", temperature=7)
        assert server.seen == []


def test_an_unrecognised_server_gets_earlier_reasoning_in_both_fields() -> None:
    from llama_index.core.base.llms.types import ThinkingBlock, ToolCallBlock

    call = ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 3, "b": 4})
    turn = ChatMessage(role="assistant", blocks=[ThinkingBlock(content="Multiply."), call])
    result = ChatMessage(role="tool", content="12", additional_kwargs={"tool_call_id": "c1"})
    with ls.serving(ls.unknown_server()) as server:
        AI21(base_url=server.base_url).chat([*USER, turn, result])
        sent = server.chats()[0].json["messages"][1]
        assert (sent["reasoning"], sent["reasoning_content"]) == ("Multiply.", "Multiply.")


def _odd_llamacpp() -> ls.Script:
    script = ls.llamacpp()
    odd = {"id": ls.GGUF, "owned_by": "llamacpp", "aliases": 5, "meta": "x"}
    script.routes[("GET", "/v1/models")] = (200, {"data": [odd, 7, None]})
    script.routes[("GET", "/props")] = (200, [1, 2])
    return script


def _odd_lmstudio() -> ls.Script:
    script = ls.lmstudio()
    native = {"models": [{"type": "llm", "key": ls.LMS_KEY, "loaded_instances": 7}, "x"]}
    script.routes[("GET", "/api/v1/models")] = (200, native)
    return script


def _odd_ollama() -> ls.Script:
    script = ls.ollama()
    script.routes[("GET", "/api/ps")] = (200, {"models": "x"})
    show = {"model_info": [], "capabilities": "tools", "parameters": 3}
    script.routes[("POST", "/api/show")] = (200, show)
    return script


@pytest.mark.parametrize("script", [_odd_llamacpp, _odd_lmstudio, _odd_ollama])
def test_answers_of_the_wrong_shape_fall_back_to_the_table(
    script: Any, warnings: pytest.LogCaptureFixture
) -> None:
    with ls.serving(script()) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.metadata.context_window in (REASONING_3B.context_window, 4096)
        assert llm.complete("hi").text == "Hello from a laptop."


def test_ollama_says_once_that_a_required_call_cannot_be_enforced(
    warnings: pytest.LogCaptureFixture,
) -> None:
    from tests.calculator import TOOLS

    with ls.serving(ls.ollama()) as server:
        llm = AI21(base_url=server.base_url)
        for _ in range(2):
            llm.chat_with_tools(TOOLS, "3 times 4?", tool_required=True)
        assert all("tool_choice" not in seen.json for seen in server.chats())
    assert warnings.text.count("cannot be enforced on this server (deployment 'ollama'") == 1


def test_reasoning_left_in_the_text_is_split_off_when_the_servers_template_thinks() -> None:
    """``llama-server --reasoning-format none`` with a GGUF whose name the table does not
    know: its template (``/props``) opens ``<think>``, so the answer is split client-side."""
    script = ls.llamacpp(model="/models/model.gguf")
    answer = ls.chat_answer("/models/model.gguf")
    answer["choices"][0]["message"]["content"] = "Two and two.</think>It is 4."
    script.routes[("POST", "/v1/chat/completions")] = (200, answer)
    with ls.serving(script) as server:
        message = AI21(base_url=server.base_url).chat(USER).message
        assert message.content == "It is 4."
        thinking = [b.content for b in message.blocks if isinstance(b, ThinkingBlock)]
        assert thinking == ["Two and two."]
    plain = ls.llamacpp(model="/models/model.gguf", props=(200, {"chat_template": "{{ x }}"}))
    plain.routes[("POST", "/v1/chat/completions")] = (200, answer)
    with ls.serving(plain) as server:
        text = AI21(base_url=server.base_url).chat(USER).message.content
        assert text == "Two and two.</think>It is 4."  # no sign of reasoning: left as sent


@pytest.mark.parametrize(
    ("template", "opens"),
    [
        (ls.REASONING_TEMPLATE, True),
        # Qwen3-like: <think> only to strip earlier reasoning, or when thinking is turned off.
        (
            "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}"
            "{%- endif %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
            "{%- if enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
            "{%- endif %}",
            False,
        ),
        ("{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", False),
    ],
    ids=["reasoning-3b", "qwen3-like", "plain"],
)
def test_only_a_generation_prompt_that_opens_think_means_always_reasoning(
    template: str, opens: bool
) -> None:
    from llama_index.llms.ai21._deployments.llamacpp import opens_think

    assert opens_think(template) is opens
