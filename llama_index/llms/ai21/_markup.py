"""Model markup a server left in the answer text, read client-side (pure, no I/O).

Two cases, both from a server started without one of AI21's recipe flags (docs/self-hosted.md):

- **Reasoning** (no ``--reasoning-parser``): a model that always reasons (Jamba Reasoning 3B:
  its chat template's generation prompt ends in ``<think>\\n``) writes its reasoning, then
  ``</think>``, then the answer, all in ``content``. :class:`ThinkSplitter` splits it, also when
  ``</think>`` arrives split across stream chunks. With no ``</think>`` at all, the text is
  reasoning if the answer was cut by ``max_tokens`` (``finish_reason`` ``"length"``: the model
  was still thinking, as vLLM's ``deepseek_r1`` parser reads it) and the answer otherwise.
- **Hermes tool calls** (no ``--tool-call-parser hermes``): Jamba2 and Reasoning 3B write each
  call as ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` (their chat
  templates). :func:`hermes_tool_calls` turns that text into tool calls, or raises an error that
  names the server flags to add.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from llama_index.llms.ai21.errors import MalformedResponseError

logger = logging.getLogger("llama_index.llms.ai21")

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_CALL_OPEN = "<tool_call>"
HERMES_FLAGS = "--enable-auto-tool-choice --tool-call-parser hermes"
_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class Markup:
    """What to read out of a request's answer text."""

    split_think: bool = False
    """The model always reasons: split ``reasoning</think>answer`` when the server did not."""
    hermes: bool = False
    """Tools were offered to a Hermes-format model: parse ``<tool_call>`` text into calls."""


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


def hermes_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The text outside ``<tool_call>...</tool_call>`` blocks, and the calls in them.

    Raises:
        MalformedResponseError: a block is not ``{"name": str, "arguments": object}`` JSON, or
            a ``<tool_call>`` is never closed; the message names the server flags that make
            the server parse the calls itself.
    """
    calls: list[dict[str, Any]] = []
    for match in _HERMES_CALL.finditer(text):
        try:
            parsed = json.loads(match.group(1))
        except ValueError:
            parsed = None
        name = parsed.get("name") if isinstance(parsed, dict) else None
        arguments = parsed.get("arguments", {}) if isinstance(parsed, dict) else None
        if isinstance(arguments, str):  # some templates send arguments as a JSON string
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                arguments = None
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise _unparsed(match.group(0))
        calls.append(
            {
                "id": "call_" + uuid.uuid4().hex[:24],
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        )
    rest = _HERMES_CALL.sub("", text)
    if TOOL_CALL_OPEN in rest:
        raise _unparsed(rest[rest.index(TOOL_CALL_OPEN) :])
    return rest.strip(), calls


def _unparsed(markup: str) -> MalformedResponseError:
    clipped = markup if len(markup) <= 200 else f"{markup[:200]}..."
    return MalformedResponseError(
        "the model wrote a tool call as text the package cannot read "
        f"({clipped!r}): start the server with {HERMES_FLAGS} (AI21's recipe for Jamba2 and "
        "Jamba Reasoning 3B) so that it returns tool calls itself"
    )


def reasoning_exhausted(finish_reason: str | None, answer: str, reasoning: str | None) -> bool:
    """Whether reasoning used the whole ``max_tokens``: cut by length, reasoning, no answer."""
    return finish_reason == "length" and bool(reasoning) and not answer.strip()


EXHAUSTED = (
    "the model spent all of max_tokens on reasoning and wrote no answer (finish_reason "
    "'length'): raise max_tokens (per call or on the instance)"
)


# Set by :func:`watching_exhaustion` around a structured prediction: whether an answer in it
# spent all of ``max_tokens`` on reasoning. A context variable, so it sees the calls LlamaIndex's
# programs make on this thread or task, and no one else's.
_exhausted_seen: ContextVar[list[bool] | None] = ContextVar("ai21_exhausted_seen", default=None)


def warn_if_reasoning_exhausted(
    finish_reason: str | None, answer: str, reasoning: str | None
) -> None:
    """Log (WARNING) when :func:`reasoning_exhausted`: an empty answer is otherwise a puzzle."""
    if reasoning_exhausted(finish_reason, answer, reasoning):
        logger.warning("%s; %d characters of reasoning arrived", EXHAUSTED, len(reasoning or ""))
        seen = _exhausted_seen.get()
        if seen is not None:
            seen.append(True)


@contextmanager
def watching_exhaustion() -> Iterator[list[bool]]:
    """A list that gets an entry for each answer, inside the block, that spent all of
    ``max_tokens`` on reasoning (a failed structured prediction then names ``max_tokens``)."""
    seen: list[bool] = []
    token = _exhausted_seen.set(seen)
    try:
        yield seen
    finally:
        _exhausted_seen.reset(token)
