"""Stream decoding and accumulation, with no I/O (ai21-api.md 1.4).

:func:`responses` (and :func:`aresponses`) split the ``text/event-stream`` body into lines;
:func:`decode_sse_line` turns one line into an event dict
(or :data:`DONE`, or ``None`` for lines that carry nothing). :class:`ChatStreamState` folds
events into the growing answer: ``feed(event)`` returns the ``ChatResponse`` to hand to the
caller, or ``None`` for events that add nothing (the role-only first event).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Final

import orjson
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole, TextBlock

from llama_index.llms.ai21._convert import assistant_message, usage_kwargs
from llama_index.llms.ai21.errors import MalformedResponseError, StreamInterruptedError


class _Done:
    def __repr__(self) -> str:
        return "DONE"


DONE: Final = _Done()
"""Sentinel returned for the ``data: [DONE]`` line that ends a stream."""

# SSE fields other than ``data`` carry nothing for AI21 streams; lines starting with ":"
# are comments (keep-alives). Both are legal SSE, so they are skipped, not rejected.
_IGNORED_FIELDS = (b"event:", b"id:", b"retry:", b":")


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The non-blank lines (LF or CRLF) of a byte stream, as bytes: ``orjson`` takes bytes,
    so nothing is decoded to text first (``httpx.Response.iter_lines`` would)."""
    pending = b""
    for chunk in chunks:
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line and line != b"\r":
                yield line.removesuffix(b"\r")
    if pending:  # a last line without its newline
        yield pending


async def _alines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The async twin of :func:`_lines`."""
    pending = b""
    async for chunk in chunks:
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line and line != b"\r":
                yield line.removesuffix(b"\r")
    if pending:
        yield pending


def _fold(line: bytes, state: ChatStreamState) -> ChatResponse | _Done | None:
    """Decode one line and feed it to ``state``: the response to yield, ``DONE`` or nothing."""
    event = decode_sse_line(line)
    if event is None or event is DONE:
        return event
    return state.feed(event)  # type: ignore[arg-type]


def responses(chunks: Iterable[bytes], state: ChatStreamState) -> Iterator[ChatResponse]:
    """The responses for a chat completion's byte stream, up to ``[DONE]``.

    After ``[DONE]`` the rest of the body (normally just HTTP's end-of-body marker) is read
    and dropped, as the SDK does, so the connection goes back to the pool. Raises
    :class:`StreamInterruptedError` if the stream ends before AI21's final event.
    """
    chunks = iter(chunks)
    for line in _lines(chunks):
        result = _fold(line, state)
        if isinstance(result, ChatResponse):
            yield result
        elif result is DONE:
            for _ in chunks:  # read to the end, so the connection can be reused
                pass
            return
    if state.finish_reason is None:
        raise ended_early(state)


async def aresponses(
    chunks: AsyncIterable[bytes], state: ChatStreamState
) -> AsyncIterator[ChatResponse]:
    """The async twin of :func:`responses`."""
    chunks = aiter(chunks)
    async for line in _alines(chunks):
        result = _fold(line, state)
        if isinstance(result, ChatResponse):
            yield result
        elif result is DONE:
            async for _ in chunks:  # read to the end, so the connection can be reused
                pass
            return
    if state.finish_reason is None:
        raise ended_early(state)


def ended_early(state: ChatStreamState) -> StreamInterruptedError:
    return StreamInterruptedError(
        "AI21 stream ended before its final event (no finish_reason); the answer is incomplete",
        state.text,
    )


def decode_sse_line(line: bytes) -> dict[str, Any] | _Done | None:
    """Decode one SSE line; raise :class:`MalformedResponseError` naming a bad one."""
    if not line:
        return None
    if line.startswith(b"data:"):
        payload = line[6:] if line.startswith(b"data: ") else line[5:]
        if payload.startswith(b"[DONE]"):
            return DONE
        try:
            event = orjson.loads(payload)  # several times faster than json, per event
        except orjson.JSONDecodeError as exc:  # includes invalid UTF-8
            raise MalformedResponseError(
                f"malformed AI21 stream: event is not valid JSON ({exc}): {_clip(payload)}"
            ) from exc
        if not isinstance(event, dict):
            raise MalformedResponseError(
                f"malformed AI21 stream: event should be a JSON object: {_clip(payload)}"
            )
        return event
    if line.startswith(_IGNORED_FIELDS):
        return None
    raise MalformedResponseError(
        f"malformed AI21 stream: not a server-sent event line: {_clip(line)}"
    )


def _clip(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else f"{text[:limit]}..."


def _bad(what: str) -> MalformedResponseError:
    return MalformedResponseError(f"malformed AI21 stream event: {what}")


def _diagnose(event: dict[str, Any]) -> MalformedResponseError:
    """Name what is wrong with an event that lacks ``choices[0].delta``."""
    choices = event.get("choices")
    if not isinstance(choices, list):
        return _bad(f"'choices' should be a list, got {type(choices).__name__}")
    if not choices:
        return _bad("'choices' is empty")
    if not isinstance(choices[0], dict):
        return _bad("choices[0] should be an object")
    delta = choices[0].get("delta")
    return _bad(f"choices[0].delta should be an object, got {type(delta).__name__}")


class ChatStreamState:
    """Accumulates one streamed chat completion.

    Content deltas are concatenated; tool-call fragments are merged by their ``index``
    (the first fragment of a call carries ``id`` and ``function.name``, later ones
    pieces of ``function.arguments``). The final event carries ``finish_reason`` and
    ``usage``, which land in the last response's ``additional_kwargs``.
    """

    __slots__ = ("_tool_calls", "finish_reason", "text", "usage")

    def __init__(self) -> None:
        self.text = ""
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {}

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls merged so far, in index order."""
        return [self._tool_calls[i] for i in sorted(self._tool_calls)]

    def feed(self, event: dict[str, Any]) -> ChatResponse | None:
        """Fold one decoded event in; return the response to yield, if any."""
        try:  # the shape every well-formed event has; diagnosed in detail only if not
            choice = event["choices"][0]
            delta = choice["delta"]
            content = delta.get("content")
            finish_reason = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _diagnose(event) from None
        if content is not None and content.__class__ is not str:
            raise _bad(f"delta.content should be a string, got {type(content).__name__}")
        tool_deltas = delta.get("tool_calls")
        if tool_deltas is not None:
            self._merge_tool_calls(tool_deltas)
        usage = event.get("usage")
        is_last = finish_reason is not None or usage is not None
        if is_last:
            self._finish(finish_reason, usage)
        elif not content and not tool_deltas:
            return None  # the role-only first event: nothing for the caller

        if content:
            self.text += content
        if self._tool_calls:
            message = assistant_message(self.text, self.tool_calls)
        else:  # the common case, kept lean: it runs once per token
            message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=self.text)])
        if not is_last:
            return ChatResponse(message=message, delta=content or "", raw=event)
        return ChatResponse(
            message=message,
            delta=content or "",
            raw=event,
            additional_kwargs={**self.usage, "finish_reason": self.finish_reason},
        )

    def _finish(self, finish_reason: Any, usage: Any) -> None:
        if finish_reason is not None:
            if not isinstance(finish_reason, str):
                raise _bad("finish_reason should be a string")
            self.finish_reason = finish_reason
        if usage is not None:
            try:
                self.usage = usage_kwargs(usage)
            except MalformedResponseError as exc:
                raise _bad(str(exc)) from exc

    def _merge_tool_calls(self, fragments: Any) -> None:
        if not isinstance(fragments, list):
            raise _bad("delta.tool_calls should be a list")
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                raise _bad(f"delta.tool_calls[{position}] should be an object")
            index = fragment.get("index", position)
            if not isinstance(index, int):
                raise _bad(f"delta.tool_calls[{position}].index should be an integer")
            function = fragment.get("function") or {}
            if not isinstance(function, dict):
                raise _bad(f"delta.tool_calls[{position}].function should be an object")
            call = self._tool_calls.get(index)
            if call is None:
                call_id = fragment.get("id")
                name = function.get("name")
                if not isinstance(call_id, str) or not isinstance(name, str):
                    raise _bad(
                        f"the first fragment of tool call {index} needs a string 'id' and "
                        "'function.name'"
                    )
                call = {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                self._tool_calls[index] = call
            arguments = function.get("arguments")
            if arguments is not None:
                if not isinstance(arguments, str):
                    raise _bad(f"tool call {index} arguments should be a string fragment")
                call["function"]["arguments"] += arguments
