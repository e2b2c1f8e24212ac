"""The retry loop without a server: attempts counted, waits recorded (never slept), the logged
line exact, cause chains walked safely. Complements tests/test_retry_policy.py."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest
from ai21 import errors

from llama_index.llms.ai21 import _retry
from llama_index.llms.ai21._retry import (
    BACKOFF_MAX,
    RETRY_AFTER_ABSURD,
    RETRY_AFTER_MAX,
    backoff,
    is_permanent,
    parse_retry_after,
    should_retry,
)


@pytest.fixture
def waits(waits: list[float], monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The recorded waits (conftest), with jitter at its top: each back-off wait is its
    ceiling, 0.5 s, 1 s, 2 s, ..."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    return waits


def failing(times: int, error: Callable[[], Exception]) -> tuple[list[int], Callable[[], str]]:
    attempts: list[int] = []

    def attempt() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= times:
            raise error()
        return "done"

    return attempts, attempt


def run(is_async: bool, attempt: Callable[[], str], max_retries: int) -> str:
    if not is_async:
        return _retry.call_with_retries(attempt, max_retries)

    async def aattempt() -> str:
        return attempt()

    return asyncio.run(_retry.acall_with_retries(aattempt, max_retries))


both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


@both
def test_every_wait_goes_through_the_recorder_and_is_logged(
    is_async: bool, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llama_index.llms.ai21")
    attempts, attempt = failing(3, lambda: httpx.ConnectError("refused"))
    assert run(is_async, attempt, max_retries=3) == "done"
    assert attempts == [1, 2, 3, 4]
    assert waits == [0.5, 1.0, 2.0]
    assert [r.getMessage() for r in caplog.records] == [
        f"AI21 request failed (ConnectError); retry {n} of 3 in {w:.2f} s"
        for n, w in ((1, 0.5), (2, 1.0), (3, 2.0))
    ]


@both
def test_the_last_failure_is_raised_after_max_retries(is_async: bool, waits: list[float]) -> None:
    attempts, attempt = failing(9, lambda: errors.ServiceUnavailable("busy"))
    with pytest.raises(errors.ServiceUnavailable):
        run(is_async, attempt, max_retries=2)
    assert attempts == [1, 2, 3]
    assert waits == [0.5, 1.0]


@both
def test_a_status_is_logged_by_its_code(
    is_async: bool, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llama_index.llms.ai21")
    _, attempt = failing(1, lambda: errors.TooManyRequestsError("slow down"))
    run(is_async, attempt, max_retries=1)
    assert [r.getMessage() for r in caplog.records] == [
        "AI21 request failed (HTTP 429); retry 1 of 1 in 0.50 s"
    ]


@both
@pytest.mark.parametrize("max_retries", [0, 1])
def test_permanent_failures_and_no_retries_mean_one_attempt(
    is_async: bool, waits: list[float], max_retries: int
) -> None:
    attempts, attempt = failing(1, lambda: errors.BadRequest("no"))
    with pytest.raises(errors.BadRequest):
        run(is_async, attempt, max_retries=max_retries)
    assert attempts == [1]
    assert waits == []


@both
def test_the_servers_retry_after_is_the_wait(is_async: bool, waits: list[float]) -> None:
    """The transport records each error response's Retry-After where the policy reads it."""

    def overloaded() -> Exception:
        _retry.last_retry_after.set("3")
        return errors.ServiceUnavailable("busy")

    attempts, attempt = failing(2, overloaded)
    assert run(is_async, attempt, max_retries=2) == "done"
    assert attempts == [1, 2, 3]
    assert waits == [3.0, 3.0]


@both
def test_retry_after_applies_only_to_the_response_it_came_with(
    is_async: bool, waits: list[float]
) -> None:
    def refused() -> Exception:  # no response, so no Retry-After: back-off
        _retry.last_retry_after.set("3")
        return httpx.ConnectError("refused")

    _, attempt = failing(1, refused)
    run(is_async, attempt, max_retries=1)
    assert waits == [0.5]


def test_retry_after_dates_count_from_now_by_default() -> None:
    seconds = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert seconds == pytest.approx(30, abs=1.5)  # HTTP dates have whole seconds


def test_backoff_reaches_its_ceiling_and_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert [backoff(n) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, BACKOFF_MAX]
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert [backoff(n) for n in (1, 2, 6)] == [0.25, 0.5, BACKOFF_MAX / 2]


def test_retry_after_dates_count_from_the_given_now() -> None:
    now = 1_000_000_000.0  # 2001: far from the real clock, which must not be read
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_retry_after_at_the_absurd_bound_is_capped_past_it_ignored() -> None:
    assert parse_retry_after(str(RETRY_AFTER_ABSURD)) == RETRY_AFTER_MAX
    assert parse_retry_after(str(RETRY_AFTER_ABSURD + 0.5)) is None


def test_a_cyclic_cause_chain_ends() -> None:
    first, second = OSError("a"), OSError("b")
    first.__cause__ = second
    second.__context__ = first
    assert is_permanent(first) is False
    itself = OSError("c")
    itself.args = (itself,)  # an exception among its own args
    assert is_permanent(itself) is False
    one, other = OSError(), OSError()
    one.args, other.args = (other,), (one,)  # each among the other's args
    assert is_permanent(one) is False
    other.__cause__ = ssl.SSLCertVerificationError("bad cert")
    assert is_permanent(one) is True, "found past the cycle"


@pytest.mark.parametrize(
    "wrapped",
    [
        ssl.SSLCertVerificationError("bad cert"),
        OSError("connector", ssl.SSLCertVerificationError("bad cert")),  # aiohttp's shape
    ],
)
def test_a_certificate_failure_carried_in_args_is_permanent(wrapped: BaseException) -> None:
    exc = httpx.ConnectError("x")
    exc.__cause__ = OSError("wrapper", wrapped)
    assert is_permanent(exc) is True
    assert should_retry(exc) is False


def test_a_transient_error_in_args_is_not_permanent() -> None:
    exc = httpx.ConnectError("x")
    exc.__cause__ = OSError("wrapper", ConnectionRefusedError(111, "refused"))
    assert is_permanent(exc) is False
    assert should_retry(exc) is True


def test_should_retry_keeps_its_contract() -> None:
    assert should_retry(httpx.ReadTimeout("x")) is True
    assert should_retry(errors.AI21APIError(418, "x")) is False
