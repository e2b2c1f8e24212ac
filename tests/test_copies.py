"""Copies of an ``AI21`` (``copy.copy``/``model_copy()``, ``copy.deepcopy``/
``model_copy(deep=True)``: LlamaIndex and users copy LLMs): a deep copy has its own connection
pools and shares your own ``http_client``/``async_http_client`` (yours, and httpx cannot copy
them); a shallow one shares the pools, as pydantic shares what a shallow copy holds; each copy
has its own secrets."""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import pickle
from collections.abc import Callable, Iterator

import httpx
import pytest
from llama_index.core.llms import ChatMessage

from llama_index.llms.ai21 import AI21
from tests.transport.servers import Server, answers_hi

MODEL = "ai21labs/AI21-Jamba2-3B"
KEY = "sk-copies-6a2f9d1c"
HI = [ChatMessage(role="user", content="hi")]

DEEP: dict[str, Callable[[AI21], AI21]] = {
    "copy.deepcopy": copy.deepcopy,
    "model_copy(deep=True)": lambda llm: llm.model_copy(deep=True),
}
SHALLOW: dict[str, Callable[[AI21], AI21]] = {
    "copy.copy": copy.copy,
    "model_copy()": lambda llm: llm.model_copy(),
}


@pytest.fixture
def server() -> Iterator[Server]:
    with Server(answers_hi) as running:
        yield running


def _authorizations(server: Server) -> list[str]:
    """The Authorization header of each chat request the server read, in order."""
    found = []
    for head in server.heads:
        if head.startswith(b"POST"):
            lines = head.decode().split("\r\n")
            found += [line.partition(": ")[2] for line in lines if line.startswith("Authorization")]
    return found


@pytest.mark.parametrize("make_copy", [*DEEP.values(), *SHALLOW.values()], ids=[*DEEP, *SHALLOW])
def test_a_copy_of_an_instance_given_your_clients_uses_them(
    server: Server, make_copy: Callable[[AI21], AI21]
) -> None:
    through: list[str] = []

    async def async_hook(request: httpx.Request) -> None:
        through.append(f"async {request.url.path}")

    with httpx.Client(
        event_hooks={"request": [lambda r: through.append(f"sync {r.url.path}")]}
    ) as mine:

        async def run() -> None:  # one event loop: the async client's connections belong to it
            async with httpx.AsyncClient(event_hooks={"request": [async_hook]}) as mine_async:
                llm = AI21(
                    api_key=KEY,
                    base_url=server.url() + "/v1",
                    model=MODEL,
                    http_client=mine,
                    async_http_client=mine_async,
                )
                # A deep copy raised httpx's TypeError: its clients cannot be copied.
                twin = make_copy(llm)
                assert twin.http_client is mine
                assert twin.async_http_client is mine_async
                assert (await twin.achat(HI)).message.content == "Hi"
                assert (await asyncio.to_thread(twin.chat, HI)).message.content == "Hi"
                await twin.aclose()
                twin.close()
                assert not mine.is_closed
                assert not mine_async.is_closed  # still yours: the original goes on using them
                assert (await llm.achat(HI)).message.content == "Hi"
                assert llm.chat(HI).message.content == "Hi"

        asyncio.run(run())
    chats = [path for path in through if path.endswith("/chat/completions")]
    assert chats == [f"{kind} /v1/chat/completions" for kind in ("async", "sync") * 2]
    assert _authorizations(server) == [f"Bearer {KEY}"] * 4


@pytest.mark.parametrize("make_copy", DEEP.values(), ids=DEEP.keys())
def test_a_deep_copy_has_its_own_connection_pool(
    server: Server, make_copy: Callable[[AI21], AI21]
) -> None:
    llm = AI21(api_key=KEY, base_url=server.url() + "/v1", model=MODEL)
    llm.chat(HI)
    before = server.connections
    twin = make_copy(llm)
    twin.chat(HI)
    assert server.connections == before + 1  # its own connection
    twin.close()
    llm.chat(HI)  # the original's connection was neither taken nor closed
    assert server.connections == before + 1
    llm.close()


@pytest.mark.parametrize("make_copy", SHALLOW.values(), ids=SHALLOW.keys())
def test_a_shallow_copy_shares_the_pool_but_not_a_password_set_on_it(
    server: Server, make_copy: Callable[[AI21], AI21]
) -> None:
    host = server.url().removeprefix("http://")
    llm = AI21(base_url=f"http://me:first-pw-0c3b@{host}/v1", model=MODEL)
    llm.chat(HI)
    before = server.connections
    twin = make_copy(llm)
    twin.chat(HI)
    assert server.connections == before  # the same pool: its kept-alive connection
    twin.base_url = f"http://me:second-pw-7e1a@{host}/v1"
    twin.chat(HI)
    llm.timeout = 30.0  # a setting changed: the original builds its clients again
    llm.chat(HI)
    first, second = (
        base64.b64encode(f"me:{pw}".encode()).decode() for pw in ("first-pw-0c3b", "second-pw-7e1a")
    )
    # The original sent the copy's password once both shared one secrets entry.
    assert _authorizations(server) == [f"Basic {first}"] * 2 + [f"Basic {second}", f"Basic {first}"]
    assert "second-pw" not in repr(twin)
    llm.close()
    twin.close()


def test_a_deep_copy_pickles_as_the_original_does(server: Server) -> None:
    """A pickle of the copy finds the copy's secrets, even once the original is gone, and
    leaves your clients out, as the original's does (docs/configuration.md)."""
    with httpx.Client() as mine:
        llm = AI21(api_key=KEY, base_url=server.url() + "/v1", model=MODEL, http_client=mine)
        twin = copy.deepcopy(llm)
        del llm
        gc.collect()  # the original is gone: the copy's pickle finds the copy's own secrets
        data = pickle.dumps(twin)
        assert KEY.encode() not in data
        again = pickle.loads(data)
        assert again.http_client is None
        assert again.chat(HI).message.content == "Hi"
    assert _authorizations(server) == [f"Bearer {KEY}"]
