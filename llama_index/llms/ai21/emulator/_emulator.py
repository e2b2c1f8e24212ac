"""The :class:`Emulator` handle: start/stop the server thread, read records, script faults.

aiohttp is imported only when a server starts, so importing this module (e.g. from the pytest
plugin) stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from ._faults import Fault
from ._state import EmulatorState, RecordedRequest

if TYPE_CHECKING:
    from ._server import ServerThread

DEFAULT_API_KEY = "emulator-key"
API_ROOT = "/studio/v1"


class Emulator:
    """An offline AI21 Studio API on loopback, for the unmodified ``ai21`` SDK.

    Args:
        api_keys: Bearer tokens to accept (default: ``(DEFAULT_API_KEY,)``). A single string is
            taken as one key.
        host: Interface to listen on.
        port: TCP port; 0 picks a free one (see ``base_url`` after ``start()``).

    Example:
        >>> import httpx
        >>> from ai21 import AI21Client
        >>> from ai21.models.chat import UserMessage
        >>> from llama_index.llms.ai21.emulator import Emulator
        >>> with Emulator() as emu, httpx.Client() as http:
        ...     client = AI21Client(api_key=emu.api_key, api_host=emu.base_url, http_client=http)
        ...     reply = client.chat.completions.create(
        ...         model="jamba-mini", messages=[UserMessage(content="Hi")]
        ...     )
        >>> reply.choices[0].message.content
        'This is the AI21 emulator (jamba-mini), not a real model. You said: Hi'
    """

    def __init__(
        self,
        api_keys: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        keys = (
            (DEFAULT_API_KEY,)
            if api_keys is None
            else (api_keys,)
            if isinstance(api_keys, str)
            else tuple(api_keys)
        )
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError("api_keys must hold at least one non-empty string")
        self._keys = keys
        self._host = host
        self._port = port
        self._state = EmulatorState(keys)
        self._server: ServerThread | None = None
        self._lifecycle = threading.Lock()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<Emulator {where}>"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving (no-op if already running). Returns ``self``."""
        with self._lifecycle:
            if self._server is None:
                from ._server import ServerThread

                server = ServerThread(self._state, self._host, self._port)
                server.start()
                self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Idempotent."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is not None:
                server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The TCP port being served (the real one when created with ``port=0``)."""
        return self._running_server().address[1]

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:8021``; control endpoints live under ``/_emulator``."""
        host, port = self._running_server().address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/studio/v1``: pass it as ``AI21Client(api_host=...)``."""
        return self.url + API_ROOT

    @property
    def api_key(self) -> str:
        """The first accepted API key."""
        return self._keys[0]

    def _running_server(self) -> ServerThread:
        server = self._server
        if server is None:
            raise RuntimeError("the emulator is not running; call start() or use `with Emulator()`")
        return server

    # -- records and faults ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, in arrival order (a snapshot copy)."""
        return self._state.records()

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request. Raises LookupError if none has arrived yet."""
        records = self._state.records()
        if not records:
            raise LookupError("the emulator has not received any request yet")
        return records[-1]

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to its next ``count`` matching requests, in FIFO order."""
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected Fault, got {type(fault).__name__}")
        self._state.faults.push(faults)

    def reset(self) -> None:
        """Forget recorded requests and drop pending faults."""
        self._state.clear_records()
        self._state.faults.clear()
