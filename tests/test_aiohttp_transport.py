"""The asynchronous transport's error mapping, for the failures no scripted server produces
(the rest is held to httpx by ``tests/transport/test_differential.py``)."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import pytest

from llama_index.llms.ai21._aiohttp import _httpx_error

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/studio/v1/chat/completions")


@pytest.mark.parametrize(
    ("raised", "writing", "expected", "message"),
    [
        # A failure aiohttp has no narrower class for: still httpx's, with its message.
        (aiohttp.ClientError("something else"), False, httpx.TransportError, "something else"),
        # No message of its own: the class names it.
        (asyncio.TimeoutError(), False, httpx.ReadTimeout, "TimeoutError"),
        (asyncio.TimeoutError(), True, httpx.WriteTimeout, "TimeoutError"),
        (
            aiohttp.ServerDisconnectedError(),
            False,
            httpx.RemoteProtocolError,
            "Server disconnected",
        ),
    ],
    ids=["ClientError", "timeout reading", "timeout writing", "ServerDisconnectedError"],
)
def test_aiohttp_errors_become_httpx_errors(
    raised: Exception, writing: bool, expected: type[httpx.TransportError], message: str
) -> None:
    error = _httpx_error(raised, REQUEST, writing=writing)
    assert type(error) is expected
    assert str(error) == message
    assert error.request is REQUEST
    assert error.__cause__ is raised


def test_other_exceptions_are_not_mapped() -> None:
    assert _httpx_error(KeyError("not a transport problem"), REQUEST, writing=False) is None
