"""Secrets checked at construction and never shown: a key with a control character, a
``base_url`` with credentials (sent as Basic auth, masked everywhere), pickles without
secrets."""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import json
import logging
import pickle
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, call

PASSWORD = "pa:ss/w@rd-9f3e"  # characters that must be percent-encoded in a URL
USER = "proxy-user"
BASIC = "Basic cHJveHktdXNlcjpwYTpzcy93QHJkLTlmM2U="  # base64 of USER:PASSWORD


class _Handler(BaseHTTPRequestHandler):
    """A self-hosted server behind a proxy: answers every chat request, records headers."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))  # type: ignore[attr-defined]
        if body.get("stream"):
            chunks = [
                {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
            ]
            payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
            payload += b"data: [DONE]\n\n"
            content_type = "text/event-stream"
        else:
            answer = {"role": "assistant", "content": "Hi"}
            payload = json.dumps(
                {
                    "id": "x",
                    "choices": [{"index": 0, "message": answer, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # GET /v1/models: fail, so the metadata fallback logs a warning
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))  # type: ignore[attr-defined]
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer, password: str = "pa%3Ass%2Fw%40rd-9f3e") -> str:
    return f"http://{USER}:{password}@127.0.0.1:{server.server_port}/v1"


def _llm(server: ThreadingHTTPServer, **kwargs: object) -> AI21:
    return AI21(model="jamba-mini", base_url=_url(server), max_retries=0, **kwargs)


def test_url_credentials_go_as_basic_auth_on_every_call(proxy: ThreadingHTTPServer) -> None:
    llm = _llm(proxy)
    for method in METHOD_IDS:
        call(llm, method, arg_for(method))
    paths = [path for path, _ in proxy.seen]  # type: ignore[attr-defined]
    # The server is asked what it is once (a .../v1 URL), then every call.
    assert paths == ["/v1/models", *["/v1/chat/completions"] * len(METHOD_IDS)]
    for _, headers in proxy.seen:  # type: ignore[attr-defined]
        assert headers["authorization"] == BASIC


def test_url_credentials_win_over_a_key_as_in_httpx(proxy: ThreadingHTTPServer) -> None:
    _llm(proxy, api_key="sk-local").complete("hi")
    assert proxy.seen[-1][1]["authorization"] == BASIC  # type: ignore[attr-defined]


def test_the_password_is_masked_in_fields_reprs_dumps_and_pickles(
    proxy: ThreadingHTTPServer,
) -> None:
    llm = _llm(proxy)
    assert llm.base_url == f"http://{USER}:[secure]@127.0.0.1:{proxy.server_port}/v1"
    for text in (
        repr(llm),
        str(llm),
        str(llm.model_dump()),
        llm.model_dump_json(),
        str(llm.to_dict()),
        llm.to_json(),
        repr(llm._http.config),
    ):
        assert "pa%3Ass" not in text
        assert PASSWORD not in text
    data = pickle.dumps(llm)
    assert b"pa%3Ass" not in data
    assert PASSWORD.encode() not in data
    assert BASIC.split()[1].encode() not in data


def test_the_password_is_in_no_log_record(
    proxy: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    llm = _llm(proxy)
    assert llm.metadata.context_window > 0  # GET /models fails: a WARNING names the URL
    llm.complete("hi")
    asyncio.run(llm.acomplete("hi"))
    assert any("[secure]" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    for record in caplog.records:
        assert "pa%3Ass" not in record.getMessage()
        assert PASSWORD not in record.getMessage()


def test_a_password_set_on_the_field_later_is_taken_out_too(proxy: ThreadingHTTPServer) -> None:
    llm = AI21(model="jamba-mini", base_url=f"http://127.0.0.1:{proxy.server_port}/v1")
    llm.complete("hi")
    assert "authorization" not in proxy.seen[-1][1]  # type: ignore[attr-defined]
    llm.base_url = _url(proxy)
    assert "[secure]" in llm.base_url  # at once: the instance may be shown before a call
    for text in (repr(llm), llm.to_json()):
        assert PASSWORD not in text
        assert "pa%3Ass" not in text
    llm.complete("hi")
    assert proxy.seen[-1][1]["authorization"] == BASIC  # type: ignore[attr-defined]
    llm.base_url = _url(proxy, password="other-pw-5d1c")  # the field shown is the same
    llm.complete("hi")
    other = "Basic " + base64.b64encode(f"{USER}:other-pw-5d1c".encode()).decode()
    assert proxy.seen[-1][1]["authorization"] == other  # type: ignore[attr-defined]


def test_a_masked_url_is_refused_by_name(proxy: ThreadingHTTPServer) -> None:
    with pytest.raises(ValueError, match=r"\[secure\]"):
        AI21(model="jamba-mini", base_url=_url(proxy, password="[secure]"))


def test_pickles_find_their_secrets_while_the_original_lives(proxy: ThreadingHTTPServer) -> None:
    llm = _llm(proxy, api_key="sk-local")
    clone = pickle.loads(pickle.dumps(llm))
    assert clone.base_url == llm.base_url
    assert clone.chat([ChatMessage(role="user", content="hi")]).message.content == "Hi"
    assert proxy.seen[-1][1]["authorization"] == BASIC  # type: ignore[attr-defined]


def test_a_pickle_whose_secrets_are_gone_says_so_at_its_first_call(
    proxy: ThreadingHTTPServer,
) -> None:
    """Unpickling succeeds (a multiprocessing.Pool worker that fails to unpickle its task dies
    and the pool waits forever); the copy's first call, discovery's included, is the
    ValueError, before any request."""
    llm = _llm(proxy, api_key="sk-local")
    data = pickle.dumps(llm)
    del llm
    gc.collect()  # as in a process that never had the original
    seen = len(proxy.seen)  # type: ignore[attr-defined]
    copy = pickle.loads(data)
    assert copy.base_url == f"http://127.0.0.1:{proxy.server_port}/v1"  # no mask left in it
    for use in (copy.complete, copy.stream_complete, lambda _: copy.metadata):
        with pytest.raises(ValueError, match="base_url's password and api_key") as caught:
            list(use("hi"))  # type: ignore[call-overload]
        assert "sk-local" not in str(caught.value)
    with pytest.raises(ValueError, match="base_url's password and api_key"):
        asyncio.run(copy.acomplete("hi"))
    with pytest.raises(ValueError, match="base_url's password and api_key"):
        pickle.loads(pickle.dumps(copy)).complete("hi")  # a copy of the copy: lost too
    assert len(proxy.seen) == seen  # type: ignore[attr-defined]


def test_a_pickle_for_ai21s_api_whose_key_is_nowhere_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker started with ``spawn`` unpickles an instance built with ``api_key=``: without
    ``AI21_API_KEY`` there, the error says the pickle left the key behind and where to put it
    (not only that no key was given, which the user did give)."""
    monkeypatch.delenv("AI21_API_KEY", raising=False)
    llm = AI21(api_key="sk-local", base_url="http://127.0.0.1:9/studio/v1")
    data = pickle.dumps(llm)
    del llm
    gc.collect()  # as in a process that never had the original
    with pytest.raises(ValueError, match=r"pickled with its api_key.*set AI21_API_KEY") as caught:
        pickle.loads(data).complete("hi")
    assert "sk-local" not in str(caught.value)
    lost = pickle.loads(data)
    for again in (pickle.dumps(lost), pickle.dumps(copy.deepcopy(lost))):
        with pytest.raises(ValueError, match=r"pickled with its api_key.*set AI21_API_KEY"):
            pickle.loads(again).complete("hi")  # not the missing-key error, on loading
    monkeypatch.setenv("AI21_API_KEY", "sk-from-the-environment")
    assert pickle.loads(data).base_url == "http://127.0.0.1:9/studio/v1"
    # A copy of the copy made without the key looks for it again where it lands.
    assert pickle.loads(pickle.dumps(lost))._secrets.api_key == "sk-from-the-environment"


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("sk-from-a-file\n", "a newline at its end"),
        ("sk-\r\nInjected: 1", "a carriage return at position 3"),
        ("sk-\0", "a NUL at its end"),
        ("sk-\x7fx", "the control character U+007F at position 3"),
    ],
)
def test_a_key_with_a_control_character_is_refused_without_echoing_it(
    key: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=re.escape(f"api_key contains {named}")) as caught:
        AI21(api_key=key)
    assert "sk-" not in str(caught.value)
    if "\0" in key:
        return  # no environment variable can hold a NUL
    monkeypatch.setenv("AI21_API_KEY", key)
    with pytest.raises(ValueError, match=re.escape(f"AI21_API_KEY contains {named}")):
        AI21()
