"""Fault injection: in-process, per-request header, and control endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, Iterable
from typing import Any

import httpx
import pytest
from ai21 import AI21Client, AsyncAI21Client, TooManyRequestsError
from ai21.errors import (
    AI21ServerError,
    BadRequest,
    ServiceUnavailable,
    StreamingDecodeError,
    Unauthorized,
    UnprocessableEntity,
)
from ai21.models.chat import UserMessage

from ai21_emulator import Emulator, Fault

pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'from_dict' method is deprecated:DeprecationWarning"
)

CHAT = "/studio/v1/chat/completions"
BODY = {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}
HI = [UserMessage(content="Hi")]


def auth(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.api_key}"}


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (400, "Bad Request"),
        (401, "Forbidden: Bad or missing API token."),
        (403, "Forbidden"),
        (404, "Not Found"),
        (408, "Request Timeout"),
        (424, "Failed Dependency"),
        (429, "Too Many Requests"),
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
    ],
)
def test_status_fault_bodies(emu: Emulator, http: httpx.Client, status: int, detail: str) -> None:
    emu.inject(Fault(status=status))
    response = http.post(CHAT, json=BODY, headers=auth(emu))
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert http.post(CHAT, json=BODY, headers=auth(emu)).status_code == 200


def test_422_fault_is_a_fastapi_list(emu: Emulator, client: AI21Client) -> None:
    emu.inject(Fault(status=422))
    with pytest.raises(UnprocessableEntity) as caught:
        client.chat.completions.create(model="jamba-mini", messages=HI)
    [entry] = json.loads(caught.value.details)["detail"]
    assert set(entry) == {"loc", "msg", "type"}


def test_retry_after_and_count(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(Fault(status=429, count=2, retry_after="1"))
    statuses = []
    for _ in range(3):
        response = http.post(CHAT, json=BODY, headers=auth(emu))
        statuses.append((response.status_code, response.headers.get("Retry-After")))
    assert statuses == [(429, "1"), (429, "1"), (200, None)]


def test_sdk_sees_the_mapped_errors(emu: Emulator, client: AI21Client) -> None:
    emu.inject(Fault(status=429), Fault(status=500), Fault(status=503), Fault(status=401))
    for error in (TooManyRequestsError, AI21ServerError, ServiceUnavailable, Unauthorized):
        with pytest.raises(error):
            client.chat.completions.create(model="jamba-mini", messages=HI)
    assert client.chat.completions.create(model="jamba-mini", messages=HI).choices


def test_sdk_retries_through_a_fault(emu: Emulator) -> None:
    emu.inject(Fault(status=503))
    with httpx.Client() as transport:
        client = AI21Client(
            api_key=emu.api_key, api_host=emu.base_url, num_retries=2, http_client=transport
        )
        reply = client.chat.completions.create(model="jamba-mini", messages=HI)
    assert reply.choices[0].message.content
    assert len(emu.requests) == 2


def test_faults_are_fifo_and_filtered_by_path(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(Fault(status=500, path_contains="/models"), Fault(status=429))
    assert http.post(CHAT, json=BODY, headers=auth(emu)).status_code == 429
    assert http.post(CHAT, json=BODY, headers=auth(emu)).status_code == 200
    assert http.get("/studio/v1/models", headers=auth(emu)).status_code == 500
    assert http.get("/studio/v1/models", headers=auth(emu)).status_code == 200


def test_faults_apply_before_auth_and_reset_clears_them(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(Fault(status=503, count=5))
    assert http.post(CHAT, json=BODY).status_code == 503  # no key: the fault still comes first
    emu.reset()
    assert http.post(CHAT, json=BODY).status_code == 401
    assert len(emu.requests) == 1


def test_delay_and_client_timeout(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(Fault(delay=0.3))
    started = time.perf_counter()
    assert http.post(CHAT, json=BODY, headers=auth(emu)).status_code == 200
    assert time.perf_counter() - started >= 0.3
    emu.inject(Fault(delay=5))
    with pytest.raises(httpx.ReadTimeout):
        http.post(CHAT, json=BODY, headers=auth(emu), timeout=0.2)


def test_stream_delay_spaces_the_events(emu: Emulator, client: AI21Client) -> None:
    emu.inject(Fault(stream_delay=0.02))
    started = time.perf_counter()
    chunks = list(client.chat.completions.create(model="jamba-mini", messages=HI, stream=True))
    elapsed = time.perf_counter() - started
    # The server sleeps between events ([DONE] included), however the client batches reads.
    assert len(chunks) > 5
    assert elapsed >= 0.02 * len(chunks)


def test_stall_keep_alive_sends_comments_while_the_answer_stands_still(
    emu: Emulator, http: httpx.Client
) -> None:
    emu.inject(Fault(stall_after=2, stall_seconds=0.3, stall_keep_alive=0.05))
    lines = []
    with http.stream("POST", CHAT, json={**BODY, "stream": True}, headers=auth(emu)) as reply:
        lines = [line for line in reply.iter_lines() if line]
    comments = [n for n, line in enumerate(lines) if line.startswith(":")]
    # Between the second event and the third, five of them (not at the stall's very end).
    assert [lines[n] for n in comments] == [": keep-alive"] * 5
    assert comments == list(range(2, 7))
    assert lines[-1] == "data: [DONE]"


def drain(stream: Iterable[Any], into: list[Any]) -> None:
    for chunk in stream:
        into.append(chunk)


async def adrain(stream: AsyncIterable[Any], into: list[Any]) -> None:
    async for chunk in stream:
        into.append(chunk)


def test_drop_after_breaks_a_sync_stream(emu: Emulator, client: AI21Client) -> None:
    emu.inject(Fault(drop_after=3))
    stream = client.chat.completions.create(model="jamba-mini", messages=HI, stream=True)
    received: list[Any] = []
    with pytest.raises(httpx.RemoteProtocolError):
        drain(stream, received)
    assert len(received) == 3  # the role chunk and two content chunks, then the cut


async def test_drop_after_breaks_an_async_stream(emu: Emulator, aclient: AsyncAI21Client) -> None:
    emu.inject(Fault(drop_after=2))
    stream = await aclient.chat.completions.create(model="jamba-mini", messages=HI, stream=True)
    received: list[Any] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await adrain(stream, received)
    assert len(received) == 2


def test_malformed_after_is_a_decode_error(emu: Emulator, client: AI21Client) -> None:
    emu.inject(Fault(malformed_after=4))
    stream = client.chat.completions.create(model="jamba-mini", messages=HI, stream=True)
    received: list[Any] = []
    with pytest.raises(StreamingDecodeError, match='"choi') as caught:
        drain(stream, received)
    assert len(received) == 4
    assert "in stream" in str(caught.value)


def test_non_streaming_drop_and_malformed(emu: Emulator, client: AI21Client) -> None:
    emu.inject(Fault(drop_after=0))
    with pytest.raises(httpx.RemoteProtocolError):
        client.chat.completions.create(model="jamba-mini", messages=HI)
    emu.inject(Fault(malformed_after=0))
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="jamba-mini", messages=HI)


def test_fault_header_applies_to_one_request(emu: Emulator) -> None:
    header = json.dumps({"status": 503, "retry_after": "2"})
    with httpx.Client() as transport:
        faulty = AI21Client(
            api_key=emu.api_key,
            api_host=emu.base_url,
            headers={"X-Emulator-Fault": header},
            http_client=transport,
        )
        with pytest.raises(ServiceUnavailable):
            faulty.chat.completions.create(model="jamba-mini", messages=HI)
        healthy = AI21Client(api_key=emu.api_key, api_host=emu.base_url, http_client=transport)
        assert healthy.chat.completions.create(model="jamba-mini", messages=HI).choices
    assert emu.requests[0].headers["X-Emulator-Fault"] == header


def test_fault_header_streaming(emu: Emulator, http: httpx.Client) -> None:
    headers = {**auth(emu), "X-Emulator-Fault": json.dumps({"malformed_after": 1})}
    response = http.post(CHAT, json={**BODY, "stream": True}, headers=headers)
    lines = response.text.split("\r\n\r\n")
    assert lines[0].startswith('data: {"id": "chatcmpl-')
    assert lines[1].endswith('"choi')
    assert lines[2:] == [""]


@pytest.mark.parametrize(
    "header", ["not json", "[]", '{"status": 200}', '{"colour": "red"}', '{"count": 0}']
)
def test_bad_fault_header_is_a_400(emu: Emulator, http: httpx.Client, header: str) -> None:
    response = http.post(CHAT, json=BODY, headers={**auth(emu), "X-Emulator-Fault": header})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid X-Emulator-Fault header: ")
    with httpx.Client() as transport:
        client = AI21Client(
            api_key=emu.api_key,
            api_host=emu.base_url,
            headers={"X-Emulator-Fault": header},
            http_client=transport,
        )
        with pytest.raises(BadRequest):
            client.chat.completions.create(model="jamba-mini", messages=HI)


def test_control_endpoints(emu: Emulator, http: httpx.Client) -> None:
    queued = http.post("/_emulator/faults", json=[{"status": 429, "count": 2}, {"delay": 0.01}])
    assert queued.json() == {"queued": 2}
    pending = http.get("/_emulator/faults").json()
    assert [(f["status"], f["remaining"]) for f in pending] == [(429, 2), (None, 1)]
    assert http.post(CHAT, json=BODY, headers=auth(emu)).status_code == 429
    assert http.get("/_emulator/faults").json()[0]["remaining"] == 1
    assert http.delete("/_emulator/faults").json() == {"cleared": 2}
    assert http.post(CHAT, json=BODY, headers=auth(emu)).status_code == 200

    records: list[dict[str, Any]] = http.get("/_emulator/requests").json()
    assert [r["path"] for r in records] == [CHAT, CHAT]
    assert {r["api_key"] for r in records} == {"<redacted>"}
    assert emu.api_key not in json.dumps(records)
    assert records[0]["json"] == BODY
    assert http.delete("/_emulator/requests").json() == {"cleared": 2}
    assert emu.requests == []

    assert http.post("/_emulator/faults", json={"status": 99}).status_code == 400
    assert http.post("/_emulator/faults", content=b"nope").status_code == 400
    assert http.put("/_emulator/faults").status_code == 405
    assert http.get("/_emulator/nothing").status_code == 404
    assert emu.requests == []  # control calls are not recorded


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 200},
        {"status": 600},
        {"count": 0},
        {"delay": -1},
        {"stream_delay": float("inf")},
        {"drop_after": -1},
        {"malformed_after": 1.5},
        {"retry_after": 5},
        {"retry_after": "1\r\nX-Evil: 1"},
        {"stall_keep_alive": 0},
        {"stall_keep_alive": float("nan")},
        {"stall_keep_alive": True},
    ],
)
def test_invalid_faults_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Fault"):
        Fault(**kwargs)


def test_inject_wants_faults(emu: Emulator) -> None:
    with pytest.raises(TypeError):
        emu.inject({"status": 500})  # type: ignore[arg-type]
