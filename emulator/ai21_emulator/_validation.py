"""FastAPI/pydantic-style request validation for the emulator (AI21's API references).

Each validator returns ``(parsed, errors)``: ``errors`` is the list that goes into a 422 body
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}, ...]}``, with messages and ``type``
codes worded like pydantic v2. All field errors are collected, as FastAPI does; the cross-field
rule "n must be 1 when stream = True" is only checked once the fields themselves are valid (like
a pydantic model validator). Unknown body keys are ignored (the SDK forwards ``**kwargs``).
Explicit ``null`` for an optional field means "use the default".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _catalog

Loc = tuple[str | int, ...]
Errors = list[dict[str, Any]]

MAX_TOKENS_LIMIT = 4096
MAX_N = 16
J2_MAX_TOKENS_LIMIT = 8191
J2_MAX_RESULTS = 16
J2_MAX_TOP_K_RETURN = 10
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCallIn:
    """A tool call inside an assistant message of the request."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    """A validated chat message; ``content`` is ``""`` where the request had ``null``."""

    role: str
    content: str
    tool_calls: tuple[ToolCallIn, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A function tool offered in ``tools``."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ChatLimits:
    """What a flavour's chat route accepts (AI21's API reference; vLLM's OpenAI-compatible
    server docs for vLLM; docs/emulator.md lists both).

    Attributes:
        models: Accepted model names; None accepts any string (vLLM answers an unknown model
            with a 404 after validation, not with a field error).
        max_tokens: Upper bound of ``max_tokens``; None: no bound here (vLLM checks it against
            ``max_model_len`` once the prompt is counted).
        min_max_tokens: Lower bound of ``max_tokens``.
        temperature_max: Upper bound of ``temperature``; None: no bound.
        documents: ``"ai21"`` (``{content, id?, metadata?: {str: str}}``) or ``"vllm"`` (dicts
            of strings; the chat template reads ``text`` and ``title``).
        response_formats: Accepted ``response_format.type`` values.
        stream_options: Whether ``stream_options`` is a known field (it needs ``stream: true``).
        single_choice_streams: Whether ``stream: true`` needs ``n == 1`` (AI21's host).
        content_parts: Whether message ``content`` may be a list of text parts (OpenAI style).
        tool_choice: Whether ``tool_choice`` is read (vLLM); AI21's host has no such field.
        logprobs: Whether ``logprobs`` and ``top_logprobs`` are read (vLLM, up to its default
            ``--max-logprobs`` of 20); AI21's host has no such fields.
        max_n: Upper bound of ``n``.
        open_tools: Whether a tool is read as vLLM's ``ChatCompletionToolsParam`` reads it:
            ``type`` defaults to ``"function"`` and ``parameters`` is any JSON object or null
            (no ``properties`` needed); AI21's host documents ``parameters`` as an object with
            ``properties``.
    """

    models: tuple[str, ...] | None
    max_tokens: int | None
    min_max_tokens: int = 0
    temperature_max: float | None = 2
    documents: str = "ai21"
    response_formats: tuple[str, ...] = ("text", "json_object")
    stream_options: bool = False
    single_choice_streams: bool = True
    content_parts: bool = False
    tool_choice: bool = False
    logprobs: bool = False
    open_tools: bool = False
    max_n: int = MAX_N


@dataclass(frozen=True)
class StreamOptions:
    """``stream_options`` of an OpenAI-compatible request (vLLM)."""

    include_usage: bool = False
    continuous_usage_stats: bool = False


@dataclass(frozen=True)
class ChatRequest:
    """A validated ``POST /chat/completions`` body.

    ``max_tokens`` is None when the body does not set it (the flavour picks the default);
    ``json_schema`` is the schema of a ``json_schema`` response format. ``tool_choice`` is
    ``"none"``, ``"auto"``, ``"required"`` or ``"named"`` (the tool is ``named_tool``) where the
    flavour reads it, else None (tools are called as ``"auto"`` would).
    """

    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    documents: tuple[str, ...] = ()
    json_mode: bool = False
    json_schema: Mapping[str, Any] | None = None
    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    stream_options: StreamOptions | None = None
    tool_choice: str | None = None
    named_tool: str | None = None
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True)
class J2Request:
    """A validated J2 ``/{model}/complete`` or ``/{model}/chat`` body."""

    model: str
    messages: tuple[Message, ...]
    num_results: int = 1
    max_tokens: int = 16
    stop: tuple[str, ...] = ()
    top_k_return: int = 0
    prompt: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


MAX_TOP_LOGPROBS = 20  # vLLM's default --max-logprobs


def error(loc: Loc, msg: str, kind: str) -> dict[str, Any]:
    """One FastAPI validation-error entry."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def missing(loc: Loc) -> dict[str, Any]:
    return error(loc, "Field required", "missing")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _literal_msg(options: Sequence[str]) -> str:
    quoted = [f"'{o}'" for o in options]
    if len(quoted) == 1:
        return f"Input should be {quoted[0]}"
    return f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"


class _Checker:
    """Collects errors while reading typed fields out of a JSON object."""

    def __init__(self) -> None:
        self.errors: Errors = []

    def string(self, obj: Mapping[str, Any], key: str, loc: Loc, *, required: bool) -> str | None:
        if key not in obj or obj[key] is None:
            if required:
                self.errors.append(missing((*loc, key)))
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.errors.append(error((*loc, key), "Input should be a valid string", "string_type"))
            return None
        return value

    def integer(
        self, obj: Mapping[str, Any], key: str, loc: Loc, default: int, low: int, high: int | None
    ) -> int:
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value):
            if isinstance(value, float):
                msg = "Input should be a valid integer, got a number with a fractional part"
                self.errors.append(error((*loc, key), msg, "int_from_float"))
            else:
                self.errors.append(
                    error((*loc, key), "Input should be a valid integer", "int_type")
                )
            return default
        self._range((*loc, key), value, low=low, high=high)
        return int(value)

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        loc: Loc,
        *,
        low: float | None = None,
        high: float | None = None,
        above: float | None = None,
    ) -> None:
        value = obj.get(key)
        if value is None:
            return
        if not _is_number(value):
            self.errors.append(error((*loc, key), "Input should be a valid number", "float_type"))
            return
        if above is not None and not value > above:
            self.errors.append(
                error((*loc, key), f"Input should be greater than {above:g}", "greater_than")
            )
            return
        self._range((*loc, key), value, low=low, high=high)

    def _range(self, loc: Loc, value: float, *, low: float | None, high: float | None) -> None:
        if low is not None and value < low:
            msg = f"Input should be greater than or equal to {low:g}"
            self.errors.append(error(loc, msg, "greater_than_equal"))
        elif high is not None and value > high:
            msg = f"Input should be less than or equal to {high:g}"
            self.errors.append(error(loc, msg, "less_than_equal"))

    def boolean(self, obj: Mapping[str, Any], key: str, loc: Loc) -> bool:
        value = obj.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.errors.append(error((*loc, key), "Input should be a valid boolean", "bool_type"))
            return False
        return value

    def obj(self, value: Any, loc: Loc) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.errors.append(error(loc, "Input should be a valid dictionary", "dict_type"))
            return None
        return value

    def array(self, value: Any, loc: Loc) -> list[Any] | None:
        if not isinstance(value, list):
            self.errors.append(error(loc, "Input should be a valid list", "list_type"))
            return None
        return value

    def objects(self, value: Any, loc: Loc) -> Iterator[tuple[int, Mapping[str, Any]]]:
        """``(index, object)`` for each item of an optional list of objects, noting errors."""
        if value is None:
            return
        for i, raw in enumerate(self.array(value, loc) or ()):
            item = self.obj(raw, (*loc, i))
            if item is not None:
                yield i, item

    def stop(self, obj: Mapping[str, Any], key: str, loc: Loc) -> tuple[str, ...]:
        value = obj.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, list) and all(isinstance(s, str) for s in value):
            return tuple(s for s in value if s)
        self.errors.append(
            error((*loc, key, "str"), "Input should be a valid string", "string_type")
        )
        if not isinstance(value, list):
            self.errors.append(
                error((*loc, key, "list[str]"), "Input should be a valid list", "list_type")
            )
        else:
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    self.errors.append(
                        error(
                            (*loc, key, "list[str]", i),
                            "Input should be a valid string",
                            "string_type",
                        )
                    )
        return ()


def body_not_object(body: Any) -> Errors:
    """Errors for a JSON body that is not an object."""
    return [
        error(
            ("body",),
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )
    ]


# --- chat/completions -----------------------------------------------------------------------


def hosted_limits() -> ChatLimits:
    """AI21's hosted chat route (AI21's API reference); read at call time, so a process may raise
    ``MAX_TOKENS_LIMIT`` for long answers (the benchmarks do)."""
    return ChatLimits(models=_catalog.JAMBA_IDS, max_tokens=MAX_TOKENS_LIMIT)


def validate_chat(
    body: Mapping[str, Any], limits: ChatLimits | None = None
) -> tuple[ChatRequest | None, Errors]:
    """Validate a ``POST /chat/completions`` body against a flavour's limits."""
    limits = limits or hosted_limits()
    c = _Checker()
    root: Loc = ("body",)

    model = c.string(body, "model", root, required=True)
    if model is not None and limits.models is not None and model not in limits.models:
        c.errors.append(error(("body", "model"), _literal_msg(limits.models), "enum"))

    messages = _messages(c, body, content_parts=limits.content_parts)
    tools = _tools(c, body.get("tools"), open_tools=limits.open_tools)
    if limits.documents == "vllm":
        documents = _string_documents(c, body.get("documents"))
    else:
        documents = _documents(c, body.get("documents"))
    json_mode, json_schema = _response_format(c, body.get("response_format"), limits)
    max_tokens: int | None = None
    if body.get("max_tokens") is not None:
        max_tokens = c.integer(
            body, "max_tokens", root, 0, limits.min_max_tokens, limits.max_tokens
        )
    elif limits.stream_options and body.get("max_completion_tokens") is not None:
        max_tokens = c.integer(
            body, "max_completion_tokens", root, 0, limits.min_max_tokens, limits.max_tokens
        )
    c.number(body, "temperature", root, low=0, high=limits.temperature_max)
    c.number(body, "top_p", root, above=0, high=1)
    stop = c.stop(body, "stop", root)
    n = c.integer(body, "n", root, 1, 1, limits.max_n)
    stream = c.boolean(body, "stream", root)
    stream_options = (
        _stream_options(c, body.get("stream_options")) if limits.stream_options else None
    )
    logprobs, top_logprobs = False, 0
    if limits.logprobs:
        logprobs = c.boolean(body, "logprobs", root)
        top_logprobs = c.integer(body, "top_logprobs", root, 0, 0, MAX_TOP_LOGPROBS)

    if c.errors:
        return None, c.errors
    if top_logprobs and not logprobs:
        # vLLM's ChatCompletionRequest.check_logprobs.
        msg = "Value error, when using `top_logprobs`, `logprobs` must be set to true."
        return None, [error(root, msg, "value_error")]
    if stream and n > 1 and limits.single_choice_streams:
        return None, [error(root, "Value error, n must be 1 when stream = True", "value_error")]
    if stream_options is not None and not stream:
        # vLLM's request model rejects it (docs/emulator.md, "vLLM flavour").
        msg = "Value error, Stream options can only be defined when `stream=True`."
        return None, [error(root, msg, "value_error")]
    tool_choice: str | None = None
    named_tool: str | None = None
    if limits.tool_choice:
        tool_choice, named_tool, problem = _tool_choice(body, tools)
        if problem is not None:
            return None, [error(root, f"Value error, {problem}", "value_error")]
    assert model is not None
    assert messages is not None
    request = ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        documents=documents,
        json_mode=json_mode,
        json_schema=json_schema,
        n=n,
        max_tokens=max_tokens,
        stop=stop,
        stream=stream,
        stream_options=stream_options,
        tool_choice=tool_choice,
        named_tool=named_tool,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
    return request, []


def _stream_options(c: _Checker, value: Any) -> StreamOptions | None:
    if value is None:
        return None
    loc: Loc = ("body", "stream_options")
    options = c.obj(value, loc)
    if options is None:
        return None
    return StreamOptions(
        include_usage=c.boolean(options, "include_usage", loc),
        continuous_usage_stats=c.boolean(options, "continuous_usage_stats", loc),
    )


_NAMED_USAGE = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`'


def _tool_choice(
    body: Mapping[str, Any], tools: tuple[ToolSpec, ...]
) -> tuple[str | None, str | None, str | None]:
    """vLLM's reading of ``tool_choice``: ``(choice, named tool, problem)``.

    As vLLM's ``ChatCompletionRequest.check_tool_usage``: absent with tools offered it is
    ``"auto"``, absent without them ``"none"``; any other choice needs ``tools``; only
    ``"none"``, ``"auto"``, ``"required"`` and a named function that is among the tools pass.
    """
    if "tool_choice" not in body:
        return ("auto" if body.get("tools") else "none"), None, None
    value = body["tool_choice"]
    if value is None or value == "none":
        return "none", None, None
    if body.get("tools") is None:
        return None, None, "When using `tool_choice`, `tools` must be set."
    if value == "required" and body.get("tools") == []:
        # vLLM reads "required" with an empty list of tools as "none", as OpenAI does
        # (ChatCompletionRequest.check_tool_usage).
        return "none", None, None
    if value in ("auto", "required"):
        return value, None, None
    if not isinstance(value, Mapping):
        return (
            None,
            None,
            (
                f"Invalid value for `tool_choice`: {value}! "
                'Only named tools, "none", "auto" or "required" are supported.'
            ),
        )
    function = value.get("function")
    if not isinstance(function, Mapping):
        return (
            None,
            None,
            f"Invalid value for `function`: `{function}` in `tool_choice`! {_NAMED_USAGE}",
        )
    if "name" not in function:
        return None, None, f"Expected field `name` in `function` in `tool_choice`! {_NAMED_USAGE}"
    if not any(tool.name == function["name"] for tool in tools):
        return (
            None,
            None,
            "The tool specified in `tool_choice` does not match any of the specified `tools`",
        )
    return "named", function["name"], None


def _messages(
    c: _Checker, body: Mapping[str, Any], *, content_parts: bool = False
) -> tuple[Message, ...] | None:
    if "messages" not in body or body["messages"] is None:
        c.errors.append(missing(("body", "messages")))
        return None
    items = c.array(body["messages"], ("body", "messages"))
    if items is None:
        return None
    if not items:
        c.errors.append(
            error(
                ("body", "messages"),
                "List should have at least 1 item after validation, not 0",
                "too_short",
            )
        )
        return None
    out: list[Message] = []
    for i, raw in enumerate(items):
        loc: Loc = ("body", "messages", i)
        if not isinstance(raw, Mapping):
            c.errors.append(
                error(
                    loc,
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                )
            )
            continue
        role = raw.get("role")
        if role is None:
            c.errors.append(
                error(
                    loc, "Unable to extract tag using discriminator 'role'", "union_tag_not_found"
                )
            )
            continue
        if role not in ROLES:
            tags = ", ".join(f"'{r}'" for r in ROLES)
            c.errors.append(
                error(
                    loc,
                    f"Input tag '{role}' found using 'role' does not match any of the "
                    f"expected tags: {tags}",
                    "union_tag_invalid",
                )
            )
            continue
        tagged: Loc = (*loc, str(role))
        if content_parts and isinstance(raw.get("content"), list):
            raw = {**raw, "content": _joined_parts(c, raw["content"], (*tagged, "content"))}
        if role == "assistant":
            content = c.string(raw, "content", tagged, required=False)
            calls = _tool_calls_in(c, raw.get("tool_calls"), (*tagged, "tool_calls"))
            out.append(Message("assistant", content or "", calls))
        elif role == "tool":
            content = c.string(raw, "content", tagged, required=True)
            call_id = c.string(raw, "tool_call_id", tagged, required=True)
            out.append(Message("tool", content or "", tool_call_id=call_id))
        else:
            content = c.string(raw, "content", tagged, required=True)
            out.append(Message(str(role), content or ""))
    return tuple(out)


def _joined_parts(c: _Checker, parts: list[Any], loc: Loc) -> str | None:
    """OpenAI-style content parts ``[{"type": "text", "text": ...}]`` as one string."""
    texts: list[str] = []
    for i, part in enumerate(parts):
        if not (
            isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ):
            c.errors.append(
                error((*loc, i), "Only text content parts are supported", "value_error")
            )
            return None
        texts.append(part["text"])
    return "\n".join(texts)


def _tool_calls_in(c: _Checker, value: Any, loc: Loc) -> tuple[ToolCallIn, ...]:
    if value is None:
        return ()
    items = c.array(value, loc)
    if items is None:
        return ()
    calls: list[ToolCallIn] = []
    for i, raw in enumerate(items):
        call = c.obj(raw, (*loc, i))
        if call is None:
            continue
        call_id = c.string(call, "id", (*loc, i), required=True)
        if call.get("type", "function") != "function":
            c.errors.append(error((*loc, i, "type"), _literal_msg(["function"]), "literal_error"))
        if "function" not in call:
            c.errors.append(missing((*loc, i, "function")))
            continue
        func = c.obj(call["function"], (*loc, i, "function"))
        if func is None:
            continue
        name = c.string(func, "name", (*loc, i, "function"), required=True)
        args = c.string(func, "arguments", (*loc, i, "function"), required=True)
        if call_id is not None and name is not None and args is not None:
            calls.append(ToolCallIn(call_id, name, args))
    return tuple(calls)


def _tools(c: _Checker, value: Any, *, open_tools: bool = False) -> tuple[ToolSpec, ...]:
    if value is None:
        return ()
    loc: Loc = ("body", "tools")
    items = c.array(value, loc)
    if items is None:
        return ()
    specs: list[ToolSpec] = []
    for i, raw in enumerate(items):
        tool = c.obj(raw, (*loc, i))
        if tool is None:
            continue
        if "type" not in tool:
            if not open_tools:  # vLLM: ``type: Literal["function"] = "function"``
                c.errors.append(missing((*loc, i, "type")))
        elif tool["type"] != "function":
            c.errors.append(error((*loc, i, "type"), _literal_msg(["function"]), "literal_error"))
        if "function" not in tool:
            c.errors.append(missing((*loc, i, "function")))
            continue
        floc: Loc = (*loc, i, "function")
        func = c.obj(tool["function"], floc)
        if func is None:
            continue
        name = c.string(func, "name", floc, required=True)
        description = c.string(func, "description", floc, required=False)
        params: Mapping[str, Any] = {"type": "object", "properties": {}}
        if func.get("parameters") is not None:
            ploc: Loc = (*floc, "parameters")
            checked = c.obj(func["parameters"], ploc)
            if checked is not None and open_tools:
                # vLLM's FunctionDefinition: ``parameters: dict[str, Any] | None`` (vllm/
                # entrypoints/openai/engine/protocol.py): any object passes, as the schema
                # is handed to the chat template and the tool parser unchecked.
                params = checked
            elif checked is not None:
                if "properties" not in checked:
                    c.errors.append(missing((*ploc, "properties")))
                elif not isinstance(checked["properties"], Mapping):
                    c.errors.append(
                        error(
                            (*ploc, "properties"),
                            "Input should be a valid dictionary",
                            "dict_type",
                        )
                    )
                if "type" in checked and checked["type"] != "object":
                    c.errors.append(
                        error((*ploc, "type"), _literal_msg(["object"]), "literal_error")
                    )
                required = checked.get("required")
                if required is not None and not (
                    isinstance(required, list) and all(isinstance(r, str) for r in required)
                ):
                    c.errors.append(
                        error((*ploc, "required"), "Input should be a valid list", "list_type")
                    )
                params = checked
        if name is not None:
            specs.append(ToolSpec(name, description or "", params))
    return tuple(specs)


def _documents(c: _Checker, value: Any) -> tuple[str, ...]:
    loc: Loc = ("body", "documents")
    contents: list[str] = []
    for i, doc in c.objects(value, loc):
        content = c.string(doc, "content", (*loc, i), required=True)
        c.string(doc, "id", (*loc, i), required=False)
        metadata = doc.get("metadata")
        if metadata is not None:
            meta = c.obj(metadata, (*loc, i, "metadata"))
            if meta is not None:
                for key, item in meta.items():
                    if not isinstance(item, str):
                        c.errors.append(
                            error(
                                (*loc, i, "metadata", key),
                                "Input should be a valid string",
                                "string_type",
                            )
                        )
        if content is not None:
            contents.append(content)
    return tuple(contents)


def _string_documents(c: _Checker, value: Any) -> tuple[str, ...]:
    """vLLM's ``documents``: a list of dicts of strings; the text is ``text``, else ``title``."""
    loc: Loc = ("body", "documents")
    contents: list[str] = []
    for i, doc in c.objects(value, loc):
        for key, item in doc.items():
            if not isinstance(item, str):
                c.errors.append(
                    error((*loc, i, key), "Input should be a valid string", "string_type")
                )
        text = doc.get("text") if isinstance(doc.get("text"), str) else doc.get("title")
        if isinstance(text, str):
            contents.append(text)
    return tuple(contents)


def _response_format(
    c: _Checker, value: Any, limits: ChatLimits
) -> tuple[bool, Mapping[str, Any] | None]:
    """Whether JSON mode is on, and the ``json_schema`` schema if one was given."""
    if value is None:
        return False, None
    loc: Loc = ("body", "response_format")
    fmt = c.obj(value, loc)
    if fmt is None:
        return False, None
    if "type" not in fmt:
        c.errors.append(missing((*loc, "type")))
        return False, None
    if fmt["type"] not in limits.response_formats:
        c.errors.append(
            error((*loc, "type"), _literal_msg(limits.response_formats), "literal_error")
        )
        return False, None
    if fmt["type"] != "json_schema":
        return fmt["type"] == "json_object", None
    spec = c.obj(fmt.get("json_schema"), (*loc, "json_schema"))
    if spec is None:
        return False, None
    c.string(spec, "name", (*loc, "json_schema"), required=True)
    schema = spec.get("schema")
    if schema is None:
        return True, None
    checked = c.obj(schema, (*loc, "json_schema", "schema"))
    return True, checked


# --- legacy J2 ------------------------------------------------------------------------------


def _j2_common(c: _Checker, body: Mapping[str, Any], default_max_tokens: int) -> dict[str, Any]:
    root: Loc = ("body",)
    values: dict[str, Any] = {
        "num_results": c.integer(body, "numResults", root, 1, 1, J2_MAX_RESULTS),
        "max_tokens": c.integer(
            body, "maxTokens", root, default_max_tokens, 0, J2_MAX_TOKENS_LIMIT
        ),
        "top_k_return": c.integer(body, "topKReturn", root, 0, 0, J2_MAX_TOP_K_RETURN),
    }
    c.integer(body, "minTokens", root, 0, 0, J2_MAX_TOKENS_LIMIT)
    c.number(body, "temperature", root, low=0, high=5)
    c.number(body, "topP", root, low=0, high=1)
    values["stop"] = c.stop(body, "stopSequences", root)
    for key in ("frequencyPenalty", "presencePenalty", "countPenalty"):
        raw = body.get(key)
        if raw is None:
            continue
        penalty = c.obj(raw, ("body", key))
        if penalty is None:
            continue
        if "scale" not in penalty:
            c.errors.append(missing(("body", key, "scale")))
        else:
            c.number(penalty, "scale", ("body", key), low=0)
    return values


def validate_j2_complete(model: str, body: Mapping[str, Any]) -> tuple[J2Request | None, Errors]:
    """Validate a J2 ``/{model}/complete`` body (AI21's J2 complete reference)."""
    c = _Checker()
    prompt = c.string(body, "prompt", ("body",), required=True)
    common = _j2_common(c, body, 16)
    if c.errors or prompt is None:
        return None, c.errors
    return J2Request(model, (Message("user", prompt),), prompt=prompt, **common), []


def validate_j2_chat(model: str, body: Mapping[str, Any]) -> tuple[J2Request | None, Errors]:
    """Validate a J2 ``/{model}/chat`` body (AI21's J2 chat reference)."""
    c = _Checker()
    system = c.string(body, "system", ("body",), required=True)
    messages: list[Message] = []
    if "messages" not in body or body["messages"] is None:
        c.errors.append(missing(("body", "messages")))
    else:
        items = c.array(body["messages"], ("body", "messages"))
        for i, raw in enumerate(items or []):
            msg = c.obj(raw, ("body", "messages", i))
            if msg is None:
                continue
            role = msg.get("role")
            if role is None:
                c.errors.append(missing(("body", "messages", i, "role")))
            elif role not in ("user", "assistant"):
                c.errors.append(
                    error(
                        ("body", "messages", i, "role"),
                        _literal_msg(["user", "assistant"]),
                        "enum",
                    )
                )
            text = c.string(msg, "text", ("body", "messages", i), required=True)
            if role in ("user", "assistant") and text is not None:
                messages.append(Message(str(role), text))
    common = _j2_common(c, body, 300)
    if c.errors or system is None:
        return None, c.errors
    prefix = (Message("system", system),) if system else ()
    return J2Request(model, (*prefix, *messages), **common), []
