"""pytest fixtures for the AI21 emulator: an opt-in plugin.

Installing the emulator does not load it into any test session. Enable it in a ``conftest.py``
with ``pytest_plugins = ["ai21_emulator.pytest_plugin"]``, or for one run with
``pytest -p ai21_emulator.pytest_plugin``.

Fixtures:
    ``ai21_emulator_server`` (session scope): one running ``Emulator`` for the whole session.
    ``ai21_emulator_vllm_server`` (session scope): one running ``Emulator(flavour="vllm")``
    (no API key needed).
    ``ai21_emulator`` (function scope): a session emulator after ``reset()``, so every test
    starts with no recorded requests, pending faults or scripted replies. AI21's flavour by
    default; parametrize it indirectly with ``"ai21"`` / ``"vllm"`` to run a test on both.
    ``ai21_emulator_vllm`` (function scope): the vLLM one, reset.

Nothing global is changed (no environment variables, no patched clients). The module imports
only pytest at import time; the server and aiohttp load the first time a fixture is used.

Example:
    ```python
    import pytest
    from llama_index.llms.ai21 import AI21
    from ai21_emulator import Fault


    def test_answer(ai21_emulator):
        llm = AI21(api_key=ai21_emulator.api_key, base_url=ai21_emulator.base_url)
        assert "emulator" in llm.complete("Hello").text
        assert ai21_emulator.last_request.json["model"]


    @pytest.mark.parametrize("ai21_emulator", ["ai21", "vllm"], indirect=True)
    def test_scripted(ai21_emulator):
        ai21_emulator.reply_next("Paris.")
        ...


    def test_rate_limited(ai21_emulator):
        ai21_emulator.inject(Fault(status=429, retry_after="1"))
        ...
    ```
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._emulator import Emulator

_SERVERS = {"ai21": "ai21_emulator_server", "vllm": "ai21_emulator_vllm_server"}


@pytest.fixture(scope="session")
def ai21_emulator_server() -> Iterator[Emulator]:
    """One AI21 emulator for the whole test session (stopped at the end)."""
    from ._emulator import Emulator

    with Emulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def ai21_emulator_vllm_server() -> Iterator[Emulator]:
    """One vLLM-flavoured emulator (no key needed) for the whole test session."""
    from ._emulator import Emulator

    with Emulator(flavour="vllm") as emulator:
        yield emulator


@pytest.fixture
def ai21_emulator(request: pytest.FixtureRequest) -> Emulator:
    """A session emulator, reset: AI21's flavour, or the one given by indirect parametrization
    (``"ai21"`` or ``"vllm"``)."""
    flavour = getattr(request, "param", "ai21")
    if flavour not in _SERVERS:
        raise ValueError(f"ai21_emulator takes 'ai21' or 'vllm', not {flavour!r}")
    emulator: Emulator = request.getfixturevalue(_SERVERS[flavour])
    emulator.reset()
    return emulator


@pytest.fixture
def ai21_emulator_vllm(ai21_emulator_vllm_server: Emulator) -> Emulator:
    """The session's vLLM-flavoured emulator, reset."""
    ai21_emulator_vllm_server.reset()
    return ai21_emulator_vllm_server
