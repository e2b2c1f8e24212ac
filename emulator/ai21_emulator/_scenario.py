"""The emulator's scenario core: request JSON in, response bytes / SSE events out. No I/O.

What every flavour shares lives here: the :class:`Response` a flavour returns, the answer
generator (text, grounded text, tool calls, JSON) and token counting, and the legacy J2 routes of
AI21's host. How a reply is rendered on the wire (ids, field names, stream framing, error bodies)
is the flavour's (``_flavour_ai21.py``, ``_flavour_vllm.py``); routing, auth and faults are the
pipeline's (``_core.py``). The HTTP server (``_server.py``) only writes what these return.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import _answer, _text
from ._script import Reply
from ._validation import (
    ChatRequest,
    J2Request,
    Message,
    ToolSpec,
    body_not_object,
    validate_j2_chat,
    validate_j2_complete,
)

# Prompt tokens = tokens of every message's content (plus tool-call names and arguments) + this
# fixed per-message templating overhead, + tokens of document contents and of the tools' JSON.
PER_MESSAGE_OVERHEAD = 4


@dataclass(frozen=True)
class Response:
    """What to send: a status and JSON body, or (``events`` set) a 200 SSE stream.

    ``headers`` are extra response headers (e.g. AI21's ``request-id``).
    """

    status: int
    body: bytes = b""
    events: tuple[bytes, ...] | None = None
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def json_bytes(obj: Any) -> bytes:
    """Compact JSON, as recorded live non-streaming responses are."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _validation_failed(errors: list[dict[str, Any]], model: str | None = None) -> Response:
    return Response(422, json_bytes({"detail": errors}), model=model)


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

    def to_json(self) -> dict[str, Any]:
        """The call in a message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    def start_delta(self, index: int) -> dict[str, Any]:
        """The stream delta that opens call ``index``: no ``arguments`` yet."""
        start = {"index": index, "id": self.id, "type": "function", "function": {"name": self.name}}
        return {"tool_calls": [start]}

    @staticmethod
    def fragment_delta(index: int, piece: str) -> dict[str, Any]:
        """A stream delta with one fragment of call ``index``'s arguments."""
        return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


# A string (its closing quote optional: scripted arguments may be cut), a punctuation mark, or
# anything else up to the next: the pieces always join to the whole argument string.
_ARG_PIECE_RE = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\],:]|[^{}\[\],:"]+')


@dataclass(frozen=True)
class Choice:
    """One generated choice: text tokens and/or tool calls, and optional reasoning tokens."""

    tokens: tuple[str, ...]
    finish_reason: str
    completion_tokens: int
    tool_calls: tuple[ToolCallOut, ...] = ()
    stop_sequence: str | None = None
    reasoning: tuple[str, ...] | None = None

    @property
    def text(self) -> str:
        """The text tokens joined."""
        return "".join(self.tokens)

    @property
    def content(self) -> str | None:
        """The text; None for a tool-call answer without text (sent as ``null``)."""
        if self.tool_calls and not self.tokens:
            return None
        return "".join(self.tokens)

    @property
    def reasoning_text(self) -> str | None:
        """The reasoning, or None if the answer has none."""
        return None if self.reasoning is None else "".join(self.reasoning)


def finish_text(text: str, max_tokens: int, stop: Sequence[str]) -> Choice:
    """Apply stop sequences, then ``max_tokens``; count completion tokens.

    A natural end costs one extra (end-of-sequence) token, as in the live capture where the final
    empty chunk was counted (recorded streams). If that token does not fit in ``max_tokens`` the
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


ToolCallId = Callable[[str, int, int], str]
"""A flavour's tool-call id: ``(seed, choice index, call index) -> id``, deterministic."""


def digest(seed: str, choice: int, index: int) -> str:
    """A hex digest for deterministic ids."""
    return hashlib.sha256(f"{seed}|{choice}|{index}".encode()).hexdigest()


def _hosted_tool_call_id(seed: str, choice: int, index: int) -> str:
    return "call_" + digest(seed, choice, index)[:24]


def _generate(
    model: str,
    messages: Sequence[Message],
    *,
    documents: Sequence[str] = (),
    tools: Sequence[ToolSpec] = (),
    json_mode: bool = False,
    json_schema: Mapping[str, Any] | None = None,
    variant: int = 0,
    n: int = 1,
    seed: str = "",
    tool_call_id: ToolCallId = _hosted_tool_call_id,
    tool_choice: str | None = None,
    named_tool: str | None = None,
) -> str | tuple[ToolCallOut, ...]:
    """The answer for one choice: text, or the tool calls to make.

    ``tool_choice`` (OpenAI's, where the flavour reads it): ``"none"`` calls no tool,
    ``"required"`` calls one even if none fits the question, ``"named"`` calls ``named_tool``;
    None or ``"auto"``: the tools that fit, if any.
    """
    schema: dict[str, Any] | None = None
    if not json_mode and not tools and _answer.asks_for_json(messages):
        json_mode = True  # the prompt asks for it, as a model would follow
    if json_mode:
        schema, trimmed = _answer.split_schema(messages)
        messages = trimmed
        if json_schema is not None:
            schema = dict(json_schema)  # given by the request (vLLM's guided decoding)
    after_tools = _answer.tool_result_answer(messages)
    context = _answer.find_context(messages, documents)
    if tool_choice == "named":
        tools = [tool for tool in tools if tool.name == named_tool]
    if after_tools is None and tools and messages[-1].role == "user" and tool_choice != "none":
        picks = _answer.choose_tools(
            messages[-1].content, tools, required=tool_choice == "required"
        )
        if picks:
            return tuple(
                ToolCallOut(
                    tool_call_id(seed, variant, k),
                    tool.name,
                    json.dumps(
                        _answer.tool_arguments(tool, words),
                        separators=(",", ":"),
                        ensure_ascii=False,
                    ),
                )
                for k, (tool, words) in enumerate(picks)
            )
    formatted = (
        _answer.llamaindex_format_answer(messages[-1].content)
        if after_tools is None and messages[-1].role == "user"
        else None
    )
    react = (
        _answer.react_answer(messages)
        if after_tools is None and not tools and not json_mode and messages[-1].role == "user"
        else None
    )
    if after_tools is not None:
        text = after_tools
    elif react is not None:
        text = react
    elif formatted is not None:
        text = formatted
    elif context is not None:
        text = _answer.grounded_answer(context, variant)
    else:
        text = _answer.echo_answer(model, messages, variant, n)
    if json_mode:
        text = _answer.json_answer(schema, messages, text, context)
    return text


def prompt_tokens(request: ChatRequest, tools_json: str = "") -> int:
    """Prompt token count (see ``PER_MESSAGE_OVERHEAD``)."""
    total = 0
    for message in request.messages:
        total += PER_MESSAGE_OVERHEAD + _text.count_tokens(message.content)
        for call in message.tool_calls:
            total += _text.count_tokens(call.name) + _text.count_tokens(call.arguments)
    total += sum(_text.count_tokens(doc) for doc in request.documents)
    return total + _text.count_tokens(tools_json)


def request_prompt_tokens(request: ChatRequest, body: Mapping[str, Any]) -> int:
    """:func:`prompt_tokens` of a validated body (the tools counted as their JSON)."""
    return prompt_tokens(request, json.dumps(body["tools"]) if request.tools else "")


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


def _tool_tokens(calls: Sequence[ToolCallOut]) -> int:
    """Completion tokens of tool calls: per call 1 + its argument fragments."""
    return sum(1 + len(call.fragments()) for call in calls)


def scripted_choice(reply: Reply, seed: str, tool_call_id: ToolCallId) -> Choice:
    """A scripted :class:`Reply` as a choice, sent exactly as written."""
    calls = tuple(
        ToolCallOut(call.id or tool_call_id(seed, 0, k), call.name, call.arguments_json())
        for k, call in enumerate(reply.tool_calls)
    )
    tokens = tuple(_text.tokenize(reply.content or ""))
    reasoning = None if reply.reasoning is None else tuple(_text.tokenize(reply.reasoning))
    used = len(tokens) + len(reasoning or ()) + _tool_tokens(calls) + 1
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    return Choice(tokens, finish, used, tool_calls=calls, reasoning=reasoning)


@dataclass(frozen=True)
class ChatPlan:
    """The choices of one chat answer and its usage (``prompt``/``completion``/``total``).

    ``reasoning_tokens`` counts the reasoning of every choice (or what a scripted reply says);
    ``cached_tokens`` is the part of the prompt a prefix cache held, when one is reported.
    """

    choices: tuple[Choice, ...]
    usage: dict[str, int]
    reasoning_tokens: int = 0
    cached_tokens: int | None = None


def plan_chat(
    request: ChatRequest,
    body: Mapping[str, Any],
    *,
    max_tokens: int,
    answer_tokens: int | None = None,
    scripted: Reply | None = None,
    tool_call_id: ToolCallId = _hosted_tool_call_id,
    reasoning: bool = False,
    cached_tokens: int | None = None,
) -> ChatPlan:
    """Generate every choice of a validated chat request.

    ``max_tokens`` is the request's (or the flavour's default). ``answer_tokens`` (the
    ``X-Emulator-Answer-Tokens`` header) asks for a text answer of that many tokens whatever the
    conversation says, for load and memory tests; it is not capped unless the body sets
    ``max_tokens``. ``scripted`` is sent as written, for every choice. ``reasoning`` adds a short
    reasoning text to generated answers (a reasoning model behind vLLM's reasoning parser).
    ``cached_tokens`` (the ``X-Emulator-Cached-Tokens`` header) is how much of the prompt a
    prefix cache held: reported up to the prompt's length.
    """
    seed = (
        json.dumps([body.get("messages"), body.get("tools")], sort_keys=True)
        if request.tools or scripted is not None
        else ""
    )
    prompt = request_prompt_tokens(request, body)
    cached = None if cached_tokens is None else min(cached_tokens, prompt)
    if scripted is not None:
        choice = scripted_choice(scripted, seed, tool_call_id)
        completion = choice.completion_tokens * request.n
        reasoning_count = scripted.usage_detail("reasoning_tokens")
        if reasoning_count is None:
            reasoning_count = len(choice.reasoning or ()) * request.n
        given_cached = scripted.usage_detail("cached_tokens")
        return ChatPlan(
            (choice,) * request.n,
            scripted.usage_json(prompt, completion),
            reasoning_tokens=reasoning_count,
            cached_tokens=cached if given_cached is None else given_cached,
        )
    choices: list[Choice] = []
    if answer_tokens is not None:
        limit = request.max_tokens if request.max_tokens is not None else answer_tokens + 1
        choices = [finish_text(filler_text(answer_tokens), limit, request.stop)] * request.n
    for i in range(0 if choices else request.n):
        answer = _generate(
            request.model,
            request.messages,
            documents=request.documents,
            tools=request.tools,
            json_mode=request.json_mode,
            json_schema=request.json_schema,
            variant=i,
            n=request.n,
            seed=seed,
            tool_call_id=tool_call_id,
            tool_choice=request.tool_choice,
            named_tool=request.named_tool,
        )
        # A reasoning model writes its reasoning first, and max_tokens bounds everything it
        # writes (vLLM's reasoning parser only splits the output): the answer gets what the
        # reasoning left, and a reasoning that reaches max_tokens ends there, with no answer.
        thought = tuple(_text.tokenize(_answer.reasoning_text(request.messages)))
        budget = max_tokens - len(thought) if reasoning else max_tokens
        if reasoning and budget <= 0:
            choice = Choice((), "length", max_tokens, reasoning=thought[:max_tokens])
            choices.append(choice)
            continue
        if isinstance(answer, str):
            choice = finish_text(answer, budget, request.stop)
        else:
            # OpenAI's finish reason, as vLLM gives it: "tool_calls" for "auto" and "required"
            # calls, "stop" for a named one (vLLM's serving_chat.py).
            finish = "stop" if request.tool_choice == "named" else "tool_calls"
            choice = Choice((), finish, _tool_tokens(answer) + 1, tool_calls=answer)
        if reasoning:
            choice = replace(
                choice,
                completion_tokens=choice.completion_tokens + len(thought),
                reasoning=thought,
            )
        choices.append(choice)
    completion = sum(c.completion_tokens for c in choices)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    reasoning_count = sum(len(c.reasoning or ()) for c in choices)
    return ChatPlan(tuple(choices), usage, reasoning_tokens=reasoning_count, cached_tokens=cached)


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


def token_logprobs(tokens: Sequence[str], top: int) -> list[dict[str, Any]]:
    """OpenAI's (and vLLM's) ``logprobs.content`` for ``tokens``: each with a deterministic
    ``logprob``, its UTF-8 ``bytes`` and ``top`` candidates (the token itself first, then
    fillers, each a nat less likely than the one before)."""
    out = []
    for token in tokens:
        lp = _logprob(token)
        candidates = [token, *(f.replace("▁", " ") for f in _TOP_FILLERS)]
        candidates = [token, *(c for c in candidates[1:] if c != token)][:top]
        out.append(
            {
                "token": token,
                "logprob": lp,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {
                        "token": c,
                        "logprob": lp if k == 0 else round(lp - k, 4),
                        "bytes": list(c.encode()),
                    }
                    for k, c in enumerate(candidates)
                ],
            }
        )
    return out


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


def j2_complete(model: str, body: Any, completion_id: str) -> Response:
    """Answer ``POST /{j2-model}/complete`` (AI21's J2 complete reference)."""
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
                    "text": choice.text,
                    "tokens": _j2_tokens(choice.text, request.top_k_return, endoftext=natural),
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
    return Response(200, json_bytes(response), model=model)


def j2_chat(model: str, body: Any, response_id: str) -> Response:
    """Answer ``POST /{j2-model}/chat`` (AI21's J2 chat reference)."""
    if not isinstance(body, dict):
        return _validation_failed(body_not_object(body), model)
    request, errors = validate_j2_chat(model, body)
    if request is None:
        return _validation_failed(errors, model)
    outputs = [
        {
            "text": choice.text,
            "role": "assistant",
            "finishReason": _j2_finish(choice, request.max_tokens, chat=True),
        }
        for choice in _j2_choices(request)
    ]
    return Response(200, json_bytes({"id": response_id, "outputs": outputs}), model=model)
