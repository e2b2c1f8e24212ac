"""Emulator lifecycle, records, concurrency, the CLI and the pytest plugin."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import httpx
import pytest
from aiohttp.test_utils import make_mocked_request

from ai21_emulator import DEFAULT_API_KEY, Emulator, Fault, RecordedRequest
from ai21_emulator._scenario import Response
from ai21_emulator._server import _stream

# The distribution's directory (emulator/), which holds the import package ai21_emulator.
DISTRIBUTION = Path(__file__).resolve().parents[1]
BODY = {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}
SECRET = "sk-very-secret-key"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(DISTRIBUTION), os.environ.get("PYTHONPATH", "")]),
    }


def test_public_names() -> None:
    import ai21_emulator as package

    assert package.__all__ == [
        "DEFAULT_API_KEY",
        "Emulator",
        "Fault",
        "RecordedRequest",
        "Reply",
        "ToolCall",
    ]
    assert DEFAULT_API_KEY == "emulator-key"


def test_recorded_request_never_shows_the_key() -> None:
    with Emulator(api_keys=[SECRET]) as emu, httpx.Client() as http:
        http.post(
            f"{emu.base_url}/chat/completions",
            json=BODY,
            headers={"Authorization": f"Bearer {SECRET}", "api-key": SECRET},
        )
        record = emu.last_request
    assert isinstance(record, RecordedRequest)
    assert record.api_key == SECRET
    assert SECRET not in repr(record)
    assert SECRET not in str(record)
    assert SECRET not in repr(record.headers)
    assert "raw_body" not in repr(record)
    assert record.json == BODY


def test_lifecycle() -> None:
    emu = Emulator()
    assert repr(emu) == "<Emulator stopped>"
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url
    with pytest.raises(LookupError):
        _ = emu.last_request
    assert emu.start() is emu
    assert emu.start() is emu  # already running: no-op
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/studio/v1"
    assert emu.running
    emu.stop()
    emu.stop()  # idempotent
    assert not emu.running
    with emu:  # and it can serve again
        assert httpx.get(f"{emu.url}/_emulator/requests").json() == []


def test_port_in_use_fails_fast_naming_the_address() -> None:
    with Emulator() as first:
        second = Emulator(port=first.port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}: .*in use"):
            second.start()
        assert not second.running
        assert httpx.get(f"{first.url}/_emulator/requests").json() == []  # the first serves on


@pytest.mark.slow  # a subprocess or a load test
def test_cli_on_a_port_in_use_says_so_in_one_line() -> None:
    with Emulator() as first:
        port = first.port
        result = subprocess.run(
            [sys.executable, "-m", "ai21_emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no base URL for a script to wait on
    assert result.stderr.strip().splitlines() == [
        f"python -m ai21_emulator: [Errno {errno.EADDRINUSE}] cannot listen on "
        f"127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)}"
    ]


@pytest.mark.slow  # a subprocess or a load test (here: two client timeouts)
def test_clients_that_leave_mid_answer_log_nothing_and_stop_stays_prompt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that closes a stream after a few events, or its connection during a stall or a
    delay: no warning, error or traceback is logged, and stop() ends the server thread."""
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "X-Emulator-Answer-Tokens": "5000"}
    body = {**BODY, "stream": True}
    caplog.set_level(logging.DEBUG)
    emu = Emulator().start()
    emu.inject(Fault(), Fault(stall_after=2, stall_seconds=30), Fault(delay=30))
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=0.3) as http:
        with http.stream("POST", "/chat/completions", json=body) as reply:
            assert next(reply.iter_lines()).startswith("data: ")  # then close mid-answer
        for _ in range(2):  # the stall, then the delay: the client times out and hangs up
            with (
                pytest.raises(httpx.ReadTimeout),
                http.stream("POST", "/chat/completions", json=body) as reply,
            ):
                reply.read()
    server = emu._server
    assert server is not None
    stopping = threading.Thread(target=emu.stop)
    stopping.start()
    stopping.join(timeout=20)  # generous: the server cancels what is in flight after 0.25 s
    assert not stopping.is_alive()
    assert not server._thread.is_alive()
    assert len(emu.requests) == 3
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == []


@pytest.mark.parametrize("port", [65536, 70000, -1, "8021", None, True, 80.0])
def test_a_port_out_of_range_or_not_a_number_is_a_value_error(port: object) -> None:
    with pytest.raises(ValueError, match="port must be an integer from 0 to 65535"):
        Emulator(port=port)  # type: ignore[arg-type]


def test_max_records_keeps_the_newest() -> None:
    with Emulator(max_records=2) as emu, httpx.Client(base_url=emu.base_url) as http:
        for word in ("one", "two", "three"):
            body = {**BODY, "messages": [{"role": "user", "content": word}]}
            http.post("/chat/completions", json=body, headers={"Authorization": "Bearer x"})
        said = [r.json["messages"][0]["content"] for r in emu.requests]
        assert said == ["two", "three"]
        assert emu.last_request.json["messages"][0]["content"] == "three"
        assert len(httpx.get(f"{emu.url}/_emulator/requests").json()) == 2
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="max_records"):
            Emulator(max_records=bad)  # type: ignore[arg-type]


def test_api_keys() -> None:
    with Emulator(api_keys=("a", "b")) as emu, httpx.Client(base_url=emu.base_url) as http:
        assert emu.api_key == "a"
        for key, status in (("a", 200), ("b", 200), ("c", 401), (DEFAULT_API_KEY, 401)):
            response = http.post(
                "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == status
    assert Emulator(api_keys="solo").api_key == "solo"
    with pytest.raises(ValueError, match="api_keys"):
        Emulator(api_keys=[])


@pytest.mark.slow  # a subprocess or a load test
def test_requests_from_many_threads(emu: Emulator) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with httpx.Client(base_url=emu.base_url) as http:
                for _ in range(20):
                    response = http.post(
                        "/chat/completions",
                        json=BODY,
                        headers={"Authorization": f"Bearer {emu.api_key}"},
                    )
                    assert response.status_code == 200
                    _ = emu.requests  # snapshot reads race with writes
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(emu.requests) == 160


@pytest.mark.slow  # a subprocess or a load test
async def test_many_concurrent_async_requests(emu: Emulator) -> None:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=emu.base_url, limits=limits) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    "/chat/completions",
                    json={**BODY, "messages": [{"role": "user", "content": f"Hi {i}"}]},
                    headers={"Authorization": f"Bearer {emu.api_key}"},
                )
                for i in range(128)
            )
        )
    assert [r.status_code for r in responses] == [200] * 128
    assert responses[7].json()["choices"][0]["message"]["content"].endswith("You said: Hi 7")


@contextmanager
def cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the CLI; yield the process and the first stdout line. Always reaps the process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ai21_emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().strip()
    finally:
        if process.returncode is None:
            process.kill()
            process.communicate()


@pytest.mark.slow  # a subprocess or a load test
def test_cli_prints_the_base_url_first_and_logs_without_the_key() -> None:
    with cli("--port", "0", "--api-key", SECRET, "--log", "--max-records", "1") as (
        process,
        base_url,
    ):
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/studio/v1")
        ok = httpx.post(
            f"{base_url}/chat/completions",
            json=BODY,
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=10,
        )
        assert ok.status_code == 200
        bad = httpx.post(
            f"{base_url}/chat/completions",
            json=BODY,
            headers={"Authorization": "Bearer nope"},
            timeout=10,
        )
        assert bad.status_code == 401
        [kept] = httpx.get(base_url.replace("/studio/v1", "/_emulator/requests")).json()
        assert kept["path"] == "/studio/v1/chat/completions"  # one kept, not two
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out == ""
    assert "POST /studio/v1/chat/completions 200 model=jamba-mini" in err
    assert "POST /studio/v1/chat/completions 401 model=jamba-mini" in err
    assert SECRET not in err
    assert "nope" not in err


@pytest.mark.slow  # a subprocess or a load test
def test_cli_stops_on_sigterm() -> None:
    with cli("--port", "0") as (process, base_url):
        assert base_url.startswith("http://")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "emulator-key" in err  # the default key is announced so people can use it


@pytest.mark.slow  # a subprocess or a load test
def test_cli_vllm_flavour() -> None:
    args = ("--port", "0", "--flavour", "vllm", "--served-model-name", "tiny", "--log")
    with cli(*args, "--max-model-len", "4096", "--enable-force-include-usage") as (
        process,
        base_url,
    ):
        assert base_url.endswith("/v1")
        [model] = httpx.get(f"{base_url}/models", timeout=10).json()["data"]
        assert (model["id"], model["max_model_len"]) == ("tiny", 4096)
        body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        streamed = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
        assert b'"choices":[],"usage"' in streamed.content  # usage forced on
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "no API key needed" in err
    assert "POST /v1/chat/completions 200 model=tiny" in err


@pytest.mark.slow  # a subprocess or a load test
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--port", "70000"), "argument --port: expected a port from 0 to 65535, not '70000'"),
        (("--max-records", "-1"), "argument --max-records: expected a whole number >= 0"),
        (("--api-key", ""), "error: api_keys must hold non-empty strings"),
        (
            ("--flavour", "vllm", "--max-model-len", "0"),
            "error: max_model_len must be an integer >= 1, not 0",
        ),
    ],
)
def test_cli_refuses_a_bad_value(args: tuple[str, ...], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ai21_emulator", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr


@pytest.mark.slow  # a subprocess or a load test
def test_cli_refuses_vllm_options_for_the_hosted_flavour() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ai21_emulator", "--max-model-len", "10"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert result.returncode == 2
    assert "need --flavour vllm" in result.stderr


@pytest.mark.slow  # a subprocess or a load test
def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import sys

            import httpx
            import pytest
            from ai21_emulator import Emulator, Fault

            BODY = {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}

            def post(emu):
                return httpx.post(
                    emu.base_url + "/chat/completions",
                    json=BODY,
                    headers={"Authorization": "Bearer " + emu.api_key},
                )

            def test_plugin_import_did_not_load_the_server():
                # The plugin loads in every pytest run that enables it: it must stay cheap.
                assert "ai21_emulator.pytest_plugin" in sys.modules
                assert "ai21_emulator._server" not in sys.modules
                assert "ai21_emulator._scenario" not in sys.modules

            def test_first(ai21_emulator, ai21_emulator_server):
                assert ai21_emulator is ai21_emulator_server
                assert isinstance(ai21_emulator, Emulator)
                ai21_emulator.inject(Fault(status=500, count=5))
                assert post(ai21_emulator).status_code == 500

            def test_second_starts_clean(ai21_emulator):
                assert ai21_emulator.requests == []
                assert post(ai21_emulator).status_code == 200

            @pytest.mark.parametrize("ai21_emulator", ["ai21", "vllm"], indirect=True)
            def test_either_flavour(ai21_emulator, ai21_emulator_vllm_server):
                ai21_emulator.reply_next("scripted")
                model = "jamba-mini" if ai21_emulator.flavour == "ai21" else (
                    "ai21labs/AI21-Jamba2-Mini"
                )
                headers = (
                    {"Authorization": "Bearer " + ai21_emulator.api_key}
                    if ai21_emulator.api_key else {}
                )
                reply = httpx.post(
                    ai21_emulator.base_url + "/chat/completions",
                    json={**BODY, "model": model},
                    headers=headers,
                )
                assert reply.json()["choices"][0]["message"]["content"] == "scripted"
                assert (ai21_emulator is ai21_emulator_vllm_server) == (
                    ai21_emulator.flavour == "vllm"
                )

            def test_vllm_fixture_is_reset(ai21_emulator_vllm):
                assert ai21_emulator_vllm.flavour == "vllm"
                assert ai21_emulator_vllm.requests == []
                assert ai21_emulator_vllm.pending_replies == 0
                assert ai21_emulator_vllm.base_url.endswith("/v1")
            """
        )
    )
    result = run_pytest(tmp_path, "-p", "ai21_emulator.pytest_plugin")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            *args,
            "-W",
            "error",
            "--rootdir",
            str(directory),
            str(directory),
        ],
        capture_output=True,
        text=True,
        env=env(),
        cwd=directory,
        timeout=120,
    )


@pytest.mark.slow  # a subprocess or a load test
def test_pytest_plugin_is_opt_in(tmp_path: Path) -> None:
    """Installing the emulator adds no fixtures to other projects' test sessions; a
    ``pytest_plugins`` line in a conftest.py enables them."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_plugin(ai21_emulator):
                assert "ai21_emulator.pytest_plugin" in sys.modules
                assert ai21_emulator.requests == []
            """
        )
    )
    without = run_pytest(tmp_path)
    assert without.returncode == 1, without.stdout + without.stderr
    assert "fixture 'ai21_emulator' not found" in without.stdout

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["ai21_emulator.pytest_plugin"]\n')
    enabled = run_pytest(tmp_path)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    assert "1 passed" in enabled.stdout


async def test_a_client_gone_by_the_end_of_body_write_is_not_an_error() -> None:
    """The last event's write can find the client gone (the socket's send fails, and asyncio
    closes the transport without raising): the end-of-body write then raises, as the next
    event's would. The stream ends there quietly, as when an event's write fails (aiohttp
    logged "Error handling request" with a traceback; seen with clients leaving streams from
    many threads). Scripted with aiohttp's mocked request: the race takes a loaded machine."""
    writer = mock.Mock()
    writer.write_headers = mock.AsyncMock()
    writer.write = mock.AsyncMock()
    writer.drain = mock.AsyncMock()
    writer.write_eof = mock.AsyncMock(
        # newer aiohttp raises its ClientConnectionResetError, a ConnectionResetError; 3.10.0 (the
        # emulator's floor) has no such name
        side_effect=ConnectionResetError("Cannot write to closing transport")
    )
    request = make_mocked_request("POST", "/studio/v1/chat/completions", writer=writer)
    events = (b"data: {}\n\n", b"data: [DONE]\n\n")
    response = await _stream(request, Response(status=200, events=events), None)
    assert response.status == 200
    assert [call.args[0] for call in writer.write.await_args_list] == list(events)
    writer.write_eof.assert_awaited_once()
