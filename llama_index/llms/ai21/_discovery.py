"""Knowing the server: what it serves, how much context it accepts, what it supports.

A self-hosted server is asked once per instance, when something first needs it (the
``metadata`` property, or the first request of an instance without ``model=`` or on a server
not yet recognised): ``GET {base_url}/models``, then whatever the recognised server's own
deployment module reads (``/props`` on llama.cpp, ``/api/ps`` and ``/api/show`` on Ollama,
``/api/v1/models`` on LM Studio). The answers become one :class:`Served`, cached by the
instance. Nothing here raises: an answer that is missing, refused, too large or not what the
server's documentation shows is :data:`None` to the caller, which falls back.

:class:`Ask` is the one place that talks HTTP for discovery. It is deliberately stricter than
the request path: bounded in time (:data:`PROBE_TIMEOUT` for the whole request) and size
(:data:`MAX_ANSWER_BYTES`, decoded, and inflated no further than that), never retried, and a
``200`` whose JSON body is ``{"error": ...}`` counts as a failure (LM Studio answers unknown
paths that way: https://lmstudio.ai/docs/developer/rest).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from llama_index.llms.ai21._http import BodyNotRead, Deadline, read_body
from llama_index.llms.ai21._retry import is_not_tls, is_permanent
from llama_index.llms.ai21._secrets import scrub_headers

logger = logging.getLogger("llama_index.llms.ai21")

PROBE_TIMEOUT = 10.0
"""Seconds allowed for each discovery request as a whole, from connecting to the answer's last
byte (the instance's ``timeout`` if smaller): a server that sends its answer a byte at a time
gets no longer (docs/laptop.md: "Each answer is read with at most 10 seconds")."""

NOT_TLS = "an answer that is not TLS: plain HTTP?"
"""Said of a failure whose TLS handshake met something else (an ``https://`` URL for a
plain-HTTP server); the advice for it is chosen on these words."""

MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""Largest discovery answer read (llama.cpp's ``/props`` carries the chat template, Ollama's
``/api/show`` the license: tens of kilobytes)."""


@dataclass(frozen=True)
class Served:
    """What a server said about itself and its model (``None``: it did not say)."""

    kind: str
    """The deployment kind that read the answers (e.g. ``"llamacpp"``)."""
    model: str | None
    """The model requests go to: the one given, else the one the server serves."""
    models: tuple[str, ...] = ()
    """Every name the server reported (served, loaded or aliased)."""
    root: str | None = None
    """The weights ``model`` names (vLLM's and SGLang's ``root``: the Hugging Face id or path
    it loaded, which ``--served-model-name`` can hide behind any name)."""
    context_window: int | None = None
    """The context the server accepts now (not the model's trained maximum)."""
    trained_context_window: int | None = None
    function_calling: bool | None = None
    reasoning: bool | None = None
    """The model always reasons: its template's generation prompt opens ``<think>`` (llama.cpp's
    ``/props``). Not a server's "can think" capability: those servers separate reasoning
    themselves."""
    notes: tuple[str, ...] = field(default=())
    """Why a figure is missing or assumed, for the log."""


MAX_CONTEXT = 2**31 - 1
"""The largest context length read: servers keep it in a 32-bit int (llama.cpp's ``n_ctx`` is an
``int32_t``), and no model comes near it. A larger figure is not one the server runs with."""


def context_length(value: Any) -> int | None:
    """``value`` if it is a context length (an int from 1 to :data:`MAX_CONTEXT`, never a
    bool), else ``None``: not said."""
    return value if value.__class__ is int and 0 < value <= MAX_CONTEXT else None


SHOWN_NAMES = 10
"""How many of the names a server reports a message lists (a server may list 90,000)."""


def shown_name(name: str, limit: int = 100) -> str:
    """A name for a message or a log line: quoted, and cut at ``limit`` characters."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}..."


def shown_names(names: Sequence[str]) -> str:
    """Names a server reported, for a message or a log line: the first :data:`SHOWN_NAMES`
    (each cut as :func:`shown_name` cuts it), then how many more."""
    listed = "[" + ", ".join(shown_name(name) for name in names[:SHOWN_NAMES]) + "]"
    more = len(names) - SHOWN_NAMES
    return f"{listed} and {more} more" if more > 0 else listed


def said(value: Any, limit: int = 200) -> str:
    """What a server said in a field of any shape, for a message: a string (or an object's
    ``message`` string) quoted and cut, else only its type (``str()`` of an answer nested a
    thousand deep is a RecursionError, and of a large one megabytes)."""
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        value = value["message"]
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."
    return f"a {type(value).__name__}"


def entries(answer: Any, key: str = "data") -> list[dict[str, Any]]:
    """The dict entries of ``answer[key]`` (an OpenAI-style listing), ignoring anything else."""
    items = answer.get(key) if isinstance(answer, dict) else None
    return [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (an answer's shape is never trusted)."""
    return value if isinstance(value, list) else []


def names(items: Iterable[dict[str, Any]], *keys: str) -> tuple[str, ...]:
    """The string values of ``keys`` in ``items``, in order, without repeats."""
    found = (item.get(key) for item in items for key in keys)
    return tuple(dict.fromkeys(n for n in found if isinstance(n, str) and n))


def server_root(base_url: str) -> httpx.URL:
    """The server's root: ``base_url`` without its trailing ``/v1`` (llama.cpp's ``/props``,
    Ollama's ``/api/...`` and LM Studio's ``/api/v1/...`` live there)."""
    url = httpx.URL(base_url.rstrip("/"))
    path = url.path
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return url.copy_with(path=path or "/")


def root_text(base_url: str) -> str:
    """The server's root as text, for messages: ``base_url`` (its password already masked by
    the ``AI21`` field) without a trailing ``/v1``."""
    text = base_url.rstrip("/")
    return text.removesuffix("/v1") or text


class ProbeError(Exception):
    """A discovery request that got no usable answer (the message says why, without secrets)."""


class Ask:
    """Discovery requests to one server, on the instance's own synchronous client."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.client = client  # base_url has no credentials (the caller split them into auth)
        # A URL's credentials, sent as httpx sends them (Basic auth), on the user's own client too.
        self.auth: Any = httpx.BasicAuth(*auth) if auth else httpx.USE_CLIENT_DEFAULT
        self.base_url = base_url.rstrip("/")
        self.root = server_root(base_url)
        self.headers = headers
        self.seconds = min(timeout, PROBE_TIMEOUT)
        self.timeout = httpx.Timeout(self.seconds)
        self.failures: list[str] = []
        # A server not ready yet, worth asking again (see AI21._ask_server): a connection
        # refused or reset (not a name that does not resolve, nor a certificate that fails;
        # vLLM listens only once its model is loaded), or a 503 (llama-server answers every
        # route so while it loads the model: "Loading model").
        self.not_ready = False

    def get(self, path: str, *, root: bool = False) -> Any:
        """``GET`` ``path`` under ``base_url`` (or the server's root): the JSON answer, or
        ``None`` (the reason is kept in :attr:`failures`)."""
        return self._ask("GET", path, None, root=root)

    def post(self, path: str, body: dict[str, Any], *, root: bool = False) -> Any:
        return self._ask("POST", path, body, root=root)

    def url(self, path: str, *, root: bool = False) -> httpx.URL:
        if root:
            return self.root.copy_with(path=self.root.path.rstrip("/") + path)
        return httpx.URL(self.base_url + path)

    def _ask(self, method: str, path: str, body: dict[str, Any] | None, *, root: bool) -> Any:
        url = self.url(path, root=root)
        try:
            return self.answer(method, url, body)
        except ProbeError as exc:
            self.failures.append(f"{method} {url}: {exc}")
        except httpx.HTTPError as exc:  # only its class: httpx's message may repeat the URL
            said = f" ({NOT_TLS})" if is_not_tls(exc) else ""
            self.failures.append(f"{method} {url}: {type(exc).__name__}{said}")
            if isinstance(exc, httpx.ConnectError) and not is_permanent(exc):
                self.not_ready = True
        return None

    def answer(self, method: str, url: httpx.URL, body: dict[str, Any] | None) -> Any:
        request = self.client.build_request(
            method, url, headers=self.headers, json=body, timeout=self.timeout
        )
        try:
            return self._answer(request)
        except ProbeError as exc:
            # A server may quote what it was sent in an error body, which the failure quotes
            # in turn (logged, or in a ValueError): the request's credentials are masked, its
            # headers read as sent (the key's, the URL's Basic auth, the user's client's).
            scrub_headers(exc, request.headers)
            raise

    def _answer(self, request: httpx.Request) -> Any:
        with Deadline(self.seconds) as deadline:
            try:
                response = deadline.send(self.client, request, auth=self.auth)
                try:
                    if response.status_code != 200:
                        self.not_ready = self.not_ready or response.status_code == 503
                        raise ProbeError(f"HTTP {response.status_code}")
                    content = read_body(response, MAX_ANSWER_BYTES)
                finally:
                    response.close()
            except BodyNotRead as exc:
                raise ProbeError(str(exc)) from None
            except httpx.TransportError:
                if not deadline.expired:
                    raise
                raise ProbeError(f"no complete answer within {self.seconds:g} s") from None
        try:
            decoded = orjson.loads(content)
        except orjson.JSONDecodeError:
            decoded = _json_with_any_ints(content)
        if isinstance(decoded, dict) and "error" in decoded:
            # LM Studio: HTTP 200 with {"error": "Unexpected endpoint or method. ..."}.
            raise ProbeError(f"HTTP 200 with an error body: {said(decoded['error'])}")
        return decoded


def _json_with_any_ints(content: bytes | bytearray) -> Any:
    """An answer ``orjson`` refused, read by the stdlib: ``orjson`` refuses a whole document for
    one integer past 64 bits (a ``max_model_len`` of 400 digits), and one field must not lose
    the rest. Integers too long to be a count are read as ``None`` (not said): ``int()`` itself
    refuses 4,300 digits."""
    try:
        return json.loads(content, parse_int=_count_or_none)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise ProbeError("answer is not JSON") from exc


def _count_or_none(digits: str) -> int | None:
    return int(digits) if len(digits) <= 20 else None


class DiscoveryLock:
    """A lock that copies and pickles as a new lock (an instance's copy asks on its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def __reduce__(self) -> tuple[type[DiscoveryLock], tuple[()]]:
        return (DiscoveryLock, ())
