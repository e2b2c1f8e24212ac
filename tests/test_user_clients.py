"""A user's own httpx clients (``http_client=``, ``async_http_client=``): requests go through
them with their headers and hooks, ours (the key among them) win where both set one, and they
stay the user's: closing the LLM leaves them open."""

from __future__ import annotations

import asyncio

import httpx

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._http import user_agent

THEIR_HEADERS = {"X-Team": "search", "Authorization": "Bearer not-the-key", "User-Agent": "theirs"}


def test_a_sync_client_of_the_users_carries_the_calls(emulator: Emulator) -> None:
    sent: list[str] = []
    hooks = {"request": [lambda request: sent.append(request.url.path)]}
    with httpx.Client(headers=THEIR_HEADERS, event_hooks=hooks) as mine:
        llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, http_client=mine)
        emulator.reply_next("Through your client.")
        assert llm.complete("hi").text == "Through your client."
        emulator.reply_next("Streamed through it.")
        assert "".join(c.delta for c in llm.stream_complete("hi")) == "Streamed through it."
        llm.close()
        assert not mine.is_closed
    assert sent == ["/studio/v1/chat/completions"] * 2
    for request in emulator.requests:
        assert request.api_key == emulator.api_key
        assert request.headers["X-Team"] == "search"
        assert request.headers["User-Agent"] == user_agent()  # ours win


def test_an_async_client_of_the_users_carries_the_calls(emulator: Emulator) -> None:
    sent: list[str] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(request.url.path)

    async def run() -> str:
        async with httpx.AsyncClient(
            headers=THEIR_HEADERS, event_hooks={"request": [hook]}
        ) as mine:
            llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, async_http_client=mine)
            text = (await llm.acomplete("hi")).text
            await llm.aclose()
            assert not mine.is_closed
            return text

    emulator.reply_next("Through your async client.")
    assert asyncio.run(run()) == "Through your async client."
    assert sent == ["/studio/v1/chat/completions"]
    assert emulator.last_request.api_key == emulator.api_key
    assert emulator.last_request.headers["X-Team"] == "search"


def test_the_cookies_of_your_clients_go_with_every_request(emulator: Emulator) -> None:
    """A gateway's session cookie in your client's jar goes with each request, as your client's
    own requests carry it (it went with discovery's requests only)."""

    async def run() -> None:
        async with httpx.AsyncClient(cookies={"session": "sess-async-5b1e"}) as mine_async:
            llm = AI21(
                api_key=emulator.api_key,
                base_url=emulator.base_url,
                http_client=mine,
                async_http_client=mine_async,
            )
            llm.complete("hi")
            list(llm.stream_complete("hi"))
            await llm.acomplete("hi")
            async for _ in await llm.astream_complete("hi"):
                pass

    with httpx.Client(cookies={"session": "sess-sync-3c7d"}) as mine:
        asyncio.run(run())
    assert [request.headers.get("Cookie") for request in emulator.requests] == [
        "session=sess-sync-3c7d",
        "session=sess-sync-3c7d",
        "session=sess-async-5b1e",
        "session=sess-async-5b1e",
    ]


def test_a_header_changed_on_your_client_goes_with_the_next_request(emulator: Emulator) -> None:
    """A gateway token rotated in place on your client is sent from the next request on (the
    first one seen went on being sent)."""

    async def run() -> None:
        async with httpx.AsyncClient(headers={"X-Gateway-Key": "async-1"}) as mine_async:
            llm = AI21(
                api_key=emulator.api_key,
                base_url=emulator.base_url,
                http_client=mine,
                async_http_client=mine_async,
            )
            llm.complete("hi")
            await llm.acomplete("hi")
            mine.headers["X-Gateway-Key"] = "sync-2"
            mine_async.headers = {"X-Gateway-Key": "async-2"}  # replaced whole
            list(llm.stream_complete("hi"))
            await llm.acomplete("hi")

    with httpx.Client(headers={"X-Gateway-Key": "sync-1"}) as mine:
        asyncio.run(run())
    sent = [request.headers.get("X-Gateway-Key") for request in emulator.requests]
    assert sent == ["sync-1", "async-1", "sync-2", "async-2"]
