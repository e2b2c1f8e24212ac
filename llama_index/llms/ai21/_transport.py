"""HTTP for one ``AI21`` instance: connection pools built lazily, never shared.

- One ``httpx.Client`` for synchronous calls, on urllib3's pools (``_urllib3``: the same
  httpx client and errors, a third of httpcore's CPU per streamed chunk).
- One aiohttp-backed ``httpx.AsyncClient`` (``httpx-aiohttp``) per running event loop: an
  async connection pool is bound to the loop that opened it, so a client made in one
  ``asyncio.run(...)`` fails in the next ("Event loop is closed"). Each loop gets its own,
  closed when that loop shuts down its async generators (which ``asyncio.run`` always does)
  or when the loop is garbage-collected.

Requests are sent here, not through the SDK's ``execute_http_request``, and the SDK still
decides the errors: a status other than 200 goes to the SDK's own
``handle_non_success_response``, so callers get exactly the ``ai21.errors`` class and
``details`` the SDK would raise. The headers are the SDK's (JSON content type, bearer key,
its user agent with ``via: llama-index``). Skipping the SDK's request path saves about a fifth
of the CPU of a call: it runs every request through a tenacity retrier even with retries off,
formats a debug line of the whole body, and logs every error status at ``ERROR``, including
the ones we then retry successfully. Retries are ``_retry``'s job alone.

Pickling keeps the configuration and drops the pools.
"""

from __future__ import annotations

import asyncio
import json
import platform
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any, NoReturn

import httpx
import orjson
from ai21.http_client.base_http_client import handle_non_success_response
from ai21.version import VERSION as SDK_VERSION
from httpx_aiohttp import HttpxAiohttpClient

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
    last_retry_after.set(response.headers.get("retry-after"))
    handle_non_success_response(response.status_code, response.text)
    raise AssertionError("unreachable: the SDK raises for every status")  # pragma: no cover


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing. Requests here are built without cookies (the API
    authenticates by key), so parsing every answer's ``Set-Cookie``, which httpx clients
    otherwise do on each response, would only cost CPU."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Suspended for the loop's lifetime; the loop's ``shutdown_asyncgens`` (run by
    ``asyncio.run``) resumes it into ``finally``, which closes the client on that loop."""
    try:
        yield
    finally:
        await client.aclose()


@dataclass
class _LoopClient:
    client: httpx.AsyncClient
    closer: AsyncGenerator[None, None]  # closing it closes the client's pool


class Transport:
    """Lazily-built connection pools for one configuration, and the requests sent on them."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        # Read by both transports: urllib3 (sync) and httpx-aiohttp (async).
        self._timeouts = {"timeout": httpx.Timeout(config.timeout).as_dict()}
        self._urls: dict[str, httpx.URL] = {}
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    # ------------------------------------------------------------------ requests

    def _request(
        self, client: httpx.Client | httpx.AsyncClient, path: str, body: Any
    ) -> httpx.Request:
        """The request, built directly: ``client.build_request`` would parse and merge
        the URL and headers again on every call, a visible share of a call's CPU."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.config.base_url + path)
        return httpx.Request(
            "GET" if body is None else "POST",
            url,
            headers=client.headers,
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

    def sync_client(self) -> httpx.Client:
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    client = self._sync = Urllib3Client(
                        headers=self.config.headers,
                        cookies=_NoCookies(),
                    )
                    # Close the pool's sockets when this transport is garbage-collected.
                    weakref.finalize(self, client.close)
        return client

    async def async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is not None:
            return entry.client
        client = HttpxAiohttpClient(headers=self.config.headers, cookies=_NoCookies())
        closer = _close_with_loop(client)
        await closer.asend(None)  # registers it with this loop's async-generator tracking
        with self._lock:
            existing = self._async.get(loop)
            if existing is None:
                self._async[loop] = _LoopClient(client, closer)
                return client
        # Another task of this loop won the race while we awaited: use its client.
        await closer.aclose()
        return existing.client

    def close(self) -> None:
        """Close the sync client (async ones close with their loops, or via :meth:`aclose`)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the client of the running loop."""
        with self._lock:
            entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.closer.aclose()
