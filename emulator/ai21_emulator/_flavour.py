"""What a flavour is: one deployment's wire format, as a small object the pipeline calls.

A flavour knows its route table and auth check (and in which order they run), its id format,
its error bodies, its validation limits, its stream framing and how it renders an answer. The
answer itself comes from the shared generator in ``_scenario.py``; the pipeline (``_core.py``)
records requests, applies faults and scripted replies, and calls the flavour. Flavours:
``_flavour_ai21.py`` (AI21's hosted API, the default) and ``_flavour_vllm.py`` (vLLM's
OpenAI-compatible server serving AI21's open models).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from ._scenario import Response
from ._script import Reply

# Route kinds a flavour's gate resolves to.
CHAT, MODELS, HEALTH, VERSION = "chat", "models", "health", "version"
J2_COMPLETE, J2_CHAT = "j2-complete", "j2-chat"


@dataclass(frozen=True)
class Route:
    """A resolved API route; ``model`` is the J2 model named in the path."""

    kind: str
    model: str | None = None

    @property
    def needs_body(self) -> bool:
        return self.kind in (CHAT, J2_COMPLETE, J2_CHAT)


@dataclass(frozen=True)
class ChatContext:
    """Per-request inputs of a chat answer that do not come from the body.

    Attributes:
        reply_id: The response id, in the flavour's format.
        created: Unix time of the request (vLLM's ``created``).
        answer_tokens: The ``X-Emulator-Answer-Tokens`` header, if sent.
        cached_tokens: The ``X-Emulator-Cached-Tokens`` header, if sent.
        take_script: Returns the scripted :class:`Reply` for a valid request body, or None
            (call it only once the request is valid: it consumes the script).
    """

    reply_id: str
    created: int = 0
    answer_tokens: int | None = None
    cached_tokens: int | None = None
    take_script: Callable[[dict[str, Any]], Reply | None] = lambda body: None


def error_type(status: int) -> str:
    """OpenAI-style error type from a status, as vLLM names them: 400 -> ``BadRequestError``,
    404 -> ``NotFoundError``, 500 -> ``InternalServerError``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    name = "".join(word[:1].upper() + word[1:] for word in phrase.replace("-", " ").split())
    return name if name.endswith("Error") else name + "Error"


class Flavour(abc.ABC):
    """One deployment's wire format. Subclasses set the class attributes and the methods."""

    name: ClassVar[str]
    api_root: ClassVar[str]
    """The path prefix of the API: ``base_url`` is the server's URL + this."""
    event_end: ClassVar[bytes]
    """What ends an SSE event: ``\\r\\n\\r\\n`` or ``\\n\\n``."""

    @abc.abstractmethod
    def gate(
        self, method: str, path: str, authorization: str | None, keys: frozenset[str]
    ) -> Route | Response:
        """Resolve routing and auth, in the flavour's order: a route, or the error to send."""

    def check_content_type(self, route: Route, content_type: str | None) -> Response | None:
        """The error for a request whose ``Content-Type`` the route refuses, else None."""
        return None

    @abc.abstractmethod
    def new_id(self) -> str:
        """A fresh response id."""

    @abc.abstractmethod
    def error(self, status: int, message: str | None = None) -> Response:
        """An error in the flavour's body shape (injected faults, bad emulator headers)."""

    @abc.abstractmethod
    def unparsable(self, raw: bytes) -> Response:
        """The answer to a body that is missing or not JSON."""

    @abc.abstractmethod
    def chat(self, body: Any, context: ChatContext) -> Response:
        """Answer a chat completions body (JSON-decoded, not yet validated)."""

    @abc.abstractmethod
    def serve(self, route: Route, body: Any, context: ChatContext) -> Response:
        """Answer every other route (models, health, legacy J2)."""

    @abc.abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """JSON of one stream chunk, spaced as the deployment spaces it."""

    def event(self, obj: Any) -> bytes:
        """One SSE event: ``data: <json>`` and the flavour's event end."""
        return b"data: " + self.dumps(obj) + self.event_end

    def done(self) -> bytes:
        """The event that ends every stream."""
        return b"data: [DONE]" + self.event_end

    def reply_headers(self, reply_id: str) -> dict[str, str]:
        """Extra headers of a chat response."""
        return {}

    def stream_error_event(self, code: int, message: str) -> bytes:
        """An error inside a 200 stream, as vLLM sends an engine failure (docs/emulator.md)."""
        return self.event({"error": {"message": message, "type": error_type(code), "code": code}})

    def truncated_event(self, event: bytes) -> bytes:
        """A cut-off event, e.g. ``data: {"id": "chatcmpl-…", "choi``, as a whole event."""
        cut = event.find(b'"choices"')
        broken = event[: cut + 5] if cut > 0 else event[: max(7, len(event) // 2)]
        return broken.rstrip(b"\r\n") + self.event_end


def json_default(obj: Any) -> bytes:
    """``json.dumps`` defaults: ``", "`` and ``": "`` spacing, non-ASCII escaped."""
    return json.dumps(obj).encode()
