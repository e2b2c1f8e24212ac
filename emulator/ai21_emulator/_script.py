"""Scripted replies: the exact answer for the next chat request(s), as tests of a client want.

A test of the adapter should not depend on how the emulator makes up answers: it scripts the
answer and asserts what the adapter does with it (the idea of httpx's ``MockTransport`` and
pydantic-ai's ``FunctionModel``). The reply is rendered in the flavour's own format (ids, stream
framing, field names), streamed or not as the request asks.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
# OpenAI's usage details, as vLLM reports them: ``completion_tokens_details.reasoning_tokens``
# (a server with a reasoning parser) and ``prompt_tokens_details.cached_tokens``
# (``--enable-prompt-tokens-details``).
DETAIL_KEYS = ("reasoning_tokens", "cached_tokens")


@dataclass(frozen=True)
class ToolCall:
    """A tool call in a scripted :class:`Reply`.

    Args:
        name: The function name.
        arguments: The arguments, as a mapping (sent as compact JSON) or as the exact string to
            send (which need not be valid JSON: useful to test a client's error path).
        id: The call id; default: one in the flavour's format (``call_<24 hex>`` for AI21's
            host, ``chatcmpl-tool-<16 hex>`` for vLLM).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("ToolCall.name must be a non-empty string")
        if not isinstance(self.arguments, (str, Mapping)):
            raise ValueError("ToolCall.arguments must be a mapping or a string")
        if self.id is not None and not isinstance(self.id, str):
            raise ValueError("ToolCall.id must be a string or None")

    def arguments_json(self) -> str:
        """The ``function.arguments`` string as sent."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """The exact answer for one chat request (every choice, if it asks for ``n > 1``).

    Args:
        content: The answer text. None (the default) with ``tool_calls`` sends ``null``; None
            without tool calls sends ``""``.
        tool_calls: Tool calls to make.
        reasoning: Reasoning text: vLLM's ``reasoning`` field (or the name the emulator is
            configured with), AI21's ``reasoning_content``; streamed before the content.
        finish_reason: Default ``"tool_calls"`` with tool calls, else ``"stop"``.
        usage: ``prompt_tokens`` and ``completion_tokens`` to report (``total_tokens`` defaults
            to their sum); default: counted as for any answer. The vLLM flavour also reports
            ``reasoning_tokens`` (default: the reasoning's tokens, where the server has a
            reasoning parser) and ``cached_tokens`` (default: none reported) given here.

    ``max_tokens`` and ``stop`` do not cut a scripted reply: it is sent as written.

    Example:
        >>> from ai21_emulator import Reply, ToolCall
        >>> Reply(tool_calls=[ToolCall("multiply", {"a": 6, "b": 7})]).finish_reason is None
        True
    """

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.content is not None and not isinstance(self.content, str):
            raise ValueError("Reply.content must be a string or None")
        if self.reasoning is not None and not isinstance(self.reasoning, str):
            raise ValueError("Reply.reasoning must be a string or None")
        if self.finish_reason is not None and not isinstance(self.finish_reason, str):
            raise ValueError("Reply.finish_reason must be a string or None")
        calls = tuple(self.tool_calls)
        if not all(isinstance(call, ToolCall) for call in calls):
            raise ValueError("Reply.tool_calls must hold ToolCall objects")
        object.__setattr__(self, "tool_calls", calls)
        if self.usage is not None:
            known = {*USAGE_KEYS, *DETAIL_KEYS}
            unknown = set(self.usage) - known if isinstance(self.usage, Mapping) else {0}
            if unknown or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for v in self.usage.values()
            ):
                raise ValueError(
                    "Reply.usage maps prompt_tokens/completion_tokens/total_tokens "
                    "(and reasoning_tokens/cached_tokens) to ints >= 0"
                )

    def usage_json(self, prompt: int, completion: int) -> dict[str, int]:
        """The usage to report; ``prompt``/``completion`` are the counted defaults."""
        given = dict(self.usage or {})
        prompt = given.get("prompt_tokens", prompt)
        completion = given.get("completion_tokens", completion)
        total = given.get("total_tokens", prompt + completion)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}

    def usage_detail(self, key: str) -> int | None:
        """A usage detail (``reasoning_tokens``, ``cached_tokens``) the reply sets, or None."""
        return None if self.usage is None else self.usage.get(key)


Handler = Callable[[dict[str, Any]], "Reply | None"]


class Script:
    """Queued replies, then the optional handler; thread-safe."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()

    def push(self, replies: Iterable[Reply]) -> None:
        with self._lock:
            self._queue.extend(replies)

    def take(self, body: dict[str, Any]) -> Reply | None:
        """The reply for a valid chat request: the next queued one, else the handler's."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            handler = self.handler
        if handler is None:
            return None
        reply = handler(body)
        if reply is not None and not isinstance(reply, Reply):
            raise TypeError(f"the emulator's handler must return a Reply or None, not {reply!r}")
        return reply

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def queued(self) -> list[Reply]:
        """The queued replies, next first (a copy)."""
        with self._lock:
            return list(self._queue)

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._queue)
            self._queue.clear()
            return cleared


_REPLY_FIELDS = frozenset({"content", "tool_calls", "reasoning", "finish_reason", "usage"})
_CALL_FIELDS = frozenset({"name", "arguments", "id"})


def reply_from_json(data: Any) -> Reply:
    """A :class:`Reply` from its JSON object form (``POST /_emulator/replies``).

    ``{"content": ..., "tool_calls": [{"name": ..., "arguments": {...} or "...", "id": ...}],
    "reasoning": ..., "finish_reason": ..., "usage": {...}}``; raises ValueError naming the
    problem.
    """
    if not isinstance(data, Mapping):
        raise ValueError("a reply must be a JSON object")
    unknown = sorted(set(data) - _REPLY_FIELDS)
    if unknown:
        raise ValueError(f"unknown reply field(s): {', '.join(unknown)}")
    calls = data.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ValueError("tool_calls must be a list")
    parsed: list[ToolCall] = []
    for call in calls:
        if not isinstance(call, Mapping) or set(call) - _CALL_FIELDS or "name" not in call:
            raise ValueError("each tool call is an object with name, arguments and id")
        parsed.append(ToolCall(call["name"], call.get("arguments", {}), call.get("id")))
    return Reply(
        content=data.get("content"),
        tool_calls=parsed,
        reasoning=data.get("reasoning"),
        finish_reason=data.get("finish_reason"),
        usage=data.get("usage"),
    )


def reply_to_json(reply: Reply) -> dict[str, Any]:
    """A :class:`Reply` in the JSON object form :func:`reply_from_json` reads back."""
    return {
        "content": reply.content,
        "tool_calls": [
            {
                "name": call.name,
                "arguments": call.arguments
                if isinstance(call.arguments, str)
                else dict(call.arguments),
                "id": call.id,
            }
            for call in reply.tool_calls
        ],
        "reasoning": reply.reasoning,
        "finish_reason": reply.finish_reason,
        "usage": None if reply.usage is None else dict(reply.usage),
    }
