"""AI21's hosted API was retired on 2026-08-09: its 410 says so, over real HTTP (the emulator
replays the live 410 body with ``Fault(status=410)``), and the no-key error names the ways on."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import ai21.errors
import pytest

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.errors import DOCS_URL, SELF_HOSTED_DOCS, HostedAPIRetiredError
from tests.calls import METHOD_IDS, arg_for, call

LIVE_410 = (
    '{"detail":"This API has been retired. The AI21 Gateway is available at '
    'https://app.ai21.com \u2014 see https://docs.ai21.com/august-deprecation-notice"}'
)


def assert_retired(exc: BaseException) -> None:
    assert isinstance(exc, ai21.errors.AI21APIError)  # existing except clauses still catch it
    assert isinstance(exc, HostedAPIRetiredError)
    assert exc.status_code == 410
    message = str(exc)
    assert "retired on 2026-08-09" in message
    assert "base_url=" in message
    assert SELF_HOSTED_DOCS in message  # an address: a wheel has no docs/ folder
    assert "This API has been retired" in message  # the server's own words, kept
    assert "This API has been retired" in (exc.details or "")


@pytest.mark.parametrize("method", METHOD_IDS)
def test_a_410_from_the_hosted_api_says_it_was_retired_and_is_not_retried(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    emulator.inject(Fault(status=410, count=5))
    llm = make_llm(max_retries=3)
    with pytest.raises(ai21.errors.AI21APIError) as caught:
        call(llm, method, arg_for(method))
    assert_retired(caught.value)
    assert len(emulator.requests) == 1  # never retried


def test_the_emulator_sends_the_live_410_body(emulator: Emulator) -> None:
    import httpx

    emulator.inject(Fault(status=410))
    answer = httpx.post(
        f"{emulator.base_url}/chat/completions",
        json={"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    assert answer.status_code == 410
    assert answer.text == LIVE_410


def test_the_j2_routes_410_says_so_too(make_llm: Callable[..., AI21], emulator: Emulator) -> None:
    emulator.inject(Fault(status=410))
    with pytest.raises(HostedAPIRetiredError) as caught:
        make_llm(model="j2-mid", max_retries=0).complete("Hi")
    assert_retired(caught.value)
    assert emulator.last_request.path.endswith("/j2-mid/complete")


def test_a_410_from_a_server_of_your_own_stays_the_sdks_error(
    ai21_emulator_vllm: Emulator,
) -> None:
    ai21_emulator_vllm.inject(Fault(status=410, path_contains="/chat/"))
    llm = AI21(model="ai21labs/AI21-Jamba2-3B", base_url=ai21_emulator_vllm.base_url, max_retries=0)
    with pytest.raises(ai21.errors.AI21APIError) as caught:
        llm.complete("Hi")
    assert not isinstance(caught.value, HostedAPIRetiredError)
    assert caught.value.status_code == 410


def test_a_bad_key_is_still_unauthorized(make_llm: Callable[..., AI21]) -> None:
    with pytest.raises(ai21.errors.Unauthorized):
        make_llm(api_key="wrong", max_retries=0).complete("Hi")


def test_the_no_key_error_names_the_three_ways_on() -> None:
    with pytest.raises(ValueError, match="No AI21 API key") as caught:
        AI21()
    message = str(caught.value)
    assert "retired on 2026-08-09" in message
    assert "base_url=" in message  # a server of your own
    assert "python -m ai21_emulator" in message  # the emulator
    assert 'pip install "llama-index-llms-ai21[emulator]"' in message  # its own distribution
    assert "api_key=" in message  # a key
    assert "AI21_API_KEY" in message


@pytest.mark.parametrize("source", ["base_url", "AI21_API_HOST"])
def test_a_server_root_without_v1_is_named_in_the_no_key_error(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vLLM URL without /v1 is no self-hosted URL, so AI21's API (which needs a key) was
    assumed: the error says that, and the URL to give instead, not the generic three ways."""
    url = "http://u:pw@localhost:8000/"
    kwargs: dict[str, Any] = {"base_url": url}
    if source == "AI21_API_HOST":
        monkeypatch.setenv("AI21_API_HOST", url)
        kwargs = {}
    with pytest.raises(ValueError, match="does not end in /v1") as caught:
        AI21(model="ai21labs/AI21-Jamba2-3B", **kwargs)
    message = str(caught.value)
    assert message.startswith(
        f"{source} 'http://u:[secure]@localhost:8000/' does not end in /v1, so it was taken "
        "for an endpoint that speaks AI21's API, which needs a key"
    )
    assert "base_url='http://u:[secure]@localhost:8000/v1'" in message
    assert 'deployment="vllm"' in message
    assert message.endswith(f"See {SELF_HOSTED_DOCS}")
    assert "pw" not in message.replace("api_key", "")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"deployment": "ai21", "base_url": "http://localhost:8000"},  # asked for AI21's API
        {"base_url": "http://127.0.0.1:8021/studio/v1"},  # the emulator's AI21 flavour
    ],
)
def test_a_url_meant_for_ai21s_api_gets_the_three_ways_on(kwargs: dict[str, Any]) -> None:
    with pytest.raises(
        ValueError, match=r"^No AI21 API key\. AI21's hosted API was retired"
    ) as caught:
        AI21(**kwargs)
    assert str(caught.value).endswith(f"See {SELF_HOSTED_DOCS}")


def test_error_messages_point_at_the_docs_by_the_address_the_metadata_gives() -> None:
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the dev group's tomli backport
        import tomli as tomllib

    root = Path(__file__).resolve().parents[1]
    metadata = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert metadata["urls"]["Documentation"] == DOCS_URL
    page = SELF_HOSTED_DOCS.removeprefix(f"{DOCS_URL}/")
    assert (root / "docs" / page).is_file()


def test_the_retired_error_pickles_and_keeps_its_fields() -> None:
    import pickle

    exc: Any = pickle.loads(pickle.dumps(HostedAPIRetiredError("gone")))
    assert isinstance(exc, HostedAPIRetiredError)
    assert (exc.status_code, exc.details) == (410, "gone")
