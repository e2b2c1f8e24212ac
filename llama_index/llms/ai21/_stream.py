"""Stream decoding and accumulation, with no I/O (docs/streaming.md).

:func:`responses` (and :func:`aresponses`) split the ``text/event-stream`` body into lines;
:func:`decode_sse_line` turns one line into an event dict
(or :data:`DONE`, or ``None`` for lines that carry nothing). :class:`ChatStreamState` folds
events into the growing answer: ``feed(event)`` returns the ``ChatResponse`` to hand to the
caller, or ``None`` for events that add nothing (the role-only first event, a usage-only
event).

Both AI21's hosted API and OpenAI-compatible servers (vLLM) stream chat completion chunks;
what differs is handled here once, for both:

- usage arrives on the final chunk (AI21), or in a chunk of its own with empty ``choices``
  after it (``stream_options.include_usage``, vLLM), or on every chunk
  (``continuous_usage_stats``). The final response carries the last usage seen.
- an ``{"error": {...}}`` event (vLLM reports an engine failure inside a 200 stream) raises
  the ``ai21`` SDK's exception for its ``code``, as an error status would.
- ``reasoning`` / ``reasoning_content`` deltas become a ``ThinkingBlock`` and
  ``additional_kwargs["thinking_delta"]``, never answer text.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Final

import httpx
import orjson
from ai21.http_client.base_http_client import handle_non_success_response
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    LogProb,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)

from llama_index.llms.ai21._convert import assistant_message, token_logprobs, usage_kwargs
from llama_index.llms.ai21._markup import (
    NO_MARKUP,
    Markup,
    ThinkSplitter,
    _partial_suffix,
    note_length_cut,
)
from llama_index.llms.ai21.errors import MalformedResponseError, StreamInterruptedError


class _Done:
    def __repr__(self) -> str:
        return "DONE"


DONE: Final = _Done()
"""Sentinel returned for the ``data: [DONE]`` line that ends a stream."""

# SSE fields other than ``data`` carry nothing for AI21 streams; lines starting with ":"
# are comments (keep-alives). Both are legal SSE, so they are skipped, not rejected.
_IGNORED_FIELDS = (b"event:", b"id:", b"retry:", b":")

LARGE_EVENT: Final = 1024 * 1024
"""Events longer than this (a whole tool call in one event) are parsed by the stdlib: ``orjson``,
several times faster per event, sets aside about twelve times a document's size to parse it
(96 MiB for 8 MiB), the stdlib about twice (``_http.decode_json`` does the same for bodies)."""


MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""The longest stream line read (16 MiB); a longer one is a :class:`MalformedResponseError`.

The largest real event is a final one that carries a whole tool call (Ollama sends each call in
one event) or a whole answer: at most Jamba's 256K-token context, about 4 characters a token,
each at worst a 6-byte JSON escape (``\\u00e9``): about 6 MiB. 16 MiB leaves more than twice
that; without a limit, a line that never ends is kept in memory until the client runs out."""


MAX_ANSWER_CHARS: Final = 64 * 1024 * 1024
"""The most a stream's answer may hold (64 Mi characters): its text, reasoning and tool calls
together, as they arrive (a whole answer's body is read to 64 MiB, ``_http.ANSWER_LIMIT``).
Jamba's 256K-token context holds a few million characters at most; past the limit the server
is sending more than any answer can be, and the stream is refused (:class:`MalformedResponseError`)
instead of kept in memory until the client runs out."""


MAX_HELD_LOGPROBS: Final = 256 * 1024
"""The most token log-probabilities (tokens and their candidates) a stream may send ahead of
any text to hand them over with (256 Ki, about 140 MiB of LlamaIndex ``LogProb`` objects).
An event whose text is held back (markup) or carries none passes its tokens' log-probabilities
to the next response; a server that sends only log-probabilities would otherwise have them kept
until the client runs out. A real answer holds back at most a tool call's markup: a
2,000-token call with 20 candidates a token is 42 Ki."""


class LineDecoder:
    """Bytes in, complete lines out, with no I/O: the one line splitter of both stream loops.

    A line ends at LF, CRLF or a bare CR (the three endings server-sent events allow); blank
    lines are dropped (no AI21 event spans lines). The pieces of an unfinished line are kept
    in a list and joined once, when the line ends, so the work is linear in the bytes however
    a long line is cut into chunks (httpx's ``LineDecoder`` and openai-python's
    ``SSEDecoder`` do the same). Lines stay bytes: ``orjson`` reads bytes, so nothing is
    decoded to text first. A line longer than ``limit`` raises :class:`MalformedResponseError`
    as soon as its pending pieces pass it, before they are joined.
    """

    __slots__ = ("_pending", "_size", "limit")

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self._pending: list[bytes] = []
        self._size = 0  # the bytes in ``_pending``
        self.limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines that ``chunk`` completes, in order."""
        if b"\n" not in chunk and b"\r" not in chunk:  # a piece of a long line: kept, not copied
            if chunk:
                self._keep(chunk)
            return []
        lines = chunk.splitlines()  # bytes.splitlines splits at LF, CR and CRLF only
        if not lines:
            return lines
        tail = lines.pop() if chunk[-1] not in _LINE_ENDS else None
        if len(chunk) > self.limit:  # (a line within one chunk is no longer than the chunk)
            for line in lines:
                if len(line) > self.limit:
                    raise self._too_long([line])
        if self._pending and lines:  # the first line ends the one left unfinished
            self._keep(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending, self._size = [], 0
        if tail is not None:
            self._keep(tail)
        return [line for line in lines if line]

    def flush(self) -> list[bytes]:
        """A last line that ended with the body rather than with a line ending."""
        line = b"".join(self._pending)
        self._pending, self._size = [], 0
        return [line] if line else []

    def _keep(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._size += len(piece)
        if self._size > self.limit:
            pending, self._pending, self._size = self._pending, [], 0
            raise self._too_long(pending)

    def _too_long(self, pieces: list[bytes]) -> MalformedResponseError:
        start = bytearray()
        for piece in pieces:  # enough of the line to quote, never all of it
            start += piece[: _QUOTED_BYTES - len(start)]
            if len(start) >= _QUOTED_BYTES:
                break
        return MalformedResponseError(
            f"malformed AI21 stream: a line is longer than {self.limit} bytes "
            f"({self.limit / 2**20:g} MiB), more than any event carries: {_clip(bytes(start))}"
        )


_LINE_ENDS = b"\r\n"
_QUOTED_BYTES = 801  # of a line too long, for its error: one more than _clip decodes, so it
# marks the line as cut


class IdleWatch:
    """Ends a stream that goes on without any of the answer for more than ``seconds``.

    httpx's read timeout bounds each read, so a server that sends keep-alive comments, empty
    events or a line a byte at a time (a proxy keeping the connection of a stalled model
    open) holds a stream for as long as it keeps doing so. The answer's progress is what
    :class:`ChatStreamState` has kept (text, reasoning and tool calls, in characters);
    :meth:`check` runs after the lines of each piece of the body are read, and once a piece
    brings nothing of the answer, the next ones must bring some within ``seconds``, else it
    raises ``httpx.ReadTimeout``, as a silent server's read would. So a stream waits for its
    answer at most about twice ``seconds`` (a read's wait, then the idle pieces'). The
    caller's own time between chunks never counts: the clock starts at a piece without progress,
    and nothing reaches the caller between two such pieces.
    """

    __slots__ = ("_kept", "_request", "_seconds", "_since", "_state")

    def __init__(self, state: ChatStreamState, seconds: float, request: httpx.Request) -> None:
        self._state = state
        self._seconds = seconds
        self._request = request
        self._kept = -1  # what the state had kept at the last piece
        self._since: float | None = None  # when the pieces without progress began

    def check(self) -> None:
        """After a piece of the body has been read: raise if the answer has stood still too
        long."""
        kept = self._state._kept
        if kept != self._kept:  # every piece of a burst stream: one comparison
            self._kept, self._since = kept, None
            return
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif now - self._since > self._seconds:
            raise httpx.ReadTimeout(
                f"no part of the answer arrived for {self._seconds:g} s: the server sent only "
                "keep-alives, empty events or part of a line (timeout= bounds this wait as well "
                "as each read)",
                request=self._request,
            )


def _lines(chunks: Iterator[bytes], watch: IdleWatch | None = None) -> Iterator[bytes]:
    decoder = LineDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
        if watch is not None:
            watch.check()
    yield from decoder.flush()


async def _alines(
    chunks: AsyncIterator[bytes], watch: IdleWatch | None = None
) -> AsyncIterator[bytes]:
    decoder = LineDecoder()
    async for chunk in chunks:
        for line in decoder.feed(chunk):
            yield line
        if watch is not None:
            watch.check()
    for line in decoder.flush():
        yield line


class _Folder:
    """Lines in, responses out: the logic both :func:`responses` loops share (no I/O).

    A final event without usage is held back until ``[DONE]`` or the end of the body, so that
    a usage-only event after it (``stream_options.include_usage``) lands in the final response.
    """

    __slots__ = ("held", "state")

    def __init__(self, state: ChatStreamState) -> None:
        self.state = state
        self.held: ChatResponse | None = None

    def step(self, line: bytes) -> tuple[ChatResponse, ...] | _Done:
        event = decode_sse_line(line)
        if event is None:
            return ()
        if event is DONE:
            return DONE
        state = self.state
        result = state.feed(event)  # type: ignore[arg-type]
        if result is None:
            return ()
        released: tuple[ChatResponse, ...] = ()
        if self.held is not None:  # more answer after a final event: hand that one over
            released, self.held = (self.held,), None
        if state.finish_reason is not None and not state.usage:
            self.held = result
            return released
        return (*released, result) if released else (result,)

    def end(self) -> tuple[ChatResponse, ...]:
        """What is left at ``[DONE]`` or the end of the body."""
        if self.state.finish_reason is None:
            raise ended_early(self.state)
        if self.held is None:
            return ()
        return (self.state.with_usage(self.held),)


def responses(
    chunks: Iterable[bytes], state: ChatStreamState, watch: IdleWatch | None = None
) -> Iterator[ChatResponse]:
    """The responses for a chat completion's byte stream, up to ``[DONE]``.

    Reading stops at ``[DONE]``: whatever follows is the transport's to discard when the
    response is closed, so a finished answer never waits on, or fails because of, the
    connection. Raises :class:`StreamInterruptedError` if the stream ends before its final
    event, and ``watch``'s ``httpx.ReadTimeout`` if the answer stands still too long.
    """
    folder = _Folder(state)
    for line in _lines(iter(chunks), watch):
        out = folder.step(line)
        if out is DONE:
            break
        yield from out  # type: ignore[misc]
    yield from folder.end()


async def aresponses(
    chunks: AsyncIterable[bytes], state: ChatStreamState, watch: IdleWatch | None = None
) -> AsyncIterator[ChatResponse]:
    """The async twin of :func:`responses`."""
    folder = _Folder(state)
    async for line in _alines(aiter(chunks), watch):
        out = folder.step(line)
        if out is DONE:
            break
        for response in out:  # type: ignore[union-attr]
            yield response
    for response in folder.end():
        yield response


def ended_early(state: ChatStreamState) -> StreamInterruptedError:
    return StreamInterruptedError(
        "AI21 stream ended before its final event (no finish_reason); the answer is incomplete"
        f"{state.arrived()}",
        state.text,
        state.reasoning,
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
            event = orjson.loads(payload) if len(payload) <= LARGE_EVENT else json.loads(payload)
        except (ValueError, RecursionError) as exc:  # ValueError: also invalid UTF-8
            raise MalformedResponseError(
                f"malformed AI21 stream: event is not valid JSON ({_json_error(exc)}): "
                f"{_clip(payload)}"
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


def _json_error(exc: ValueError | RecursionError) -> str:
    """What is wrong with a line that is not JSON, for its error; the error no longer holds the
    line (a ``JSONDecodeError``'s ``doc`` is all of it, as text: ``_http.decode_json`` drops it
    too)."""
    if isinstance(exc, RecursionError):  # the stdlib's parser, on brackets nested thousands deep
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):  # orjson's is one too
        exc.doc = ""
    return str(exc)


def _clip(raw: bytes, limit: int = 200) -> str:
    """The first ``limit`` characters of ``raw`` for an error message, decoding only the bytes
    they can come from (a hostile line may be many megabytes)."""
    text = raw[: 4 * limit].decode("utf-8", errors="replace")
    return text if len(text) <= limit and len(raw) <= 4 * limit else f"{text[:limit]}..."


def _shown(value: Any, limit: int = 80) -> str:
    """A server's value for an error message: a string quoted and cut, else its type."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."


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


def raise_error_event(event: dict[str, Any]) -> None:
    """Raise the ``ai21`` SDK's exception for an ``{"error": ...}`` event, by its ``code``.

    vLLM reports a failure inside a stream that has already answered 200 this way (vLLM's
    OpenAI-compatible server: an ``ErrorResponse`` event, then ``[DONE]``). It is the same
    failure an error status would have been, so it gets the same class, with the server's
    message in ``details``, and the same retry decision.
    """
    error = event["error"]
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    handle_non_success_response(status, orjson.dumps(event).decode())
    raise AssertionError("unreachable: the SDK raises for every status")  # pragma: no cover


class ChatStreamState:
    """Accumulates one streamed chat completion.

    Content deltas are concatenated; tool-call fragments are merged by their ``index``
    (the first fragment of a call carries ``id`` and ``function.name``, later ones
    pieces of ``function.arguments``); reasoning deltas are kept apart from the answer.
    The final event carries ``finish_reason``; ``usage`` comes with it or in an event of its
    own, and lands in the final response's ``additional_kwargs``.
    """

    __slots__ = (
        "_blocks",
        "_calls",
        "_changed",
        "_dicts",
        "_held_logprobs",
        "_kept",
        "_logprobs",
        "_on_no_logprobs",
        "_order",
        "_splitter",
        "_tag_tail",
        "_tool_text",
        "finish_reason",
        "markup",
        "raw_usage",
        "reasoning",
        "text",
        "usage",
        "wants_logprobs",
    )

    def __init__(
        self,
        markup: Markup | None = None,
        logprobs: bool = False,
        on_no_logprobs: Callable[[], None] | None = None,
    ) -> None:
        self.text = ""
        self.reasoning = ""
        self._kept = 0  # characters of answer, reasoning and tool calls: MAX_ANSWER_CHARS
        # Tool calls by index: [id, name, argument pieces]; ``_dicts`` and ``_blocks`` hold
        # each call as an AI21 dict and as a block, in index order (``_order``). An event
        # rebuilds only the calls it touched (``_changed``), so folding N calls is linear in
        # N, not quadratic (every response still carries every call so far).
        self._calls: dict[int, list[Any]] = {}
        self._order: list[int] = []
        self._dicts: list[dict[str, Any]] = []
        self._blocks: list[ToolCallBlock] = []
        self._changed: set[int] = set()
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {}
        self.raw_usage: Any = None  # the server's ``usage`` object, as it sent it
        self.markup = markup or NO_MARKUP
        # Reasoning left in content (no --reasoning-parser): split at </think> (_markup).
        self._splitter = ThinkSplitter() if self.markup.split_think else None
        # Tool calls left in content (no --tool-call-parser): held from the opening tag
        # ("<tool_call>", "<tool_calls>"); ``_tag_tail`` is what may be the start of one.
        self._tag_tail = ""
        self._tool_text: str | None = None
        # Token log-probabilities, read only when asked for (``logprobs``): a server's unasked
        # ones cost nothing. Those not yet handed over wait in ``_logprobs``: an event whose
        # text is held (markup), or that carries no text (vLLM's ``</think>``), passes its
        # tokens' to the next response. ``_on_no_logprobs`` is called at the final event if
        # none came.
        self.wants_logprobs = logprobs
        self._logprobs: list[list[LogProb]] = []
        self._held_logprobs = 0  # tokens and candidates in ``_logprobs``: MAX_HELD_LOGPROBS
        self._on_no_logprobs = on_no_logprobs

    def _keep(self, characters: int) -> None:
        """Count ``characters`` more of the answer; past :data:`MAX_ANSWER_CHARS`, refuse it."""
        self._kept += characters
        if self._kept > MAX_ANSWER_CHARS:
            raise MalformedResponseError(
                f"malformed AI21 stream: the answer passed {MAX_ANSWER_CHARS:,} characters "
                f"({MAX_ANSWER_CHARS / 2**20:g} Mi; text, reasoning and tool calls together), "
                f"more than any answer holds; read no further{self.arrived()}"
            )

    def arrived(self) -> str:
        """What had arrived, for an error message."""
        if not self.reasoning:
            return f" ({len(self.text)} characters of the answer had arrived)"
        return (
            f" ({len(self.reasoning)} characters of reasoning and {len(self.text)} of the answer "
            "had arrived)"
        )

    def _read_markup(self, content: str) -> tuple[str, str]:
        """``(reasoning_piece, answer_piece)`` of a content delta, per :attr:`markup`."""
        thinking = ""
        if self._splitter is not None:
            thinking, content = self._splitter.feed(content)
        tools = self.markup.tools
        if tools is not None and content:
            if self._tool_text is not None:
                self._tool_text += content
                return thinking, ""
            pending = self._tag_tail + content
            start = pending.find(tools.open)
            if start >= 0:
                self._tool_text, self._tag_tail = pending[start:], ""
                return thinking, pending[:start]
            keep = _partial_suffix(pending, tools.open)
            self._tag_tail = pending[len(pending) - keep :]
            content = pending[: len(pending) - keep]
        return thinking, content

    def _finish_markup(self, finish_reason: str) -> str:
        """What the end of the answer releases: held text, and the tool calls it held."""
        released = ""
        if self._splitter is not None:
            reasoning, answer = self._splitter.end(finish_reason)
            self._splitter = None
            self.reasoning = reasoning
            if answer:  # no </think> after all: it was the answer
                released = answer
                self.text = ""
        released += self._tag_tail
        self._tag_tail = ""
        tools = self.markup.tools
        if tools is None:
            return released
        if self._tool_text is None and tools.open in released:
            start = released.index(tools.open)
            released, self._tool_text = released[:start].rstrip(), released[start:]
        if self._tool_text is not None:
            rest, calls = tools.read(self._tool_text, finish_reason)
            self._tool_text = None
            self.text = self.text.rstrip()  # as the whole answer is read (ToolMarkup.read)
            released += rest
            first = self._order[-1] + 1 if self._order else 0
            self._merge_tool_calls([{"index": first + n, **call} for n, call in enumerate(calls)])
        return released

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls merged so far, in index order."""
        self._rebuild_changed()
        return list(self._dicts)

    def _rebuild_changed(self) -> None:
        if len(self._dicts) != len(self._order):  # a call arrived out of index order
            self._dicts, self._blocks = [{}] * len(self._order), [None] * len(self._order)  # type: ignore[list-item]
            self._changed.update(self._order)
        for index in self._changed:
            call_id, name, pieces = self._calls[index]
            if len(pieces) > 1:  # joined once; the next fragment appends to the whole
                pieces[:] = ["".join(pieces)]
            arguments = pieces[0] if pieces else ""
            position = bisect.bisect_left(self._order, index)
            self._dicts[position] = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            self._blocks[position] = ToolCallBlock(
                tool_call_id=call_id, tool_name=name, tool_kwargs=arguments
            )
        self._changed.clear()

    def feed(self, event: dict[str, Any]) -> ChatResponse | None:
        """Fold one decoded event in; return the response to yield, if any."""
        try:  # the shape every well-formed event has; diagnosed in detail only if not
            choice = event["choices"][0]
            delta = choice["delta"]
            content = delta.get("content")
            finish_reason = choice.get("finish_reason")
            well_formed = True
        except (KeyError, IndexError, TypeError, AttributeError):
            well_formed = False
        if not well_formed:
            # Outside the except block: the error event's exception (or the diagnosis) is not
            # chained to this lookup's KeyError ("During handling of the above exception").
            self._feed_other(event)
            return None
        if content is not None and content.__class__ is not str:
            raise _bad(f"delta.content should be a string, got {type(content).__name__}")
        if content:  # counted as it comes: markup may hold it back
            self._keep(len(content))
        if self.wants_logprobs and choice.get("logprobs") is not None:  # this event's tokens'
            self._hold_logprobs(token_logprobs(choice["logprobs"], "choices[0].logprobs") or [])
        # Reasoning comes in a field of its own, usually in deltas before the answer; a delta
        # may carry both (vLLM's deepseek_r1 parser, when ``</think>`` falls inside a delta of
        # several tokens).
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        if thinking is not None:
            if not isinstance(thinking, str):
                raise _bad("delta.reasoning should be a string")
            self._keep(len(thinking))
            self.reasoning += thinking
            self._splitter = None  # the server splits reasoning itself
        if content and (self._splitter is not None or self.markup.tools is not None):
            split, content = self._read_markup(content)
            if split:
                self.reasoning += split
                thinking = (thinking or "") + split
        thinking = thinking or None
        tool_deltas = delta.get("tool_calls")
        if tool_deltas is not None:
            self._merge_tool_calls(tool_deltas)
        usage = event.get("usage")
        if usage is not None:
            self._set_usage(usage)
        is_last = finish_reason is not None
        if is_last:
            if not isinstance(finish_reason, str):
                raise _bad("finish_reason should be a string")
            self.finish_reason = finish_reason
            if self._splitter is not None or self._tool_text is not None or self._tag_tail:
                content = (content or "") + self._finish_markup(finish_reason)
        elif not content and not tool_deltas and not thinking:
            return None  # the role-only first event, or held markup: nothing for the caller

        if content:
            self.text += content
        if self._calls or self.reasoning:
            self._rebuild_changed()
            message = assistant_message(
                self.text, self._dicts, self.reasoning or None, self._blocks
            )
        else:  # the common case, kept lean: it runs once per token
            message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=self.text)])
        if not is_last:
            if thinking:
                response = ChatResponse(
                    message=message,
                    delta=content or "",
                    raw=event,
                    additional_kwargs={"thinking_delta": thinking},
                )
            else:
                response = ChatResponse(message=message, delta=content or "", raw=event)
        else:
            if self._on_no_logprobs is not None:
                self._on_no_logprobs()
            if self.finish_reason == "length":  # only a cut answer can have spent it reasoning
                note_length_cut(self.finish_reason, self.text, self.reasoning)
            extra = self.final_kwargs()
            if thinking:
                extra["thinking_delta"] = thinking
            response = ChatResponse(
                message=message, delta=content or "", raw=event, additional_kwargs=extra
            )
        if self._logprobs:
            response.logprobs, self._logprobs = self._logprobs, []
            self._held_logprobs = 0
        return response

    def _hold_logprobs(self, positions: list[list[LogProb]]) -> None:
        """Keep an event's log-probabilities for the next response; past
        :data:`MAX_HELD_LOGPROBS` without one, refuse the stream."""
        self._on_no_logprobs = None
        self._logprobs += positions
        self._held_logprobs += sum(map(len, positions))
        if self._held_logprobs > MAX_HELD_LOGPROBS:
            raise MalformedResponseError(
                f"malformed AI21 stream: log-probabilities of {self._held_logprobs:,} tokens "
                f"and candidates arrived with no text to go with them (more than "
                f"{MAX_HELD_LOGPROBS:,}); read no further{self.arrived()}"
            )

    def final_kwargs(self) -> dict[str, Any]:
        """The final response's ``additional_kwargs``: token counts, ``finish_reason`` and,
        as ``complete()`` has it, the whole ``reasoning`` (LlamaIndex's stream-to-completion
        adapter carries these over to ``stream_complete``'s last chunk)."""
        extra: dict[str, Any] = {**self.usage, "finish_reason": self.finish_reason}
        if self.reasoning:
            extra["reasoning"] = self.reasoning
        return extra

    def _feed_other(self, event: dict[str, Any]) -> None:
        """An event without ``choices[0].delta``: an error, usage alone, or malformed."""
        if "error" in event and "choices" not in event:
            raise_error_event(event)
        if event.get("choices") == [] and event.get("usage") is not None:
            self._set_usage(event["usage"])  # include_usage / continuous_usage_stats
            return None
        raise _diagnose(event)

    def with_usage(self, response: ChatResponse) -> ChatResponse:
        """``response`` (the final one) with the usage that arrived after it: in its
        ``additional_kwargs``, and in its ``raw`` event as AI21's own final event carries it
        (LlamaIndex's ``TokenCountingHandler`` reads ``raw["usage"]``; without it, it counts
        the text with its own tokenizer instead of taking the server's counts)."""
        thinking = response.additional_kwargs.get("thinking_delta")
        response.additional_kwargs = self.final_kwargs()
        if isinstance(response.raw, dict) and self.raw_usage is not None:
            response.raw = {**response.raw, "usage": self.raw_usage}
        if thinking:
            response.additional_kwargs["thinking_delta"] = thinking
        return response

    def _set_usage(self, usage: Any) -> None:
        try:
            self.usage = usage_kwargs(usage)
        except MalformedResponseError as exc:
            raise _bad(str(exc)) from exc
        self.raw_usage = usage

    @staticmethod
    def _second_call(
        index: int, call: list[Any], call_id: Any, name: Any
    ) -> MalformedResponseError:
        """A fragment that names another call than the one at its index. Servers name a call
        on its first fragment; later ones carry no ``id`` or ``name`` (OpenAI, vLLM,
        llama.cpp), an empty ``id``, or the same ones again (SGLang; vLLM's last fragment,
        vllm-project/vllm#31438), all of them fine. Folding another call's arguments into the
        first would make both unusable (``'{"x": 1}{"x": 2}'``), and which one the server meant
        is not known: neither is guessed."""
        other = f"id {_shown(call_id)}" if call_id and call_id != call[0] else ""
        if name and name != call[1]:
            other += f"{' and ' if other else ''}name {_shown(name)}"
        return _bad(
            f"a fragment of tool call {index} has {other}, but tool call {index} is "
            f"{_shown(call[0])} to {_shown(call[1])}: two calls on one index"
        )

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
            call = self._calls.get(index)
            call_id = fragment.get("id")
            name = function.get("name")
            if call is not None:
                if (call_id and call_id != call[0]) or (name and name != call[1]):
                    raise self._second_call(index, call, call_id, name)
            else:
                if not isinstance(call_id, str) or not isinstance(name, str):
                    raise _bad(
                        f"the first fragment of tool call {index} needs a string 'id' and "
                        "'function.name'"
                    )
                self._keep(len(call_id) + len(name))
                call = self._calls[index] = [call_id, name, []]
                if self._order and index < self._order[-1]:
                    bisect.insort(self._order, index)  # _rebuild_changed realigns the lists
                else:
                    self._order.append(index)
                    self._dicts.append({})
                    self._blocks.append(None)  # type: ignore[arg-type]
            arguments = function.get("arguments")
            if arguments is not None:
                if not isinstance(arguments, str):
                    raise _bad(f"tool call {index} arguments should be a string fragment")
                self._keep(len(arguments))
                call[2].append(arguments)
            self._changed.add(index)
