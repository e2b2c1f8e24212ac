"""Request dialects: how a call is written for the server and how its answer is read.

``base.py`` asks the deployment for the dialect of its model and then only builds
:class:`Call` objects and parses answers through it. Two dialects exist: Jamba chat
(:class:`JambaChat`, here: AI21's chat completions, which OpenAI-compatible servers such as
vLLM speak too) and legacy Jurassic-2 (:mod:`._j2`). Both are pure: no I/O. The request
fields both take are checked here (:func:`check_params`, against the deployment's
:class:`Limits`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
    ThinkingBlock,
)

from llama_index.llms.ai21._convert import (
    chat_response_from_ai21,
    chosen_tool,
    completion_response_from_ai21,
    documents_in_prompt,
    normalize_tool_choice,
    to_ai21_messages,
    to_flat_documents,
    tool_names,
)
from llama_index.llms.ai21._markup import Markup, note_length_cut, tool_markup
from llama_index.llms.ai21._models import ModelInfo
from llama_index.llms.ai21._stream import ChatStreamState

CHAT_PATH = "/chat/completions"

logger = logging.getLogger("llama_index.llms.ai21")

# Keywords that steer this adapter and never go into the payload as-is.
CONTROL_KWARGS = ("preamble_override", "documents", "parallel_tool_calls", "tool_choice")


# ------------------------------------------------------------------ request fields
# Checked before any request, against the deployment's limits: a value that the server would
# refuse, or that cannot go into JSON, becomes a ValueError that names the keyword.

# Deepest nesting accepted in a request field. JSON Schemas and tool arguments are a few
# levels deep; this bound keeps a pathological value from exhausting the interpreter's stack.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Limits:
    """What a deployment accepts, checked client-side. ``None``: the server decides."""

    max_tokens: int | None
    response_formats: frozenset[str]
    n_max: int | None = 16
    no_logprobs: str | None = None
    """Why ``logprobs`` / ``top_logprobs`` are refused here; None where the server sends them."""


# Documented ranges of AI21's chat API (docs.ai21.com, Jamba API reference):
# name -> (low, high, low_is_exclusive); ``high`` None means "no upper bound here".
_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, True),
}
_INTEGERS = ("max_tokens", "n")
# Fields built from the call itself: a keyword or ``additional_kwargs`` entry of that name
# would replace the conversation the caller passed, silently.
BUILT_FIELDS = ("messages", "prompt")
# Keywords of openai-python's ``create()`` that are options of the request, not fields of its
# body (https://github.com/openai/openai-python, "Undocumented request params"), and OpenAI's
# per-tool ``strict``: code written for LlamaIndex's OpenAI integrations passes them, and as
# body fields here a server would ignore them (vLLM ignores fields it does not know).
# ``extra_body`` is read instead (``open_extra_body``), and a call's ``extra_headers`` are sent
# as its headers (``base.py``): only ``additional_kwargs`` can bring them here.
REQUEST_OPTIONS = {
    "extra_headers": (
        "headers for every request are the default_headers= field; per call, extra_headers= "
        "is sent as headers"
    ),
    "extra_query": (
        "query parameters are not supported: pass your own http_client=/async_http_client= "
        "built with them, httpx.Client(params=...)"
    ),
    "timeout": (
        "the timeout is the instance's: AI21(timeout=...) (seconds for each attempt's "
        "connect, read and write), or set llm.timeout before the call"
    ),
    "strict": (
        "strict belongs to the tools' definitions: pass it to chat_with_tools(), "
        "predict_and_call() and their twins, or set AI21(strict=True)"
    ),
}


def check_json(name: str, value: Any, depth: int = 0) -> None:
    """Fail early, naming the keyword, for values that cannot go into a JSON payload."""
    if value is None or isinstance(value, str | bool | int):
        return
    if depth >= MAX_DEPTH:
        raise ValueError(f"{name} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{name} has a non-string key {key!r}; JSON keys are strings")
            check_json(f"{name}[{key!r}]", item, depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(f"{name}[{i}]", item, depth + 1)
        return
    raise ValueError(f"{name} must be JSON-serializable, got a {type(value).__name__}")


def _check_number(name: str, value: Any, low: float, high: float | None, exclusive: bool) -> None:
    integer = name in _INTEGERS
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    too_low = value <= low if exclusive else value < low
    too_high = high is not None and value > high
    if too_low or too_high or (isinstance(value, float) and math.isnan(value)):
        bracket = "(" if exclusive else "["
        upper = f"{high}]" if high is not None else "inf)"
        raise ValueError(f"{name} must be in {bracket}{low}, {upper}, got {value!r}")


def check_params(params: dict[str, Any], limits: Limits, *, stream: bool) -> None:
    """Check the request fields in ``params`` (model-independent sampling fields and extras)."""
    for name, (low, high, exclusive) in _RANGES.items():
        if params.get(name) is not None:
            _check_number(name, params[name], low, high, exclusive)
    if params.get("max_tokens") is not None:
        _check_number("max_tokens", params["max_tokens"], 0, limits.max_tokens, False)
    if params.get("n") is not None:
        _check_number("n", params["n"], 1, limits.n_max, False)
        if stream and params["n"] > 1:
            # AI21's API refuses it; a server that streams n answers interleaves their chunks,
            # and a streamed ChatResponse holds one answer (its deltas would mix all of them).
            raise ValueError(
                "n must be 1 when streaming (a streamed response holds one answer; without "
                "streaming, raw['choices'] holds all n)"
            )
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise ValueError(f"stop must be a string or a list of strings, got {stop!r}")
    if stop == "" or (isinstance(stop, list) and "" in stop):
        # An empty sequence is found at once: the server ends every answer before it begins
        # (vLLM) or refuses the request.
        raise ValueError(f"stop sequences must not be empty, got {stop!r}")
    if params.get("logprobs") is not None or params.get("top_logprobs") is not None:
        _check_logprobs(params, limits)
    if not params.keys().isdisjoint(REQUEST_OPTIONS):
        check_request_options(params)
    for name in BUILT_FIELDS:
        if name in params:
            raise ValueError(
                f"{name} is what this package writes from the call's arguments; pass the "
                f"conversation to the method instead of a {name!r} keyword or "
                "additional_kwargs entry"
            )
    response_format = params.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if not limits.response_formats:
            raise ValueError(f"response_format is not accepted here, got {response_format!r}")
        if kind not in limits.response_formats:
            allowed = " or ".join(
                f'{{"type": "{k}", ...}}' for k in sorted(limits.response_formats)
            )
            raise ValueError(f"response_format must be {allowed}, got {response_format!r}")
        if kind == "json_schema" and not isinstance(response_format.get("json_schema"), dict):
            raise ValueError(
                'response_format {"type": "json_schema"} needs a "json_schema" object '
                '({"name": ..., "schema": {...}})'
            )
    for name, value in params.items():
        check_json(name, value)


def check_request_options(fields: Mapping[str, Any]) -> None:
    """A ``ValueError`` for an option of openai-python's ``create()`` (``REQUEST_OPTIONS``)
    among request fields, saying what to do instead."""
    for name, advice in REQUEST_OPTIONS.items():
        if name in fields:
            raise ValueError(f"{name}= is not a request field (nothing was sent): {advice}")


def open_extra_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with its ``extra_body`` opened: openai-python's way to send fields its
    ``create()`` does not name (vLLM's docs pass ``top_k``, ``chat_template_kwargs`` and the
    like so), written by code for LlamaIndex's OpenAI integrations. Its entries are request
    fields and win over the ones beside it, as openai-python merges them over its body."""
    extra = fields["extra_body"]
    rest = {k: v for k, v in fields.items() if k != "extra_body"}
    if extra is None:
        return rest
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        # Its type only, as for extra_headers: what was passed may hold a credential.
        got = type(extra).__name__
        if isinstance(extra, Mapping):
            got += " with a key that is not a string"
        raise ValueError(
            f"extra_body must be a dict of request fields (e.g. {{'top_k': 20}}), got {got}"
        )
    return {**rest, **extra}


def _check_logprobs(params: dict[str, Any], limits: Limits) -> None:
    """``logprobs`` (a bool) and ``top_logprobs`` (the candidates per token besides the token
    itself), as OpenAI's API and vLLM take them: vLLM refuses ``top_logprobs`` without
    ``logprobs=True`` (its ``ChatCompletionRequest``), and so does this, before the request."""
    asked, top = params.get("logprobs"), params.get("top_logprobs")
    if asked is not None and not isinstance(asked, bool):
        raise ValueError(f"logprobs must be True or False, got {asked!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise ValueError(f"top_logprobs must be an integer >= 0, got {top!r}")
    if top and not asked:
        raise ValueError(f"top_logprobs={top} needs logprobs=True")
    if (asked or top) and limits.no_logprobs is not None:
        raise ValueError(limits.no_logprobs)


# ------------------------------------------------------------------ calls


class Call(NamedTuple):
    """One request to send: where, what, and how to treat the answer (a tuple: built on
    every call, so kept cheap)."""

    path: str
    body: dict[str, Any]
    single_tool_call: bool = False  # keep only the first tool call of the answer
    markup: Markup | None = None  # what to read out of the answer text (``_markup``)
    headers: Mapping[str, str] | None = None  # the call's own (``extra_headers=``), over the rest


class Dialect(Protocol):
    streams: bool
    """Whether the server can stream answers (else a stream is the whole answer, once)."""

    @property
    def limits(self) -> Limits:
        """What a call may ask of this model there (its ``response_format`` kinds, ...)."""
        ...

    def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: dict[str, Any],
        *,
        system_prompt: str | None,
        stream: bool,
    ) -> Call: ...

    def complete(
        self, model: str, prompt: str, params: dict[str, Any], *, system_prompt: str | None
    ) -> Call: ...

    def chat_response(self, raw: Any, call: Call | None = None) -> ChatResponse: ...

    def completion_response(self, raw: Any, call: Call | None = None) -> CompletionResponse: ...

    def stream_state(self, call: Call | None = None) -> ChatStreamState: ...


class Server(Protocol):
    """What Jamba chat needs to know about the server it writes for (a ``Deployment`` is one).

    Imports point one way: deployments import their dialects, never the reverse.
    """

    @property
    def kind(self) -> str: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def reasoning_fields(self) -> tuple[str, ...]: ...

    @property
    def tool_choice_support(self) -> str: ...

    @property
    def reads_documents(self) -> bool: ...

    @property
    def tool_call_advice(self) -> str | None: ...

    def first_warning(self, topic: str) -> bool: ...

    def stream_fields(self) -> dict[str, Any]: ...

    def documents(self, documents: Sequence[Any]) -> list[dict[str, Any]]: ...

    def model_info(self, model: str) -> ModelInfo: ...


def user_message(prompt: str) -> list[ChatMessage]:
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


class JambaChat:
    """Jamba chat completions (``POST {base_url}/chat/completions``), streaming or not."""

    streams = True

    def __init__(self, deployment: Server) -> None:
        self.deployment = deployment
        # The deployment's facts, read once: base.py keeps a dialect per model and makes a new
        # one when the deployment learns about its server, so they cannot go stale here, and
        # every later call stays inside this module and _convert (docs/architecture.md).
        self._info: tuple[str, ModelInfo] | None = None
        self._stream_fields: dict[str, Any] | None = None

    @property
    def limits(self) -> Limits:
        return self.deployment.limits

    def _model_info(self, model: str) -> ModelInfo:
        if self._info is None or self._info[0] != model:
            self._info = (model, self.deployment.model_info(model))
        return self._info[1]

    def _tool_choice(self, params: dict[str, Any]) -> None:
        """Apply ``tool_choice`` the way the deployment's server honours it (in place).

        ``"native"``: sent as given, every tool offered. ``"required_only"``: a named tool is
        offered alone with ``"required"``. ``"ignored"`` and ``"emulated"``: never sent; a named
        tool is offered alone, ``"none"`` offers no tools, and a required or named call that
        cannot be enforced is logged once (WARNING), never dropped silently.
        """
        raw = params.pop("tool_choice", None)
        if raw is None:
            return
        choice = normalize_tool_choice(raw)
        offered = tool_names(params.get("tools"))
        name = chosen_tool(choice)
        if name is not None and name not in offered:
            raise ValueError(
                f"tool_choice names {name!r}, which is not among the tools offered {offered}"
            )
        if not offered:
            if choice == "required":
                raise ValueError(
                    "tool_choice='required' asks for a tool call, but no tools are offered"
                )
            return  # "auto" or "none" with nothing to choose from
        support = self.deployment.tool_choice_support
        if name is not None and support != "native":
            params["tools"] = [t for t in params["tools"] if t["function"]["name"] == name]
        if support == "native":
            params["tool_choice"] = choice
        elif support == "required_only":
            params["tool_choice"] = "required" if name is not None else choice
        elif choice == "none":
            params.pop("tools")
        elif choice != "auto" and self.deployment.first_warning("unenforceable tool_choice"):
            logger.warning(
                "tool_required/tool_choice=%r cannot be enforced on this server (deployment %r "
                "has no tool_choice it honours)%s; the model may answer without calling a tool",
                raw,
                self.deployment.kind,
                f": only {name!r} is offered" if name is not None else "",
            )

    def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: dict[str, Any],
        *,
        system_prompt: str | None,
        stream: bool,
    ) -> Call:
        params = dict(params)
        preamble = params.pop("preamble_override", None)
        documents = params.pop("documents", None)
        parallel = params.pop("parallel_tool_calls", None)
        if parallel is not None and not isinstance(parallel, bool):
            raise ValueError(f"parallel_tool_calls must be True or False, got {parallel!r}")
        single_tool_call = parallel is False
        params.pop("stream", None)
        # Dropped from a call that does not stream (vLLM refuses it there: "Stream options can
        # only be defined when `stream=True`"), as llama-index-llms-openai drops it; added to
        # the deployment's own on a stream (the user's keys win).
        options = params.pop("stream_options", None)
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(
                f'stream_options must be a dict (e.g. {{"include_usage": true}}), got {options!r}'
            )
        if options and stream:
            check_json("stream_options", options)
        if "chat_template_kwargs" in params:
            check_template_kwargs(params["chat_template_kwargs"])
        self._tool_choice(params)
        check_params(params, self.deployment.limits, stream=stream)
        info = self._model_info(model)
        in_messages: list[dict[str, Any]] = []  # CitableBlock / DocumentBlock documents
        converted = to_ai21_messages(
            messages,
            system_prompt=system_prompt,
            preamble_override=preamble,
            reasoning_fields=self.deployment.reasoning_fields,
            documents=in_messages,
        )
        if documents is not None or in_messages:  # an empty list asks for nothing: none sent
            documents = [*_as_list(documents), *in_messages] or None
        field = self.deployment.reads_documents and info.template_reads_documents
        if documents is not None and not field:
            # The template would never see a documents field: the prompt carries them.
            converted = documents_in_prompt(converted, to_flat_documents(documents))
        body: dict[str, Any] = {"model": model, "messages": converted}
        if stream:
            if self._stream_fields is None:
                self._stream_fields = self.deployment.stream_fields()
            body.update(self._stream_fields)
        body.update(params)
        if options and stream:
            body["stream_options"] = {**body.get("stream_options", {}), **options}
        body["stream"] = stream
        if documents is not None and field:
            body["documents"] = self.deployment.documents(documents)
        # Tool calls a server left in the text are read in the model's format (names not in
        # the table: Hermes, the format of AI21's current open models).
        tools = (
            tool_markup(info.tool_format or "hermes", self.deployment.tool_call_advice)
            if body.get("tools")
            else None
        )
        markup = Markup(info.always_reasons, tools) if info.always_reasons or tools else None
        return Call(CHAT_PATH, body, single_tool_call, markup)

    def complete(
        self, model: str, prompt: str, params: dict[str, Any], *, system_prompt: str | None
    ) -> Call:
        return self.chat(
            model, user_message(prompt), params, system_prompt=system_prompt, stream=False
        )

    # Only an answer cut at max_tokens can have spent it all on reasoning: others are not looked
    # at again (nor is _markup entered for them).

    def chat_response(self, raw: Any, call: Call | None = None) -> ChatResponse:
        asked = call is not None and bool(call.body.get("logprobs"))
        response = chat_response_from_ai21(raw, call.markup if call else None, asked)
        if asked and response.logprobs is None:
            self.no_logprobs()
        finish_reason = response.additional_kwargs.get("finish_reason")
        if finish_reason == "length":
            note_length_cut(finish_reason, response.message.content or "", _reasoning_of(response))
        return response

    def completion_response(self, raw: Any, call: Call | None = None) -> CompletionResponse:
        asked = call is not None and bool(call.body.get("logprobs"))
        response = completion_response_from_ai21(raw, call.markup if call else None, asked)
        if asked and response.logprobs is None:
            self.no_logprobs()
        finish_reason = response.additional_kwargs.get("finish_reason")
        if finish_reason == "length":
            note_length_cut(
                finish_reason, response.text, response.additional_kwargs.get("reasoning")
            )
        return response

    def stream_state(self, call: Call | None = None) -> ChatStreamState:
        if call is None or not call.body.get("logprobs"):
            return ChatStreamState(call.markup if call else None)
        return ChatStreamState(call.markup, logprobs=True, on_no_logprobs=self.no_logprobs)

    def no_logprobs(self) -> None:
        """``logprobs=True`` went unanswered (a server without them, e.g. an older release):
        said once (WARNING), never dropped silently."""
        if self.deployment.first_warning("no logprobs"):
            logger.warning(
                "logprobs=True was sent, but the server (deployment %r) answered without token "
                "log-probabilities: the responses' logprobs are None",
                self.deployment.kind,
            )


def _reasoning_of(response: ChatResponse) -> str:
    return "".join(b.content or "" for b in response.message.blocks if isinstance(b, ThinkingBlock))


def _as_list(documents: Any) -> list[Any]:
    if documents is None:
        return []
    if isinstance(documents, str | bytes | Mapping) or not isinstance(documents, Sequence):
        raise ValueError("documents must be a list (of strings, dicts or LlamaIndex Documents)")
    return list(documents)


def check_template_kwargs(value: Any) -> None:
    """``chat_template_kwargs`` must be a JSON object: the server hands its keys to the chat
    template as variables (vLLM's and llama.cpp's servers alike)."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(
            "chat_template_kwargs must be a JSON object (a dict with string keys, e.g. "
            f'{{"thinking_prefix": "..."}}), got {value!r}'
        )
