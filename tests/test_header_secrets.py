"""A credential in ``default_headers`` (a gateway's key: ``Ocp-Apim-Subscription-Key``,
``X-Auth-Token``, ``Authorization``, ...; a name :func:`is_credential_header` takes for one, the
rule that masks echoed headers in errors) is held as the key and a ``base_url``'s password are:
sent on every request, shown as ``[secure]`` in the field, ``repr``, dumps, pickles and
LlamaIndex's instrumentation, kept through assignments, copies and pickles in this process, and
a clear ``ValueError`` where it cannot be found (docs/configuration.md)."""

from __future__ import annotations

import asyncio
import copy
import gc
import pickle
import re
from collections.abc import Callable, Iterator
from typing import Any

import ai21.errors
import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

GATEWAY = "apim-5c2e9a7d41b3"  # Ocp-Apim-Subscription-Key (Azure API Management's header)
SHORT = "gw-123"  # X-Auth-Token: shorter than errors mask, held all the same
NEW = "apim-rotated-8f0b6d"
SECRETS = (GATEWAY, SHORT, NEW, "gw-456", "gw-789")
HEADERS = {"Ocp-Apim-Subscription-Key": GATEWAY, "X-Auth-Token": SHORT, "X-Team": "search"}
SHOWN = {"Ocp-Apim-Subscription-Key": "[secure]", "X-Auth-Token": "[secure]", "X-Team": "search"}


def _sent(emulator: Emulator) -> list[tuple[str | None, str | None, str | None]]:
    """The three headers of each request the emulator read, in order."""
    found = []
    for request in emulator.requests:
        headers = {name.lower(): value for name, value in request.headers.items()}
        names = ("ocp-apim-subscription-key", "x-auth-token", "x-team")
        found.append((headers.get(names[0]), headers.get(names[1]), headers.get(names[2])))
    return found


@pytest.fixture
def llm(emulator: Emulator) -> AI21:
    return AI21(
        api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0, default_headers=HEADERS
    )


def _shown(llm: AI21) -> Iterator[str]:
    yield from (repr(llm), str(llm), str(llm.model_dump()), llm.model_dump_json())
    yield from (str(llm.to_dict()), llm.to_json(), repr(llm.__pydantic_private__))
    yield repr(llm._http.config)
    yield pickle.dumps(llm).decode("latin-1")


class _Spans(BaseSpanHandler[SimpleSpan]):
    seen: list[str] = []  # a pydantic field: each handler its own list

    @classmethod
    def class_name(cls) -> str:
        return "HeaderSecretSpans"

    def new_span(  # type: ignore[override]
        self, id_: str, bound_args: Any, instance: Any = None, **kwargs: Any
    ) -> SimpleSpan:
        self.seen.append(f"{bound_args!r} {instance!r} {instance!s}")
        return SimpleSpan(id_=id_, parent_id=kwargs.get("parent_span_id"))

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_a_credential_header_is_sent_and_shown_as_the_mask_everywhere(
    llm: AI21, emulator: Emulator
) -> None:
    spans = _Spans()
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(spans)
    try:
        llm.complete("hi")
        asyncio.run(llm.acomplete("hi"))
        list(llm.stream_complete("hi"))
    finally:
        dispatcher.span_handlers.remove(spans)
    assert _sent(emulator) == [(GATEWAY, SHORT, "search")] * 3
    assert llm.default_headers == SHOWN  # other headers shown as given
    texts = [*_shown(llm), *spans.seen]
    assert any("'X-Team': 'search'" in text for text in spans.seen)  # the spans show the LLM
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_headers_assigned_later_leave_the_field_at_once_and_are_sent(
    llm: AI21, emulator: Emulator
) -> None:
    llm.complete("hi")
    llm.default_headers = {**llm.default_headers, "X-Team": "ranking"}  # the masks kept
    assert llm.default_headers == {**SHOWN, "X-Team": "ranking"}
    llm.complete("hi")
    llm.default_headers = {**llm.default_headers, "X-Auth-Token": "gw-456"}  # the field as it was
    assert llm.default_headers == {**SHOWN, "X-Team": "ranking"}
    llm.complete("hi")
    llm.default_headers = {"ocp-apim-subscription-key": NEW}  # a new value, another case
    assert llm.default_headers == {"ocp-apim-subscription-key": "[secure]"}
    assert all(NEW not in text for text in _shown(llm))  # before any call
    llm.complete("hi")
    llm.default_headers = {"Ocp-Apim-Subscription-Key": "[secure]"}  # the mask: the value held
    llm.complete("hi")
    llm.default_headers["X-Auth-Token"] = "gw-789"  # in place: taken out by a pickle, a call
    assert b"gw-789" not in pickle.dumps(llm)
    llm.complete("hi")
    assert _sent(emulator) == [
        (GATEWAY, SHORT, "search"),
        (GATEWAY, SHORT, "ranking"),
        (GATEWAY, "gw-456", "ranking"),
        (NEW, None, None),
        (NEW, None, None),
        (NEW, "gw-789", None),
    ]


def test_the_mask_with_no_value_held_is_a_value_error_before_any_request(
    llm: AI21, emulator: Emulator
) -> None:
    message = "default_headers['X-Api-Key'] is '[secure]', the mask this package shows"
    with pytest.raises(ValueError, match=re.escape(message)):
        AI21(api_key=emulator.api_key, default_headers={"X-Api-Key": "[secure]"})
    llm.default_headers = {**llm.default_headers, "X-Api-Key": "[secure]"}  # a name not held
    with pytest.raises(ValueError, match=re.escape(message)):
        llm.complete("hi")
    assert emulator.requests == []


def test_a_bad_value_assigned_later_is_refused_by_name_not_quoted(
    llm: AI21, emulator: Emulator
) -> None:
    """Held out of the field, the value is still checked before the next request."""
    llm.default_headers = {"X-Auth-Token": f"{SHORT}\r\nX-Injected: 1"}
    refused = re.escape("default_headers['X-Auth-Token'] is not a valid HTTP header value")
    with pytest.raises(ValueError, match=refused) as caught:
        llm.complete("hi")
    assert SHORT not in str(caught.value)
    with pytest.raises(ValueError, match=refused):
        AI21(api_key="k", default_headers={"X-Auth-Token": f"{SHORT} "})
    assert emulator.requests == []


COPIES: dict[str, Callable[[AI21], AI21]] = {
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    "model_copy()": lambda llm: llm.model_copy(),
    "model_copy(deep=True)": lambda llm: llm.model_copy(deep=True),
    "pickle": lambda llm: pickle.loads(pickle.dumps(llm)),
}


@pytest.mark.parametrize("make_copy", COPIES.values(), ids=COPIES.keys())
def test_copies_and_pickles_send_the_value_and_keep_their_own(
    llm: AI21, emulator: Emulator, make_copy: Callable[[AI21], AI21]
) -> None:
    llm.complete("hi")
    twin = make_copy(llm)
    assert twin.default_headers == SHOWN
    twin.timeout = 30.0  # its clients built again, from the values the copy holds
    twin.complete("hi")
    twin.default_headers = {"Ocp-Apim-Subscription-Key": NEW}
    twin.complete("hi")
    llm.complete("hi")  # the copy's new value stays the copy's
    assert _sent(emulator) == [
        (GATEWAY, SHORT, "search"),
        (GATEWAY, SHORT, "search"),
        (NEW, None, None),
        (GATEWAY, SHORT, "search"),
    ]


@pytest.mark.parametrize("deep", [False, True])
def test_a_copy_updated_with_secrets_holds_them_at_once(
    llm: AI21, emulator: Emulator, deep: bool
) -> None:
    """pydantic's ``model_copy(update=...)`` sets fields without an assignment."""
    host = emulator.base_url.removeprefix("http://")
    twin = llm.model_copy(
        deep=deep,
        update={
            "default_headers": {"Ocp-Apim-Subscription-Key": NEW},
            "base_url": f"http://user:pw-copied-2e8a@{host}",
        },
    )
    for text in (repr(twin), twin.to_json(), pickle.dumps(twin).decode("latin-1")):
        assert NEW not in text
        assert "pw-copied-2e8a" not in text
    assert twin.base_url == f"http://user:[secure]@{host}"
    with pytest.raises(ai21.errors.Unauthorized):
        twin.complete("hi")  # Basic auth replaces the key, as in httpx
    assert _sent(emulator) == [(NEW, None, None)]


def test_a_pickle_whose_header_values_are_gone_says_so() -> None:
    # A server of one's own, with no key: only the headers' values are missing.
    llm = AI21(base_url="http://127.0.0.1:9/v1", model="m", default_headers=HEADERS)
    data = pickle.dumps(llm)
    del llm
    gc.collect()  # as in a worker that never had the original
    lost = pickle.loads(data)  # loads (a worker pool's task would hang otherwise); its call says
    message = (
        "pickled with its default_headers' values of 'Ocp-Apim-Subscription-Key' and "
        "'X-Auth-Token', which pickles never carry, and this process cannot find them: build "
        "the instance here (e.g. in the worker's initializer) with api_key=..., the full "
        "base_url and default_headers with their values"
    )
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        lost.complete("hi")
    assert all(secret not in str(caught.value) for secret in SECRETS)
    for again in (pickle.dumps(lost), pickle.dumps(copy.deepcopy(lost))):
        with pytest.raises(ValueError, match=re.escape(message)):  # still named where it lands
            pickle.loads(again).complete("hi")


def test_a_dump_loads_again_with_the_values_given_again(llm: AI21, emulator: Emulator) -> None:
    """As a dump with a ``base_url`` password: the mask is refused, the real value works."""
    data = llm.to_dict()
    assert data["default_headers"] == SHOWN
    message = "default_headers['Ocp-Apim-Subscription-Key'] is '[secure]'"
    with pytest.raises(ValueError, match=re.escape(message)):
        AI21.from_dict({**data, "api_key": emulator.api_key})
    restored = AI21.from_dict({**data, "api_key": emulator.api_key, "default_headers": HEADERS})
    restored.complete("hi")
    assert _sent(emulator) == [(GATEWAY, SHORT, "search")]
    assert restored.to_dict() == data
