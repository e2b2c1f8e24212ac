"""The retry policy: which failures are retried and how long to wait (pure, no I/O).

We own retries (the SDK's are turned off, see ``_http``), because the SDK counts
attempts rather than retries, ignores ``Retry-After`` and skips 502/504 and timeouts (the
SDK's ``http_client`` module; docs/errors-and-retries.md). The policy is applied around
*opening* a request, never around a lazy generator, so streams are retried only until their
first chunk reaches the caller.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import tenacity
from ai21.errors import AI21APIError

T = TypeVar("T")

logger = logging.getLogger("llama_index.llms.ai21")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_INITIAL = 0.5  # seconds before the first retry, before jitter
BACKOFF_MAX = 8.0  # cap on one back-off wait
# The longest wait a server's Retry-After gets (openai-python and llama-index-llms-openai cap
# it the same way); a value past a day is nonsense (a timestamp sent as seconds?) and ignored,
# as are negative and non-finite ones.
RETRY_AFTER_MAX = 120.0
RETRY_AFTER_ABSURD = 86_400.0
# getaddrinfo answers that mean the name does not exist (EAI_AGAIN, a temporary failure, is
# retried like any connection error).
_NO_SUCH_NAME = {
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
}

# The ``Retry-After`` header of the latest error response seen in this context. The SDK's
# exceptions carry the body but not the headers, so the transport records it here just before
# raising (in the caller's thread or task, so the context is the caller's own).
last_retry_after: ContextVar[str | None] = ContextVar("ai21_last_retry_after", default=None)


def should_retry(exc: BaseException) -> bool:
    """Transient failures: 408/429/5xx-gateway statuses, timeouts and broken connections;
    not a certificate that fails verification or a host name that does not exist, which
    the next attempt would meet again."""
    if isinstance(exc, AI21APIError):
        return exc.status_code in RETRY_STATUSES
    if isinstance(exc, httpx.ConnectError) and is_permanent(exc):
        return False
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


# OpenSSL's reasons for a TLS handshake answered by something that is not TLS, such as a
# plain-HTTP server (an https:// base_url for a server of one's own, which speaks http://):
# 1.1 and 3.0 say WRONG_VERSION_NUMBER, 3.2 and later RECORD_LAYER_FAILURE or
# PACKET_LENGTH_TOO_LONG.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception in its chain (httpx, httpcore, urllib3 and aiohttp all
    chain the cause; aiohttp also holds the OS's error in its ``args``)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]  # one walk over causes and exceptions held in args
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        cause = current.__cause__ or current.__context__
        if cause is not None:
            pending.append(cause)


def is_permanent(exc: BaseException) -> bool:
    """Whether a connection failure comes from a certificate check, a missing host name or a
    server that does not speak TLS (:func:`is_not_tls`), found in the exception's chain."""
    for current in _chain(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if isinstance(current, socket.gaierror) and current.errno in _NO_SUCH_NAME:
            return True
        if _answered_not_tls(current):
            return True
    return False


def is_not_tls(exc: BaseException) -> bool:
    """Whether the TLS handshake was answered by something that is not TLS (a plain-HTTP
    server at an ``https://`` URL): every attempt would meet it again."""
    return any(_answered_not_tls(current) for current in _chain(exc))


def _answered_not_tls(exc: BaseException) -> bool:
    # aiohttp's ClientSSLError is an ssl.SSLError without OpenSSL's reason: its cause has it.
    return isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None) in _NOT_TLS


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date), capped at
    ``RETRY_AFTER_MAX``; None for a value to ignore (negative, not finite, absurd, unreadable)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        # A date in the past means "now".
        seconds = max(0.0, when - (time.time() if now is None else now))
    if not math.isfinite(seconds) or seconds < 0 or seconds > RETRY_AFTER_ABSURD:
        return None
    return min(seconds, RETRY_AFTER_MAX)


def backoff(retry_number: int) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, capped."""
    ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (retry_number - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def wait_seconds(exc: BaseException | None, retry_number: int) -> float:
    """How long to wait before retry ``retry_number`` (1-based) after ``exc``.

    ``Retry-After`` from the failed response wins (exactly, even ``0``, up to two minutes);
    otherwise back-off.
    """
    if isinstance(exc, AI21APIError):
        server_says = parse_retry_after(last_retry_after.get())
        if server_says is not None:
            return server_says
    return backoff(retry_number)


def _log_retry(exc: BaseException, retry_number: int, max_retries: int, wait: float) -> None:
    """One ``INFO`` line per retry (the caller sees only the final outcome)."""
    reason = f"HTTP {exc.status_code}" if isinstance(exc, AI21APIError) else type(exc).__name__
    message = "AI21 request failed (%s); retry %d of %d in %.2f s"
    logger.info(message, reason, retry_number, max_retries, wait)


def _policy(max_retries: int, done: int) -> dict[str, Any]:
    """Tenacity settings for the retries after ``done`` failed attempts: tenacity's attempt
    n is retry n + done - 1 (so the waits and the logged numbers continue the count)."""

    def wait(retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return wait_seconds(exc, retry_state.attempt_number + done)

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:  # only if retrying
        outcome, action = retry_state.outcome, retry_state.next_action
        exc = outcome.exception() if outcome is not None else None
        if exc is not None and action is not None:
            _log_retry(exc, retry_state.attempt_number + done, max_retries, action.sleep)

    def before(retry_state: tenacity.RetryCallState) -> None:
        last_retry_after.set(None)

    return {
        "stop": tenacity.stop_after_attempt(max_retries + 1 - done),
        "retry": tenacity.retry_if_exception(should_retry),
        "wait": wait,
        "before": before,
        "before_sleep": before_sleep,
        "reraise": True,  # the caller gets the last attempt's own exception
    }


# The waits between attempts (module attributes, so tests can record them instead of waiting).
sleep: Callable[[float], None] = time.sleep
async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

# Tenacity decides every retry, but the first attempt runs before it, directly: measured with
# ``complete()`` against the emulator (interleaved A/B, 12 rounds of 200 calls), running that
# attempt inside ``tenacity.Retrying`` costs 5-8% of the call's CPU (about 30-40 µs of 510 µs),
# a call that has no retry to decide. A failed first attempt hands everything after it,
# starting with the first wait, to the same policy.


def call_with_retries(attempt: Callable[[], T], max_retries: int) -> T:
    """Run ``attempt``; retry transient failures up to ``max_retries`` times."""
    last_retry_after.set(None)
    try:
        return attempt()
    except Exception as exc:
        if max_retries <= 0 or not should_retry(exc):
            raise
        seconds = wait_seconds(exc, 1)
        _log_retry(exc, 1, max_retries, seconds)
    sleep(seconds)
    return tenacity.Retrying(sleep=sleep, **_policy(max_retries, done=1))(attempt)


async def acall_with_retries(attempt: Callable[[], Awaitable[T]], max_retries: int) -> T:
    """The async twin of :func:`call_with_retries`, with the same policy."""
    last_retry_after.set(None)
    try:
        return await attempt()
    except Exception as exc:
        if max_retries <= 0 or not should_retry(exc):
            raise
        seconds = wait_seconds(exc, 1)
        _log_retry(exc, 1, max_retries, seconds)
    await async_sleep(seconds)
    return await tenacity.AsyncRetrying(sleep=async_sleep, **_policy(max_retries, done=1))(attempt)
