"""``X-Emulator-Answer-Tokens``: an answer of a requested length, streamed or not, through this
package's ``AI21`` (so here rather than with the emulator's own tests)."""

from __future__ import annotations

import ai21.errors
import pytest
from llama_index.core.base.llms.types import ChatMessage

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21


def test_answer_of_a_requested_length_beyond_the_api_cap() -> None:
    with Emulator() as emulator:
        llm = AI21(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            default_headers={"X-Emulator-Answer-Tokens": "5000"},
        )
        messages = [ChatMessage(role="user", content="hi")]
        chunks = list(llm.stream_chat(messages))
        response = llm.chat(messages)
        capped = llm.chat(messages, max_tokens=10)
    assert len(chunks) == 5001  # one chunk per token, then the final event
    assert chunks[-1].message.content == response.message.content
    assert response.additional_kwargs["completion_tokens"] == 5001
    assert capped.additional_kwargs["finish_reason"] == "length"
    assert capped.additional_kwargs["completion_tokens"] == 10


def test_a_malformed_length_is_a_400() -> None:
    with Emulator() as emulator:
        llm = AI21(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            max_retries=0,
            default_headers={"X-Emulator-Answer-Tokens": "many"},
        )
        with pytest.raises(ai21.errors.BadRequest, match="X-Emulator-Answer-Tokens"):
            llm.complete("hi")
