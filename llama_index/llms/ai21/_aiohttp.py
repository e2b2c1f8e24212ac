"""An asynchronous ``httpx`` transport on aiohttp's connection pool.

httpx's own async transport (httpcore on anyio) manages about 200 requests a second at 64 in
flight on this machine; aiohttp's pool is several times cheaper per request
(``benchmarks/README.md``). The client in front stays an ``httpx.AsyncClient``, so requests,
responses and errors are httpx's: every aiohttp failure becomes the httpx exception httpcore
raises for the same failure, chosen by what failed (connecting, a certificate, a name that does
not resolve, a reply that is not HTTP, a timeout of one phase), and no aiohttp exception reaches
the caller. The tests in ``tests/transport/`` hold both to plain ``httpx.AsyncClient`` on the same
misbehaving servers.

Written for this package rather than taken from ``httpx-aiohttp``, which maps a refused
connection and a certificate failure to ``ConnectTimeout``, lets aiohttp's parser errors through
(their ``repr`` shows the request's headers, the bearer key among them) and has no write timeout.

:class:`AiohttpClient` is an ``httpx.AsyncClient`` whose default transport is this one, so
httpx's proxy handling (``HTTPS_PROXY``, ``NO_PROXY``, ...) keeps working, as in ``_urllib3``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import inspect
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx

from llama_index.llms.ai21._urllib3 import (
    DRAIN_SECONDS,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
)

KEEPALIVE_SECONDS = 5.0  # httpx's keepalive_expiry
WRITE_CHUNK = 65_536  # bodies are written in pieces this size, each within the write timeout

_SESSION_LIMITS: dict[str, int] = {
    "max_line_size": MAX_HEADER_BYTES,
    "max_field_size": MAX_HEADER_BYTES,
}
if "max_headers" in inspect.signature(aiohttp.ClientSession).parameters:  # aiohttp >= 3.13
    _SESSION_LIMITS["max_headers"] = MAX_HEADERS

_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ClientSSLError)


def _httpx_error(exc: BaseException, request: httpx.Request, writing: bool) -> Exception | None:
    """The httpx exception httpcore raises for the failure behind ``exc`` (None: not ours).

    The original is kept as ``__cause__``, except for aiohttp's ``ClientResponseError``, whose
    ``repr`` includes the request's headers: there the parser's own error is kept instead.
    """
    cause: BaseException | None = exc
    mapped: type[httpx.TransportError]
    # No proxy errors: httpx sends proxied requests through its own transport, never here.
    if isinstance(exc, _CONNECT_ERRORS):
        # Refused, unreachable, a name that does not resolve, a certificate that fails
        # verification: httpcore raises ConnectError for each.
        mapped = httpx.ConnectError
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        mapped = httpx.ConnectTimeout
    elif isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError included
        mapped = httpx.WriteTimeout if writing else httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientResponseError):
        # The status line or headers could not be parsed (not HTTP, a line too long, ...).
        mapped, cause = httpx.RemoteProtocolError, exc.__cause__
    elif isinstance(exc, aiohttp.ClientPayloadError):
        # Bad chunked framing, a body shorter than its Content-Length, or a reset mid-body.
        mapped = httpx.ReadError if _lost_to_os_error(exc) else httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        mapped = httpx.RemoteProtocolError  # httpcore: "Server disconnected without ..."
    elif isinstance(exc, OSError):  # aiohttp.ClientOSError, ClientConnectionResetError
        # Also while writing: httpcore then reads the answer, and reports the read's error.
        mapped = httpx.ReadError
    elif isinstance(
        exc, aiohttp.NonHttpUrlClientError if hasattr(aiohttp, "NonHttpUrlClientError") else ()
    ):
        mapped = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientError):
        mapped = httpx.TransportError
    else:
        return None
    error = mapped(str(exc) or type(exc).__name__, request=request)
    error.__cause__ = cause
    return error


def _lost_to_os_error(exc: aiohttp.ClientPayloadError) -> bool:
    """Whether the connection under an unfinished body failed (a reset, ...) rather than
    closed. aiohttp says so only in the message, which then ends with the error's ``repr``:
    ``Response payload is not completed: <...>. ConnectionResetError(104, '...')``."""
    name = str(exc).rpartition(". ")[2].partition("(")[0]
    error = getattr(builtins, name, None)
    return isinstance(error, type) and issubclass(error, OSError)


class _WriteWatch:
    """Bounds each piece of a request body's write by the write timeout.

    aiohttp has no write timeout: a peer that stops reading a large body would hold the
    request until it closes the connection. The body is handed to aiohttp in pieces; a timer
    started with each piece fires if aiohttp has not come back for the next one in time, and
    aborts the connection (a close would wait for the unsent data to drain), so the request
    fails and is reported as ``httpx.WriteTimeout`` (httpcore's behaviour).
    """

    def __init__(self, body: bytes, timeout: float | None) -> None:
        self.body = body
        self.timeout = timeout
        self.expired = False
        self.writing = False
        self.connection: aiohttp.connector.Connection | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _expire(self) -> None:
        self.expired = True
        transport = self.connection.transport if self.connection is not None else None
        if transport is not None:
            transport.abort()

    # A shell around the methods below, kept out of mutation testing (scripts/mutation.sh).
    async def pieces(self) -> AsyncIterator[bytes]:  # pragma: no mutate block
        self.writing = True
        try:
            for piece in self._split():
                self._start_timer()
                yield piece
                self.stop_timer()
        finally:
            self.stop_timer()
            self.writing = False

    def _split(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), WRITE_CHUNK):
            yield self.body[start : start + WRITE_CHUNK]

    def _start_timer(self) -> None:
        if self.timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_watch: contextvars.ContextVar[_WriteWatch | None] = contextvars.ContextVar(
    "ai21_write_watch", default=None
)


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, telling the running request's :class:`_WriteWatch` its connection."""

    async def send(self, conn: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        watch = _watch.get()
        if watch is not None:
            watch.connection = conn
        return await super().send(conn)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    # A shell around _read, kept out of mutation testing (scripts/mutation.sh).
    async def __aiter__(self) -> AsyncIterator[bytes]:  # pragma: no mutate block
        while chunk := await self._read():
            yield chunk

    async def _read(self) -> bytes:
        """The next piece of the body (empty at its end), failures as httpx's exceptions."""
        error: Exception | None = None
        try:
            return await self._response.content.readany()
        except Exception as exc:
            error = _httpx_error(exc, self._request, writing=False)
            if error is None:
                raise
        raise error  # outside the except block: no aiohttp exception as context

    async def aclose(self) -> None:
        """Reuse the connection if only the body's end was left unread; never raises, and
        waits at most ``DRAIN_SECONDS`` for a peer that holds the connection open."""
        response = self._response
        try:
            content = response.content
            # aiohttp parses what arrives as it comes; the end-of-body marker may be a
            # moment behind the last event. Body data instead means the caller left
            # mid-answer: the connection is then closed, not read to its end.
            if not content.is_eof():
                rest: bytes = await asyncio.wait_for(content.readany(), DRAIN_SECONDS)
                if rest:
                    response.close()
            response.release()  # back to the pool if the body has ended, else closed
        except Exception:  # timed out, reset, ...: drop the connection
            response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one ``aiohttp.ClientSession`` (made on first use, on the
    running loop): keep-alive pool, no redirects, no retries, no cookies, no decompression
    (httpx decodes ``Content-Encoding`` itself)."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=self._ssl,
            limit=MAX_CONNECTIONS,
            keepalive_timeout=KEEPALIVE_SECONDS,
            # getaddrinfo, as httpx does: the same answers and the same failures (aiodns,
            # when installed, would otherwise become aiohttp's default).
            resolver=aiohttp.ThreadedResolver(),
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            request_class=_Request,
            auto_decompress=False,
            # httpx has set these on the request; aiohttp must not add its own.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            **_SESSION_LIMITS,  # type: ignore[arg-type]
        )

    def _timeout(self, request: httpx.Request) -> tuple[aiohttp.ClientTimeout, float | None]:
        settings = request.extensions.get("timeout", {})
        key = (settings.get("connect"), settings.get("read"), settings.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=key[2], sock_connect=key[0], sock_read=key[1]
            )
        return timeout, settings.get("write")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None:
            session = self._session = self._open_session()
        timeout, write_timeout = self._timeout(request)
        body = request.content
        watch = None
        if len(body) > WRITE_CHUNK:
            watch = _WriteWatch(body, write_timeout)
            _watch.set(watch)
        error: Exception | None = None
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=(watch.pieces() if watch is not None else body) or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except Exception as exc:
            if watch is not None and watch.expired:
                error = httpx.WriteTimeout("timed out writing the request body", request=request)
            else:
                error = _httpx_error(exc, request, writing=watch is not None and watch.writing)
                if error is None:
                    raise
        finally:
            if watch is not None:
                watch.stop_timer()
                _watch.set(None)
        if error is not None:
            raise error  # outside the except block: no aiohttp exception as context
        version = response.version
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            extensions={
                "http_version": f"HTTP/{version.major}.{version.minor}".encode()
                if version is not None
                else b"HTTP/1.1",
                # httpx keeps the ASCII of the raw phrase; aiohttp has decoded it already,
                # replacing what is not UTF-8, which is dropped here (as httpx would drop it).
                "reason_phrase": (response.reason or "").encode("latin-1", "ignore"),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class AiohttpClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` on :class:`AiohttpTransport`, httpx's proxy handling intact."""

    def _init_transport(  # type: ignore[override]
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        if not isinstance(verify, ssl.SSLContext):
            verify = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        return AiohttpTransport(verify)
