"""Misbehaving HTTP servers on loopback, scripted at the socket level (one thread each).

Each handler gets a :class:`Peer` for one accepted connection and does whatever the scenario
needs: answer, answer wrongly, stall, reset, or never read. Certificates come from ``trustme``
(a throwaway CA made at test time).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

JSON = b'{"ok":true}'


class Peer:
    """One accepted connection, seen from the server."""

    def __init__(self, sock: socket.socket, server: Server) -> None:
        self.sock = sock
        self.server = server
        self.last_body = b""
        self._buffer = b""

    def read_request(self) -> bytes | None:
        """Read one request (head and Content-Length body); None if the client went away."""
        while b"\r\n\r\n" not in self._buffer:
            data = self._recv()
            if not data:
                return None
            self._buffer += data
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            data = self._recv()
            if not data:
                return None
            rest += data
        self.last_body, self._buffer = rest[:length], rest[length:]
        self.server.requests += 1
        self.server.heads.append(head)
        return head

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65_536)
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def hold(self, seconds: float = 10.0) -> None:
        """Keep the connection open, reading nothing, until the server stops."""
        self.server.stopped.wait(seconds)

    def reset(self) -> None:
        """Close with a TCP reset (RST) instead of a clean FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def response(
    status: int = 200,
    body: bytes = JSON,
    headers: list[tuple[str, str]] | None = None,
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    reason = {200: "OK", 307: "Temporary Redirect"}.get(status, "Status")
    lines = [f"{version} {status} {reason}"]
    all_headers = [("Content-Type", "application/json"), *(headers or [])]
    if length:
        all_headers.append(("Content-Length", str(len(body))))
    lines += [f"{name}: {value}" for name, value in all_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chat_answer(content: str) -> bytes:
    """The JSON body of a one-choice chat completion saying ``content``."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def answers_hi(peer: Peer) -> None:
    """A minimal vLLM: ``POST /v1/chat/completions`` (any query) says "Hi" (one event when
    streamed, with no usage and no logprobs), every other route is a 404."""
    while (head := peer.read_request()) is not None:
        if not head.startswith((b"POST /v1/chat/completions ", b"POST /v1/chat/completions?")):
            peer.send(response(status=404, body=b'{"detail":"Not Found"}'))
        elif json.loads(peer.last_body).get("stream"):
            chunk = {
                "id": "c",
                "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}],
            }
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            peer.send(response(body=body, headers=[("Content-Type", "text/event-stream")]))
        else:
            peer.send(response(body=chat_answer("Hi")))


def echoing(kind: str, quote: Callable[[bytes], str]) -> Callable[[Peer], None]:
    """A minimal vLLM that quotes ``quote(request head)`` back in its answer, the way many
    proxies echo a request: in a 401's body (``kind`` ``"401"``), an error event before or
    after a first piece of the answer (``"error event"``, ``"error event mid-answer"``), or a
    broken 200 answer (``"broken answer"``). Discovery's GETs get a 404; each connection is
    closed after its answer (nothing kept alive for a test's end to wait on)."""

    def serve(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            if head.startswith(b"GET"):
                peer.send(response(404, body=b"{}"))
                continue
            said = quote(head)
            close = ("Connection", "close")
            if kind == "401":
                body = json.dumps({"detail": f"bad request {said}"}).encode()
                peer.send(response(401, body=body, headers=[close]))
            elif kind in ("error event", "error event mid-answer"):
                event = {"error": {"message": f"denied for {said}", "code": 403}}
                body = b"data: " + json.dumps(event).encode() + b"\n\ndata: [DONE]\n\n"
                if kind == "error event mid-answer":  # after the caller has a first piece
                    piece = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}
                    body = b"data: " + json.dumps(piece).encode() + b"\n\n" + body
                peer.send(
                    response(body=body, headers=[("Content-Type", "text/event-stream"), close])
                )
            else:  # a broken 200 answer, quoted by the error
                peer.send(response(body=f"<html>{said}</html>".encode(), headers=[close]))
            return

    return serve


ECHO_KINDS = ["401", "error event", "error event mid-answer", "broken answer"]


def exception_texts(exc: BaseException) -> str:
    """Everything an exception chain shows: str, repr, args and the SDK's details."""
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current), repr(current.args)]
        parts.append(str(getattr(current, "details", "")))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


Handler = Callable[[Peer], None]


class Server:
    """A TCP (optionally TLS) server on 127.0.0.1 running ``handler`` for each connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []  # of every request read, in order
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(10)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused our certificate (or we refused theirs)
            self.handler(Peer(sock, self))
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.stopped.set()
        self._accepting.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
