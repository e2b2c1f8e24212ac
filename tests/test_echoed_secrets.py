"""A server that quotes back what it was sent (its ``Authorization`` header) in an error body, a
stream's error event or a broken answer: the exception the caller gets quotes the server, with
the key, the URL's password and the Basic token masked, sync and async, streamed or not."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llama_index.llms.ai21 import AI21
from tests.calls import arg_for, call
from tests.transport.servers import Peer, Server, response

KEY = "sk-SECRET-key-123"
USER, PASSWORD = "someone", "pw:SECRET@456"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
MODEL = "ai21labs/AI21-Jamba2-3B"


def _authorization(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip().decode()
    return ""


def _echoing(kind: str) -> Callable[[Peer], None]:
    """A server that puts the request's Authorization header into its answer."""

    def serve(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            if head.startswith(b"GET"):  # discovery: no answer
                peer.send(response(404, body=b"{}"))
                continue
            said = _authorization(head)
            close = ("Connection", "close")  # nothing kept alive for the test's end to wait on
            if kind == "401":
                body = json.dumps({"detail": f"bad token {said}"}).encode()
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


def _texts(exc: BaseException) -> str:
    """Everything an exception chain shows: str, repr, args and the SDK's details."""
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current), repr(current.args)]
        parts.append(str(getattr(current, "details", "")))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


@pytest.fixture(params=["401", "error event", "error event mid-answer", "broken answer"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(_echoing(request.param)) as running:
        yield running


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
@pytest.mark.parametrize("credentials", ["key", "url"])
def test_a_secret_the_server_quotes_back_is_masked(
    server: Server, method: str, credentials: str
) -> None:
    if credentials == "key":
        llm = AI21(api_key=KEY, base_url=server.url() + "/v1", model=MODEL, max_retries=0)
        secrets = [KEY]
    else:
        base_url = server.url().replace("http://", f"http://{USER}:pw%3ASECRET%40456@")
        llm = AI21(base_url=base_url + "/v1", model=MODEL, max_retries=0)
        secrets = [PASSWORD, BASIC]
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each case raises its own class
        call(llm, method, arg_for(method))
    shown = _texts(caught.value)
    assert "[secure]" in shown, "the server's quote reaches the caller, masked"
    for secret in secrets:
        assert secret not in shown


def test_a_short_key_is_not_masked_everywhere(server: Server) -> Any:
    """A key under 4 characters guards nothing, and masking it would garble the quote."""
    llm = AI21(api_key="k", base_url=server.url() + "/v1", model=MODEL, max_retries=0)
    with pytest.raises(Exception) as caught:  # noqa: PT011
        llm.chat(arg_for("chat"))
    assert "[secure]" not in _texts(caught.value)
