"""The retry policy, pure: what is retried and how long it waits."""

from __future__ import annotations

import socket
import ssl
import time
from email.utils import formatdate

import httpx
import pytest
from ai21 import errors

from llama_index.llms.ai21._retry import (
    BACKOFF_MAX,
    RETRY_AFTER_MAX,
    backoff,
    parse_retry_after,
    should_retry,
)
from tests.statuses import STATUSES


def _chained(outer: BaseException, *causes: BaseException) -> BaseException:
    """``outer`` raised from the first cause, itself from the next, ... (as libraries chain)."""
    current = outer
    for cause in causes:
        current.__cause__ = cause
        current = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        # Every status of tests/statuses.py, as the SDK raises it.
        *(
            (
                s.error(s.code, "x") if s.error is errors.AI21APIError else s.error("x"),
                s.retried,
            )
            for s in STATUSES
        ),
        (httpx.ReadTimeout("x"), True),
        (httpx.ConnectError("x"), True),
        (httpx.RemoteProtocolError("x"), True),
        (ValueError("x"), False),
        # Permanent connection failures: the next attempt would meet them again.
        (_chained(httpx.ConnectError("x"), ssl.SSLCertVerificationError("bad cert")), False),
        (
            _chained(
                httpx.ConnectError("x"),
                OSError("lookup failed"),
                socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            ),
            False,
        ),
        # ... but not a temporary lookup failure, nor a refused connection.
        (
            _chained(httpx.ConnectError("x"), socket.gaierror(socket.EAI_AGAIN, "try again")),
            True,
        ),
        (_chained(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")), True),
    ],
)
def test_should_retry(exc: BaseException, retried: bool) -> None:
    assert should_retry(exc) is retried


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("soon") is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0, "past: now"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("119.5", 119.5),
        ("121", RETRY_AFTER_MAX),  # capped at two minutes
        ("3600", RETRY_AFTER_MAX),
        ("-3", None),  # ignored: back-off instead
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("1e308", None),  # absurd (more than a day)
        ("1e999", None),  # float() gives inf
        ("1764547200", None),  # a Unix time sent as seconds
    ],
)
def test_retry_after_is_capped_and_nonsense_is_ignored(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date_far_ahead_is_capped() -> None:
    now = time.time()
    assert parse_retry_after(formatdate(now + 600, usegmt=True), now=now) == RETRY_AFTER_MAX


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    for retry in range(1, 12):
        ceiling = min(BACKOFF_MAX, 0.5 * 2 ** (retry - 1))
        waits = {backoff(retry) for _ in range(20)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1, "jittered"
