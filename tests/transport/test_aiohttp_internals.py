"""The aiohttp API outside its documentation that ``_http.py`` relies on (each use is marked
"Internal aiohttp API"), checked where it lives: an aiohttp release that moves or reshapes
one fails here, at once, rather than misbehaving in a user's call."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_aiohttp_internals_the_http_layer_uses_are_where_it_expects_them() -> None:
    # Overridden by _Response and _FreshConnectionRequest, and awaited through super().
    assert _parameters(aiohttp.ClientResponse.start) == ["self", "connection"]
    assert inspect.iscoroutinefunction(aiohttp.ClientResponse.start)
    assert _parameters(aiohttp.ClientRequest.send) == ["self", "conn"]
    assert inspect.iscoroutinefunction(aiohttp.ClientRequest.send)
    # The connection handed to those two.
    for name in ("protocol", "transport"):
        assert isinstance(inspect.getattr_static(Connection, name), property), name
    assert _parameters(Connection.add_callback) == ["self", "callback"]
    # The connection's protocol.
    for name in ("closed", "should_close"):
        assert isinstance(inspect.getattr_static(ResponseHandler, name), property), name
    assert _parameters(ResponseHandler.exception) == ["self"]
    # The body's reader, told of a connection lost under it.
    assert _parameters(aiohttp.StreamReader.set_exception)[:2] == ["self", "exc"]
    loop = asyncio.new_event_loop()
    try:
        protocol = ResponseHandler(loop)
        assert protocol.transport is None  # set when connected, None again when lost
        assert isinstance(protocol.closed, asyncio.Future)  # made when asked (3.12.7+)
        assert protocol.exception() is None
        assert protocol.should_close is False
    finally:
        loop.close()
