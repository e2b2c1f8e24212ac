"""A synchronous ``httpx`` transport on urllib3's connection pools.

httpx's own transport (httpcore on h11) spends about 6 µs of CPU on every HTTP chunk it reads,
and an AI21 stream sends one chunk per token; urllib3 reads the same chunk for about a third
of that (``benchmarks/README.md`` has the measurements). The client in front stays an
``httpx.Client``, so requests, responses and errors are httpx's: urllib3's exceptions become
the httpx exceptions httpcore would raise for the same failure (``httpx.ConnectError``,
``httpx.ReadTimeout``, ``httpx.RemoteProtocolError``, ...), and callers and the retry policy
see no difference.

:class:`Urllib3Client` is an ``httpx.Client`` whose default transport is this one (the
pattern ``httpx-aiohttp`` uses for its async client). Proxies from the environment
(``HTTPS_PROXY``, ``NO_PROXY``, ...) keep working: httpx mounts its own proxy transports for
them, which passing ``transport=`` to ``httpx.Client`` would switch off.

The same idea as the urllib3 transport that once shipped with httpx (kept as a gist by its
author, Florimond Manca).
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import traceback
from collections.abc import Generator, Iterator
from typing import Any

import httpx
import urllib3
from urllib3 import exceptions as u3

MAX_CONNECTIONS = 100  # per host; httpx's default ``max_connections``; more requests wait
READ_SIZE = 65_536
# Response headers: httpx (h11 under httpcore) bounds the header block at 100 KiB and does not
# count the headers; http.client and aiohttp stop at 100 and 128 headers and 8 KiB per line.
# These are raised to what httpx accepts in practice.
MAX_HEADER_BYTES = 100 * 1024
MAX_HEADERS = 1024
# http.client has no per-connection setting for the count, only this module-level limit; it
# is only ever raised here, never lowered, for every user of http.client in the process.
http.client._MAXHEADERS = max(http.client._MAXHEADERS, MAX_HEADERS)  # type: ignore[attr-defined]
# A stream closed before its body's end (the adapter stops at ``[DONE]``) waits at most this
# long per read for the end-of-body marker, so that its connection can be reused.
DRAIN_SECONDS = 0.05

_VERSIONS = {10: b"HTTP/1.0", 11: b"HTTP/1.1"}


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Re-raise urllib3's exceptions as the httpx ones httpcore raises for the same failure."""
    try:
        yield
    except u3.EmptyPoolError as exc:  # every connection busy for the pool timeout
        raise httpx.PoolTimeout(str(exc), request=request) from exc
    except u3.NewConnectionError as exc:  # before ConnectTimeoutError: it is a subclass
        raise httpx.ConnectError(str(exc), request=request) from exc
    except u3.ConnectTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc), request=request) from exc
    except u3.ReadTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc), request=request) from exc
    except u3.SSLError as exc:
        raise _tls_error(exc, request) from exc
    except u3.ProtocolError as exc:
        raise _protocol_error(exc, request) from exc
    except u3.HTTPError as exc:  # no ProxyError: httpx proxies through its own transport
        raise httpx.TransportError(str(exc), request=request) from exc


def _tls_error(exc: u3.SSLError, request: httpx.Request) -> httpx.TransportError:
    """A TLS failure during the handshake is a ConnectError (a certificate that fails
    verification, ...); after it, a ReadError (with TLS 1.3 a server that wants a client
    certificate says so after the handshake), as in httpcore, which also reads the answer
    after a failed write and so reports a ReadError there too. urllib3 raises the same class
    for all of them, so the phase is read from where the ``ssl`` error was raised."""
    reason = next((arg for arg in exc.args if isinstance(arg, BaseException)), None)
    frames = set()
    if reason is not None:
        frames = {frame.f_code.co_name for frame, _ in traceback.walk_tb(reason.__traceback__)}
    if "do_handshake" in frames or not frames:
        return httpx.ConnectError(str(exc), request=request)
    return httpx.ReadError(str(exc), request=request)


def _protocol_error(exc: u3.ProtocolError, request: httpx.Request) -> httpx.TransportError:
    """urllib3's catch-all for a failed exchange, by what failed (as httpcore tells them)."""
    reason = next((arg for arg in exc.args if isinstance(arg, BaseException)), None)
    message = str(exc)
    if isinstance(reason, http.client.RemoteDisconnected):
        # Closed before any answer: also a ConnectionResetError, but httpcore calls it a
        # protocol error ("Server disconnected without sending a response.").
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(reason, TimeoutError):
        # urllib3 turns a timeout while waiting for the answer into ReadTimeoutError; a bare
        # socket timeout here happened while sending the request.
        return httpx.WriteTimeout(message, request=request)
    if isinstance(reason, OSError):  # reset, broken pipe
        return httpx.ReadError(message, request=request)
    # Not HTTP, bad chunked framing, a body shorter than its Content-Length, ...
    return httpx.RemoteProtocolError(message, request=request)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, response: urllib3.BaseHTTPResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request
        self._chunks: Generator[bytes, None, None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        # The reader is kept, not delegated to with ``yield from``: when the caller stops
        # early, closing it would make urllib3 drop the connection before ``close`` can look
        # at what is left.
        chunks = self._chunks = _pieces(self._response)
        with _as_httpx_errors(self._request):
            for chunk in chunks:  # noqa: UP028 - see above: not ``yield from``
                yield chunk

    def close(self) -> None:
        """Reuse the connection if only the body's end was left unread; never raises, and
        waits at most ``DRAIN_SECONDS`` per read for a peer that holds the connection."""
        response = self._response
        connection = response.connection
        if connection is None:
            return  # read to the end: urllib3 has put the connection back in its pool
        chunks = self._chunks
        # No socket: the server closes the connection after this answer (http.client has
        # handed it to the response), so there is nothing to keep.
        sock = getattr(connection, "sock", None)  # pragma: no mutate (it always has one)
        if chunks is not None and sock is not None:
            # Body data still to come means the caller left mid-answer: drop the connection
            # rather than read an answer nobody wants. Only the end-of-body marker is read.
            with contextlib.suppress(Exception):  # timed out, reset, ...: dropped below
                sock.settimeout(DRAIN_SECONDS)
                next(chunks, None)  # pragma: no mutate (StopIteration would be caught too)
        if chunks is not None:
            chunks.close()
        if response.connection is not None:  # not at the end: the connection is discarded
            response.close()
            response.release_conn()


def _pieces(response: urllib3.BaseHTTPResponse) -> Generator[bytes, None, None]:
    """The body as it arrives, undecoded (httpx decodes ``Content-Encoding`` itself, as with
    its own transport). Not ``response.stream()``: outside chunked framing, each of its pieces
    waits for ``READ_SIZE`` bytes or the body's end, which would hold back a stream's events."""
    if response.chunked:
        yield from response.read_chunked(READ_SIZE, decode_content=False)
        return
    while piece := response.read1(READ_SIZE, decode_content=False):
        yield piece


def _headers(request: httpx.Request) -> urllib3.HTTPHeaderDict:
    """The request's headers as httpx would send them: names in their given case, repeats kept."""
    headers = urllib3.HTTPHeaderDict()
    for name, value in request.headers.raw:
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return headers


class Urllib3Transport(httpx.BaseTransport):
    """Sends httpx requests through a ``urllib3.PoolManager``: keep-alive pools per host, no
    redirects and no retries of its own (``_retry`` decides), httpx's TLS defaults.

    At most ``MAX_CONNECTIONS`` connections per host; further requests wait for one for up
    to the pool timeout, as with httpx (so urllib3 never has more connections than it keeps,
    and never logs "Connection pool is full").
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._pools = urllib3.PoolManager(
            maxsize=MAX_CONNECTIONS,
            block=True,
            retries=False,
            ssl_context=ssl_context or httpx.create_ssl_context(),
        )
        self._timeouts: dict[tuple[Any, Any], urllib3.Timeout] = {}
        # The pools in use, by host: closed by ``close`` (``PoolManager.clear`` only forgets
        # them in recent urllib3, leaving their sockets open).
        self._hosts: dict[tuple[str, str, int | None], urllib3.HTTPConnectionPool] = {}

    def _timeout(self, request: httpx.Request) -> urllib3.Timeout:
        settings = request.extensions.get("timeout", {})
        key = (settings.get("connect"), settings.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = urllib3.Timeout(connect=key[0], read=key[1])
        return timeout

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        with _as_httpx_errors(request):
            pool = self._hosts.get((url.scheme, url.host, url.port))
            if pool is None:
                pool = self._hosts[url.scheme, url.host, url.port] = (
                    self._pools.connection_from_host(url.host, url.port, url.scheme)
                )
            response = pool.urlopen(
                request.method,
                url.raw_path.decode("ascii"),
                body=request.content,
                headers=_headers(request),
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=self._timeout(request),
                pool_timeout=request.extensions.get("timeout", {}).get("pool"),
            )
        return httpx.Response(
            response.status,
            headers=list(response.headers.items()),
            stream=_ResponseStream(response, request),
            extensions={
                "http_version": _VERSIONS.get(response.version, b"HTTP/1.1"),
                "reason_phrase": response.reason.encode("latin-1", "replace")
                if response.reason
                else b"",
            },
        )

    def close(self) -> None:
        pools, self._hosts = list(self._hosts.values()), {}
        for pool in pools:
            pool.close()
        self._pools.clear()


class Urllib3Client(httpx.Client):
    """An ``httpx.Client`` on :class:`Urllib3Transport`, with httpx's proxy handling intact."""

    def _init_transport(  # type: ignore[override]
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ) -> httpx.BaseTransport:
        if transport is not None:
            return transport
        if not isinstance(verify, ssl.SSLContext):
            # By keyword: before httpx 0.28 the first parameter was ``cert``, and
            # ``verify`` passed by position switched certificate checks off.
            verify = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        return Urllib3Transport(verify)
