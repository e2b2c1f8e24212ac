"""One bad field in a discovery answer is that field not said: the rest of what the server said
is kept, and the names it reports are clipped in messages. Over real HTTP against scripted
loopback servers (``tests/local_servers.py``); then every kind's reading of answers of any
shape (property-based), which never raises."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._deployments import discover, kinds
from llama_index.llms.ai21._discovery import MAX_CONTEXT, Ask, shown_names
from tests import local_servers as ls

JAMBA2 = "ai21labs/AI21-Jamba2-3B"
JAMBA2_WINDOW = 256_000  # the model table's, when the server's figure is not said
DEEP = b"[" * 1000 + b"]" * 1000  # parses (orjson reads 1024 deep); str() of it recurses


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    return caplog


def _listing(entry: dict[str, Any]) -> ls.Script:
    """A server listing one model (``entry`` over vLLM's fields), answering nothing else."""
    listing = {"object": "list", "data": [{"id": JAMBA2, "object": "model", **entry}]}
    return ls.Script(routes={("GET", "/v1/models"): (200, listing)})


@pytest.mark.parametrize(
    "owned_by", [["vllm"], {"name": "vllm"}, 5], ids=["list", "object", "number"]
)
def test_an_owner_that_is_not_a_string_is_not_said(owned_by: Any) -> None:
    with ls.serving(_listing({"owned_by": owned_by, "max_model_len": 32768})) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.complete("hi").text == "Hello from a laptop."
        # Not recognised by its owner (nor by Ollama's probe): the generic kind reads the rest.
        assert (llm.deployment, llm.model) == ("openai-compatible", JAMBA2)
        assert llm.metadata.context_window == 32768


@pytest.mark.parametrize(
    "max_model_len",
    [b"9" * 400, b"9" * 5000, str(2**63 - 1).encode(), b"0", b"true"],
    ids=["400-digits", "5000-digits", "int64-max", "zero", "bool"],
)
def test_a_context_length_no_server_has_is_not_said(max_model_len: bytes) -> None:
    listing = (
        b'{"object": "list", "data": [{"id": "%s", "owned_by": "vllm", "max_model_len": %s}]}'
        % (JAMBA2.encode(), max_model_len)
    )
    script = ls.Script(routes={("GET", "/v1/models"): (200, listing)})
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url)  # orjson refuses 400 digits, int() 4,300
        assert llm.metadata.context_window == JAMBA2_WINDOW
        assert (llm.deployment, llm.model) == ("vllm", JAMBA2)


@pytest.mark.parametrize(
    ("show", "version", "window"),
    [
        (b'"parameters": "num_ctx ' + b"9" * 5000 + b'"', "0.12.3", 4096),  # int() refuses it
        (b'"parameters": "num_ctx \\u00b2"', "0.12.3", 4096),  # a digit int() cannot read
        (b'"parameters": "stop x"', "0." + "9" * 5000, 2048),  # a version unread: older
        (b'"model_info": {"general.architecture": ' + DEEP + b"}", "0.12.3", 4096),
    ],
    ids=["num_ctx-5000-digits", "num_ctx-superscript", "version-5000-digits", "arch-deep"],
)
def test_ollama_fields_that_cannot_be_read_are_not_said(
    show: bytes, version: str, window: int
) -> None:
    script = ls.ollama(loaded_context=None, version=version)
    body = b'{"capabilities": ["completion", "tools"], ' + show + b"}"
    script.routes[("POST", "/api/show")] = (200, body)
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.metadata.context_window == window  # Ollama's default, assumed
        assert (llm.deployment, llm.model) == ("ollama", ls.OLLAMA_MODEL)
        assert llm.metadata.is_function_calling_model  # the rest of /api/show is kept


def test_an_error_body_of_any_shape_is_a_failed_answer(
    warnings: pytest.LogCaptureFixture,
) -> None:
    script = ls.lmstudio_03(loaded_context_length=6144)
    script.routes[("GET", "/api/v1/models")] = (200, b'{"error": ' + DEEP + b"}")
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url)
        assert llm.metadata.context_window == 6144  # from /api/v0/models, asked next
        assert (llm.deployment, llm.model) == ("lmstudio", ls.LMS_KEY)
    assert "/api/v1/models: HTTP 200 with an error body: a list" in warnings.text


def test_a_listing_of_many_models_is_clipped_in_the_log(
    warnings: pytest.LogCaptureFixture,
) -> None:
    listing = {"data": [{"id": f"model-{i:07d}", "owned_by": "vllm"} for i in range(90_000)]}
    script = ls.Script(routes={("GET", "/v1/models"): (200, listing)})
    with ls.serving(script) as server:
        llm = AI21(base_url=server.base_url, model="not-listed", deployment="vllm")
        assert llm.metadata.context_window
    [line] = [r.getMessage() for r in warnings.records if "does not list" in r.getMessage()]
    assert "(it serves ['model-0000000', 'model-0000001'," in line
    assert "'model-0000009'] and 89990 more)" in line
    assert len(line) < 800


def test_a_listing_of_many_models_is_clipped_in_the_error() -> None:
    listing = {"data": [{"id": f"model-{i:07d}", "owned_by": "vllm"} for i in range(90_000)]}
    script = ls.Script(routes={("GET", "/v1/models"): (200, listing)})
    with ls.serving(script) as server, pytest.raises(ValueError, match="model= was not") as caught:
        AI21(base_url=server.base_url).complete("hi")
    assert "'model-0000009'] and 89990 more)" in str(caught.value)
    assert len(str(caught.value)) < 800


def test_shown_names_clips_the_list_and_each_name() -> None:
    assert shown_names([]) == "[]"
    assert shown_names(["a", "b"]) == "['a', 'b']"
    assert shown_names([str(i) for i in range(11)]) == f"{[str(i) for i in range(10)]} and 1 more"
    assert shown_names(["x" * 500]) == f"[{'x' * 100!r}...]"


# ------------------------------------------------------------ answers of any shape, any kind

_deep: list[Any] = []
for _ in range(1000):
    _deep = [_deep]
ODD = st.sampled_from(  # what a field may hold instead: each a value that has broken a reading
    [
        None,
        True,
        -1,
        0,
        1.5,
        float("nan"),
        2**63 - 1,
        10**400,
        "",
        "x",
        "9" * 5000,
        "num_ctx " + "9" * 5000,
        "num_ctx \u00b2",
        ["vllm"],
        {"a": 1},
        _deep,
    ]
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return value | ODD


NAME = _maybe(st.sampled_from([JAMBA2, "m"]))
ENTRY = st.fixed_dictionaries(
    {
        "id": NAME,
        "name": NAME,
        "model": NAME,
        "key": NAME,
        "owned_by": _maybe(st.sampled_from(["vllm", "llamacpp", "library", "organization_owner"])),
        "max_model_len": _maybe(st.integers(1, 10**6)),
        "context_length": _maybe(st.integers(1, 10**6)),
        "max_context_length": _maybe(st.integers(1, 10**6)),
        "loaded_context_length": _maybe(st.integers(1, 10**6)),
        "root": NAME,
        "aliases": _maybe(st.lists(NAME, max_size=2)),
        "meta": _maybe(st.fixed_dictionaries({"n_ctx": ODD, "n_ctx_train": ODD})),
        "type": _maybe(st.just("llm")),
        "state": _maybe(st.just("loaded")),
        "capabilities": ODD,
        "loaded_instances": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"id": NAME, "config": _maybe(st.fixed_dictionaries({"context_length": ODD}))}
                ),
                max_size=2,
            )
        ),
    },
)
LISTING = _maybe(st.fixed_dictionaries({"data": _maybe(st.lists(_maybe(ENTRY), max_size=3))}))
ANSWERS = st.fixed_dictionaries(
    {
        "/v1/models": LISTING,
        "/props": _maybe(
            st.fixed_dictionaries(
                {
                    "default_generation_settings": _maybe(st.fixed_dictionaries({"n_ctx": ODD})),
                    "chat_template_caps": _maybe(
                        st.fixed_dictionaries({"supports_tool_calls": ODD})
                    ),
                    "chat_template": ODD,
                },
            )
        ),
        "/api/version": _maybe(st.fixed_dictionaries({"version": ODD})),
        "/api/ps": _maybe(st.fixed_dictionaries({"models": _maybe(st.lists(ENTRY, max_size=2))})),
        "/api/show": _maybe(
            st.fixed_dictionaries(
                {
                    "parameters": ODD,
                    "capabilities": ODD,
                    "model_info": _maybe(
                        st.fixed_dictionaries(
                            {"general.architecture": ODD, "jamba.context_length": ODD},
                        )
                    ),
                },
            )
        ),
        "/api/v1/models": _maybe(
            st.fixed_dictionaries({"models": _maybe(st.lists(ENTRY, max_size=2))})
        ),
        "/api/v0/models": LISTING,
    }
)


class _Answering(Ask):
    """Discovery whose answers are given, as decoded JSON: what reads them runs, no HTTP."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__(None, "http://127.0.0.1:9/v1", {}, 1.0)  # type: ignore[arg-type]
        self.answers = answers

    def answer(self, method: str, url: httpx.URL, body: dict[str, Any] | None) -> Any:
        return self.answers[url.path]


@pytest.mark.parametrize("kind", sorted({cls.kind for cls in kinds().values()} - {"ai21"}))
@settings(max_examples=150)
@given(answers=ANSWERS, model=st.none() | st.sampled_from([JAMBA2, "m"]))
def test_any_answer_is_read_without_raising(
    kind: str, answers: dict[str, Any], model: str | None
) -> None:
    ask = _Answering(answers)
    _, served = discover(kinds()[kind](), ask, model)
    for window in (served.context_window, served.trained_context_window):
        assert window is None or 0 < window <= MAX_CONTEXT
    assert all(isinstance(name, str) for name in served.models)
    assert all(len(note) < 1000 for note in [*served.notes, *ask.failures])
