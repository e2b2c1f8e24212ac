"""The emulator as an HTTP server that clients get wrong: what it answers and what it logs.

A client's malformed request, undecodable body or wrong method is answered with the right status
and leaves no ERROR or traceback on the terminal of whoever runs the emulator; the server keeps
serving. The vLLM flavour refuses what vLLM 0.32 refuses (a chat body not sent as JSON) and
serves what it serves (``GET /version``).
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from ai21_emulator import DEFAULT_API_KEY, Emulator

HOSTED_BODY = {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}
VLLM_BODY = {"model": "ai21labs/AI21-Jamba2-Mini", "messages": [{"role": "user", "content": "Hi"}]}
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
MEDIA_TYPE = "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"


@pytest.fixture(scope="module")
def hosted() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def vllm() -> Iterator[Emulator]:
    with Emulator(flavour="vllm") as emulator:
        yield emulator


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records a terminal would show (WARNING and up) or that carry a traceback."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send bytes no HTTP client would, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


MALFORMED = {
    "bad Content-Length": b"POST /studio/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: abc\r\n\r\n",
    "two Content-Lengths": b"POST /studio/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcde",
    "bytes in the path": b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header over 8 KiB": b"GET /studio/v1/models HTTP/1.1\r\nHost: x\r\nX-Big: "
    + b"a" * 9000
    + b"\r\n\r\n",
    "a chunk size that is not hex": b"POST /studio/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_request_aiohttp_cannot_parse_is_a_400_without_an_error_logged(
    hosted: Emulator, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    """aiohttp logged these as ERROR with a traceback, which Python's last-resort handler
    printed on the CLI's terminal (and a test session's log) for every client's mistake."""
    caplog.set_level(logging.DEBUG)
    answer = raw_exchange(hosted.port, request_bytes)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert loud(caplog) == []
    served = httpx.get(f"{hosted.base_url}/models", headers=AUTH)  # and it serves on
    assert served.status_code == 200


@pytest.mark.parametrize("flavour", ["ai21", "vllm"])
def test_a_body_that_is_not_its_content_encoding_is_a_400_in_the_flavours_shape(
    hosted: Emulator, vllm: Emulator, caplog: pytest.LogCaptureFixture, flavour: str
) -> None:
    """``Content-Encoding: gzip`` on bytes that are not gzip was a 500 with two tracebacks."""
    caplog.set_level(logging.DEBUG)
    emulator, body = (hosted, HOSTED_BODY) if flavour == "ai21" else (vllm, VLLM_BODY)
    emulator.reset()
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    with httpx.Client(base_url=emulator.base_url, headers=headers) as http:
        refused = http.post("/chat/completions", content=b"not gzip at all")
        message = "Invalid request body: Can not decode content-encoding: gzip"
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/json"
        if flavour == "ai21":
            assert refused.json() == {"detail": message}
        else:
            assert refused.json()["error"]["message"] == message
            assert refused.json()["error"]["code"] == 400
        # a body that is gzip is read (aiohttp decodes it)
        good = http.post("/chat/completions", content=gzip.compress(json.dumps(body).encode()))
        assert good.status_code == 200
    assert loud(caplog) == []
    assert len(emulator.requests) == 1  # the unreadable body was never an API request


@pytest.mark.parametrize(
    ("flavour", "method", "path", "allow"),
    [
        ("ai21", "GET", "/studio/v1/chat/completions", "POST"),
        ("ai21", "DELETE", "/studio/v1/models", "GET"),
        ("ai21", "GET", "/studio/v1/j2-mid/complete", "POST"),
        ("vllm", "GET", "/v1/chat/completions", "POST"),
        ("vllm", "POST", "/health", "GET"),
        ("vllm", "PUT", "/_emulator/faults", "POST, GET, DELETE"),
        ("ai21", "PATCH", "/_emulator/replies", "POST, GET, DELETE"),
    ],
)
def test_a_405_names_the_methods_the_route_takes(
    hosted: Emulator, vllm: Emulator, flavour: str, method: str, path: str, allow: str
) -> None:
    """RFC 9110 (15.5.6): a 405 carries ``Allow``, as Starlette's (FastAPI's, vLLM's) does."""
    emulator = hosted if flavour == "ai21" else vllm
    refused = httpx.request(method, emulator.url + path, headers=AUTH)
    assert (refused.status_code, refused.json()) == (405, {"detail": "Method Not Allowed"})
    assert refused.headers["allow"] == allow


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_vllm_refuses_a_chat_body_not_sent_as_json(
    vllm: Emulator, content_type: str | None
) -> None:
    """vLLM's chat route depends on validate_json_request: ``curl -d`` without
    ``-H 'Content-Type: application/json'`` (it sends form-urlencoded) is a 400 there, so it is
    here, before the body is read; the emulator used to answer it."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    refused = httpx.post(
        f"{vllm.base_url}/chat/completions", content=json.dumps(VLLM_BODY), headers=headers
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "error": {"message": MEDIA_TYPE, "type": "Bad Request", "param": None, "code": 400}
    }


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_vllm_takes_json_with_parameters_and_in_any_case(vllm: Emulator, content_type: str) -> None:
    answer = httpx.post(
        f"{vllm.base_url}/chat/completions",
        content=json.dumps(VLLM_BODY),
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 200


def test_vllm_serves_its_version_without_a_key() -> None:
    """``GET /version`` (vLLM's serve/instrumentator/basic.py) is outside the guarded ``/v1``."""
    with Emulator(flavour="vllm", api_keys="sk-local") as emulator:
        answer = httpx.get(f"{emulator.url}/version")
        assert (answer.status_code, answer.json()) == (200, {"version": "0.32.0"})
