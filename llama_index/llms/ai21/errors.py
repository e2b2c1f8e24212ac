"""Errors this package raises itself.

Errors from the ``ai21`` SDK (``ai21.errors.Unauthorized``, ``TooManyRequestsError``, ...) and
from ``httpx`` (timeouts, connection errors) reach the caller unchanged; these classes cover
what only this package can detect: a server answer that does not follow the AI21 protocol,
and a stream that broke after part of the answer had already been delivered.
"""

from __future__ import annotations


class AI21ResponseError(RuntimeError):
    """Base class for problems with what the server sent back."""


class MalformedResponseError(AI21ResponseError):
    """The server answered 200 but the body does not follow the AI21 protocol.

    The message names what was wrong (for example ``'choices' is empty``).
    """


class StreamInterruptedError(AI21ResponseError):
    """A stream broke after some of it reached the caller.

    Raised instead of silently ending a truncated answer; nothing is retried at that
    point, because a retry would repeat tokens the caller already has. ``partial_text``
    holds what had arrived.
    """

    def __init__(self, message: str, partial_text: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text
