"""Model markup a server left in the answer text, read client-side (pure, no I/O).

Two cases, both from a server started without one of AI21's recipe flags (docs/self-hosted.md):

- **Reasoning** (no ``--reasoning-parser``): a model that always reasons (Jamba Reasoning 3B:
  its chat template's generation prompt ends in ``<think>\\n``) writes its reasoning, then
  ``</think>``, then the answer, all in ``content``. :class:`ThinkSplitter` splits it, also when
  ``</think>`` arrives split across stream chunks. With no ``</think>`` at all, the text is
  reasoning if the answer was cut by ``max_tokens`` (``finish_reason`` ``"length"``: the model
  was still thinking, as vLLM's ``deepseek_r1`` parser reads it) and the answer otherwise.
- **Tool calls** (no ``--tool-call-parser``): a :class:`ToolMarkup` per format turns the text
  into tool calls, or raises an error that names the server flags to add (or, for a call cut
  at ``max_tokens``, says so). Jamba2 and Reasoning 3B write each call as
  ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` (:data:`HERMES`, their
  chat templates); Jamba 1.5-1.7 write all of them in one JSON array,
  ``<tool_calls>[{"name": ..., "arguments": {...}}, ...]</tool_calls>`` (:data:`JAMBA`, as
  vLLM's ``jamba`` tool parser reads them).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from llama_index.llms.ai21.errors import MalformedResponseError

logger = logging.getLogger("llama_index.llms.ai21")

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ToolMarkup:
    """How a family of chat templates writes tool calls as text, and the vLLM tool parser that
    reads them server-side. :meth:`read` is the client-side reading, for a server started
    without that parser."""

    parser: str
    """vLLM's ``--tool-call-parser`` for this markup."""
    open: str
    close: str
    in_array: bool
    """A block holds a JSON array of calls (Jamba 1.x), not one call (Hermes)."""
    models: str
    """The models whose recipe names :attr:`parser`, for the error message."""
    advice: str = (
        "start the server with {flags} (AI21's recipe for {models}) so that it returns tool "
        "calls itself"
    )
    """What to do about text it cannot read, for the server it came from
    (``Deployment.tool_call_advice``; ``{flags}`` and ``{models}`` filled in): vLLM's flags
    by default."""

    @property
    def flags(self) -> str:
        return f"--enable-auto-tool-choice --tool-call-parser {self.parser}"

    @cached_property
    def _blocks(self) -> re.Pattern[str]:
        return re.compile(f"{re.escape(self.open)}(.*?){re.escape(self.close)}", re.DOTALL)

    def read(self, text: str, finish_reason: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        """The text outside the blocks, and the calls in them (ids ``call_<hex>``).

        Every block is read (vLLM's ``jamba`` parser reads the first and keeps only the text
        before it; a model that wrote more meant more). The text loses only its trailing
        whitespace, as in a stream, which hands out the text before a block as it comes.

        Raises:
            MalformedResponseError: a block holds something other than calls
                (``{"name": str, "arguments": object}``), or is never closed. The message
                names the server flags that make the server return the calls itself or, for a
                block left open by an answer cut at ``max_tokens`` (``finish_reason``
                ``"length"``), says to raise ``max_tokens``.
        """
        found: list[tuple[str, dict[str, Any]]] = []
        for match in self._blocks.finditer(text):
            calls = self._calls(match.group(1))
            if calls is None:  # closed, so written whole: not cut short
                raise self._unread(match.group(0), cut=False)
            found += calls
        rest = self._blocks.sub("", text)
        if self.open in rest:  # never closed: cut short if the answer was
            raise self._unread(rest[rest.index(self.open) :], cut=finish_reason == "length")
        return rest.rstrip(), [
            {
                "id": "call_" + uuid.uuid4().hex[:24],
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for name, arguments in found
        ]

    def _calls(self, block: str) -> list[tuple[str, dict[str, Any]]] | None:
        """The ``(name, arguments)`` of each call in one block's JSON; None if unreadable."""
        try:
            parsed = json.loads(block)  # whitespace around it is JSON's too
        except (ValueError, RecursionError):  # RecursionError: brackets nested thousands deep
            return None
        items = parsed if self.in_array else [parsed]
        if not isinstance(items, list):
            return None
        calls = []
        for item in items:
            call = _call(item)
            if call is None:
                return None
            calls.append(call)
        return calls

    def _unread(self, markup: str, cut: bool) -> MalformedResponseError:
        clipped = markup if len(markup) <= 200 else f"{markup[:200]}..."
        if cut:
            return MalformedResponseError(
                "the answer was cut at max_tokens (finish_reason 'length') inside a tool call "
                f"the model wrote as text ({clipped!r}): {RAISE_MAX_TOKENS}"
            )
        return MalformedResponseError(
            "the model wrote a tool call as text the package cannot read "
            f"({clipped!r}): {self.advice.format(flags=self.flags, models=self.models)}"
        )


def _call(item: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` of one ``{"name": ..., "arguments": ...}`` object; None if not."""
    if not isinstance(item, dict):
        return None
    name = item.get("name")
    arguments = item.get("arguments", {})
    if isinstance(arguments, str):  # some templates send arguments as a JSON string
        try:
            arguments = json.loads(arguments or "{}")
        except (ValueError, RecursionError):
            return None
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return name, arguments


HERMES = ToolMarkup(
    parser="hermes",
    open="<tool_call>",
    close="</tool_call>",
    in_array=False,
    models="Jamba2 and Jamba Reasoning 3B",
)
JAMBA = ToolMarkup(
    parser="jamba",
    open="<tool_calls>",
    close="</tool_calls>",
    in_array=True,
    models="Jamba 1.5-1.7",
)
TOOL_MARKUP: dict[str, ToolMarkup] = {"hermes": HERMES, "jamba": JAMBA}
"""By the model table's ``tool_format`` (``_models``)."""


@functools.lru_cache(maxsize=16)
def tool_markup(tool_format: str, advice: str | None) -> ToolMarkup:
    """The markup of ``tool_format`` with a deployment's ``advice`` (None: vLLM's flags)."""
    markup = TOOL_MARKUP[tool_format]
    return markup if advice is None else dataclasses.replace(markup, advice=advice)


@dataclass(frozen=True)
class Markup:
    """What to read out of a request's answer text."""

    split_think: bool = False
    """The model always reasons: split ``reasoning</think>answer`` when the server did not."""
    tools: ToolMarkup | None = None
    """Tools were offered: read tool calls written in this markup into calls."""


NO_MARKUP = Markup()
"""Nothing to read out: most answers (made once, not per stream)."""


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that begins ``marker`` (held back in a stream,
    since the rest of the marker may be in the next chunk)."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Splits streamed (or whole) content into reasoning and answer at ``</think>``.

    ``feed(text)`` returns ``(reasoning_piece, answer_piece)``; at most ``len("</think>") - 1``
    characters are held back at a time, so the work is linear in the text. Reasoning pieces
    are handed out as they arrive (a stream's ``thinking_delta``), and :meth:`end` says, once
    the finish reason is known, what the text without any ``</think>`` was.
    """

    __slots__ = ("_answer_started", "_held", "_opened", "inside", "reasoning")

    def __init__(self) -> None:
        self.inside = True  # before ``</think>``
        self.reasoning = ""  # every reasoning piece handed out so far
        self._held = ""
        self._opened = False  # a leading "<think>" (if the model wrote one) was dealt with
        self._answer_started = False

    def feed(self, text: str) -> tuple[str, str]:
        if not self.inside:
            return "", self._answer(text)
        held = self._held + text
        if not self._opened:
            start = held.lstrip()
            if len(start) < len(THINK_OPEN) and THINK_OPEN.startswith(start):
                self._held = held
                return "", ""
            self._opened = True
            if start.startswith(THINK_OPEN):
                held = start[len(THINK_OPEN) :]
        end = held.find(THINK_CLOSE)
        if end >= 0:
            self.inside = False
            self._held = ""
            piece = held[:end]
            self.reasoning += piece
            return piece, self._answer(held[end + len(THINK_CLOSE) :])
        keep = _partial_suffix(held, THINK_CLOSE)
        piece = held[: len(held) - keep]
        self._held = held[len(held) - keep :]
        self.reasoning += piece
        return piece, ""

    def _answer(self, text: str) -> str:
        if not self._answer_started:
            text = text.lstrip()
            self._answer_started = bool(text)
        return text

    def end(self, finish_reason: str | None) -> tuple[str, str]:
        """``(reasoning, answer_to_add)`` once the answer is complete. Without ``</think>``:
        all reasoning when cut by ``max_tokens``; otherwise the text was the answer
        (``answer_to_add`` is then all of it, and the reasoning empty)."""
        if not self.inside:
            return self.reasoning.strip(), ""
        text = self.reasoning + self._held
        if finish_reason == "length":
            return text.strip(), ""
        return "", text.strip()


def split_think(content: str, finish_reason: str | None) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a whole answer's ``content`` (see :class:`ThinkSplitter`)."""
    splitter = ThinkSplitter()
    _, answer = splitter.feed(content)
    reasoning, rest = splitter.end(finish_reason)
    return reasoning or None, answer + rest


def reasoning_exhausted(finish_reason: str | None, answer: str, reasoning: str | None) -> bool:
    """Whether reasoning used the whole ``max_tokens``: cut by length, reasoning, no answer."""
    return finish_reason == "length" and bool(reasoning) and not answer.strip()


RAISE_MAX_TOKENS = (
    "raise max_tokens (per call or on the instance), or, where none was set, leave the answer "
    "more of the context window (a shorter prompt, or a server with a longer context: the "
    "server's own limit is what the window leaves after the prompt)"
)
"""What to do about an answer cut at ``max_tokens``: with none sent (a server of your own), the
limit is the server's, which ``max_tokens`` does not raise."""
EXHAUSTED = (
    "the model spent all of max_tokens on reasoning and wrote no answer (finish_reason "
    f"'length'): {RAISE_MAX_TOKENS}"
)


CUT = (
    "the answer was cut at max_tokens (finish_reason 'length') before it was complete: "
    f"{RAISE_MAX_TOKENS}"
)


# Set by :func:`watching_cuts` around a structured prediction: how each answer in it that was
# cut at ``max_tokens`` ended. A context variable, so it sees the calls LlamaIndex's programs make
# on this thread or task, and no one else's.
_cuts_seen: ContextVar[list[str] | None] = ContextVar("ai21_cuts_seen", default=None)


def note_length_cut(finish_reason: str | None, answer: str, reasoning: str | None) -> None:
    """An answer that ended with ``finish_reason`` ``"length"``: logged (WARNING) when
    :func:`reasoning_exhausted` (an empty answer is otherwise a puzzle), and noted for a
    structured prediction being watched (:func:`watching_cuts`)."""
    exhausted = reasoning_exhausted(finish_reason, answer, reasoning)
    if exhausted:
        logger.warning("%s; %d characters of reasoning arrived", EXHAUSTED, len(reasoning or ""))
    seen = _cuts_seen.get()
    if seen is not None and finish_reason == "length":
        seen.append("reasoning" if exhausted else "answer")


@contextmanager
def watching_cuts() -> Iterator[list[str]]:
    """A list that gets an entry for each answer, inside the block, cut at ``max_tokens``:
    ``"reasoning"`` if it spent all of it on reasoning, else ``"answer"`` (a failed structured
    prediction then names ``max_tokens``)."""
    seen: list[str] = []
    token = _cuts_seen.set(seen)
    try:
        yield seen
    finally:
        _cuts_seen.reset(token)
