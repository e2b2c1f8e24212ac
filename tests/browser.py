"""A headless Chromium driven over the DevTools protocol, for looking at the built docs site.

Just enough of the protocol to open a page, wait for what it draws and list the requests it
made, over aiohttp's WebSocket client (aiohttp is a dependency already). The browser resolves
no host name: every lookup fails, so a page can only use what the loopback server gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on loopback; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Page:
    """One browser tab: protocol calls, and the events seen so far."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                self._pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def call(self, method: str, **params: Any) -> Any:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def requested_urls(self) -> list[str]:
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]

    async def document(self) -> dict[str, Any]:
        """The whole DOM, shadow roots (closed ones too) included."""
        result = await self.call("DOM.getDocument", depth=-1, pierce=True)
        return result["root"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def launch(executable: str) -> Iterator[str]:
    """A fresh headless browser (its own profile, no name resolution); yields its DevTools
    WebSocket endpoint."""
    with tempfile.TemporaryDirectory(prefix="ai21-browser-") as profile:
        process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # Debian's command is a shell script that runs the browser as its child: stop the
            # whole process group, or the browser outlives the test.
            start_new_session=True,
        )
        try:
            assert process.stderr is not None
            endpoint = None
            for line in process.stderr:
                if found := re.search(r"ws://\S+", line):
                    endpoint = found.group(0)
                    break
            assert endpoint, "the browser did not report its DevTools endpoint"
            yield endpoint
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop every process of the browser's group; fail if one survives."""

    def gone() -> bool:
        process.poll()  # reap the wrapper script
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + 5
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        if gone():
            break
    if process.stderr is not None:
        process.stderr.close()
    assert gone(), "the browser outlived the test"


@contextlib.asynccontextmanager
async def open_page(endpoint: str) -> AsyncIterator[Page]:
    """A new tab in the browser at ``endpoint``, recording network events."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(endpoint, max_msg_size=0) as ws,
    ):
        page = Page(ws)
        reader = asyncio.create_task(page._read())
        try:
            target = await page.call("Target.createTarget", url="about:blank")
            attached = await page.call(
                "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            page.session = attached["sessionId"]
            await page.call("Network.enable")
            await page.call("Page.enable")
            yield page
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def _classes(node: dict[str, Any]) -> list[str]:
    attributes = node.get("attributes", [])
    return dict(zip(attributes[::2], attributes[1::2], strict=True)).get("class", "").split()


def rendered_diagrams(root: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``<svg>`` elements drawn inside mermaid diagram containers (``.mermaid``), including
    those in the shadow roots the theme draws them into."""
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], in_diagram: bool) -> None:
        inside = in_diagram or "mermaid" in _classes(node)
        if in_diagram and node.get("nodeName", "").lower() == "svg":
            found.append(node)
            return
        for child in [*node.get("shadowRoots", []), *node.get("children", [])]:
            walk(child, inside)

    walk(root, False)
    return found


def count_nodes(node: dict[str, Any]) -> int:
    return 1 + sum(
        count_nodes(c) for c in [*node.get("shadowRoots", []), *node.get("children", [])]
    )
