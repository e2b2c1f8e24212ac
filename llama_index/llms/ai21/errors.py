"""Errors this package raises itself.

Errors from the ``ai21`` SDK (``ai21.errors.Unauthorized``, ``TooManyRequestsError``, ...) and
from ``httpx`` (timeouts, connection errors) reach the caller unchanged; these classes cover
what only this package can detect: a server answer that does not follow the AI21 protocol,
and a stream that broke after part of the answer had already been delivered. One SDK error is
worded anew: AI21's hosted API answering 410 (retired on 2026-08-09) is
:class:`HostedAPIRetiredError`, still an ``ai21.errors.AI21APIError``.
"""

from __future__ import annotations

from typing import Any

from ai21.errors import AI21APIError

DOCS_URL = (
    "https://github.com/run-llama/llama_index/tree/main/llama-index-integrations/llms/"
    "llama-index-llms-ai21/docs"
)
"""The package's docs (``Documentation`` in its metadata): error messages point at their pages
by address, since a package installed from a wheel has no ``docs/`` folder."""
SELF_HOSTED_DOCS = f"{DOCS_URL}/self-hosted.md"
MIGRATION_DOCS = f"{DOCS_URL}/migration.md#from-openailike"


class AI21ResponseError(RuntimeError):
    """Base class for problems with what the server sent back."""


class MalformedResponseError(AI21ResponseError):
    """The server answered 200 but the body does not follow the AI21 protocol, or passes a
    bound this package keeps on what it reads (an answer over 64 MiB, a stream line over
    16 MiB, a streamed answer over 64 Mi characters, more than 256 Ki log-probabilities with
    no text to go with them).

    The message names what was wrong (for example ``'choices' is empty``).
    """


class StreamInterruptedError(AI21ResponseError):
    """A stream broke after some of it reached the caller.

    Raised instead of silently ending a truncated answer; nothing is retried at that
    point, because a retry would repeat tokens the caller already has. ``partial_text``
    holds the answer that had arrived, ``partial_reasoning`` the reasoning (a reasoning model's
    stream may break before its answer starts).
    """

    def __init__(self, message: str, partial_text: str = "", partial_reasoning: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.partial_text, self.partial_reasoning))


class HostedAPIRetiredError(AI21APIError):
    """AI21's hosted API answered 410 Gone: it was retired on 2026-08-09.

    Still an ``ai21.errors.AI21APIError`` with ``status_code`` 410 and the server's body in
    ``details``, so existing ``except`` clauses keep working; the message says what to do
    instead (serve Jamba's open weights yourself and pass that server's ``base_url``).
    Never retried.
    """

    def __init__(self, details: str | None = None) -> None:
        super().__init__(410, details)

    def __str__(self) -> str:
        return (
            "AI21's hosted Jamba API was retired on 2026-08-09 and answers HTTP 410 to every "
            "request (AI21's deprecation notice: "
            "https://docs.ai21.com/august-deprecation-notice). Jamba lives on as open weights: "
            "serve one yourself (vLLM, llama.cpp's llama-server, LM Studio, Ollama) and pass "
            'its URL, e.g. AI21(model="ai21labs/AI21-Jamba2-3B", '
            'base_url="http://localhost:8000/v1"); the exact serve command per model is on the '
            f"'Self-hosted Jamba' page of llama-index-llms-ai21's docs ({SELF_HOSTED_DOCS}). "
            f"Server said: {self.details}"
        )
