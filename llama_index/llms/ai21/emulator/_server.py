"""The emulator's HTTP front door: an aiohttp app, run on its own event loop in a daemon thread.

Routing order mirrors FastAPI: unknown route -> 404, wrong method -> 405 (both before auth), then
``Authorization: Bearer`` auth -> 401, then body validation -> 422. Injected faults are applied
before all of that, to every API request (anything outside ``/_emulator/``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import _catalog, _scenario
from ._faults import Fault, fault_from_json, fault_to_json
from ._state import EmulatorState, RecordedRequest, bearer_token, public_headers

API_ROOT = "/studio/v1"
CONTROL_PREFIX = "/_emulator/"
FAULT_HEADER = "X-Emulator-Fault"
ANSWER_TOKENS_HEADER = "X-Emulator-Answer-Tokens"
LISTEN_BACKLOG = 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# In-flight requests get this long to finish, then are cancelled (aiohttp waits it twice).
SHUTDOWN_TIMEOUT = 0.25

_logger = logging.getLogger(__name__)
_STATE_KEY = web.AppKey("state", EmulatorState)
_INVALID = object()  # marker: the body was not JSON

# Route kinds returned by :func:`route`.
CHAT, MODELS, J2_COMPLETE, J2_CHAT = "chat", "models", "j2-complete", "j2-chat"


def route(method: str, path: str) -> tuple[str, str | None] | int:
    """Resolve an API request to ``(kind, j2_model)``, or to the error status 404/405.

    Routes are served under ``/studio/v1`` and, for SDKs that drop the prefix, without it.
    J2 routes exist only for J2 models: ``/jamba-mini/complete`` is an unknown route (404).
    """
    if path.startswith(API_ROOT + "/"):
        path = path[len(API_ROOT) :]
    if path == "/chat/completions":
        return (CHAT, None) if method == "POST" else 405
    if path == "/models":
        return (MODELS, None) if method == "GET" else 405
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "" and parts[2] in ("complete", "chat"):
        if parts[1] not in _catalog.J2_IDS:
            return 404
        if method != "POST":
            return 405
        return (J2_COMPLETE if parts[2] == "complete" else J2_CHAT), parts[1]
    return 404


@dataclass
class _Exchange:
    """What one request carries from the front of the pipeline to the response writer."""

    fault: Fault | None = None
    model: str | None = None


def _json_response(reply: _scenario.Reply, fault: Fault | None = None) -> web.Response:
    headers = {"Retry-After": fault.retry_after} if fault and fault.retry_after else None
    return web.Response(
        status=reply.status, body=reply.body, content_type="application/json", headers=headers
    )


def _control_json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=_scenario.json_bytes(obj), content_type="application/json"
    )


async def _handle(request: web.Request) -> web.StreamResponse:
    """The one aiohttp handler: control endpoints, or record -> fault -> route -> answer."""
    if request.path.startswith(CONTROL_PREFIX):
        return await _control(request)
    state = request.app[_STATE_KEY]
    started = time.perf_counter()
    raw = await request.read()
    parsed: Any = _INVALID
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = _INVALID
    state.record(
        RecordedRequest(
            method=request.method,
            path=request.path,
            headers=public_headers(request.headers),
            api_key=bearer_token(request.headers.get("Authorization")),
            json=None if parsed is _INVALID else parsed,
            raw_body=raw,
        )
    )
    exchange = _Exchange()
    if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
        exchange.model = parsed["model"]
    try:
        response = await _respond(request, state, exchange, raw, parsed)
    except ConnectionError:  # the client went away mid-response
        raise
    except Exception:
        # A bug in the emulator must not look like a transport problem: answer 500 like the
        # real service's FastAPI would, and say why on the logger.
        _logger.exception("AI21 emulator failed on %s %s", request.method, request.path)
        response = _json_response(_scenario.error_reply(500))
    if state.log is not None:
        elapsed = (time.perf_counter() - started) * 1000
        state.log(
            f"{request.method} {request.path} {response.status} "
            f"model={exchange.model or '-'} {elapsed:.1f}ms"
        )
    return response


async def _respond(
    request: web.Request, state: EmulatorState, exchange: _Exchange, raw: bytes, parsed: Any
) -> web.StreamResponse:
    header = request.headers.get(FAULT_HEADER)
    if header is not None:
        try:
            data = json.loads(header)
            if not isinstance(data, dict):
                raise ValueError("the header must hold one JSON object")
            exchange.fault = fault_from_json(data)[0]
        except ValueError as exc:
            detail = f"Invalid {FAULT_HEADER} header: {exc}"
            return _json_response(_scenario.error_reply(400, detail))
    else:
        exchange.fault = state.faults.take(request.path)
    fault = exchange.fault
    if fault is not None and fault.delay:
        await asyncio.sleep(fault.delay)
    if fault is not None and fault.status is not None:
        return _json_response(_scenario.error_reply(fault.status), fault)

    target = route(request.method, request.path)
    if isinstance(target, int):
        reply = _scenario.NOT_FOUND if target == 404 else _scenario.METHOD_NOT_ALLOWED
        return await _send(request, exchange, reply)
    kind, j2_model = target
    if j2_model is not None:
        exchange.model = j2_model
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or token not in state.api_keys:
        return await _send(request, exchange, _scenario.UNAUTHORIZED)
    if kind == MODELS:
        return await _send(request, exchange, _scenario.MODELS)
    if parsed is _INVALID:
        _, problem = _scenario.parse_body(raw)
        assert problem is not None
        return await _send(request, exchange, problem)
    if kind == CHAT:
        length = request.headers.get(ANSWER_TOKENS_HEADER)
        if length is not None and not (length.isdigit() and len(length) <= 7):
            detail = f"Invalid {ANSWER_TOKENS_HEADER} header: expected a whole number of tokens"
            return _json_response(_scenario.error_reply(400, detail))
        answer_tokens = int(length) if length is not None else None
        reply = _scenario.chat_completions(parsed, "chat-" + uuid.uuid4().hex, answer_tokens)
    elif kind == J2_COMPLETE:
        assert j2_model is not None
        reply = _scenario.j2_complete(j2_model, parsed, str(uuid.uuid4()))
    else:
        assert j2_model is not None
        reply = _scenario.j2_chat(j2_model, parsed, str(uuid.uuid4()))
    return await _send(request, exchange, reply)


async def _send(
    request: web.Request, exchange: _Exchange, reply: _scenario.Reply
) -> web.StreamResponse:
    fault = exchange.fault
    if reply.events is None:
        if fault is not None and fault.malformed_after is not None:
            truncated = reply.body[: max(1, len(reply.body) // 2)]
            return _json_response(_scenario.Reply(reply.status, truncated), fault)
        if fault is not None and fault.drop_after is not None:
            return await _drop_body(request, reply, fault)
        return _json_response(reply, fault)
    return await _stream(request, reply.events, fault)


async def _drop_body(
    request: web.Request, reply: _scenario.Reply, fault: Fault
) -> web.StreamResponse:
    response = web.StreamResponse(status=reply.status)
    response.content_type = "application/json"
    response.content_length = len(reply.body)
    if fault.retry_after:
        response.headers["Retry-After"] = fault.retry_after
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    _abort(request)
    return response


def _abort(request: web.Request) -> None:
    """Close the connection without finishing the HTTP message."""
    transport = request.transport
    if transport is not None:
        transport.close()


async def _stream(
    request: web.Request, events: tuple[bytes, ...], fault: Fault | None
) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
    )
    if fault is not None and fault.retry_after:
        response.headers["Retry-After"] = fault.retry_after
    response.enable_chunked_encoding()
    await response.prepare(request)
    delay = fault.stream_delay if fault is not None else 0.0
    drop_after = fault.drop_after if fault is not None else None
    malformed_after = fault.malformed_after if fault is not None else None
    stall_after = fault.stall_after if fault is not None else None
    for index, event in enumerate(events):
        if stall_after is not None and index == stall_after and fault is not None:
            await asyncio.sleep(fault.stall_seconds)
        if drop_after is not None and index >= drop_after:
            _abort(request)
            return response
        if malformed_after is not None and index >= malformed_after:
            # e.g. 'data: {"id": "chat-…", "choi' -- then the stream ends normally.
            cut = event.find(b'"choices"')
            broken = event[: cut + 5] if cut > 0 else event[: max(7, len(event) // 2)]
            await response.write(broken.rstrip(b"\n") + b"\n\n")
            break
        if delay and index:
            await asyncio.sleep(delay)
        try:
            await response.write(event)
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError included
            return response  # the client stopped reading and closed: normal, not an error
    await response.write_eof()
    return response


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


_CONTROL_ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.Response]]] = {}


async def _control(request: web.Request) -> web.StreamResponse:
    name = request.path[len(CONTROL_PREFIX) :]
    handler = _CONTROL_ROUTES.get((request.method, name))
    if handler is None:
        known = any(key[1] == name for key in _CONTROL_ROUTES)
        return _json_response(_scenario.error_reply(405 if known else 404))
    return await handler(request)


_CONTROL_ROUTES.update(
    {
        ("POST", "faults"): _queue_faults,
        ("GET", "faults"): _list_faults,
        ("DELETE", "faults"): _clear_faults,
        ("GET", "requests"): _list_requests,
        ("DELETE", "requests"): _clear_requests,
    }
)


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application: one catch-all handler that does its own routing."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_STATE_KEY] = state
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app


def listening_socket(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (port 0 picks a free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if hasattr(socket, "SO_REUSEADDR"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
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
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        self._runner = runner
        site = web.SockSite(runner, self._sock, backlog=LISTEN_BACKLOG)
        await site.start()
