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
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import urllib3
from urllib3 import exceptions as u3

KEEPALIVE_PER_HOST = 20  # idle connections kept per host; httpx keeps 20 in all
READ_SIZE = 65_536


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Re-raise urllib3's exceptions as the httpx ones httpcore raises for the same failure."""
    try:
        yield
    except u3.NewConnectionError as exc:  # before ConnectTimeoutError: it is a subclass
        raise httpx.ConnectError(str(exc), request=request) from exc
    except u3.ConnectTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc), request=request) from exc
    except u3.ReadTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc), request=request) from exc
    except u3.SSLError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except u3.ProxyError as exc:
        raise httpx.ProxyError(str(exc), request=request) from exc
    except u3.ProtocolError as exc:
        # A reset or broken socket is a network error; a peer that closed the connection
        # early or sent something that is not HTTP is a protocol error (as in httpcore).
        if isinstance(exc.__context__, OSError) or any(
            isinstance(arg, OSError) for arg in exc.args
        ):
            raise httpx.ReadError(str(exc), request=request) from exc
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except u3.HTTPError as exc:
        raise httpx.TransportError(str(exc), request=request) from exc


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, response: urllib3.BaseHTTPResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        # Undecoded: httpx decodes Content-Encoding itself, as with its own transport.
        with _as_httpx_errors(self._request):
            yield from self._response.stream(READ_SIZE, decode_content=False)

    def close(self) -> None:
        response = self._response
        if response.connection is not None:
            # Not read to the end (urllib3 releases a fully read connection itself): the
            # rest of the body is still on the socket, so the connection cannot be reused.
            response.close()
            response.release_conn()


def _headers(request: httpx.Request) -> urllib3.HTTPHeaderDict:
    """The request's headers as httpx would send them: names in their given case, repeats kept."""
    headers = urllib3.HTTPHeaderDict()
    for name, value in request.headers.raw:
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return headers


class Urllib3Transport(httpx.BaseTransport):
    """Sends httpx requests through a ``urllib3.PoolManager``: keep-alive pools per host, no
    redirects and no retries of its own (``_retry`` decides), httpx's TLS defaults."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._pools = urllib3.PoolManager(
            maxsize=KEEPALIVE_PER_HOST,
            retries=False,
            ssl_context=ssl_context or httpx.create_ssl_context(),
        )
        self._timeouts: dict[tuple[Any, Any], urllib3.Timeout] = {}

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
            pool = self._pools.connection_from_host(url.host, url.port, url.scheme)
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
            )
        return httpx.Response(
            response.status,
            headers=list(response.headers.items()),
            stream=_ResponseStream(response, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def close(self) -> None:
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
        return Urllib3Transport(httpx.create_ssl_context(verify, cert, trust_env))
