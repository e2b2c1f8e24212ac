"""Importing the package and calling it on every deployment kind leaves the process as it was:
warnings filters, other libraries' loggers, the environment, ``ssl``, ``socket`` and
``http.client`` defaults, the recursion limit, import machinery, working directory, umask,
locale, garbage collector, signal handlers, the asyncio policy, hooks, and the attributes of
the libraries underneath (httpx, httpcore, aiohttp, httpx-aiohttp, the ai21 SDK).

One fresh interpreter snapshots all of it after importing what the package stands on (so
their own import-time settings are not counted) and again after importing the package and
making sync, async and streaming calls through each deployment kind, and prints what changed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = r"""
import asyncio, codecs, gc, http.client, json, locale, logging, mimetypes, os, signal, socket
import ssl, sys, threading, warnings

import aiohttp, httpcore, httpx, httpx_aiohttp, llama_index.core.llms  # what the package stands on
from ai21_emulator import Emulator

LIBRARIES = ("httpx", "httpcore", "aiohttp", "httpx_aiohttp", "ai21", "ssl", "socket", "json",
             "asyncio", "logging", "warnings", "http.client")


def umask():
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def snapshot():
    return {
        "warnings.filters": repr(warnings.filters),
        "warnings.showwarning": repr(warnings.showwarning),
        "logging.root": repr((logging.root.level, logging.root.handlers, logging.root.filters)),
        "logging.disable": logging.root.manager.disable,
        "loggers": {
            name: repr((lg.level, lg.handlers, lg.filters, lg.propagate, lg.disabled))
            for name, lg in list(logging.root.manager.loggerDict.items())
            if isinstance(lg, logging.Logger) and not name.startswith("llama_index.llms.ai21")
        },
        "logging.factory": repr(logging.getLogRecordFactory()),
        "os.environ": dict(os.environ),
        "ssl": repr((ssl._create_default_https_context, ssl.create_default_context)),
        "socket.timeout": socket.getdefaulttimeout(),
        "http.client": (http.client._MAXLINE, http.client._MAXHEADERS),
        "recursionlimit": sys.getrecursionlimit(),
        "sys.path": repr((sys.path, sys.meta_path, sys.path_hooks)),
        "cwd, umask, locale": repr((os.getcwd(), umask(), locale.setlocale(locale.LC_ALL))),
        "gc": repr((gc.isenabled(), gc.get_threshold())),
        "codecs, mimetypes": repr((codecs.lookup("utf-8"), mimetypes.inited)),
        "switchinterval": sys.getswitchinterval(),
        "signals": {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                    if isinstance(s, signal.Signals)},
        "asyncio.policy": type(asyncio.get_event_loop_policy()).__qualname__,
        "hooks": repr((sys.excepthook, threading.excepthook, sys.unraisablehook,
                       sys.gettrace(), sys.getprofile(), sys.displayhook)),
        "modules": {
            name: {k: repr(v) if isinstance(v, (int, float, str, bool)) else id(v)
                   for k, v in vars(sys.modules[name]).items() if not k.startswith("__")}
            for name in LIBRARIES if name in sys.modules
        },
    }


def changes(before, after, prefix=""):
    for key in before.keys() | after.keys():
        old, new = before.get(key, "<absent>"), after.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            yield from changes(old, new, f"{prefix}{key}.")
        elif old != new and not (prefix in ("loggers.", "modules.") and old == "<absent>"):
            # a logger or library that did not exist before: the package's import made it
            yield f"{prefix}{key}: {str(old)[:200]} -> {str(new)[:200]}"


async def use_async(llm):
    await llm.acomplete("hi")
    async for _ in await llm.astream_complete("hi"):
        pass


with Emulator() as hosted, Emulator(flavour="vllm") as served:
    before = snapshot()
    from llama_index.llms.ai21 import AI21

    imported = snapshot()
    llms = [AI21(base_url=hosted.base_url, api_key=hosted.api_key)]
    for kind in ("openai-compatible", "vllm", "sglang", "llamacpp", "lmstudio", "ollama"):
        served_model = "ai21labs/AI21-Jamba2-3B"
        llms.append(AI21(base_url=served.base_url, deployment=kind, model=served_model))
    for llm in llms:
        llm.complete("hi")
        list(llm.stream_complete("hi"))
        asyncio.run(use_async(llm))
        llm.close()
    used = snapshot()
print(json.dumps({"import": sorted(changes(before, imported)),
                  "use": sorted(changes(imported, used))}))
"""


@pytest.mark.slow  # a fresh interpreter
def test_import_and_calls_on_every_deployment_kind_change_no_process_wide_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "", "AI21_TEST_MARKER": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    changed = json.loads(result.stdout.splitlines()[-1])
    assert changed == {"import": [], "use": []}
