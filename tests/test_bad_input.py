"""A sweep of bad values a user could plausibly pass: each is a ValueError that names the
problem, before any request (the emulator records none), never a TypeError, an h11 or
OpenSSL error from deep inside, or a value silently sent or dropped.

``test_construction.py`` and ``test_params.py`` hold the earlier cases; this module holds the
ones a sweep over every constructor field and per-call keyword found.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ai21.errors
import httpx
import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    DocumentBlock,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.tools import FunctionTool

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, assert_notes, call

PASSWORD = "hunter2-5f1c"
KEY = "sk-test-é-7d2e9b4a"


def _closed_client() -> httpx.Client:
    client = httpx.Client(verify=False)  # no CA bundle to load: a closed client is all it takes
    client.close()
    return client


BAD_CONSTRUCTION: list[tuple[str, Callable[[Path], dict[str, Any]], str]] = [
    ("api_key int", lambda _: {"api_key": 123}, "api_key must be a string, got int"),
    ("api_key bytes", lambda _: {"api_key": b"sk-1"}, "api_key must be a string, got bytes"),
    (
        "api_key with a non-breaking space",
        lambda _: {"api_key": "sk-1\u00a0"},
        "api_key contains the non-ASCII character U+00A0 at position 4",
    ),
    (
        "api_key with a trailing space",
        lambda _: {"api_key": "sk-1 "},
        "api_key has a space at its end (copied with the key?): strip it",
    ),
    (
        "base_url: the chat endpoint pasted whole",
        lambda _: {"base_url": "http://localhost:8000/v1/chat/completions"},
        "base_url 'http://localhost:8000/v1/chat/completions' ends in the route "
        "/chat/completions: give the API's root, base_url='http://localhost:8000/v1'",
    ),
    ("base_url int", lambda _: {"base_url": 8000}, "base_url must be a string, got int"),
    (
        "base_url port out of range",
        lambda _: {"base_url": "http://localhost:80000/v1"},
        "base_url 'http://localhost:80000/v1' has port 80000; a port is 1 to 65535",
    ),
    (
        "header value with CRLF",
        lambda _: {"default_headers": {"X-Team": "a\r\nX-Injected: 1"}},
        "default_headers['X-Team'] is not a valid HTTP header value",
    ),
    (
        "header value with a trailing space",
        lambda _: {"default_headers": {"X-Team": "search "}},
        "default_headers['X-Team'] is not a valid HTTP header value",
    ),
    (
        "header value not ASCII",
        lambda _: {"default_headers": {"X-Team": "équipe"}},
        "default_headers['X-Team'] is not a valid HTTP header value",
    ),
    (
        "header name with a colon",
        lambda _: {"default_headers": {"X-Team:": "a"}},
        "default_headers has a name 'X-Team' followed by a colon (a whole 'Name: value' line? "
        "the value belongs in the dict's value), which is not an HTTP header name",
    ),
    (  # the name is quoted, not what follows it: the credential
        "header line pasted as a name",
        lambda _: {"default_headers": {f"Authorization: Bearer {PASSWORD}": "x"}},
        "default_headers has a name 'Authorization' followed by a colon, and more not shown (a "
        "whole 'Name: value' line?",
    ),
    (
        "header name with a space",
        lambda _: {"default_headers": {f"X-Api-Key {PASSWORD}": "x"}},
        "default_headers has a name 'X-Api-Key' followed by a space, and more not shown, which",
    ),
    (  # a key and its header's name swapped: none of the key is shown
        "header name with a character a key may hold",
        lambda _: {"default_headers": {f"{PASSWORD}/x==": "X-Api-Key"}},
        f"default_headers has a name with '/' at position {len(PASSWORD)} of its "
        f"{len(PASSWORD) + 4} characters (not shown), which is not an HTTP header name",
    ),
    (  # pydantic's own error names the field, not the value (it may be a pasted credential)
        "header line instead of a dict",
        lambda _: {"default_headers": f"Authorization: Bearer {PASSWORD}"},
        "default_headers\n  Input should be a valid dictionary [type=dict_type]",
    ),
    (
        "empty header name",
        lambda _: {"default_headers": {"": "a"}},
        "default_headers has an empty name, which is not an HTTP header name",
    ),
    (
        "verify: no such file",
        lambda tmp: {"verify": str(tmp / "ca.pem")},
        "is neither a CA bundle file nor a directory of CA certificates: no such path",
    ),
    ("verify empty", lambda _: {"verify": ""}, "verify='' is neither a CA bundle file"),
    (
        "cert: no such file",
        lambda tmp: {"cert": (str(tmp / "c.pem"), str(tmp / "k.pem"))},
        "which is not a file",
    ),
    ("cert empty", lambda _: {"cert": ""}, "cert='' names '', which is not a file"),
    (
        "closed http_client",
        lambda _: {"http_client": _closed_client()},
        "http_client is closed: pass an open client",
    ),
    ("timeout beyond a socket's", lambda _: {"timeout": 1e300}, "timeout"),
    ("empty model", lambda _: {"model": ""}, 'model="" names no model'),
    ("rate_limiter", lambda _: {"rate_limiter": 200}, "rate_limiter must be a LlamaIndex rate"),
    (
        "callback_manager a list",
        lambda _: {"callback_manager": []},
        "callback_manager must be a LlamaIndex CallbackManager, got list",
    ),
    ("max_tokens=True", lambda _: {"max_tokens": True}, "max_tokens must be a number, got True"),
    ("temperature=False", lambda _: {"temperature": False}, "temperature must be a number"),
    ("strict='yes'", lambda _: {"strict": "yes"}, "strict must be True or False, got 'yes'"),
    (
        "is_function_calling_model=0",
        lambda _: {"is_function_calling_model": 0},
        "is_function_calling_model must be True or False, got 0",
    ),
    (
        "num_output leaving no room",
        lambda _: {"context_window": 4096, "num_output": 4096},
        "num_output (4096) must be less than context_window (4096)",
    ),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "message"), BAD_CONSTRUCTION, ids=[c[0] for c in BAD_CONSTRUCTION]
)
def test_bad_construction_is_a_value_error_naming_it(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    tmp_path: Path,
    case: str,
    kwargs: Callable[[Path], dict[str, Any]],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        make_llm(**kwargs(tmp_path))
    assert emulator.requests == []
    assert PASSWORD not in str(caught.value)


def test_a_bad_ai21_api_host_is_named_as_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI21_API_HOST", f"http://user:{PASSWORD}@localhost:8000/v1?x=1")
    message = "AI21_API_HOST, the base_url here: base_url 'http://user:[secure]@localhost"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        AI21(api_key="k")


def test_a_setting_changed_later_is_checked_before_the_next_request(
    llm: AI21, emulator: Emulator, tmp_path: Path
) -> None:
    llm.default_headers = {"X-Team": "a\nb"}
    with pytest.raises(ValueError, match=re.escape("default_headers['X-Team']")):
        llm.complete("hi")
    llm.default_headers = {}
    llm.verify = str(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="no such path"):
        asyncio.run(llm.acomplete("hi"))
    assert emulator.requests == []


BAD_ASSIGNMENTS: list[tuple[str, Any]] = [
    ("max_retries", -1),  # was sent with one attempt and no word
    ("context_window", -5),  # was planned with
    ("system_prompt", 3),  # was sent as a number
    ("model", 3),  # was an AttributeError on the next call
    ("default_headers", "X-Team: search"),  # likewise (None is no headers, as in OpenAILike)
    ("timeout", "soon"),  # was a TypeError on the next call
    ("temperature", 5),
    ("http_client", "x"),
    ("deployment", "vllm"),  # was kept in the field and changed nothing
]


@pytest.mark.parametrize(("field", "value"), BAD_ASSIGNMENTS, ids=[f for f, _ in BAD_ASSIGNMENTS])
def test_a_bad_value_assigned_later_is_refused_at_once(
    llm: AI21, emulator: Emulator, field: str, value: Any
) -> None:
    before = getattr(llm, field)
    with pytest.raises(ValueError, match=f"validation error for AI21\n{field}\n"):
        setattr(llm, field, value)
    assert getattr(llm, field) is before  # the instance is as it was
    assert emulator.requests == []


def _j2(llm: AI21) -> AI21:
    llm.model = "j2-mid"  # the legacy Jurassic-2 dialect, on AI21's API (the emulator)
    return llm


def _role(role: str) -> ChatMessage:
    """A message whose role is no ``MessageRole`` (``model_construct`` skips validation, as
    code that builds messages from stored dicts may)."""
    return ChatMessage.model_construct(
        role=role, blocks=[TextBlock(text="x")], additional_kwargs={}
    )


def _tool_call(**kwargs: Any) -> list[ChatMessage]:
    block = ToolCallBlock(**{"tool_call_id": "c1", "tool_name": "f", **kwargs})
    return [
        ChatMessage(role="assistant", blocks=[block]),
        ChatMessage(role="tool", content="1", additional_kwargs={"tool_call_id": "c1"}),
    ]


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [FunctionTool.from_defaults(multiply)]
HI = [ChatMessage(role="user", content="hi")]
BAD_CALLS: list[tuple[str, Callable[[AI21], Any], str]] = [
    ("empty stop", lambda llm: llm.chat(HI, stop=""), "stop sequences must not be empty"),
    ("empty stop in a list", lambda llm: llm.chat(HI, stop=["END", ""]), "must not be empty"),
    (
        "parallel_tool_calls not a bool",
        lambda llm: llm.chat(HI, parallel_tool_calls="no"),
        "parallel_tool_calls must be True or False, got 'no'",
    ),
    (
        "messages as a keyword",
        lambda llm: llm.complete("hi", messages=[]),
        "messages is what this package writes from the call's arguments",
    ),
    (
        "NaN in tool arguments",
        lambda llm: llm.chat(_tool_call(tool_kwargs={"x": float("nan")})),
        "messages[0] has a tool call to 'f' whose arguments are not JSON-serializable",
    ),
    (
        "tool_required a string",
        lambda llm: llm.chat_with_tools(TOOLS, "hi", tool_required="no"),
        "tool_required must be True or False, got 'no'",
    ),
    (
        "a function as a tool",
        lambda llm: llm.chat_with_tools([multiply], "hi"),  # type: ignore[list-item]
        "tools[0] is a function, not a LlamaIndex tool",
    ),
    (
        "tools=None",
        lambda llm: llm.chat_with_tools(None, "hi"),  # type: ignore[arg-type]
        "tools must be a list of LlamaIndex tools (FunctionTool, ...), got NoneType",
    ),
    (
        "a required tool on Jurassic-2",
        lambda llm: _j2(llm).chat(HI, tool_choice="required"),
        "j2-mid (Jurassic-2) supports neither documents nor tools",
    ),
    (
        "response_format on Jurassic-2",
        lambda llm: _j2(llm).complete("hi", response_format={"type": "json_object"}),
        "j2-mid (Jurassic-2) has no response_format (it answers text only), got "
        "{'type': 'json_object'}",
    ),
    (
        "a tool call without a name",
        lambda llm: llm.chat(_tool_call(tool_name="")),
        "messages[0] has a tool call ('c1') without a tool name",
    ),
    (
        "a tool call without an id, with long arguments: quoted, cut at 200 characters",
        lambda llm: llm.chat(
            [
                ChatMessage(
                    role="assistant",
                    content="",
                    additional_kwargs={
                        "tool_calls": [{"function": {"name": "f", "arguments": "x" * 5000}}]
                    },
                )
            ]
        ),
        "messages[0] has a tool call without a string 'id' and 'function.name': "
        + repr({"function": {"name": "f", "arguments": "x" * 5000}})[:200]
        + "...",
    ),
    (
        "a tool without a name: quoted, cut at 200 characters",
        lambda llm: llm.chat(
            HI, tools=[{"type": "function", "function": {"x": "y" * 5000}}], tool_choice="auto"
        ),
        "tools[0] must be a function definition with a string function.name, got "
        + repr({"type": "function", "function": {"x": "y" * 5000}})[:200]
        + "...",
    ),
    (
        "a text document that is not UTF-8",
        lambda llm: llm.chat(
            [
                ChatMessage(
                    role="user",
                    blocks=[DocumentBlock(data=b"caf\xe9", document_mimetype="text/plain")],
                )
            ]
        ),
        "messages[0] has a DocumentBlock of type 'text/plain' that is not UTF-8 text",
    ),
    (
        "an unknown role",
        lambda llm: llm.chat([*HI, _role("wizard")]),
        "messages[1] has role 'wizard', which the AI21 API does not support",
    ),
]


@pytest.mark.parametrize(("case", "bad_call", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_are_a_value_error_before_any_request(
    llm: AI21, emulator: Emulator, case: str, bad_call: Callable[[AI21], Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        bad_call(llm)
    assert emulator.requests == []


def test_fields_that_would_replace_the_conversation_are_refused(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    llm = make_llm(additional_kwargs={"messages": [{"role": "user", "content": "other"}]})
    with pytest.raises(ValueError, match=r"^messages is what this package writes"):
        llm.complete("hi")
    assert emulator.requests == []


@pytest.mark.parametrize("method", METHOD_IDS)
def test_a_lone_surrogate_is_refused_before_any_request(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    """``b"caf\\xe9".decode("utf-8", "surrogateescape")``: the stdlib would write it as an
    escape that servers cannot decode (the emulator answers 500, retried as transient)."""
    text = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(ValueError, match=r"lone surrogate U\+DCE9"):
        call(llm, method, arg_for(method, text))
    assert emulator.requests == []


def test_paired_surrogates_and_escaped_backslashes_are_sent(llm: AI21, emulator: Emulator) -> None:
    text = "emoji \U0001f600, a path C:\\udata"
    llm.complete(text)
    assert emulator.last_request.json["messages"][-1]["content"] == text


# ------------------------------------------------------------------ secrets in errors

BAD_URLS_WITH_A_PASSWORD = [
    f"http://user:{PASSWORD}@localhost:8000/v1?x=1",
    f"http://user:{PASSWORD}@localhost:8000/v1#top",
    f"ftp://user:{PASSWORD}@localhost/v1",
    f"user:{PASSWORD}@localhost:8000/v1",
    f"http://user:{PASSWORD}@/v1",
    f"http://user:{PASSWORD}@localhost:80000/v1",
    f"http://user:{PASSWORD}@localhost:8000/v1\n",
    f"http://user:{PASSWORD}@localhost:port/v1",
    "http://user:pass/word@localhost:8000/v1",  # httpx reads "pass" as the port
    f"http://user:{PASSWORD}@localhost:8000/v1/chat/completions",
]


@pytest.mark.parametrize("deployment", [None, "vllm"])
@pytest.mark.parametrize("base_url", BAD_URLS_WITH_A_PASSWORD)
def test_a_bad_base_url_is_refused_without_its_password(
    base_url: str, deployment: str | None
) -> None:
    kwargs = {} if deployment is None else {"deployment": deployment}
    with pytest.raises(ValueError, match=r"^base_url '[^ ]*user:\[secure\]@") as caught:
        AI21(api_key="k", base_url=base_url, **kwargs)
    password = PASSWORD if PASSWORD in base_url else "pass"
    error: BaseException | None = caught.value
    while error is not None:
        assert password not in repr(error)
        assert password not in str(error)
        error = error.__cause__ or error.__context__


def test_a_bad_base_url_set_later_is_refused_without_its_password(llm: AI21) -> None:
    llm.base_url = f"http://user:{PASSWORD}@localhost:8000/v1?x=1"
    with pytest.raises(ValueError, match="must not have a query") as caught:
        llm.complete("hi")
    assert PASSWORD not in str(caught.value)


def test_a_key_that_is_not_ascii_is_refused_without_echoing_it() -> None:
    """httpx's ``UnicodeEncodeError`` on the first request held the whole ``Authorization``
    header in its ``repr``."""
    with pytest.raises(ValueError, match=r"U\+00E9 at position 8") as caught:
        AI21(api_key=KEY, base_url="http://127.0.0.1:1/v1", model="m")
    assert KEY not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


# ------------------------------------------------------------------ a path the server lacks


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_404_names_the_url_in_a_note_and_keeps_the_sdks_error(
    ai21_emulator_vllm: Emulator, method: str
) -> None:
    """A vLLM server's root without ``/v1``: the server cannot say more than 404 (its
    discovery 404 was logged); the SDK's exception and message stay, a note says where."""
    root = ai21_emulator_vllm.base_url.removesuffix("/v1")
    llm = AI21(base_url=root, deployment="vllm", model="ai21labs/AI21-Jamba2-3B", max_retries=0)
    with pytest.raises(
        ai21.errors.AI21APIError, match=r"^Failed with http status code: 404"
    ) as caught:
        call(llm, method, arg_for(method))
    assert_notes(
        caught.value,
        [
            f"AI21: POST {root}/chat/completions answered 404: is base_url the server's /v1 URL, "
            "and model= a name it serves (GET <base_url>/models lists them)?"
        ],
    )
