"""Model names never alter a URL path: J2 names (which go into it) are checked by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

BAD = ["j2-ultra?x=1", "../../../admin/j2-ultra", "j2-mid#frag", "j2-mid%2F.."]


@pytest.mark.parametrize("model", BAD)
def test_a_j2_name_that_would_change_the_path_is_refused(model: str) -> None:
    with pytest.raises(ValueError, match=r"letters, digits, '\.', '_' and '-'"):
        AI21(model=model, api_key="k")


@pytest.mark.parametrize("model", BAD)
def test_a_bad_name_set_after_construction_is_refused_before_any_request(
    make_llm: Callable[..., AI21], emulator: Emulator, model: str
) -> None:
    llm = make_llm(model="j2-mid")
    llm.model = model
    with pytest.raises(ValueError, match="not a Jurassic-2 model name"):
        llm.complete("hi")
    assert emulator.requests == []


def test_j2_names_and_jamba_names_still_work(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    make_llm(model="j2-light").complete("hi")
    make_llm(model="jamba-large-1.7-2025-07").complete("hi")
    assert [r.path for r in emulator.requests] == [
        "/studio/v1/j2-light/complete",
        "/studio/v1/chat/completions",
    ]
