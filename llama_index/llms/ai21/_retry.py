"""The retry policy: which failures are retried and how long to wait (pure, no I/O).

We own retries (the SDK's are turned off, see ``_transport``), because the SDK counts
attempts rather than retries, ignores ``Retry-After`` and skips 502/504 and timeouts
(ai21-api.md 3.3). The policy is applied around *opening* a request, never around a lazy
generator, so streams are retried only until their first chunk reaches the caller.
"""

from __future__ import annotations

import random
import time
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity
from ai21.errors import AI21APIError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_INITIAL = 0.5  # seconds before the first retry, before jitter
BACKOFF_MAX = 8.0  # cap on one back-off wait

# The ``Retry-After`` header of the latest error response seen in this context. The SDK's
# exceptions carry the body but not the headers, so an httpx response hook records it here
# (hooks run in the caller's thread or task, so the context is the caller's own).
last_retry_after: ContextVar[str | None] = ContextVar("ai21_last_retry_after", default=None)


def should_retry(exc: BaseException) -> bool:
    """Transient failures: 408/429/5xx-gateway statuses, timeouts and broken connections."""
    if isinstance(exc, AI21APIError):
        return exc.status_code in RETRY_STATUSES
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff(retry_number: int) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, capped."""
    ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (retry_number - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _wait(retry_state: tenacity.RetryCallState) -> float:
    outcome = retry_state.outcome
    if outcome is not None and isinstance(outcome.exception(), AI21APIError):
        server_says = parse_retry_after(last_retry_after.get())
        if server_says is not None:
            return server_says
    return backoff(retry_state.attempt_number)


def _before(retry_state: tenacity.RetryCallState) -> None:
    last_retry_after.set(None)


def _policy(max_retries: int) -> dict[str, Any]:
    return {
        "stop": tenacity.stop_after_attempt(max_retries + 1),
        "retry": tenacity.retry_if_exception(should_retry),
        "wait": _wait,
        "before": _before,
        "reraise": True,  # the caller gets the last attempt's own exception
    }


def retrying(max_retries: int) -> tenacity.Retrying:
    """A fresh sync retry controller: ``max_retries`` retries after the first attempt."""
    return tenacity.Retrying(**_policy(max_retries))


def async_retrying(max_retries: int) -> tenacity.AsyncRetrying:
    """The async twin of :func:`retrying`, with the same policy."""
    return tenacity.AsyncRetrying(**_policy(max_retries))
