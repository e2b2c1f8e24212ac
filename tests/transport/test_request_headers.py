"""Headers a caller gives (``default_headers=``, a call's ``extra_headers=``) cannot change how
a request's body is framed, and what a refused one held is never quoted.

Given as well as the ones the HTTP layer writes, ``Content-Length``, ``Transfer-Encoding`` and
``Expect`` made requests a server reads differently from what was sent (``_http``'s
``_FRAMING_HEADERS`` says what each did): they are a ``ValueError`` before any request, on
construction or on the call. Other headers of ours (``Host``, ``Content-Type``,
``Authorization``, ``Accept-Encoding``) may be replaced, as openai-python lets them be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21
from tests.transport.servers import Peer, Server, chat_answer, response

HI = [ChatMessage(role="user", content="hi")]
SECRET = "sk-header-5e1d7a9c42"


def _answering(peer: Peer) -> None:
    while peer.read_request() is not None:
        peer.send(response(body=chat_answer("ok")))


@pytest.fixture
def server() -> Iterator[Server]:
    with Server(_answering) as running:
        yield running


def _llm(server: Server, **fields: object) -> AI21:
    return AI21(
        base_url=server.url() + "/v1",
        model="m",
        deployment="vllm",
        context_window=8192,
        max_retries=0,
        timeout=2,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("header", ["Content-Length", "transfer-encoding", "EXPECT"])
@pytest.mark.parametrize("how", ["chat", "achat", "default_headers"])
def test_a_header_that_frames_the_body_is_refused_before_any_request(
    server: Server, header: str, how: str
) -> None:
    value = {"content-length": "5", "transfer-encoding": "chunked", "expect": "100-continue"}
    given = {header: value[header.lower()]}

    def attempt() -> object:
        if how == "default_headers":
            return _llm(server, default_headers=given).chat(HI)
        if how == "chat":
            return _llm(server).chat(HI, extra_headers=given)
        return asyncio.run(_llm(server).achat(HI, extra_headers=given))

    with pytest.raises(ValueError, match=rf"\['{header}'\] cannot be set: .*leave it out"):
        attempt()
    assert server.requests == 0


@pytest.mark.parametrize(
    ("header", "value"),
    [("Host", "gateway.internal"), ("Content-Type", "application/json; charset=utf-8")],
)
def test_other_headers_of_ours_are_replaced_as_given(
    server: Server, header: str, value: str
) -> None:
    llm = _llm(server)
    try:
        assert llm.chat(HI, extra_headers={header: value}).message.content == "ok"
        assert asyncio.run(llm.achat(HI, extra_headers={header: value})).message.content == "ok"
    finally:
        llm.close()  # the server's connection thread ends with the connection
    posts = [head.lower() for head in server.heads if head.startswith(b"POST")]
    wanted = f"{header}: {value}".lower().encode()
    assert len(posts) == 2
    for head in posts:
        assert [
            line for line in head.split(b"\r\n") if line.startswith(header.lower().encode() + b":")
        ] == [wanted]


def test_extra_headers_that_are_no_dict_are_refused_without_quoting_them(server: Server) -> None:
    given = [("Authorization", f"Bearer {SECRET}")]  # a list of pairs, as httpx would take it
    with pytest.raises(ValueError, match="extra_headers must be a dict") as caught:
        _llm(server).chat(HI, extra_headers=given)
    assert SECRET not in str(caught.value)
    assert server.requests == 0
