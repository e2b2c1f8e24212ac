"""HTTP for one ``AI21`` instance: connection pools built lazily, never shared.

- One ``httpx.Client`` for synchronous calls, on urllib3's pools (``_urllib3``: the same
  httpx client and errors, a third of httpcore's CPU per streamed chunk).
- One aiohttp-backed ``httpx.AsyncClient`` (``_aiohttp``) per running event loop: an async
  connection pool is bound to the loop that opened it, so a client made in one
  ``asyncio.run(...)`` fails in the next ("Event loop is closed"). Each loop's client is
  closed, and forgotten, when that loop shuts down its async generators (``asyncio.run``
  always does); a loop closed without that is forgotten the next time a new loop asks for a
  client, so no closed loop is kept alive by an instance.
- A process forked from one that made calls (a ``multiprocessing`` pool) starts with no
  pools: it never reads or writes its parent's sockets.
- A user's own ``http_client``/``async_http_client`` is used as given (any loop, its own
  pool and TLS settings) and never closed here; requests on it still carry this package's
  headers and timeouts.

Requests are sent here, not through the SDK's ``execute_http_request``, and the SDK still
decides the errors: a status other than 200 goes to the SDK's own
``handle_non_success_response``, so callers get exactly the ``ai21.errors`` class and
``details`` the SDK would raise. Skipping the SDK's request path saves about a fifth of the
CPU of a call: it runs every request through a tenacity retrier even with retries off,
formats a debug line of the whole body, and logs every error status at ``ERROR``, including
the ones we then retry successfully. Retries are ``_retry``'s job alone.

Pickling keeps the configuration and drops the pools.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any, NoReturn

import certifi
import httpx
import orjson
from ai21.http_client.base_http_client import handle_non_success_response
from ai21.version import VERSION as SDK_VERSION

from llama_index.llms.ai21._aiohttp import AiohttpClient
from llama_index.llms.ai21._retry import last_retry_after
from llama_index.llms.ai21._urllib3 import Urllib3Client
from llama_index.llms.ai21.errors import MalformedResponseError

VIA = "llama-index"


@dataclass
class ClientConfig:
    """Everything needed to build the clients; this, not the clients, is what pickles.

    ``headers`` are every header a request carries, authentication included: the deployment
    (``_deployments``) builds them, so they are kept out of ``repr``.
    """

    base_url: str
    timeout: float
    headers: dict[str, str] = field(repr=False)
    # TLS: httpx's ``verify`` (True, False, a CA bundle path or an ``ssl.SSLContext``) and
    # ``cert`` (a client certificate for mTLS), for the clients this package builds.
    verify: Any = True
    cert: Any = None
    # The user's own clients (the llama-index-llms-openai convention): used as given.
    http_client: httpx.Client | None = field(default=None, repr=False)
    async_http_client: httpx.AsyncClient | None = field(default=None, repr=False)


def ssl_context(verify: Any = True, cert: Any = None) -> ssl.SSLContext:
    """httpx's ``verify``/``cert`` settings as one ``ssl.SSLContext``, built the same way on
    every httpx version (0.27 and 0.28 differ in ``create_ssl_context``'s parameters and
    deprecate different forms of these settings).

    ``verify``: True (certifi's CAs, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, as httpx
    does), False (no checks), a CA bundle file or directory, or a ready ``ssl.SSLContext``.
    ``cert``: a PEM file with the client certificate and key, or ``(cert, key)`` or
    ``(cert, key, password)``, for mutual TLS.
    """
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True:
        if os.environ.get("SSL_CERT_FILE"):
            context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            context = ssl.create_default_context(cafile=certifi.where())
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        if os.path.isdir(path):
            context = ssl.create_default_context(capath=path)
        else:
            context = ssl.create_default_context(cafile=path)
    else:
        raise TypeError(f"verify must be a bool, a CA bundle path or an ssl.SSLContext: {verify!r}")
    if cert:
        if isinstance(cert, str | os.PathLike):
            context.load_cert_chain(cert)
        else:
            context.load_cert_chain(*cert)
    return context


def user_agent() -> str:
    """The SDK's user agent, naming this integration the way the SDK's ``via=`` does."""
    return (
        f"AI21 studio SDK {SDK_VERSION} Python {platform.python_version()} "
        f"Operating System {platform.platform()} via: {VIA}"
    )


# Bodies are written by the stdlib (compact, ASCII-only, as the SDK sends them), not orjson:
# orjson reserves about ten times the output's size for the bytes it returns, and a RAG
# prompt is often tens of kilobytes. Answers are read by orjson, which has no such cost.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def decode_json(response: httpx.Response) -> Any:
    """The JSON body of a 200 answer; :class:`MalformedResponseError` if it is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponseError(
            f"malformed AI21 response: body is not valid JSON ({exc}): {response.text[:200]!r}"
        ) from exc


def _raise_for_status(response: httpx.Response) -> NoReturn:
    """Raise the SDK's exception for this (fully read) error response."""
    # The SDK's exceptions carry the body but not the headers: the retry policy reads
    # ``Retry-After`` from here.
    last_retry_after.set(response.headers.get("retry-after"))  # pragma: no mutate (any case)
    handle_non_success_response(response.status_code, response.text)  # raises for every status
    raise AssertionError("unreachable")  # pragma: no cover, no mutate


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing. Requests here are built without cookies (the API
    authenticates by key), so parsing every answer's ``Set-Cookie``, which httpx clients
    otherwise do on each response, would only cost CPU."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _run_without_loop(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run a closing coroutine that has nothing left to wait for (its loop is closed, so
    aiohttp closes nothing on it) to its end, without a loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    except Exception:  # pragma: no cover - closing what is already unusable
        return
    coroutine.close()  # it wanted to wait (on the closed loop): give up on it


class _LoopClient:
    """One event loop's client, and the parked async generator that closes it with the loop."""

    def __init__(self, client: httpx.AsyncClient, forget: Any) -> None:
        self.client = client
        self.loop_closed = False
        self.closer = self._close_with_loop(forget)

    # The async generators in this package are shells around ordinary methods, kept out of
    # mutation testing (scripts/mutation.sh says why); what they call is mutated.
    async def _close_with_loop(
        self, forget: Any
    ) -> AsyncGenerator[None, None]:  # pragma: no mutate block
        """Suspended for the loop's lifetime; the loop's ``shutdown_asyncgens`` (run by
        ``asyncio.run``) resumes it into ``finally``, which closes the client on that loop
        and drops it from the transport's map."""
        try:
            yield
        finally:
            await self._close(forget)

    async def _close(self, forget: Any) -> None:
        forget(self)
        if self.loop_closed:
            # Run apart: where closing would wait on the dead loop, only that is given up
            # and the closer still ends (awaited, it would stay suspended in ``finally``).
            _run_without_loop(self.client.aclose())
        else:
            await self.client.aclose()

    def abandon(self) -> None:
        """For a loop closed without ``shutdown_asyncgens``: finish the closer without the
        loop, so neither it nor the client keeps the loop (or a socket) referenced from here."""
        self.loop_closed = True
        _run_without_loop(self.closer.aclose())


# Every live Transport, so that a forked child can drop its parent's pools (see _after_fork).
_TRANSPORTS: weakref.WeakSet[Transport] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for transport in list(_TRANSPORTS):
        transport._forget_pools()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Transport:
    """Lazily-built connection pools for one configuration, and the requests sent on them."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        # Read by both transports: urllib3 (sync) and aiohttp (async).
        self._timeouts = {"timeout": httpx.Timeout(config.timeout).as_dict()}
        self._urls: dict[str, httpx.URL] = {}
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._ssl: ssl.SSLContext | None = None
        # Strong references, removed when each loop shuts down (or is found closed).
        self._async: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._headers: dict[int, httpx.Headers] = {}  # for the user's own clients
        _TRANSPORTS.add(self)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def _forget_pools(self) -> None:
        """In a forked child: the pools' sockets are the parent's. Drop them unclosed (closing
        a TLS connection could write to the parent's stream) and start afresh."""
        self._lock = threading.Lock()
        self._sync = None
        self._async = {}

    # ------------------------------------------------------------------ requests

    def _request(
        self, client: httpx.Client | httpx.AsyncClient, path: str, body: Any
    ) -> httpx.Request:
        """The request, built directly: ``client.build_request`` would parse and merge
        the URL and headers again on every call, a visible share of a call's CPU."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.config.base_url + path)
        headers = client.headers
        if client is self.config.http_client or client is self.config.async_http_client:
            headers = self._headers.get(id(client)) or self._user_headers(client)
        return httpx.Request(
            "GET" if body is None else "POST",
            url,
            headers=headers,
            content=None if body is None else _encode_json(body).encode(),
            extensions=self._timeouts,
        )

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body``; the decoded JSON answer, or the SDK's exception for its status."""
        client = self.sync_client()
        response = client.send(self._request(client, path, body))
        if response.status_code != 200:
            _raise_for_status(response)
        return decode_json(response)

    def get(self, path: str) -> Any:
        """GET ``path`` (e.g. a server's model list); the decoded JSON answer."""
        client = self.sync_client()
        request = self._request(client, path, None)
        response = client.send(request)
        if response.status_code != 200:
            _raise_for_status(response)
        return decode_json(response)

    async def apost(self, path: str, body: dict[str, Any]) -> Any:
        client = await self.async_client()
        response = await client.send(self._request(client, path, body))
        if response.status_code != 200:
            _raise_for_status(response)
        return decode_json(response)

    def open_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` for a streamed answer; the open response once its status is 200."""
        client = self.sync_client()
        response = client.send(self._request(client, path, body), stream=True)
        if response.status_code != 200:
            try:
                response.read()
            finally:
                response.close()
            _raise_for_status(response)
        return response

    async def aopen_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        client = await self.async_client()
        response = await client.send(self._request(client, path, body), stream=True)
        if response.status_code != 200:
            try:
                await response.aread()
            finally:
                await response.aclose()
            _raise_for_status(response)
        return response

    # ------------------------------------------------------------------ clients

    def _user_headers(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Headers:
        """The user's client's own headers with ours on top (ours win)."""
        headers = httpx.Headers(client.headers)
        headers.update(self.config.headers)
        self._headers[id(client)] = headers
        return headers

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl_context(self.config.verify, self.config.cert)
        return self._ssl

    def sync_client(self) -> httpx.Client:
        if self.config.http_client is not None:
            return self.config.http_client
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    # Its sockets close when it is collected: urllib3's pools (>= 2.0) have
                    # a finalizer of their own.
                    client = self._sync = Urllib3Client(
                        headers=self.config.headers,
                        cookies=_NoCookies(),  # pragma: no mutate (CPU only: see above)
                        verify=self._tls(),
                    )
        return client

    async def async_client(self) -> httpx.AsyncClient:
        if self.config.async_http_client is not None:
            return self.config.async_http_client
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is not None:
            return entry.client
        self._forget_closed_loops()
        client = AiohttpClient(
            headers=self.config.headers,
            cookies=_NoCookies(),  # pragma: no mutate (CPU only: see above)
            verify=self._tls(),
        )
        entry = _LoopClient(client, self._forget)
        # Registers it with this loop's async-generator tracking. It runs to the closer's
        # first ``yield`` without suspending, so no other task of this loop gets in between.
        await entry.closer.asend(None)
        with self._lock:  # other threads' loops change the map as they shut down
            self._async[loop] = entry
        return client

    def _forget(self, entry: _LoopClient) -> None:
        with self._lock:
            for loop, known in list(self._async.items()):
                if known is entry:
                    del self._async[loop]

    def _forget_closed_loops(self) -> None:
        """Drop the clients of loops closed without ``shutdown_asyncgens``."""
        with self._lock:
            closed = [loop for loop in self._async if loop.is_closed()]
            entries = [self._async.pop(loop) for loop in closed]
        for entry in entries:
            entry.abandon()

    def close(self) -> None:
        """Close the sync client (async ones close with their loops, or via :meth:`aclose`).
        A user's own client is left open: it is theirs."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()
        self._forget_closed_loops()

    async def aclose(self) -> None:
        """Close the client of the running loop (not a user's own client)."""
        with self._lock:
            entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.closer.aclose()
