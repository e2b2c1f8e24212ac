"""The emulator's HTTP front door: an aiohttp app, run on its own event loop in a daemon thread.

It reads a request, hands it to the pipeline (``_core.handle``: recording, faults, the flavour's
routing, auth and answer) and writes the :class:`~._scenario.Response`, applying the timing part
of a fault (``delay``, ``stream_delay``, ``stall_after``, ``drop_after``, ``Retry-After``).
The control endpoints under ``/_emulator/`` are served here, with no auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from . import _core
from ._faults import Fault, fault_from_json, fault_to_json
from ._scenario import Response, json_bytes
from ._script import reply_from_json, reply_to_json
from ._state import EmulatorState

CONTROL_PREFIX = "/_emulator/"
LISTEN_BACKLOG = 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# In-flight requests get this long to finish, then are cancelled (aiohttp waits it twice).
SHUTDOWN_TIMEOUT = 0.25

_STATE_KEY = web.AppKey("state", EmulatorState)


def client_error_reason(exc: BaseException) -> str:
    """The first line of aiohttp's message for a request it could not read."""
    cause = exc.__cause__ if isinstance(exc, web.RequestPayloadError) else exc
    lines = str(getattr(cause, "message", None) or cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


if TYPE_CHECKING:  # subscriptable at run time only from Python 3.11
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:
    _LoggerAdapter = logging.LoggerAdapter


class _ServerLog(_LoggerAdapter):
    """aiohttp's server logger (``aiohttp.server``), except for a request aiohttp cannot parse.

    A bad request line, header or chunk, or a body that does not match its Content-Encoding,
    is the client's mistake: aiohttp answers it 400 (``_handle`` does for a body) and logs it as
    an ERROR with a traceback, which Python's last-resort handler prints on the terminal of
    whoever runs the emulator (the CLI, or a test session). Those go to DEBUG as one line, as
    aiohttp already logs a first request with a bad method; anything else stays an ERROR.
    """

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        client_error = isinstance(exc_info, web.RequestPayloadError) or (
            isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500
        )
        if client_error:
            self.debug("%s: %s", str(msg) % args, client_error_reason(exc_info))
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _headers(response: Response, fault: Fault | None) -> dict[str, str]:
    headers = dict(response.headers)
    if fault is not None and fault.retry_after:
        headers["Retry-After"] = fault.retry_after
    return headers


def _json_response(response: Response, fault: Fault | None = None) -> web.Response:
    return web.Response(
        status=response.status,
        body=response.body,
        content_type="application/json",
        headers=_headers(response, fault),
    )


def _control_json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json_bytes(obj), content_type="application/json")


async def _handle(request: web.Request) -> web.StreamResponse:
    """The one aiohttp handler: control endpoints, or the pipeline then the writer."""
    if request.path.startswith(CONTROL_PREFIX):
        return await _control(request)
    state = request.app[_STATE_KEY]
    started = time.perf_counter()
    try:
        body = await request.read()
    except web.RequestPayloadError as exc:
        # A body aiohttp cannot decode (gzip that is not): the client's mistake, answered 400
        # like a request aiohttp cannot parse (not a 500), and not recorded.
        reason = client_error_reason(exc)
        refused = _json_response(state.flavour.error(400, f"Invalid request body: {reason}"))
        refused.force_close()  # what is left of the body cannot be read
        return refused
    incoming = _core.Incoming(request.method, request.path, request.headers, body)
    outcome = _core.handle(state, incoming)
    fault = outcome.fault
    if fault is not None and fault.delay:
        await asyncio.sleep(fault.delay)
    response = await _send(request, outcome.response, fault)
    if state.log is not None:
        elapsed = (time.perf_counter() - started) * 1000
        state.log(
            f"{request.method} {request.path} {response.status} "
            f"model={outcome.model or '-'} {elapsed:.1f}ms"
        )
    return response


async def _send(
    request: web.Request, response: Response, fault: Fault | None
) -> web.StreamResponse:
    if response.events is not None:
        return await _stream(request, response, fault)
    if fault is not None and fault.drop_after is not None:
        return await _drop_body(request, response, fault)
    return _json_response(response, fault)


async def _drop_body(request: web.Request, reply: Response, fault: Fault) -> web.StreamResponse:
    response = web.StreamResponse(status=reply.status, headers=_headers(reply, fault))
    response.content_type = "application/json"
    response.content_length = len(reply.body)
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    _abort(request)
    return response


def _abort(request: web.Request) -> None:
    """Close the connection without finishing the HTTP message."""
    transport = request.transport
    if transport is not None:
        transport.close()


async def _stream(request: web.Request, reply: Response, fault: Fault | None) -> web.StreamResponse:
    assert reply.events is not None
    headers = {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        **_headers(reply, fault),
    }
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    delay = fault.stream_delay if fault is not None else 0.0
    drop_after = fault.drop_after if fault is not None else None
    stall_after = fault.stall_after if fault is not None else None
    for index, event in enumerate(reply.events):
        stalled = stall_after is not None and index == stall_after and fault is not None
        if stalled and not await _stall(response, fault):  # type: ignore[arg-type]
            return response
        if drop_after is not None and index >= drop_after:
            _abort(request)
            return response
        if delay and index:
            await asyncio.sleep(delay)
        try:
            await response.write(event)
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError included
            return response  # the client stopped reading and closed: normal, not an error
    with contextlib.suppress(ConnectionResetError):  # the last event's write found it gone
        await response.write_eof()
    return response


KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: clients skip it


async def _stall(response: web.StreamResponse, fault: Fault) -> bool:
    """A ``stall_after`` stall: silence, or keep-alive comments every ``stall_keep_alive``
    seconds; False if the client left meanwhile."""
    every = fault.stall_keep_alive
    if every is None:
        await asyncio.sleep(fault.stall_seconds)
        return True
    beats = max(math.ceil(fault.stall_seconds / every) - 1, 0)  # comments inside the stall
    for _ in range(beats):
        await asyncio.sleep(every)
        try:
            await response.write(KEEP_ALIVE)
        except ConnectionResetError:
            return False
    await asyncio.sleep(max(fault.stall_seconds - beats * every, 0.0))
    return True


# -- control endpoints (no auth; loopback only) ---------------------------------------------


async def _queue_faults(request: web.Request) -> web.Response:
    try:
        faults = fault_from_json(await request.json())
    except ValueError as exc:
        return _control_json({"detail": f"Invalid fault: {exc}"}, status=400)
    queued = request.app[_STATE_KEY].faults.push(faults)
    return _control_json({"queued": queued})


async def _list_faults(request: web.Request) -> web.Response:
    pending = request.app[_STATE_KEY].faults.pending()
    return _control_json([{**fault_to_json(f), "remaining": n} for f, n in pending])


async def _clear_faults(request: web.Request) -> web.Response:
    return _control_json({"cleared": request.app[_STATE_KEY].faults.clear()})


async def _list_requests(request: web.Request) -> web.Response:
    return _control_json([r.to_public_json() for r in request.app[_STATE_KEY].records()])


async def _clear_requests(request: web.Request) -> web.Response:
    return _control_json({"cleared": request.app[_STATE_KEY].clear_records()})


async def _queue_replies(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        replies = [reply_from_json(item) for item in (data if isinstance(data, list) else [data])]
    except ValueError as exc:
        return _control_json({"detail": f"Invalid reply: {exc}"}, status=400)
    request.app[_STATE_KEY].script.push(replies)
    return _control_json({"queued": len(replies)})


async def _list_replies(request: web.Request) -> web.Response:
    queued = request.app[_STATE_KEY].script.queued()
    return _control_json([reply_to_json(reply) for reply in queued])


async def _clear_replies(request: web.Request) -> web.Response:
    return _control_json({"cleared": request.app[_STATE_KEY].script.clear()})


_CONTROL_ROUTES: Mapping[tuple[str, str], Callable[[web.Request], Awaitable[web.Response]]] = {
    ("POST", "faults"): _queue_faults,
    ("GET", "faults"): _list_faults,
    ("DELETE", "faults"): _clear_faults,
    ("GET", "requests"): _list_requests,
    ("DELETE", "requests"): _clear_requests,
    ("POST", "replies"): _queue_replies,
    ("GET", "replies"): _list_replies,
    ("DELETE", "replies"): _clear_replies,
}


async def _control(request: web.Request) -> web.StreamResponse:
    name = request.path[len(CONTROL_PREFIX) :]
    handler = _CONTROL_ROUTES.get((request.method, name))
    if handler is None:
        allowed = [method for method, route in _CONTROL_ROUTES if route == name]
        if not allowed:
            return _control_json({"detail": "Not Found"}, 404)
        refused = _control_json({"detail": "Method Not Allowed"}, 405)
        refused.headers["Allow"] = ", ".join(allowed)
        return refused
    return await handler(request)


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application: one catch-all handler that does its own routing."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_STATE_KEY] = state
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app


def listening_socket(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (port 0 picks a free port)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        # As asyncio's create_server: SO_REUSEADDR only on POSIX, where it merely lets a port in
        # TIME_WAIT be reused; on Windows it lets a second socket bind a port already in use.
        if os.name == "posix" and sys.platform != "cygwin":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ServerThread:
    """Runs :func:`build_app` on a private event loop in a daemon thread."""

    def __init__(self, state: EmulatorState, host: str, port: int) -> None:
        self._state = state
        self._sock = listening_socket(host, port)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="ai21-emulator", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("the AI21 emulator failed to start") from self._error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            try:
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                self._sock.close()
                asyncio.set_event_loop(None)
                loop.close()

    async def _start_site(self) -> None:
        runner = web.AppRunner(
            build_app(self._state),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            logger=_ServerLog(),
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        self._runner = runner
        site = web.SockSite(runner, self._sock, backlog=LISTEN_BACKLOG)
        await site.start()
