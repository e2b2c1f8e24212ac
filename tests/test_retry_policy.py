"""The retry policy, pure: what is retried and how long it waits."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest
from ai21 import errors

from llama_index.llms.ai21._retry import BACKOFF_MAX, backoff, parse_retry_after, should_retry


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (errors.TooManyRequestsError("x"), True),
        (errors.AI21ServerError("x"), True),
        (errors.ServiceUnavailable("x"), True),
        (errors.AI21APIError(408, "x"), True),
        (errors.AI21APIError(502, "x"), True),
        (errors.AI21APIError(504, "x"), True),
        (httpx.ReadTimeout("x"), True),
        (httpx.ConnectError("x"), True),
        (httpx.RemoteProtocolError("x"), True),
        (errors.BadRequest("x"), False),
        (errors.Unauthorized("x"), False),
        (errors.AI21APIError(403, "x"), False),
        (errors.AI21APIError(404, "x"), False),
        (errors.UnprocessableEntity("x"), False),
        (errors.AI21APIError(424, "x"), False),
        (ValueError("x"), False),
    ],
)
def test_should_retry(exc: BaseException, retried: bool) -> None:
    assert should_retry(exc) is retried


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    for retry in range(1, 12):
        ceiling = min(BACKOFF_MAX, 0.5 * 2 ** (retry - 1))
        waits = {backoff(retry) for _ in range(20)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1, "jittered"
