"""The key never leaks; instances serialize, deserialize and pickle into working copies."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import pickle
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import ai21.errors
import httpx
import psutil
import pytest

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, call

SECRET = "sk-test-4f9c2a7e1b8d-SECRET"


@pytest.fixture
def secret_server() -> Emulator:
    with Emulator(api_keys=(SECRET,)) as server:
        yield server


@pytest.fixture
def secret_llm(secret_server: Emulator) -> AI21:
    return AI21(api_key=SECRET, base_url=secret_server.base_url, max_retries=1, model="jamba-large")


def test_key_is_not_in_repr_str_or_dumps(secret_llm: AI21) -> None:
    for text in (
        repr(secret_llm),
        str(secret_llm),
        str(secret_llm.model_dump()),
        secret_llm.model_dump_json(),
        str(secret_llm.to_dict()),
        secret_llm.to_json(),
        repr(secret_llm._http.config),
    ):
        assert SECRET not in text


def test_key_is_not_in_logs_at_any_level(
    secret_llm: AI21, secret_server: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # root: the SDK's, httpx's and httpcore's debug logs too
    for method in METHOD_IDS:
        call(secret_llm, method, arg_for(method))
    secret_server.inject(Fault(status=500, retry_after="0"), Fault(status=400))
    with pytest.raises(ai21.errors.BadRequest):
        secret_llm.complete("hi")
    assert any(r.name.startswith(("httpx", "httpcore", "ai21")) for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in caplog.text


def test_key_is_not_in_error_messages_or_emulator_records(secret_server: Emulator) -> None:
    wrong = SECRET[::-1]
    llm = AI21(api_key=wrong, base_url=secret_server.base_url)
    with pytest.raises(ai21.errors.Unauthorized) as caught:
        llm.complete("hi")
    assert wrong not in str(caught.value)
    assert wrong not in repr(secret_server.requests)
    assert all(wrong not in str(r) for r in secret_server.requests)
    assert secret_server.last_request.api_key == wrong, "recorded, but only in a hidden field"


def test_to_dict_from_dict_round_trips_all_but_the_key(
    secret_llm: AI21, secret_server: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_llm.temperature = 0.3
    data = secret_llm.to_dict()
    assert data["class_name"] == "AI21_LLM"
    with pytest.raises(ValueError, match="AI21_API_KEY"):
        AI21.from_dict(data)
    monkeypatch.setenv("AI21_API_KEY", SECRET)
    restored = AI21.from_dict(data)
    assert restored.to_dict() == data
    secret_server.reply_next("Restored.")
    assert restored.complete("hi").text == "Restored."
    assert secret_server.last_request.json["temperature"] == 0.3


@pytest.mark.parametrize("used_before", [False, True])
def test_pickle_round_trips_into_a_working_instance(
    secret_llm: AI21, secret_server: Emulator, used_before: bool
) -> None:
    if used_before:  # clients exist (sync, and one per loop): they are not pickled
        secret_llm.complete("warm up")
        asyncio.run(secret_llm.acomplete("warm up"))
    clone = pickle.loads(pickle.dumps(secret_llm))
    assert clone.to_dict() == secret_llm.to_dict()
    secret_server.reply_next("Cloned.")
    secret_server.reply_next("Cloned, async.")
    assert clone.complete("hi").text == "Cloned."
    assert asyncio.run(clone.acomplete("hi")).text == "Cloned, async."
    assert secret_server.last_request.api_key == SECRET


def _complete_in_child(llm: AI21, prompt: str) -> str:
    return llm.complete(prompt).text


@pytest.mark.slow  # spawns a worker process (a fresh interpreter)
def test_instances_travel_to_worker_processes(
    secret_llm: AI21, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pickle carries no key: a spawned worker finds it where a new instance would.
    monkeypatch.setenv("AI21_API_KEY", SECRET)
    assert SECRET.encode() not in pickle.dumps(secret_llm)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        text = pool.submit(_complete_in_child, secret_llm, "from a worker").result(timeout=120)
    assert "from a worker" in text


def test_clients_are_created_lazily(make_llm: Callable[..., AI21]) -> None:
    llm = make_llm()
    assert llm._http._sync is None
    llm.complete("hi")
    assert llm._http._sync is not None


def _open_connections(server: Emulator) -> int:
    """This process's established TCP connections to ``server`` (the client ends)."""
    port = httpx.URL(server.base_url).port
    return sum(
        1
        for conn in psutil.Process().net_connections("tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


def test_close_closes_the_pools_sockets_and_the_next_call_opens_a_new_one(
    secret_llm: AI21, secret_server: Emulator
) -> None:
    secret_llm.complete("hi")
    assert _open_connections(secret_server) == 1, "the pool keeps its connection alive"
    secret_llm.close()
    assert _open_connections(secret_server) == 0
    assert secret_llm._http._sync is None
    secret_server.reply_next("Again.")
    assert secret_llm.complete("again").text == "Again."
    assert _open_connections(secret_server) == 1


def test_aclose_closes_the_loops_sockets_and_the_next_call_opens_a_new_one(
    secret_llm: AI21, secret_server: Emulator
) -> None:
    async def use_close_use() -> list[int]:
        counts = []
        await secret_llm.acomplete("hi")
        counts.append(_open_connections(secret_server))
        await secret_llm.aclose()
        counts.append(_open_connections(secret_server))
        secret_server.reply_next("Again.")
        text = (await secret_llm.acomplete("again")).text
        counts.append(_open_connections(secret_server))
        assert text == "Again."
        return counts

    assert asyncio.run(use_close_use()) == [1, 0, 1]
    assert secret_server.requests[-1].json["messages"] == [{"role": "user", "content": "again"}]


def test_closing_an_unused_instance_is_harmless(secret_llm: AI21, secret_server: Emulator) -> None:
    secret_llm.close()

    async def aclose_then_use() -> str:
        await secret_llm.aclose()  # nothing open on this loop yet
        return (await secret_llm.acomplete("hi")).text

    secret_server.reply_next("Still works.")
    assert asyncio.run(aclose_then_use()) == "Still works."
    assert len(secret_server.requests) == 1


def test_a_collected_instance_closes_its_sockets() -> None:
    with Emulator() as server:  # its own: no other test's connections to count
        llm = AI21(api_key=server.api_key, base_url=server.base_url)
        server.reply_next("Then gone.")
        assert llm.complete("hi").text == "Then gone."
        assert _open_connections(server) == 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del llm
            gc.collect()
        assert _open_connections(server) == 0
    # Closed as it is collected (urllib3 pools have a finalizer), not found open by the GC.
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
