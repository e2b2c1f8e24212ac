"""The SDK clients behind one ``AI21`` instance, created lazily and never shared.

- One sync ``AI21Client`` on an ``httpx.Client``.
- One ``AsyncAI21Client`` per running event loop, on an aiohttp-backed ``httpx.AsyncClient``
  (``httpx-aiohttp``): an async connection pool is bound to the loop that opened it, so a
  client made in one ``asyncio.run(...)`` fails in the next ("Event loop is closed"). Each
  loop gets its own, closed when that loop shuts down its async generators (which
  ``asyncio.run`` always does) or when the loop is garbage-collected.

The SDK's own retries are off (``num_retries=0`` and an environment that cannot turn them
back on): ``_retry`` owns retrying. Pickling keeps the configuration and drops the clients.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx
from ai21 import AI21Client, AsyncAI21Client
from httpx_aiohttp import HttpxAiohttpClient

from llama_index.llms.ai21._retry import last_retry_after

VIA = "llama-index"


@dataclass(frozen=True)
class _PinnedEnv:
    """Stands in for the SDK's env config so ``AI21_NUM_RETRIES`` and friends cannot
    override what the instance was configured with (the SDK reads ``arg or env``)."""

    api_key: str
    api_host: str
    timeout_sec: float | None = None
    num_retries: int = 0


def _record_retry_after(response: httpx.Response) -> None:
    if response.status_code >= 400:
        last_retry_after.set(response.headers.get("retry-after"))


async def _arecord_error(response: httpx.Response) -> None:
    if response.status_code >= 400:
        last_retry_after.set(response.headers.get("retry-after"))
        # The SDK reads an error body with the *sync* ``response.read()``, which fails on an
        # async stream and loses the details (ai21-api.md 3.2). Reading it here first keeps
        # the real body in the exception, exactly as on the sync path.
        await response.aread()


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Suspended for the loop's lifetime; the loop's ``shutdown_asyncgens`` (run by
    ``asyncio.run``) resumes it into ``finally``, which closes the client on that loop."""
    try:
        yield
    finally:
        await client.aclose()


@dataclass
class _LoopClient:
    client: AsyncAI21Client
    closer: AsyncGenerator[None, None]  # owns the httpx client; closing it closes the pool


@dataclass
class ClientConfig:
    """Everything needed to build the clients; this, not the clients, is what pickles."""

    api_key: str = field(repr=False)
    base_url: str
    timeout: float
    headers: dict[str, str]


class Transport:
    """Lazily-built SDK clients for one configuration."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._sync: AI21Client | None = None
        self._sync_http: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def _sdk_kwargs(self) -> dict[str, Any]:
        config = self.config
        return {
            "api_key": config.api_key,
            "api_host": config.base_url,
            "headers": dict(config.headers),
            "timeout_sec": config.timeout,
            "num_retries": 0,
            "via": VIA,
            "env_config": _PinnedEnv(config.api_key, config.base_url, config.timeout),
        }

    def sync_client(self) -> AI21Client:
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    http = httpx.Client(event_hooks={"response": [_record_retry_after]})
                    client = AI21Client(http_client=http, **self._sdk_kwargs())
                    self._sync, self._sync_http = client, http
                    # Close the pool's sockets when this transport is garbage-collected.
                    weakref.finalize(self, http.close)
        return client

    async def async_client(self) -> AsyncAI21Client:
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is not None:
            return entry.client
        http = HttpxAiohttpClient(event_hooks={"response": [_arecord_error]})
        client = AsyncAI21Client(http_client=http, **self._sdk_kwargs())
        closer = _close_with_loop(http)
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
            http, self._sync, self._sync_http = self._sync_http, None, None
        if http is not None:
            http.close()

    async def aclose(self) -> None:
        """Close the client of the running loop."""
        with self._lock:
            entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.closer.aclose()
