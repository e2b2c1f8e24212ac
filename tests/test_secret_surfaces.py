"""The key and a ``base_url`` password appear on none of the surfaces the other secret tests
leave out: copies, pydantic 1's ``dict()``/``json()``, LlamaIndex instrumentation (every
event's dump, every span's arguments, instance and result or error), warnings, and the
exceptions of a refused connection and of a read timeout, sync and async, with their whole
chains and tracebacks.

(``test_secrets_and_state.py`` and ``test_url_credentials.py`` cover ``repr``, dumps, pickles
and log records; ``test_echoed_secrets.py`` a server that quotes them back.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import socket
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

KEY = "sk-surface-3a9f7c1e55"
PASSWORD = "pw-surface-8b2d4e6f"
SECRETS = (KEY, PASSWORD, base64.b64encode(f"user:{PASSWORD}".encode()).decode())


SEEN: list[str] = []  # what the handlers below were handed, as text


class _Events(BaseEventHandler):
    @classmethod
    def class_name(cls) -> str:
        return "SecretSurfaceEvents"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        SEEN.append(repr(event) + str(event.model_dump()))


class _Spans(BaseSpanHandler[SimpleSpan]):
    @classmethod
    def class_name(cls) -> str:
        return "SecretSurfaceSpans"

    def new_span(  # type: ignore[override]
        self, id_: str, bound_args: Any, instance: Any = None, **kwargs: Any
    ) -> SimpleSpan:
        SEEN.append(f"{bound_args!r} {instance!r} {instance!s}")
        return SimpleSpan(id_=id_, parent_id=kwargs.get("parent_span_id"))

    def prepare_to_exit_span(self, id_: str, bound_args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        SEEN.append(repr(kwargs.get("result")))

    def prepare_to_drop_span(self, id_: str, bound_args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        error = kwargs.get("err")
        SEEN.append(f"{error!r} {error!s}")


@pytest.fixture
def seen() -> Iterator[list[str]]:
    dispatcher = get_dispatcher()  # the root: every package's events and spans reach it
    events, spans = _Events(), _Spans()
    dispatcher.add_event_handler(events)
    dispatcher.add_span_handler(spans)
    SEEN.clear()
    try:
        yield SEEN
    finally:
        dispatcher.event_handlers.remove(events)
        dispatcher.span_handlers.remove(spans)


def _texts_of(error: BaseException) -> Iterator[str]:
    """The error and each one chained to it: ``repr``, ``str``, the traceback, and the
    request or response it carries."""
    yield "".join(traceback.format_exception(error))
    current: BaseException | None = error
    while current is not None:
        yield f"{current!r} {current!s}"
        for attribute in ("details", "request", "response"):
            with contextlib.suppress(Exception):  # httpx raises for a missing request
                yield repr(getattr(current, attribute, None))
        current = current.__cause__ or current.__context__


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_secret_in_copies_instrumentation_warnings_or_transport_errors(
    emulator: Emulator, seen: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    host = emulator.base_url.split("//", 1)[1]
    hi = [ChatMessage(role="user", content="hi")]
    with warnings.catch_warnings(record=True) as warned, socket.socket() as silent:
        warnings.simplefilter("always")
        llm = AI21(api_key=KEY, base_url=f"http://user:{PASSWORD}@{host}", max_retries=0)
        texts += [repr(copy.deepcopy(llm)), repr(copy.copy(llm)), repr(llm.model_copy())]
        texts += [repr(llm.metadata), repr(vars(llm)), repr(llm.__pydantic_private__)]
        texts += [str(llm.dict()), llm.json()]  # pydantic 1's names (deprecated: recorded)
        # Answered (401: Basic auth replaces the key, as in httpx), events and spans on the way.
        with contextlib.suppress(Exception):
            llm.chat(hi)
        with contextlib.suppress(Exception):
            list(llm.stream_chat(hi))
        with contextlib.suppress(Exception):
            asyncio.run(llm.acomplete("hi"))
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts, never answers: a read timeout
        for url in (
            f"http://user:{PASSWORD}@127.0.0.1:{_unused_port()}/v1",  # refused
            f"http://user:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/v1",
        ):
            broken = AI21(api_key=KEY, base_url=url, model="m", max_retries=0, timeout=0.05)
            for attempt in (broken.complete, lambda _, llm=broken: asyncio.run(llm.acomplete(_))):
                with pytest.raises(Exception) as caught:  # noqa: PT011 (transport errors)
                    attempt("hi")
                texts += _texts_of(caught.value)
    texts += [str(w.message) for w in warned]
    texts += [*seen, caplog.text]
    assert len(seen) > 10  # the handlers saw the calls
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


CALL_SECRET = "tok-per-call-6d4b2f8a10"


def test_a_calls_extra_headers_reach_no_response_error_or_log_record(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A credential in a call's ``extra_headers`` is sent, and shown nowhere this package or
    httpx/httpcore write (responses, exceptions with their chains, DEBUG log records). LlamaIndex's
    instrumentation sees every keyword of a call as given (docs/configuration.md)."""
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": f"Bearer {CALL_SECRET}", "X-Gateway-Key": CALL_SECRET}
    hi = [ChatMessage(role="user", content="hi")]
    texts: list[str] = []
    llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    texts += [repr(llm.chat(hi, extra_headers={"X-Gateway-Key": CALL_SECRET}))]
    texts += [repr(r) for r in llm.stream_chat(hi, extra_headers={"X-Gateway-Key": CALL_SECRET})]
    for attempt in (  # the emulator refuses the replaced key: 401
        lambda: llm.chat(hi, extra_headers=headers),
        lambda: list(llm.stream_chat(hi, extra_headers=headers)),
        lambda: asyncio.run(llm.achat(hi, extra_headers=headers)),
    ):
        with pytest.raises(Exception) as caught:  # noqa: PT011 (the SDK's 401)
            attempt()
        texts += _texts_of(caught.value)
    refused = AI21(
        api_key=KEY, base_url=f"http://127.0.0.1:{_unused_port()}/v1", model="m", max_retries=0
    )
    for attempt in (
        lambda: refused.chat(hi, extra_headers=headers),
        lambda: asyncio.run(refused.achat(hi, extra_headers=headers)),
    ):
        with pytest.raises(Exception) as caught:  # noqa: PT011 (transport errors)
            attempt()
        texts += _texts_of(caught.value)
    llm.close()
    refused.close()
    sent = [{k.lower(): v for k, v in r.headers.items()} for r in emulator.requests]
    assert all(headers.get("x-gateway-key") == CALL_SECRET for headers in sent)
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    for text in [*texts, caplog.text]:
        assert CALL_SECRET not in text
