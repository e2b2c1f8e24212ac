"""Test your own AI21 pipeline offline: the emulator's pytest fixture, its context manager, and
fault injection (rate limits, outages, a bad key, a stream that breaks).

This file is a pytest module; run it with one command::

    python examples/offline_testing.py
    # or: pytest -p ai21_emulator.pytest_plugin examples/offline_testing.py

The fixtures come from the emulator's pytest plugin, which is opt-in: in your own project, enable
it with ``pytest_plugins = ["ai21_emulator.pytest_plugin"]`` in ``conftest.py`` (or ``-p`` as
above). ``pip install "llama-index-llms-ai21[emulator]>=0.9"`` installs the emulator.

``answer`` and ``stream_answer`` stand for your application code. The tests drive them over real
HTTP against the emulator and check both the answers and what was sent to "AI21". Nothing needs a
key or a network.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import ai21.errors
import pytest
from llama_index.core.llms import ChatMessage

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, StreamInterruptedError

PLUGIN_MODULE = "ai21_emulator.pytest_plugin"

# --------------------------------------------------------------- the application under test

FALLBACK = "Sorry, the assistant is unavailable right now. Please try again later."
KNOWLEDGE = [
    "Refunds are issued within 30 days of purchase, to the original payment method.",
    "Our support team is available Monday to Friday, 9:00 to 17:00 CET.",
    "Orders ship from our warehouse in Rotterdam within two business days.",
]


def answer(llm: AI21, question: str) -> str:
    """Answer from the knowledge base (as AI21 grounding documents); degrade gracefully."""
    try:
        response = llm.chat([ChatMessage(role="user", content=question)], documents=KNOWLEDGE)
    except ai21.errors.AI21APIError:
        return FALLBACK
    return response.message.content or FALLBACK


def stream_answer(llm: AI21, question: str) -> Iterator[str]:
    """Stream an answer; if the stream breaks midway, say so instead of stopping silently."""
    try:
        for chunk in llm.stream_chat([ChatMessage(role="user", content=question)]):
            yield chunk.delta or ""
    except StreamInterruptedError:
        yield " [answer cut off]"


# ------------------------------------------------------------- tests with the pytest fixture
# ``ai21_emulator`` comes from the emulator's pytest plugin: one emulator per test session, reset
# before each test, so every test starts with no recorded requests and no queued faults.


@pytest.fixture
def llm(ai21_emulator: Emulator) -> AI21:
    return AI21(api_key=ai21_emulator.api_key, base_url=ai21_emulator.base_url, max_retries=2)


def test_answers_from_the_knowledge_base(llm: AI21, ai21_emulator: Emulator) -> None:
    assert "30 days" in answer(llm, "How long do refunds take?")
    sent = ai21_emulator.last_request.json
    assert [d["content"] for d in sent["documents"]] == KNOWLEDGE
    assert sent["messages"] == [{"role": "user", "content": "How long do refunds take?"}]


def test_rides_out_a_rate_limit(llm: AI21, ai21_emulator: Emulator) -> None:
    ai21_emulator.inject(Fault(status=429, count=2, retry_after="0"))
    assert "Rotterdam" in answer(llm, "Where do orders ship from?")
    assert len(ai21_emulator.requests) == 3  # two 429s, retried, then the answer


def test_falls_back_when_ai21_is_down(llm: AI21, ai21_emulator: Emulator) -> None:
    ai21_emulator.inject(Fault(status=503, count=10, retry_after="0"))
    assert answer(llm, "When is support available?") == FALLBACK
    assert len(ai21_emulator.requests) == 3  # the first attempt and max_retries=2 retries


def test_a_bad_key_is_not_retried(ai21_emulator: Emulator) -> None:
    llm = AI21(api_key="BAD_KEY", base_url=ai21_emulator.base_url)
    assert answer(llm, "How long do refunds take?") == FALLBACK
    assert len(ai21_emulator.requests) == 1


def test_a_broken_stream_is_reported(llm: AI21, ai21_emulator: Emulator) -> None:
    ai21_emulator.inject(Fault(drop_after=3))  # the connection drops after three events
    text = "".join(stream_answer(llm, "Tell me about refunds."))
    assert text.endswith(" [answer cut off]")
    assert text != " [answer cut off]", "the part that arrived is kept"


# ---------------------------------------------------- the same without pytest fixtures


def test_with_the_context_manager() -> None:
    with Emulator() as emulator:  # a private emulator on a free port, stopped at the end
        emulator.inject(Fault(status=500, retry_after="0"))
        llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url)
        assert "9:00 to 17:00" in answer(llm, "When is support available?")
        assert [r.path for r in emulator.requests] == ["/studio/v1/chat/completions"] * 2


if __name__ == "__main__":
    # A fresh pytest process, so that this file is imported only as a test module, with the
    # emulator's plugin enabled by name.
    command = [sys.executable, "-m", "pytest", __file__, "-v", "-p", "no:cacheprovider"]
    sys.exit(subprocess.call([*command, "-p", PLUGIN_MODULE]))
