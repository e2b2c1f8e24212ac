"""A server that quotes back what it was sent (its ``Authorization`` header) in an error body, a
stream's error event or a broken answer: the exception the caller gets quotes the server, with
the key, the URL's password and the Basic token masked, sync and async, streamed or not."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from llama_index.llms.ai21 import AI21
from tests.calls import arg_for, call
from tests.transport.servers import ECHO_KINDS, Server, echoing, exception_texts

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


@pytest.fixture(params=ECHO_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(echoing(request.param, _authorization)) as running:
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
    shown = exception_texts(caught.value)
    assert "[secure]" in shown, "the server's quote reaches the caller, masked"
    for secret in secrets:
        assert secret not in shown


def test_a_short_key_is_not_masked_everywhere(server: Server) -> Any:
    """A key under 4 characters guards nothing, and masking it would garble the quote."""
    llm = AI21(api_key="k", base_url=server.url() + "/v1", model=MODEL, max_retries=0)
    with pytest.raises(Exception) as caught:  # noqa: PT011
        llm.chat(arg_for("chat"))
    assert "[secure]" not in exception_texts(caught.value)
