"""The emulator's scenario core: request JSON in, response bytes / SSE events out. No I/O.

The HTTP server (``_server.py``) only routes, authenticates, applies faults and writes what these
functions return; everything about what AI21 would answer lives here and in ``_answer.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from . import _answer, _catalog, _text
from ._validation import (
    ChatRequest,
    J2Request,
    Message,
    body_not_object,
    error,
    validate_chat,
    validate_j2_chat,
    validate_j2_complete,
)

# Prompt tokens = tokens of every message's content (plus tool-call names and arguments) + this
# fixed per-message templating overhead, + tokens of document contents and of the tools' JSON.
PER_MESSAGE_OVERHEAD = 4
UNAUTHORIZED_DETAIL = "Forbidden: Bad or missing API token."


@dataclass(frozen=True)
class Reply:
    """What to send: a status and JSON body, or (``events`` set) a 200 SSE stream."""

    status: int
    body: bytes = b""
    events: tuple[bytes, ...] | None = None
    model: str | None = None


def json_bytes(obj: Any) -> bytes:
    """Compact JSON, as the live non-streaming responses are (ai21-api.md 1.3)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def error_reply(status: int, detail: Any = None, model: str | None = None) -> Reply:
    """``{"detail": ...}`` error; the detail defaults to FastAPI's (the HTTP reason phrase)."""
    if detail is None:
        if status == 401:
            detail = UNAUTHORIZED_DETAIL
        elif status == 422:
            detail = [error(("body",), "Emulated validation error (injected fault)", "value_error")]
        else:
            try:
                detail = HTTPStatus(status).phrase
            except ValueError:
                detail = "Error"
    return Reply(status, json_bytes({"detail": detail}), model=model)


UNAUTHORIZED = error_reply(401)
NOT_FOUND = error_reply(404)
METHOD_NOT_ALLOWED = error_reply(405)
MODELS = Reply(200, _catalog.MODELS_BODY)


def parse_body(raw: bytes) -> tuple[Any, Reply | None]:
    """Parse a JSON request body the way FastAPI reports problems (422)."""
    if not raw.strip():
        return None, Reply(
            422, json_bytes({"detail": [error(("body",), "Field required", "missing")]})
        )
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "Invalid UTF-8"
        entry = error(("body", pos), "JSON decode error", "json_invalid")
        entry["ctx"] = {"error": reason}
        return None, Reply(422, json_bytes({"detail": [entry]}))


def _validation_failed(errors: list[dict[str, Any]], model: str | None = None) -> Reply:
    return Reply(422, json_bytes({"detail": errors}), model=model)


# -- generation shared by every route ----------------------------------------------------------


@dataclass(frozen=True)
class ToolCallOut:
    """A tool call the emulated model makes."""

    id: str
    name: str
    arguments: str

    def fragments(self) -> list[str]:
        """The argument string split the way the stream sends it (one JSON token per piece)."""
        return _ARG_PIECE_RE.findall(self.arguments) or [self.arguments]


_ARG_PIECE_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^{}\[\],:"]+')


@dataclass(frozen=True)
class Choice:
    """One generated choice: text tokens, or tool calls."""

    tokens: tuple[str, ...]
    finish_reason: str
    completion_tokens: int
    tool_calls: tuple[ToolCallOut, ...] = ()
    stop_sequence: str | None = None

    @property
    def content(self) -> str:
        return "".join(self.tokens)


def finish_text(text: str, max_tokens: int, stop: Sequence[str]) -> Choice:
    """Apply stop sequences, then ``max_tokens``; count completion tokens.

    A natural end costs one extra (end-of-sequence) token, as in the live capture where the final
    empty chunk was counted (ai21-api.md 1.4). If that token does not fit in ``max_tokens`` the
    answer is cut to ``max_tokens`` tokens with finish_reason "length".
    """
    hit: str | None = None
    cut = len(text)
    for seq in stop:
        at = text.find(seq)
        if 0 <= at < cut:
            cut, hit = at, seq
    tokens = _text.tokenize(text[:cut])
    if len(tokens) + 1 > max_tokens:
        return Choice(tuple(tokens[:max_tokens]), "length", max_tokens)
    return Choice(tuple(tokens), "stop", len(tokens) + 1, stop_sequence=hit)


def _tool_call_id(seed: str, choice: int, index: int) -> str:
    digest = hashlib.sha256(f"{seed}|{choice}|{index}".encode()).hexdigest()
    return "call_" + digest[:24]


def _generate(
    model: str,
    messages: Sequence[Message],
    *,
    documents: Sequence[str] = (),
    tools: Sequence[Any] = (),
    json_mode: bool = False,
    variant: int = 0,
    n: int = 1,
    seed: str = "",
) -> str | tuple[ToolCallOut, ...]:
    """The answer for one choice: text, or the tool calls to make."""
    schema: dict[str, Any] | None = None
    if json_mode:
        schema, trimmed = _answer.split_schema(messages)
        messages = trimmed
    after_tools = _answer.tool_result_answer(messages)
    context = _answer.find_context(messages, documents)
    if after_tools is None and tools and messages[-1].role == "user":
        picks = _answer.choose_tools(messages[-1].content, tools)
        if picks:
            return tuple(
                ToolCallOut(
                    _tool_call_id(seed, variant, k),
                    tool.name,
                    json.dumps(
                        _answer.tool_arguments(tool, words),
                        separators=(",", ":"),
                        ensure_ascii=False,
                    ),
                )
                for k, (tool, words) in enumerate(picks)
            )
    if after_tools is not None:
        text = after_tools
    elif context is not None:
        text = _answer.grounded_answer(context, variant)
    else:
        text = _answer.echo_answer(model, messages, variant, n)
    if json_mode:
        text = _answer.json_answer(schema, messages, text, context)
    return text


# -- POST /chat/completions --------------------------------------------------------------------


def prompt_tokens(request: ChatRequest, tools_json: str = "") -> int:
    """Prompt token count (see ``PER_MESSAGE_OVERHEAD``)."""
    total = 0
    for message in request.messages:
        total += PER_MESSAGE_OVERHEAD + _text.count_tokens(message.content)
        for call in message.tool_calls:
            total += _text.count_tokens(call.name) + _text.count_tokens(call.arguments)
    total += sum(_text.count_tokens(doc) for doc in request.documents)
    return total + _text.count_tokens(tools_json)


# Words for answers of a requested length (``X-Emulator-Answer-Tokens``): one token each.
# fmt: off
_FILLER = (
    "amber", "basil", "cedar", "delta", "ember", "fern", "grove", "heath", "iris", "jade", "kelp",
    "lotus", "maple", "nectar", "olive", "pine", "quartz", "reed", "sage", "thyme", "umber",
    "vine", "willow", "yarrow",
)
# fmt: on


def filler_text(tokens: int) -> str:
    """Deterministic text of exactly ``tokens`` tokens in this emulator's tokenization."""
    return " ".join(_FILLER[i % len(_FILLER)] for i in range(tokens))


def chat_completions(body: Any, chat_id: str, answer_tokens: int | None = None) -> Reply:
    """Answer a ``POST /chat/completions`` body (already JSON-decoded).

    ``answer_tokens`` (the ``X-Emulator-Answer-Tokens`` header) asks for a text answer of that
    many tokens, whatever the conversation says, for load and memory tests; it is not capped at
    the API's 4096 unless the body sets ``max_tokens``.
    """
    if not isinstance(body, dict):
        return _validation_failed(body_not_object(body))
    request, errors = validate_chat(body)
    if request is None:
        model = body.get("model")
        return _validation_failed(errors, model if isinstance(model, str) else None)
    tools_json = json.dumps(body["tools"]) if request.tools else ""
    seed = (
        json.dumps([body.get("messages"), body.get("tools")], sort_keys=True)
        if request.tools
        else ""
    )
    choices: list[Choice] = []
    if answer_tokens is not None:
        limit = request.max_tokens if "max_tokens" in body else answer_tokens + 1
        choices = [finish_text(filler_text(answer_tokens), limit, request.stop)] * request.n
    for i in range(0 if choices else request.n):
        answer = _generate(
            request.model,
            request.messages,
            documents=request.documents,
            tools=request.tools,
            json_mode=request.json_mode,
            variant=i,
            n=request.n,
            seed=seed,
        )
        if isinstance(answer, str):
            choices.append(finish_text(answer, request.max_tokens, request.stop))
        else:
            used = sum(1 + len(call.fragments()) for call in answer) + 1
            choices.append(Choice((), "tool_calls", used, tool_calls=answer))
    usage_prompt = prompt_tokens(request, tools_json)
    usage_completion = sum(c.completion_tokens for c in choices)
    usage = {
        "prompt_tokens": usage_prompt,
        "completion_tokens": usage_completion,
        "total_tokens": usage_prompt + usage_completion,
    }
    if request.stream:
        return Reply(
            200, events=tuple(_stream_events(chat_id, choices[0], usage)), model=request.model
        )
    return Reply(200, json_bytes(_completion_body(chat_id, choices, usage)), model=request.model)


def _tool_calls_json(calls: Sequence[ToolCallOut]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def _completion_body(
    chat_id: str, choices: Sequence[Choice], usage: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": chat_id,
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": None if choice.tool_calls else choice.content,
                    "tool_calls": _tool_calls_json(choice.tool_calls)
                    if choice.tool_calls
                    else None,
                },
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for i, choice in enumerate(choices)
        ],
        "usage": usage,
    }


DONE_EVENT = b"data: [DONE]\n\n"


def _stream_events(chat_id: str, choice: Choice, usage: dict[str, int]) -> list[bytes]:
    """SSE events for one choice (ai21-api.md 1.4): role, one per token, final + usage, [DONE].

    Chunks use ``json.dumps`` default separators, as the live stream did.
    """
    head = '{"id": ' + json.dumps(chat_id) + ', "choices": [{"index": 0, "delta": '
    tail = ', "logprobs": null, "finish_reason": null}]}'

    def event(delta: dict[str, Any]) -> bytes:
        return ("data: " + head + json.dumps(delta) + tail + "\n\n").encode()

    events = [event({"role": "assistant"})]
    if choice.tool_calls:
        for index, call in enumerate(choice.tool_calls):
            start = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name},
            }
            events.append(event({"tool_calls": [start]}))
            for piece in call.fragments():
                events.append(
                    event({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        final_delta: dict[str, Any] = {}
    else:
        events.extend(event({"content": token}) for token in choice.tokens)
        final_delta = {"content": ""}
    final = {
        "id": chat_id,
        "choices": [
            {
                "index": 0,
                "delta": final_delta,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        ],
        "usage": usage,
    }
    events.append(("data: " + json.dumps(final) + "\n\n").encode())
    events.append(DONE_EVENT)
    return events


# -- legacy J2 ---------------------------------------------------------------------------------


def _j2_token(start: int, token: str) -> tuple[list[tuple[str, int, int]], int]:
    """Split one emulator token into J2-style pieces: ``<|newline|>`` and ``▁word``."""
    pieces: list[tuple[str, int, int]] = []
    pos = start
    body = token
    while body and body[0] in "\r\n":
        pieces.append(("<|newline|>", pos, pos + 1))
        pos += 1
        body = body[1:]
    if body:
        pieces.append((body.replace(" ", "▁").replace("\t", "▁"), pos, pos + len(body)))
        pos += len(body)
    return pieces, pos


def _logprob(token: str) -> float:
    return -round(0.1 + 0.05 * (len(token) % 10), 4)


_TOP_FILLERS = ("▁the", "▁a", "▁and", "▁of", "▁to", "▁in", "▁is", "▁that", "▁it", "▁for")


def _j2_tokens(text: str, top_k: int, *, endoftext: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pos = 0
    pieces: list[tuple[str, int, int]] = []
    for token in _text.tokenize(text):
        split, pos = _j2_token(pos, token)
        pieces.extend(split)
    if endoftext:
        pieces.append(("<|endoftext|>", len(text), len(text)))
    for piece, start, end in pieces:
        lp = _logprob(piece)
        top: list[dict[str, Any]] | None = None
        if top_k > 0:
            top = [{"token": piece, "logprob": lp}]
            top.extend(
                {"token": filler, "logprob": round(lp - 1.0 - i, 4)}
                for i, filler in enumerate(f for f in _TOP_FILLERS if f != piece)
            )
            top = top[:top_k]
        out.append(
            {
                "generatedToken": {"token": piece, "logprob": lp, "raw_logprob": lp},
                "topTokens": top,
                "textRange": {"start": start, "end": end},
            }
        )
    return out


def _j2_finish(choice: Choice, max_tokens: int, chat: bool) -> dict[str, Any]:
    if choice.finish_reason == "length":
        reason: dict[str, Any] = {"reason": "length", "length": max_tokens}
    elif choice.stop_sequence is not None:
        reason = {"reason": "stop", "sequence": choice.stop_sequence}
    else:
        reason = {"reason": "endoftext"}
    if chat:
        reason = {
            "reason": reason["reason"],
            "length": reason.get("length"),
            "sequence": reason.get("sequence"),
        }
    return reason


def _j2_choices(request: J2Request) -> list[Choice]:
    choices = []
    for i in range(request.num_results):
        text = _generate(request.model, request.messages, variant=i, n=request.num_results)
        assert isinstance(text, str)
        choices.append(finish_text(text, request.max_tokens, request.stop))
    return choices


def j2_complete(model: str, body: Any, completion_id: str) -> Reply:
    """Answer ``POST /{j2-model}/complete`` (ai21-api.md 2.2)."""
    if not isinstance(body, dict):
        return _validation_failed(body_not_object(body), model)
    request, errors = validate_j2_complete(model, body)
    if request is None:
        return _validation_failed(errors, model)
    completions = []
    for choice in _j2_choices(request):
        natural = choice.finish_reason == "stop" and choice.stop_sequence is None
        completions.append(
            {
                "data": {
                    "text": choice.content,
                    "tokens": _j2_tokens(choice.content, request.top_k_return, endoftext=natural),
                },
                "finishReason": _j2_finish(choice, request.max_tokens, chat=False),
            }
        )
    response = {
        "id": completion_id,
        "prompt": {
            "text": request.prompt,
            "tokens": _j2_tokens(request.prompt, 0, endoftext=False),
        },
        "completions": completions,
    }
    return Reply(200, json_bytes(response), model=model)


def j2_chat(model: str, body: Any, response_id: str) -> Reply:
    """Answer ``POST /{j2-model}/chat`` (ai21-api.md 2.3)."""
    if not isinstance(body, dict):
        return _validation_failed(body_not_object(body), model)
    request, errors = validate_j2_chat(model, body)
    if request is None:
        return _validation_failed(errors, model)
    outputs = [
        {
            "text": choice.content,
            "role": "assistant",
            "finishReason": _j2_finish(choice, request.max_tokens, chat=True),
        }
        for choice in _j2_choices(request)
    ]
    return Reply(200, json_bytes({"id": response_id, "outputs": outputs}), model=model)
