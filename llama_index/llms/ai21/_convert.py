"""Pure conversions between LlamaIndex objects and AI21 payloads (no I/O, no mutation).

Requests: :func:`to_ai21_messages` (Jamba chat, AI21's Jamba API reference; OpenAI-compatible
servers take the same shape). Responses: :func:`chat_response_from_ai21`,
:func:`completion_response_from_ai21`. Documents: :func:`to_ai21_documents` (AI21's shape) and
:func:`to_flat_documents` (strings only, for Jamba's chat template on vLLM). Legacy
Jurassic-2 lives in ``_j2``. Every branch over roles or content types ends in an explicit
error for what the API cannot represent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    CitableBlock,
    CompletionResponse,
    DocumentBlock,
    LogProb,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from llama_index.llms.ai21._markup import Markup, split_think
from llama_index.llms.ai21.errors import MalformedResponseError

# LlamaIndex roles that mean "the model" in other providers' vocabularies.
_ASSISTANT_ROLES = {MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL}
_SYSTEM_ROLES = {MessageRole.SYSTEM, MessageRole.DEVELOPER}
_USER_ROLES = {MessageRole.USER}
_TOOL_ROLES = {MessageRole.TOOL, MessageRole.FUNCTION}

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_USAGE_DETAILS = (
    ("completion_tokens_details", "reasoning_tokens"),
    ("prompt_tokens_details", "cached_tokens"),
)


# --------------------------------------------------------------------------- requests


def _message_text(
    message: ChatMessage,
    index: int,
    *,
    allow_tool_calls: bool,
    documents: list[dict[str, Any]] | None = None,
    inline: bool = False,
) -> str:
    """Join a message's text blocks; reject any block AI21 cannot carry. Where ``documents``
    is given (user messages), ``CitableBlock``s and text ``DocumentBlock``s are collected
    into it as grounding documents instead; with ``inline`` (a tool's result: LlamaIndex's
    agents put the blocks a tool returned there) they are part of the text, as the tool's
    output."""
    parts: list[str] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, ToolCallBlock) and allow_tool_calls:
            continue  # carried in the message's tool_calls
        elif isinstance(block, ThinkingBlock) and allow_tool_calls:
            continue  # sent back (or not) by to_ai21_messages, in the server's field
        elif isinstance(block, CachePoint):
            # Prompt caching's marker (LlamaIndex's, for Anthropic's and Bedrock's APIs): vLLM
            # caches prompt prefixes by itself (--enable-prefix-caching, in AI21's recipes) and
            # llama-server too (its cache_prompt), so the prefix is cached without it.
            continue
        elif isinstance(block, CitableBlock | DocumentBlock) and documents is not None:
            documents.append(_block_document(block, index))
        elif isinstance(block, CitableBlock | DocumentBlock) and inline:
            parts.append(_inline_document(_block_document(block, index)))
        else:
            hint = (
                " (pass documents=[...] for grounding, or put it in a user message)"
                if block.block_type in ("document", "citable")
                else ""
            )
            raise ValueError(
                f"messages[{index}] ({getattr(message.role, 'value', message.role)}) contains a "
                f"{block.block_type!r} "
                f"content block, which the AI21 API cannot represent{hint}; "
                "only text is supported"
            )
    return "\n".join(parts)


# Document types read as text (anything else in a DocumentBlock is refused by name).
_TEXT_TYPES = ("application/json", "application/xml", "application/x-yaml", "application/yaml")


def _block_document(block: CitableBlock | DocumentBlock, index: int) -> dict[str, Any]:
    """A grounding document (AI21's ``{"content", "metadata"}`` shape) from a message block."""
    metadata: dict[str, str] = {}
    if isinstance(block, CitableBlock):
        texts = []
        for part in block.content:
            if not isinstance(part, TextBlock):
                raise ValueError(
                    f"messages[{index}] has a CitableBlock with a {part.block_type!r} part; "
                    "documents must be text"
                )
            texts.append(part.text)
        if block.title:
            metadata["title"] = block.title
        if block.source:
            metadata["source"] = block.source
        return {"content": "\n".join(texts), "metadata": metadata}
    mimetype = block.document_mimetype or ""
    if not (mimetype.startswith("text/") or mimetype in _TEXT_TYPES):
        raise ValueError(
            f"messages[{index}] has a DocumentBlock of type {mimetype or 'unknown'!r}; "
            "documents must be text (text/*, JSON, XML or YAML)"
        )
    try:
        text = block.resolve_document().read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"messages[{index}] has a DocumentBlock of type {mimetype!r} that is not UTF-8 text"
        ) from exc
    if block.title and block.title != "input_document":  # LlamaIndex's placeholder title
        metadata["title"] = block.title
    return {"content": text, "metadata": metadata} if metadata else {"content": text}


def _inline_document(document: dict[str, Any]) -> str:
    """A document as text: its metadata on a header line (as ``documents_in_prompt`` writes
    them), then its content."""
    content: str = document["content"]
    metadata = document.get("metadata")
    if not metadata:
        return content
    fields = "; ".join(f"{key}: {value}" for key, value in metadata.items())
    return f"Document ({fields})\n{content}"


def clipped(value: Any, limit: int = 200) -> str:
    """``repr(value)`` for an error message, cut at ``limit`` characters: a tool call or a
    tool holds arguments or a schema of any length."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}..."


def _tool_call_to_ai21(call: Any, index: int) -> dict[str, Any]:
    """Normalise one tool call (a dict in AI21/OpenAI shape, or an SDK object) to AI21's shape."""
    if isinstance(call, Mapping):
        function = call.get("function")
        call_id = call.get("id")
        name = function.get("name") if isinstance(function, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
    else:
        function = getattr(call, "function", None)
        call_id = getattr(call, "id", None)
        name = getattr(function, "name", None)
        arguments = getattr(function, "arguments", None)
    if not isinstance(call_id, str) or not isinstance(name, str) or not name:
        raise ValueError(
            f"messages[{index}] has a tool call without a string 'id' and 'function.name': "
            f"{clipped(call)}"
        )
    if not isinstance(arguments, str):
        arguments = _arguments_json(arguments if arguments is not None else {}, index, name)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _arguments_json(arguments: Any, index: int, name: str) -> str:
    try:
        return json.dumps(arguments, allow_nan=False)  # NaN and infinities are not JSON
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(
            f"messages[{index}] has a tool call to {name!r} whose arguments are not "
            f"JSON-serializable ({exc})"
        ) from None


def _assistant_tool_calls(message: ChatMessage, index: int) -> list[dict[str, Any]]:
    blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if blocks:
        calls = []
        for block in blocks:
            if not block.tool_call_id:
                raise ValueError(
                    f"messages[{index}] has a tool call to {block.tool_name!r} without an id; "
                    "AI21 needs the id to match the tool result"
                )
            if not block.tool_name:
                raise ValueError(
                    f"messages[{index}] has a tool call ({block.tool_call_id!r}) without a tool "
                    "name; the model needs it to read the result"
                )
            arguments = block.tool_kwargs
            calls.append(
                {
                    "id": block.tool_call_id,
                    "type": "function",
                    "function": {
                        "name": block.tool_name,
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else _arguments_json(arguments, index, block.tool_name),
                    },
                }
            )
        return calls
    raw_calls = message.additional_kwargs.get("tool_calls") or []
    if not isinstance(raw_calls, Sequence) or isinstance(raw_calls, str | bytes):
        raise ValueError(f"messages[{index}].additional_kwargs['tool_calls'] must be a list")
    return [_tool_call_to_ai21(call, index) for call in raw_calls]


def to_ai21_message(
    message: ChatMessage, index: int = 0, documents: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Convert one LlamaIndex message to an AI21 chat message dict (a user message's
    document blocks go into ``documents``, when given)."""
    role = message.role
    if role in _SYSTEM_ROLES:
        return {"role": "system", "content": _message_text(message, index, allow_tool_calls=False)}
    if role in _USER_ROLES:
        text = _message_text(message, index, allow_tool_calls=False, documents=documents)
        return {"role": "user", "content": text}
    if role in _ASSISTANT_ROLES:
        text = _message_text(message, index, allow_tool_calls=True)
        tool_calls = _assistant_tool_calls(message, index)
        if not tool_calls:
            return {"role": "assistant", "content": text}
        # The ai21 SDK itself sends null content beside tool calls (ChatMessage.model_dump).
        return {"role": "assistant", "content": text or None, "tool_calls": tool_calls}
    if role in _TOOL_ROLES:
        call_id = message.additional_kwargs.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ValueError(
                f"messages[{index}] is a tool result without additional_kwargs['tool_call_id']; "
                "AI21 needs it to match the result to the assistant's tool call"
            )
        return {
            "role": "tool",
            "content": _message_text(message, index, allow_tool_calls=False, inline=True),
            "tool_call_id": call_id,
        }
    raise ValueError(
        f"messages[{index}] has role {getattr(role, 'value', role)!r}, which the AI21 API "
        "does not support "
        "(supported: system, user, assistant, tool)"
    )


def _with_system(
    messages: Sequence[ChatMessage],
    system_prompt: str | None,
    preamble_override: str | None,
) -> list[tuple[int, ChatMessage]]:
    """Apply ``preamble_override`` / ``system_prompt``, keeping original indexes for errors."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise ValueError(f"messages must be a list of ChatMessage, got {type(messages).__name__}")
    if not messages:
        raise ValueError("messages must not be empty: AI21 needs at least one message")
    for index, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            hint = (
                " (build it with ChatMessage(role=..., content=...))"
                if isinstance(message, Mapping)
                else ""
            )
            raise ValueError(
                f"messages[{index}] is a {type(message).__name__}, not a ChatMessage{hint}"
            )
    indexed = list(enumerate(messages))
    if preamble_override is not None:
        if not isinstance(preamble_override, str):
            raise ValueError(
                f"preamble_override must be a string, got {type(preamble_override).__name__}"
            )
        # The override is *the* system message for this call: it replaces any other.
        rest = [(i, m) for i, m in indexed if m.role not in _SYSTEM_ROLES]
        return [(-1, ChatMessage(role=MessageRole.SYSTEM, content=preamble_override)), *rest]
    if system_prompt and not any(m.role in _SYSTEM_ROLES for m in messages):
        return [(-1, ChatMessage(role=MessageRole.SYSTEM, content=system_prompt)), *indexed]
    return indexed


def to_ai21_messages(
    messages: Sequence[ChatMessage],
    *,
    system_prompt: str | None = None,
    preamble_override: str | None = None,
    reasoning_fields: Sequence[str] = (),
    documents: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Convert a LlamaIndex conversation to the ``messages`` field of a Jamba request.

    ``preamble_override`` becomes the only system message; otherwise ``system_prompt`` is
    prepended when the conversation has no system message of its own. Inside a tool loop (the
    assistant tool-call turns after the last user message), each turn's reasoning
    (``ThinkingBlock``) is sent back in every field of ``reasoning_fields``, as Jamba Reasoning
    3B's chat template re-inserts it there; earlier turns' reasoning is not sent. Document
    blocks of user messages are appended to ``documents`` (when given; else refused).
    """
    indexed = _with_system(messages, system_prompt, preamble_override)
    converted = [to_ai21_message(message, index, documents) for index, message in indexed]
    if reasoning_fields:
        last_user = max(
            (i for i, (_, m) in enumerate(indexed) if m.role in _USER_ROLES), default=-1
        )
        for position in range(last_user + 1, len(indexed)):
            payload = converted[position]
            if payload["role"] != "assistant" or not payload.get("tool_calls"):
                continue
            reasoning = "".join(
                b.content or "" for b in indexed[position][1].blocks if isinstance(b, ThinkingBlock)
            )
            if reasoning:
                payload.update(dict.fromkeys(reasoning_fields, reasoning))
    return converted


# ------------------------------------------------------------------------ tool choice

ToolChoice = str | dict[str, Any]


def normalize_tool_choice(tool_choice: Any) -> ToolChoice:
    """``tool_choice`` in OpenAI's shape: ``"auto"``, ``"none"``, ``"required"`` (also for
    ``"any"``) or ``{"type": "function", "function": {"name": ...}}`` (from a tool's name, or a
    dict that names one)."""
    if isinstance(tool_choice, str):
        if tool_choice in ("auto", "none", "required"):
            return tool_choice
        if tool_choice == "any":  # Anthropic's word for "required"
            return "required"
        if not tool_choice:
            raise ValueError("tool_choice must not be an empty string")
        return {"type": "function", "function": {"name": tool_choice}}
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
    raise ValueError(
        f"tool_choice must be 'auto', 'none', 'required', a tool's name or "
        f'{{"type": "function", "function": {{"name": ...}}}}, got {tool_choice!r}'
    )


def chosen_tool(tool_choice: ToolChoice) -> str | None:
    """The name a normalized ``tool_choice`` names, if it names one."""
    return tool_choice["function"]["name"] if isinstance(tool_choice, dict) else None


# What LlamaIndex's ``ToolMetadata.get_parameters_dict`` keeps of a class's schema (the title
# and description go elsewhere: the tool's name and description), and ``additionalProperties``,
# which it drops: a class with ``extra="forbid"`` says so to the model as its JSON schema does.
_PARAMETER_KEYS = ("type", "properties", "required", "definitions", "$defs", "additionalProperties")


def tool_parameters(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's ``parameters`` from its pydantic class's JSON schema, as LlamaIndex's
    ``ToolMetadata.get_parameters_dict`` reads it, and also where that falls short: a schema
    whose root is a reference, as a recursive class's is (``{"$defs": {...}, "$ref":
    "#/$defs/Node"}``), has the definition referred to at its root, its ``$defs`` kept for the
    references inside (LlamaIndex drops the ``$ref``, leaving no properties: AI21's API requires
    them, and a model would read an empty schema); ``additionalProperties`` is kept."""
    return {key: value for key, value in schema_root(schema).items() if key in _PARAMETER_KEYS}


def schema_root(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A JSON schema with a root reference (a recursive class's) as the definition it refers
    to, with the schema's ``$defs``; any other schema as it is."""
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, Mapping):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, Mapping):
            return {**target, "$defs": defs}
    return schema


def tool_names(tools: Any) -> list[str]:
    """The names of the tools in a request's ``tools`` field."""
    if tools is None:
        return []
    if not isinstance(tools, list | tuple):
        raise ValueError(f"tools must be a list of function definitions, got {clipped(tools)}")
    names = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str):
            raise ValueError(
                f"tools[{i}] must be a function definition with a string function.name, "
                f"got {clipped(tool)}"
            )
        names.append(name)
    return names


# -------------------------------------------------------------------------- responses


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise MalformedResponseError(
            f"malformed AI21 response: {where} should be {expected}, got {type(value).__name__}"
        )
    return value


def _is_count(value: Any) -> bool:
    """Whether ``value`` is a token count: a non-negative int (``True`` is an int, not a count)."""
    return value.__class__ is int and value >= 0


def usage_kwargs(usage: Any) -> dict[str, int]:
    """``prompt_tokens``/``completion_tokens``/``total_tokens`` from an AI21 ``usage`` object
    (streamed or whole: one reading for both)."""
    if usage is None:
        return {}
    _expect(usage, dict, "'usage'")
    counts: dict[str, int] = {}
    for key in USAGE_KEYS:
        if key in usage:
            value = usage[key]
            if not _is_count(value):
                got = value if value.__class__ is int else type(value).__name__
                raise MalformedResponseError(
                    f"malformed AI21 response: usage.{key} should be a non-negative int, got {got}"
                )
            counts[key] = value
    # OpenAI's usage details, as vLLM and llama.cpp report them when they count them; a
    # detail that is not a count is left out, as one not reported is.
    for details, key in _USAGE_DETAILS:
        value = usage.get(details)
        if isinstance(value, dict) and _is_count(value.get(key)):
            counts[key] = value[key]
    return counts


def token_logprobs(value: Any, where: str) -> list[list[LogProb]] | None:
    """A choice's ``logprobs`` as LlamaIndex's ``logprobs``: one list per generated token, the
    token itself first, then the other candidates the server listed (``top_logprobs``, in its
    order); None when the server sent none.

    The shape is OpenAI's, which vLLM, llama.cpp's server and Ollama send:
    ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}, ...]}``. The token
    comes first even when ``top_logprobs`` is 0 or does not hold it (a sampled token), so
    ``logprobs[i][0]`` is always what the model wrote at position ``i``.
    """
    if value is None:
        return None
    _expect(value, dict, where)
    content = value.get("content")
    if content is None:
        return None
    _expect(content, list, f"{where}.content")
    return [_position(entry, f"{where}.content[{i}]") for i, entry in enumerate(content)]


def _position(entry: Any, where: str) -> list[LogProb]:
    chosen = _logprob(entry, where)
    position = [chosen]
    others = entry.get("top_logprobs")
    if others is None:
        return position
    _expect(others, list, f"{where}.top_logprobs")
    listed = False  # the token itself, among the candidates: already first
    for k, other in enumerate(others):
        candidate = _logprob(other, f"{where}.top_logprobs[{k}]")
        if not listed and candidate.token == chosen.token:
            # By its text: llama-server lists a token it was made to write (a grammar, greedy
            # sampling) at logprob 0 and again among the candidates at -3.4e38 (measured).
            listed = True
            continue
        position.append(candidate)
    return position


_FLOAT_RANGE = 2**1024 - 2**970  # from here on, float() overflows (rounds to infinity)


def _logprob(entry: Any, where: str) -> LogProb:
    _expect(entry, dict, where)
    token = _expect(entry.get("token"), str, f"{where}.token")
    logprob = entry.get("logprob")
    # Besides a wrong type: NaN, and an integer no float holds (pydantic's ValidationError in
    # LogProb), which the stdlib's parser reads in a large body or event (_http's decode_json)
    # where orjson refuses both as invalid JSON. A float that is a number passes the first test.
    if (logprob.__class__ is not float or logprob != logprob) and (
        logprob.__class__ is not int or not -_FLOAT_RANGE < logprob < _FLOAT_RANGE
    ):
        got = "NaN" if logprob.__class__ is float else type(logprob).__name__
        if logprob.__class__ is int:
            got = "an integer beyond a float's range"
        raise MalformedResponseError(
            f"malformed AI21 response: {where}.logprob should be a number, got {got}"
        )
    raw = entry.get("bytes")  # null where the token is no whole UTF-8 sequence (OpenAI)
    if raw is not None and not (
        isinstance(raw, list) and all(b.__class__ is int and 0 <= b <= 255 for b in raw)
    ):
        raise MalformedResponseError(
            f"malformed AI21 response: {where}.bytes should be a list of byte values"
        )
    return LogProb(token=token, logprob=logprob, bytes=raw or [])


def parse_tool_calls(raw_calls: Any, where: str) -> list[dict[str, Any]]:
    """Validate a complete ``tool_calls`` list from a response."""
    if raw_calls is None:
        return []
    _expect(raw_calls, list, where)
    calls = []
    for i, call in enumerate(raw_calls):
        _expect(call, dict, f"{where}[{i}]")
        function = _expect(call.get("function"), dict, f"{where}[{i}].function")
        calls.append(
            {
                "id": _expect(call.get("id"), str, f"{where}[{i}].id"),
                "type": call.get("type") or "function",
                "function": {
                    "name": _expect(function.get("name"), str, f"{where}[{i}].function.name"),
                    "arguments": _expect(
                        function.get("arguments", ""), str, f"{where}[{i}].function.arguments"
                    ),
                },
            }
        )
    return calls


def assistant_message(
    content: str,
    tool_calls: Sequence[dict[str, Any]],
    reasoning: str | None = None,
    tool_blocks: Sequence[ToolCallBlock] | None = None,
) -> ChatMessage:
    """Build the framework's assistant message: reasoning (a ``ThinkingBlock``), text, and
    tool calls as blocks and kwargs (``tool_blocks``: the calls' blocks, already built)."""
    blocks: list[Any] = [TextBlock(text=content)]
    if reasoning is not None:
        blocks.insert(0, ThinkingBlock(content=reasoning))
    prebuilt = tool_blocks is not None
    if tool_blocks is None:
        tool_blocks = [
            ToolCallBlock(
                tool_call_id=call["id"],
                tool_name=call["function"]["name"],
                tool_kwargs=call["function"]["arguments"],
            )
            for call in tool_calls
        ]
    blocks.extend(tool_blocks)
    additional_kwargs: dict[str, Any] = {}
    if tool_calls:
        # Copies, so that editing the message never edits the caller's calls; the stream
        # state passes its blocks, and its calls as dicts it replaces (never edits) when a
        # call changes, so it needs no copies (a copy of every call per event would make a
        # stream of N calls quadratic).
        additional_kwargs["tool_calls"] = (
            list(tool_calls)
            if prebuilt
            else [{**call, "function": dict(call["function"])} for call in tool_calls]
        )
    if prebuilt:  # blocks built here, so valid: validating N blocks per event is quadratic
        return ChatMessage.model_construct(
            role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=additional_kwargs
        )
    return ChatMessage(
        role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=additional_kwargs
    )


class _Choice(NamedTuple):
    content: str
    tool_calls: list[dict[str, Any]]
    extra: dict[str, Any]  # additional_kwargs: token counts, finish reason
    reasoning: str | None
    logprobs: list[list[LogProb]] | None


def _first_choice(raw: Any, markup: Markup | None = None, logprobs: bool = False) -> _Choice:
    """The first choice of a non-streaming chat completion (AI21's Jamba API reference), with
    the reasoning and tool calls a server left in ``content`` read out (``_markup``), and its
    token logprobs if they were asked for (``logprobs``): a server's unasked ones are not
    read, so they cost nothing and fail nothing."""
    _expect(raw, dict, "the response body")
    choices = _expect(raw.get("choices"), list, "'choices'")
    if not choices:
        raise MalformedResponseError("malformed AI21 response: 'choices' is empty")
    choice = _expect(choices[0], dict, "choices[0]")
    message = _expect(choice.get("message"), dict, "choices[0].message")
    content = message.get("content")
    content = "" if content is None else _expect(content, str, "choices[0].message.content")
    tool_calls = parse_tool_calls(message.get("tool_calls"), "choices[0].message.tool_calls")
    finish_reason = choice.get("finish_reason")
    if finish_reason is not None:  # null while unfinished, as streams read it (_stream)
        _expect(finish_reason, str, "choices[0].finish_reason")
    extra = {**usage_kwargs(raw.get("usage")), "finish_reason": finish_reason}
    # AI21's 2026 spec names it reasoning_content; vLLM's reasoning parsers, reasoning.
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning is not None:
        _expect(reasoning, str, "choices[0].message.reasoning")
    if markup is not None:
        if markup.split_think and not reasoning:
            reasoning, content = split_think(content, extra["finish_reason"])
        tools = markup.tools
        if tools is not None and not tool_calls and tools.open in content:
            content, tool_calls = tools.read(content, extra["finish_reason"])
    tokens = token_logprobs(choice.get("logprobs"), "choices[0].logprobs") if logprobs else None
    return _Choice(content, tool_calls, extra, reasoning, tokens)


def chat_response_from_ai21(
    raw: Any, markup: Markup | None = None, logprobs: bool = False
) -> ChatResponse:
    """Turn a non-streaming chat completion into a ``ChatResponse``.

    The first choice becomes the message; ``raw`` keeps all of them (``n > 1``).
    """
    choice = _first_choice(raw, markup, logprobs)
    return ChatResponse(
        message=assistant_message(choice.content, choice.tool_calls, choice.reasoning),
        raw=raw,
        additional_kwargs=choice.extra,
        logprobs=choice.logprobs,
    )


def completion_response_from_ai21(
    raw: Any, markup: Markup | None = None, logprobs: bool = False
) -> CompletionResponse:
    """The same as :func:`chat_response_from_ai21`, for ``complete``: the text of the first
    choice, with any tool calls in ``additional_kwargs`` as a chat response would have them."""
    choice = _first_choice(raw, markup, logprobs)
    extra = choice.extra
    if choice.tool_calls:
        extra["tool_calls"] = choice.tool_calls
    if choice.reasoning is not None:
        extra["reasoning"] = choice.reasoning
    return CompletionResponse(
        text=choice.content, raw=raw, additional_kwargs=extra, logprobs=choice.logprobs
    )


# -------------------------------------------------------------------------- documents


def _document_to_ai21(document: Any, index: int) -> dict[str, Any]:
    """One grounding document: a string, a dict in the API's shape, or a LlamaIndex node."""
    if isinstance(document, str):
        return {"content": document}
    if isinstance(document, Mapping):
        content = document.get("content")
        if not isinstance(content, str):
            raise ValueError(f"documents[{index}] needs a string 'content'")
        converted: dict[str, Any] = {"content": content}
        if document.get("id") is not None:
            converted["id"] = str(document["id"])
        if document.get("metadata"):
            converted["metadata"] = _string_metadata(document["metadata"], index)
        unknown = set(document) - {"content", "id", "metadata"}
        if unknown:
            raise ValueError(
                f"documents[{index}] has unknown keys {sorted(unknown)}; "
                "AI21 documents take content, id and metadata"
            )
        return converted
    node = _text_node(document, index)
    if node is not None:
        converted = {"content": node.get_content(), "id": str(node.node_id)}
        if node.metadata:
            converted["metadata"] = _string_metadata(node.metadata, index)
        return converted
    raise ValueError(
        f"documents[{index}] is a {type(document).__name__}; pass strings, "
        "{'content': ..., 'id': ..., 'metadata': {...}} dicts, or LlamaIndex Documents/Nodes"
    )


# What a LlamaIndex node holds besides text: ImageNode's fields, and Node's media resources.
_MEDIA_FIELDS = (
    "image",
    "image_path",
    "image_url",
    "image_resource",
    "audio_resource",
    "video_resource",
)


def _text_node(document: Any, index: int) -> Any:
    """The node ``document`` is (a LlamaIndex Document, TextNode, or a NodeWithScore's node),
    or None if it is none of those. A node that carries an image, audio or video is refused:
    a document is text, and its text alone (often empty) would stand for it silently."""
    if not callable(getattr(document, "get_content", None)):
        return None
    node = getattr(document, "node", document)
    media = [name for name in _MEDIA_FIELDS if getattr(node, name, None)]
    if media:
        raise ValueError(
            f"documents[{index}] is a {type(node).__name__} with {', '.join(media)}; documents "
            "must be text (pass the text that describes it instead)"
        )
    return node


def _string_metadata(metadata: Any, index: int) -> dict[str, str]:
    if not isinstance(metadata, Mapping):
        raise ValueError(f"documents[{index}].metadata must be a mapping")
    # The API types metadata values as strings (AI21's Jamba API reference, documents).
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, default=str)
        for key, value in metadata.items()
    }


def to_ai21_documents(documents: Any) -> list[dict[str, Any]]:
    """Convert the ``documents=`` argument to the API's ``documents`` field."""
    if isinstance(documents, str | bytes | Mapping) or not isinstance(documents, Sequence):
        raise ValueError("documents must be a list (of strings, dicts or LlamaIndex Documents)")
    return [_document_to_ai21(document, i) for i, document in enumerate(documents)]


def _flat_strings(values: Mapping[Any, Any]) -> dict[str, str]:
    return {
        str(key): value if isinstance(value, str) else json.dumps(value, default=str)
        for key, value in values.items()
        if value is not None
    }


def _document_to_flat(document: Any, index: int) -> dict[str, str]:
    """One document as a dict of strings: ``text``, an optional ``title``, flattened metadata."""
    if isinstance(document, str):
        return {"text": document}
    if isinstance(document, Mapping):
        if "content" in document and "text" not in document:  # AI21's shape: convert it
            ai21 = _document_to_ai21(document, index)
            flat = _flat_strings(ai21.get("metadata", {}))
            if "id" in ai21:
                flat.setdefault("id", ai21["id"])
            return {"text": ai21["content"], **{k: v for k, v in flat.items() if k != "text"}}
        text = document.get("text")
        if not isinstance(text, str):
            raise ValueError(f"documents[{index}] needs a string 'text' (or 'content')")
        nested = [k for k, v in document.items() if isinstance(v, Mapping)]
        if "metadata" in nested:
            rest = {k: v for k, v in document.items() if k != "metadata"}
            return _flat_strings({**document["metadata"], **rest})
        return _flat_strings(document)
    node = _text_node(document, index)
    if node is not None:
        metadata = _flat_strings(node.metadata or {})
        metadata.pop("text", None)
        return {"text": node.get_content(), **metadata}
    raise ValueError(
        f"documents[{index}] is a {type(document).__name__}; pass strings, "
        "{'text': ..., 'title': ...} dicts, or LlamaIndex Documents/Nodes"
    )


def to_flat_documents(documents: Any) -> list[dict[str, str]]:
    """The ``documents`` field for Jamba's chat template on a self-hosted server.

    vLLM hands ``documents`` to the model's chat template, which reads ``text`` and an
    optional ``title``, and accepts only string values (vLLM's OpenAI-compatible server docs;
    the Jamba model cards' RAG example). Metadata is flattened beside them, as strings.
    """
    if isinstance(documents, str | bytes | Mapping) or not isinstance(documents, Sequence):
        raise ValueError("documents must be a list (of strings, dicts or LlamaIndex Documents)")
    return [_document_to_flat(document, i) for i, document in enumerate(documents)]


def documents_in_prompt(
    messages: list[dict[str, Any]], documents: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    """``messages`` with the documents written into the last user message, before its text,
    for a model whose chat template has no ``documents`` variable (AI21's Jamba2 and Reasoning
    3B cards show retrieved documents inline before the question)::

        Context documents:

        Document 1 (title: Jamba; source: wiki)
        Jamba is a hybrid SSM-Transformer model.

        Document 2
        ...

        <the user's message>

    Each header lists the document's string fields other than ``text`` (``to_flat_documents``).
    Without a user message, the documents become one, at the end. ``messages`` is not changed.
    """
    entries = []
    for number, document in enumerate(documents, 1):
        fields = "; ".join(f"{k}: {v}" for k, v in document.items() if k != "text")
        header = f"Document {number} ({fields})" if fields else f"Document {number}"
        entries.append(f"{header}\n{document.get('text', '')}")
    block = "Context documents:\n\n" + "\n\n".join(entries)
    result = list(messages)
    for position in range(len(result) - 1, -1, -1):
        if result[position]["role"] == "user":
            user = result[position]
            result[position] = {**user, "content": f"{block}\n\n{user['content']}"}
            return result
    result.append({"role": "user", "content": block})
    return result
