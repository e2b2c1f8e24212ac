"""HTTP for one ``AI21`` instance: clients built lazily, never shared, on maintained libraries.

- Sync calls go through one plain ``httpx.Client`` (httpx's own transport, httpcore on h11).
- Async calls go through one ``httpx.AsyncClient`` on httpx-aiohttp's ``AiohttpTransport``
  (the transport openai-python ships for its aiohttp path) per running event loop: an async
  connection pool is bound to the loop that opened it, so a client made in one
  ``asyncio.run(...)`` fails in the next ("Event loop is closed"). Each loop's client is
  closed, and forgotten, when that loop shuts down its async generators (``asyncio.run``
  always does); a loop closed without that is forgotten the next time a new loop asks for a
  client, so no closed loop is kept alive by an instance.
- A process forked from one that made calls (a ``multiprocessing`` pool) starts with no
  pools: it never reads or writes its parent's sockets, never closes the parent's pools, and
  lets go of its copies of their sockets (:func:`_after_fork_in_child`).
- A user's own ``http_client``/``async_http_client`` is used as given (any loop, its own
  pool and TLS settings) and never closed here; requests on it still carry this package's
  headers, timeouts and the ``base_url``'s credentials.

What this module adds above the libraries, and why (``tests/transport/test_differential.py``
holds both paths to plain httpx on the same misbehaving servers):

- Every async failure is the exception plain httpx raises for it (:func:`httpx_error`):
  httpx-aiohttp maps a refused connection to ``ConnectTimeout`` and lets aiohttp's parser
  errors through, whose ``repr`` carries the request's headers (the key among them).
- A pooled aiohttp connection that received bytes while idle is never reused (httpcore drops
  such a connection when it takes it from the pool; aiohttp would read them as the next
  request's answer): see :class:`_FreshConnectionRequest`.
- Every async body read is bounded by the read timeout, whatever the server sends (aiohttp's
  own read timeout restarts with every byte, so an endless chunk extension, which its parser
  accepts, would hold a call for as long as the server keeps sending).
- A stream left at its ``[DONE]`` event looks briefly for its body's end, so its connection
  can be reused, and never waits on a server that holds the connection open; one the caller
  left mid-answer (or a cancelled or interrupted one) reads nothing more (``abandon()``).
- Every body is decoded here, not by httpx, a bounded step at a time (:class:`_Inflater`),
  and only in the codings requests accept (:data:`ACCEPT_ENCODING`: gzip and deflate): httpx
  decodes each piece it reads whole, and also decodes br and zstd when their libraries are
  installed (an 823-byte brotli body is 512 MiB in one call). An answer in another coding is
  not read. Error bodies are read up to :data:`ERROR_BODY_LIMIT` only, a 200 answer up to
  :data:`ANSWER_LIMIT` (past it the call fails): an answer that inflates to gigabytes, or
  never ends, costs no more than that.
- A corrupt gzip or deflate stream is ``httpx.RemoteProtocolError`` (httpx raises
  ``DecodingError``, which is not a ``TransportError``), so a stream that breaks that way after
  its first event ends as any other broken stream does.
- :class:`Deadline` bounds a whole sync request (discovery's), where httpx bounds each read;
  :class:`_BodyDeadline` bounds a whole answer's body after its headers by the read timeout
  (a stream's answer is watched in ``_stream.IdleWatch``).

Requests are sent here, not through the SDK's ``execute_http_request``, and the SDK still
decides the errors: a status other than 200 goes to the SDK's own
``handle_non_success_response``, so callers get exactly the ``ai21.errors`` class and
``details`` the SDK would raise. Skipping the SDK's request path saves about a fifth of the
CPU of a call: it runs every request through a tenacity retrier even with retries off,
formats a debug line of the whole body, and logs every error status at ``ERROR``, including
the ones we then retry successfully. Retries are ``_retry``'s job alone.

Pickling keeps the configuration and drops the pools.

Lines marked "Internal aiohttp API (versions)" use aiohttp API that its documentation does not
offer, checked on those versions (the floor in ``pyproject.toml`` to the newest tried);
``tests/transport/test_aiohttp_internals.py`` fails when an aiohttp release moves one.
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import base64
import builtins
import codecs
import contextlib
import contextvars
import json
import os
import platform
import re
import socket
import ssl
import sys
import threading
import time
import urllib.request
import weakref
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import aiohttp
import certifi
import httpx
import orjson
from ai21.http_client.base_http_client import handle_non_success_response
from ai21.version import VERSION as SDK_VERSION

# Internal aiohttp API (3.12.7-3.14.5): the parser's exceptions (not in aiohttp's namespace).
from aiohttp.http_exceptions import ContentLengthError, TransferEncodingError
from httpx_aiohttp import AiohttpTransport

from llama_index.llms.ai21._retry import last_retry_after
from llama_index.llms.ai21._secrets import scrub_headers
from llama_index.llms.ai21.errors import MalformedResponseError

VIA = "llama-index"
MAX_CONNECTIONS = 100  # httpx's default ``max_connections``
KEEPALIVE_SECONDS = 5.0  # httpx's default ``keepalive_expiry``
# Response headers: httpx (h11) bounds the header block at 100 KiB; aiohttp stops at 8 KiB per
# line unless told otherwise.
MAX_HEADER_BYTES = 16 * 1024
# A stream closed at its ``[DONE]`` event waits at most this long for the body's end-of-body
# marker, so that its connection can be reused.
DRAIN_SECONDS = 0.05
# At interpreter exit, how long closing the clients of loops left behind may take.
EXIT_CLOSE_SECONDS = 1.0
# How much of an error answer's (decoded) body is read: the SDK's exception quotes it as
# ``details``. The rest is not read (its connection is dropped, as httpx drops any connection
# whose answer was not read to its end).
ERROR_BODY_LIMIT = 64 * 1024
# The largest 200 answer read (decoded); past it the call fails, reading no further. A chat
# answer holds at most the model's output, and Jamba's context is 256K tokens: an answer that
# filled all of it is about 1 MiB of English at 4 bytes a token, some 6 MiB where every
# character is JSON-escaped (``\u4e2d``: 6 bytes) or a tool call's arguments are JSON inside
# JSON (reasoning and content share that budget). ``logprobs`` multiply it: with
# ``top_logprobs=20`` a token costs about 1 KiB. 64 MiB holds several long answers (``n``
# choices), or some 60,000 tokens with 20 log-probabilities each, and still bounds what a
# server that never ends its body costs.
ANSWER_LIMIT = 64 * 1024 * 1024
# The content codings requests accept (every deployment's headers carry it): the two that
# ``_Inflater`` decodes a bounded step at a time. httpx's default adds ``br`` when brotli is
# installed and ``zstd`` when zstandard is (``httpx/_client.py``, ``ACCEPT_ENCODING``), and
# its decoders inflate each piece whole (its ``BrotliDecoder`` calls brotli's
# ``Decompressor.process(data)`` without its ``output_buffer_limit``). A server may use no
# coding the request did not accept (RFC 9110, section 12.5.3): an answer in another is not
# read (:class:`BodyNotRead`).
ACCEPT_ENCODING = "gzip, deflate"
INFLATED_PIECE = 64 * 1024  # the most one step of inflating a body yields
BODY_PIECE = 64 * 1024  # async request bodies larger than this are written in pieces
LARGE_JSON = 1024 * 1024  # bodies larger than this are parsed by the stdlib (see decode_json)
_JSON_STARTS = (b"{", b"[")
QUOTE_CHARS = 200  # how much of a malformed body an error message quotes


@dataclass
class HTTPConfig:
    """Everything needed to build the clients; this, not the clients, is what pickles.

    ``headers`` are every header a request carries, authentication included: the deployment
    (``_deployments``) builds them, so they are kept out of ``repr``, as is ``auth``.
    """

    base_url: str  # without credentials: those are ``auth``
    timeout: float | httpx.Timeout
    headers: dict[str, str] = field(repr=False)
    # TLS: httpx's ``verify`` (True, False, a CA bundle path or an ``ssl.SSLContext``) and
    # ``cert`` (a client certificate for mTLS), for the clients this package builds.
    verify: Any = True
    cert: Any = None
    # The user's own clients (the llama-index-llms-openai convention): used as given.
    http_client: httpx.Client | None = field(default=None, repr=False)
    async_http_client: httpx.AsyncClient | None = field(default=None, repr=False)
    # (username, password) taken out of ``base_url``: sent as HTTP Basic auth, as httpx sends
    # a URL's credentials, on every request (the user's own clients' too).
    auth: tuple[str, str] | None = field(default=None, repr=False)


# RFC 9110 section 5.1 (field names are tokens) and 5.5 (field values: visible characters with
# inner spaces or tabs, no leading or trailing whitespace), ASCII only as httpx writes them:
# h11 (sync) refuses anything else with its own LocalProtocolError, aiohttp (async) sends some
# of it (a name with a colon or a space, surrounding whitespace) as it is.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"([\x21-\x7e]([ \t]*[\x21-\x7e])*)?")


# Headers of the body's framing, which the HTTP layer writes for each body it sends: given as
# well, they made a request the server reads differently from what was sent (RFC 9112 section
# 6). Measured over loopback: Content-Length shorter than the body went out on the async path
# as that many bytes, the rest read by the server as the next request on the connection (h11
# refused it on the sync path with its own LocalProtocolError); Transfer-Encoding: chunked
# went out beside a Content-Length (a chunked body on the sync path, a plain one on the
# async); Expect: 100-continue held the async request past its timeout, aiohttp waiting for
# an interim answer before writing the body. openai-python sends all three as given.
_FRAMING_HEADERS = {
    "content-length": "the length of each request's body is written by the HTTP layer",
    "transfer-encoding": "each request's body is sent whole, with its Content-Length",
    "expect": "each request's body is sent at once, with no wait for a 100 Continue",
}


def check_headers(headers: Mapping[str, str], name: str = "default_headers") -> None:
    """A ``ValueError`` naming the first header that cannot be sent as given (its value is
    never quoted: a header may carry a gateway's key)."""
    for key, value in headers.items():
        if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
            raise ValueError(
                f"{name} has {_bad_name(key)}, which is not an HTTP header name: a name is "
                "ASCII letters, digits and !#$%&'*+-.^_`|~ only"
            )
        framing = _FRAMING_HEADERS.get(key.lower())
        if framing is not None:
            raise ValueError(
                f"{name}[{key!r}] cannot be set: {framing} (given as well, the server would "
                "read the request differently from what was sent); leave it out"
            )
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise ValueError(
                f"{name}[{key!r}] is not a valid HTTP header value: printable ASCII only, "
                "without line breaks, control characters or leading or trailing whitespace"
            )


def _bad_name(key: object) -> str:
    """A header name that is not one, described for a message that must not quote a
    credential (a whole ``Authorization: Bearer sk-...`` line pasted as the name, a key and
    its name swapped): only what precedes a colon or a space, the name of a pasted line, is
    quoted; otherwise the character that is not allowed and its position."""
    if not isinstance(key, str):
        return f"a name of type {type(key).__name__}"
    if not key:
        return "an empty name"
    bad = next(i for i, char in enumerate(key) if not _HEADER_NAME.fullmatch(char))
    char = key[bad]
    rest = ", and more not shown" if key[bad + 1 :].strip() else ""
    if char == ":" and bad:
        return (
            f"a name {key[:bad]!r} followed by a colon{rest} (a whole 'Name: value' line? the "
            "value belongs in the dict's value)"
        )
    if char == " " and bad:
        return f"a name {key[:bad]!r} followed by a space{rest}"
    shown = repr(char) if char.isascii() and char.isprintable() else f"U+{ord(char):04X}"
    return f"a name with {shown} at position {bad} of its {len(key)} characters (not shown)"


def check_tls(verify: Any, cert: Any) -> None:
    """A ``ValueError`` naming a ``verify`` or ``cert`` path that does not exist (else the
    first request's ``FileNotFoundError`` says neither which setting nor which file)."""
    if isinstance(verify, str) and not os.path.exists(verify):
        raise ValueError(
            f"verify={verify!r} is neither a CA bundle file nor a directory of CA "
            "certificates: no such path"
        )
    for path in [cert] if isinstance(cert, str) else list(cert or ()):
        if not os.path.isfile(path):
            raise ValueError(
                f"cert={cert!r} names {path!r}, which is not a file (a PEM file with the "
                "certificate and key, or (cert_file, key_file))"
            )


def ssl_context(verify: Any = True, cert: Any = None) -> ssl.SSLContext:
    """httpx's ``verify``/``cert`` settings as one ``ssl.SSLContext``, built the same way on
    every httpx version (0.27 and 0.28 differ in ``create_ssl_context``'s parameters and
    deprecate different forms of these settings).

    ``verify``: True (certifi's CAs, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, as httpx
    does), False (no checks), a CA bundle file or directory, or a ready ``ssl.SSLContext``.
    ``cert``: a PEM file with the client certificate and key, or ``(cert, key)`` or
    ``(cert, key, password)``, for mutual TLS.
    """
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is True:
        if os.environ.get("SSL_CERT_FILE"):
            context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
        else:
            context = ssl.create_default_context(cafile=certifi.where())
    elif verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        if os.path.isdir(path):
            context = ssl.create_default_context(capath=path)
        else:
            context = ssl.create_default_context(cafile=path)
    else:
        raise TypeError(f"verify must be a bool, a CA bundle path or an ssl.SSLContext: {verify!r}")
    if cert:
        if isinstance(cert, str | os.PathLike):
            context.load_cert_chain(cert)
        else:
            context.load_cert_chain(*cert)
    return context


def user_agent() -> str:
    """The SDK's user agent, naming this integration the way the SDK's ``via=`` does."""
    return (
        f"AI21 studio SDK {SDK_VERSION} Python {platform.python_version()} "
        f"Operating System {platform.platform()} via: {VIA}"
    )


# Bodies are written by the stdlib, not orjson: orjson reserves about ten times the output's
# size for the bytes it returns, and a RAG prompt is often tens of kilobytes. Answers are read
# by orjson, which has no such cost. Compact UTF-8, as httpx writes ``json=`` bodies
# (``httpx._content.encode_json``): against ASCII escapes (the SDK's ``json.dumps``), the same
# for English text, a third fewer bytes for accented text and half for CJK (and faster to
# write), and a lone surrogate, which is not Unicode, fails the encoding instead of going out
# as an escape that servers cannot decode.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_body(body: Any) -> bytes:
    """``body`` as JSON bytes; a ``ValueError`` for text with a lone surrogate (from bytes
    decoded with ``errors="surrogateescape"``, or a string cut inside a character), which no
    server can decode (they answer 400 or 500): refused before any request."""
    text = _encode_json(body)
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        surrogate = ord(exc.object[exc.start])
    # Raised out here, not chained: the error's ``object`` is the whole request body.
    raise ValueError(
        f"the request contains the lone surrogate U+{surrogate:04X}, which is not Unicode text "
        "(bytes decoded with errors='surrogateescape', or a string cut inside a character?): "
        "fix or drop it before sending"
    )


def quote(body: bytes, limit: int = QUOTE_CHARS) -> str:
    """The start of a body for an error message, decoding only that start (never the whole
    body, which a hostile server can make as large as it likes)."""
    return repr(body[: limit * 4].decode("utf-8", "replace")[:limit])


def decode_json(body: bytes) -> Any:
    """The JSON of a 200 answer's body; :class:`MalformedResponseError` if it is not JSON.

    Large bodies are parsed by the stdlib: orjson's error for a document it cannot parse
    holds the whole document as text and costs about twelve times its size (768 MiB for
    64 MiB of HTML), the stdlib's about once. Answers are rarely larger than a megabyte."""
    if body[:1] not in _JSON_STARTS and body.lstrip()[:1] not in _JSON_STARTS:
        # An HTML page, a proxy's text: not JSON, and no parser needs to say so.
        raise MalformedResponseError(
            "malformed AI21 response: body is not valid JSON (it starts with neither '{' nor "
            f"'['): {quote(body)}"
        )
    try:
        if len(body) > LARGE_JSON:
            return json.loads(body)
        return orjson.loads(body)
    except (orjson.JSONDecodeError, ValueError, RecursionError) as exc:  # json: nesting
        # Worded as a stream's broken event is (_stream._json_error): where the JSON broke.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        if isinstance(exc, json.JSONDecodeError):
            exc.doc = ""  # the whole body, as text: not kept with the error
        raise MalformedResponseError(
            f"malformed AI21 response: body is not valid JSON ({reason}): {quote(body)}"
        ) from exc


def _error_text(response: httpx.Response, body: bytes) -> str:
    """The (already cut) error body as text, in the answer's charset as httpx would read it;
    a character cut in half at the end is left out."""
    encoding = response.charset_encoding or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(encoding)("replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return str(decoder.decode(body))


def _raise_for_status(response: httpx.Response, body: bytes) -> NoReturn:
    """Raise the SDK's exception for this error response (``body``: its first bytes)."""
    # The SDK's exceptions carry the body but not the headers: the retry policy reads
    # ``Retry-After`` from here.
    last_retry_after.set(response.headers.get("retry-after"))  # pragma: no mutate (any case)
    handle_non_success_response(response.status_code, _error_text(response, body))
    raise AssertionError("unreachable")  # pragma: no cover, no mutate


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


def _keeping_no_cookies(client: _Client) -> _Client:
    """``client``, made to keep no cookie. Requests here carry none (the API authenticates by
    key), so the ``Set-Cookie`` of an answer is not read either. httpx hands every answer to
    its ``Cookies.extract_cookies``, which builds a ``urllib.request.Request`` and response
    twin for the cookie jar even when the jar then keeps nothing: 45 µs of a 570 µs request
    in ``achat()`` at 64 in flight (vLLM-flavoured emulator, 16 interleaved rounds each way).
    This client's own ``Cookies`` object skips that; no other client is touched."""
    client.cookies.extract_cookies = _ignore_cookies  # type: ignore[method-assign]
    return client


def _ignore_cookies(response: httpx.Response) -> None:
    return None


# ------------------------------------------------------------------ the async path's errors


def httpx_error(exc: BaseException, request: httpx.Request) -> Exception | None:
    """The httpx exception httpcore raises for the aiohttp failure behind ``exc`` (None: not
    an aiohttp failure). ``exc`` is what aiohttp raised, or httpx-aiohttp's translation of it
    (whose ``__cause__`` is aiohttp's exception).

    The original is kept as ``__cause__``, except for aiohttp's ``ClientResponseError``, whose
    ``repr`` includes the request's headers: there the parser's own error is kept instead.
    """
    if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None:
        exc = exc.__cause__
    cause: BaseException | None = exc
    mapped: type[httpx.TransportError]
    message: str | None = None
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        # Refused, unreachable, a name that does not resolve, a certificate that fails
        # verification: httpcore raises ConnectError for each.
        mapped = httpx.ConnectError
        message = _socket_words(exc)
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp's ``connect`` timeout (httpx-aiohttp gives it httpx's pool timeout) covers
        # waiting for a free connection; ``sock_connect`` (httpx's connect timeout) the rest.
        held = _held.get()
        mapped = httpx.PoolTimeout if held is not None and held.full else httpx.ConnectTimeout
        if mapped is httpx.ConnectTimeout:
            message = "timed out"  # httpcore's words (the socket's timeout), for both
    elif isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError included
        mapped, message = httpx.ReadTimeout, "timed out"
    elif isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy refused the tunnel (a CONNECT answered 407, 403, ...): httpcore raises
        # ProxyError with the proxy's status and reason, and it is not retried. aiohttp's
        # exception is not kept: its ``repr`` holds the CONNECT's headers, the proxy's
        # credentials among them.
        return httpx.ProxyError(f"{exc.status} {exc.message}", request=request)
    elif isinstance(exc, aiohttp.ClientResponseError):
        # The status line or headers could not be parsed (not HTTP, a line too long, ...).
        mapped, cause = httpx.RemoteProtocolError, exc.__cause__
    elif isinstance(exc, aiohttp.ClientPayloadError):
        # Bad chunked framing, a body shorter than its Content-Length, or a reset mid-body.
        lost = _lost_to_os_error(exc)
        mapped = httpx.ReadError if lost is not None else httpx.RemoteProtocolError
        # The words httpcore uses for the same event, not aiohttp's.
        message = lost or _cut_short(exc)
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        # Before the answer's status line (mid-body it is a ClientPayloadError): httpcore's words.
        mapped = httpx.RemoteProtocolError
        message = "Server disconnected without sending a response."
    elif isinstance(exc, OSError):  # aiohttp.ClientOSError, ClientConnectionResetError
        # Also while writing: httpcore then reads the answer, and reports the read's error.
        mapped = httpx.ReadError
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        mapped = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientError):
        mapped = httpx.TransportError
    else:
        return None
    error = mapped(_short(message or str(exc) or type(exc).__name__), request=request)
    error.__cause__ = cause
    return error


def _socket_words(exc: aiohttp.ClientError) -> str | None:
    """httpcore's words for a connection the socket refused or could not make, the OS's
    (``[Errno 111] Connection refused``), not aiohttp's (``Cannot connect to host
    127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]``, "ssl" on a plain http
    URL); a TLS failure's, the ssl module's, as httpcore says them."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):  # httpcore: the ssl module's
        return str(exc.certificate_error)
    os_error = getattr(exc, "os_error", None)
    if not isinstance(os_error, OSError):
        return None
    if isinstance(os_error, socket.gaierror | ssl.SSLError):  # as httpcore says them
        return str(os_error)
    if os_error.errno is not None and os_error.errno > 0:
        return f"[Errno {os_error.errno}] {os.strerror(os_error.errno)}"
    return None


def _short(message: str, limit: int = 2 * QUOTE_CHARS) -> str:
    """An error message of at most about ``limit`` characters. aiohttp's parser errors quote
    the line they failed on, whole: a chunk-size line of 64 KiB of digits made a 64 KiB message
    (in every log record and ``StreamInterruptedError`` of it); h11's are short."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message)} characters)"


class _Held:
    """How many connections of one aiohttp pool requests hold (from the request's write to the
    connection's release). aiohttp raises the same ConnectionTimeoutError for a wait for a free
    connection and for a connect that times out: only a full pool makes the first (httpx's
    ``PoolTimeout``). Counted here, through each connection's public release callback, rather
    than with aiohttp's tracing signals, which cost 6.5% of a request at 64 in flight (496 to
    464 µs of CPU, benchmarks' ``vllm_achat_x64``) for three of their ten events."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def release(self) -> None:
        self.count -= 1

    @property
    def full(self) -> bool:
        return self.count >= MAX_CONNECTIONS


# The running request's pool (set by HTTPClients.asend; read in the request's own task).
_held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("ai21_held", default=None)

# Connections that carried an answer: only those can hold bytes nobody asked for (a new one can
# say ``should_close`` for other reasons, e.g. through a proxy). Weak: a closed one just goes.
_carried: weakref.WeakSet[Any] = weakref.WeakSet()


def _lost_to_os_error(exc: aiohttp.ClientPayloadError) -> str | None:
    """What httpcore says (the OS error's ``str``) when the connection under an unfinished body
    failed (a reset, ...) rather than closed; None when it closed. aiohttp says so only in the
    message, which then ends with the error's ``repr``:
    ``Response payload is not completed: <...>. ConnectionResetError(104, '...')``. The
    exception's ``__cause__`` is the parser's error (``TransferEncodingError``, ...), not the
    OS error; that is the cause of the connection's ``closed`` future's exception, set in the
    same ``connection_lost`` but seen by its callbacks only in a later loop step, which a
    reader already scheduled can precede: so the message, not the future.
    Internal aiohttp API (3.12.7-3.14.5): this message's form (the differential suite's
    "reset mid-body" and "short body" fail if it changes)."""
    name, _, args = str(exc).rpartition(". ")[2].partition("(")
    error = getattr(builtins, name, None)
    if not (isinstance(error, type) and issubclass(error, OSError)):
        return None
    try:  # the OS error's arguments, as its repr wrote them: (104, 'Connection reset by peer')
        parsed = ast.literal_eval("(" + args)
        text = str(error(*(parsed if isinstance(parsed, tuple) else (parsed,))))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        text = ""
    return text or name


# h11's words (``h11/_readers.py``, ``read_eof``) for a body its peer closed before its end, which
# httpcore raises as they are; aiohttp's (``http_parser.py``, ``feed_eof``) name its parser's
# exception and say ``400``, a status nobody sent. The byte counts are in aiohttp's message
# since 3.14.0 (aio-libs/aiohttp#12753); without them, so is ours (Internal aiohttp API
# (3.12.7-3.14.5): that message's form).
_CUT_SHORT = "peer closed connection without sending complete message body"
_RECEIVED = re.compile(r"received (\d+) of (\d+) bytes")


def _cut_short(exc: aiohttp.ClientPayloadError) -> str | None:
    """httpcore's message for a body that ended early (its connection closed), or None."""
    parser_error = exc.__cause__
    if isinstance(parser_error, ContentLengthError):
        counts = _RECEIVED.search(str(parser_error))
        if counts is None:
            return _CUT_SHORT
        return f"{_CUT_SHORT} (received {counts[1]} bytes, expected {counts[2]})"
    if isinstance(parser_error, TransferEncodingError) and "Not enough data" in str(parser_error):
        return f"{_CUT_SHORT} (incomplete chunked read)"
    return None


class _StaleConnection(Exception):
    """A pooled connection has bytes nobody asked for: send the request on another."""


class _Response(aiohttp.ClientResponse):
    """aiohttp's response, with two repairs:

    - its reason phrase as httpx reads it: the ASCII of the raw phrase (aiohttp decodes it as
      UTF-8 with surrogates, which httpx-aiohttp cannot encode back);
    - a body whose framing fails to parse in a later read than the headers' (an endless
      chunk-size or trailer line) fails at once: aiohttp then closes the connection but never
      tells the body, whose reader would wait forever (aiohttp 3.12.7 to 3.14.5 at least;
      without this the read deadline ends it, as ``ReadTimeout``). The connection's ``closed``
      future says when it is lost; aiohttp makes it only when asked, and sets a lost
      connection's error on it, which :func:`_retrieve` reads (asyncio would log it).

    It also records each connection that carried an answer (``_carried``).
    """

    # Internal aiohttp API (3.12.7-3.14.5): ClientResponse.start(connection).
    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        # Internal aiohttp API (3.12.7-3.14.5): Connection.protocol.
        protocol = connection.protocol
        if protocol is not None and protocol not in _carried:  # the connection's first answer
            _carried.add(protocol)
            # Internal aiohttp API (3.12.7-3.14.5): ResponseHandler.closed.
            closed = protocol.closed
            if closed is not None:
                closed.add_done_callback(_retrieve)
        response = await super().start(connection)
        if self.reason and not self.reason.isascii():
            raw = self.reason.encode("utf-8", "surrogateescape")
            self.reason = raw.decode("ascii", "ignore")
        if connection.protocol is not None:  # the body is still to come (else: released)
            self._fail_body_when_lost(connection)
        return response

    def _fail_body_when_lost(self, connection: Any) -> None:
        protocol = connection.protocol
        closed = protocol.closed
        if closed is None or closed.done():
            return
        content = self.content

        def lost(_: object) -> None:
            if not content.is_eof() and content.exception() is None:
                # Internal aiohttp API (3.12.7-3.14.5): ResponseHandler.exception().
                error = protocol.exception()
                # Internal aiohttp API (3.12.7-3.14.5): StreamReader.set_exception().
                content.set_exception(
                    aiohttp.ClientPayloadError(f"Response payload is not completed: {error!r}")
                )

        closed.add_done_callback(lost)
        # Released with this response (a pooled connection outlives many).
        # Internal aiohttp API (3.12.7-3.14.5): Connection.add_callback().
        connection.add_callback(lambda: closed.remove_done_callback(lost))


def _retrieve(closed: asyncio.Future[None]) -> None:
    if not closed.cancelled():
        closed.exception()


class _FreshConnectionRequest(aiohttp.ClientRequest):
    """aiohttp's request, refusing a pooled connection that received bytes while idle.

    aiohttp parses what arrives on an idle keep-alive connection and hands it to the next
    request as its answer (one request gets another's, or a forged, answer); httpcore drops
    such a connection. Raising before anything is written makes aiohttp close it, and the
    request is sent again on another connection (:meth:`HTTPClients.asend`).
    """

    # Internal aiohttp API (3.12.7-3.14.5): ClientRequest.send(conn).
    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        protocol = conn.protocol
        # Internal aiohttp API (3.12.7-3.14.5): ResponseHandler.should_close.
        if protocol is not None and protocol.should_close and protocol in _carried:
            raise _StaleConnection
        held = _held.get()
        if held is not None:
            held.count += 1
            conn.add_callback(held.release)  # on the connection's release or close
        watch = _watch.get()
        if watch is not None:
            # Internal aiohttp API (3.12.7-3.14.5): Connection.transport.
            watch.transport = conn.transport
        return await super().send(conn)


def _proxy_mounts(make: Any) -> dict[str, httpx.AsyncBaseTransport | None]:
    """httpx's proxy settings from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, ``NO_PROXY``), as ``mounts`` for a client given its own transport (httpx
    reads the environment only when it builds the transport itself). The same rules as
    httpx's ``get_environment_proxies``, on the same stdlib function."""
    proxies = urllib.request.getproxies()
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for scheme in ("http", "https", "all"):
        url = proxies.get(scheme)
        if url:
            url = url if "://" in url else f"http://{url}"
            mounts[f"{scheme}://"] = _through_proxy(url, make)
    for host in (h.strip() for h in proxies.get("no", "").split(",")):
        if not mounts or not host:
            continue
        if host == "*":
            return {}
        if "://" in host:
            mounts[host] = None
        elif host.startswith("."):
            mounts[f"all://*{host}"] = None
        elif host.replace(".", "").isdigit() or ":" in host:
            mounts[f"all://{host}"] = None
        else:
            mounts[f"all://*{host}"] = None
    return mounts


def _through_proxy(
    url: str, make: Callable[[httpx.Proxy], httpx.AsyncBaseTransport]
) -> httpx.AsyncBaseTransport:
    """The transport through the proxy at ``url``. Its credentials (if any) go as the
    ``Proxy-Authorization`` header httpcore sends for them (Basic, UTF-8), on the CONNECT of
    an ``https`` request and on a forwarded ``http`` one. Given as credentials, httpx-aiohttp
    would hand them to aiohttp as a ``BasicAuth``, which aiohttp 3.14 deprecates (two
    DeprecationWarnings a request) and encodes as Latin-1 (not httpx's bytes for a non-ASCII
    name or password); and aiohttp sends the proxy's headers on a CONNECT only."""
    proxy = httpx.Proxy(url)
    if proxy.raw_auth is None:
        return make(proxy)
    username, password = proxy.raw_auth
    authorization = "Basic " + base64.b64encode(username + b":" + password).decode("ascii")
    proxy = httpx.Proxy(proxy.url, headers={"Proxy-Authorization": authorization})
    return _Forwarding(make(proxy), authorization)


class _Forwarding(httpx.AsyncBaseTransport):
    """Adds the proxy's credentials to each ``http`` request, which the proxy forwards (an
    ``https`` one goes through a tunnel: its CONNECT carries them, the request must not)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, authorization: str) -> None:
        self.transport = transport
        self.authorization = authorization

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            request.headers["Proxy-Authorization"] = self.authorization
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self.transport.aclose()


def _async_client(config: HTTPConfig, tls: ssl.SSLContext) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on httpx-aiohttp, on an aiohttp session set up as httpx
    behaves: no cookies kept, httpx's header limits and pool size, no decompression (httpx
    decodes ``Content-Encoding`` itself), stale connections refused."""

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=tls, limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            request_class=_FreshConnectionRequest,
            response_class=_Response,
            auto_decompress=False,
            # httpx has set these on the request; aiohttp must not add its own.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )

    def transport(proxy: httpx.Proxy | None = None) -> AiohttpTransport:
        return AiohttpTransport(client=session, proxy=proxy, verify=tls)

    client = httpx.AsyncClient(
        transport=transport(),
        mounts=_proxy_mounts(transport),
        headers=config.headers,
        timeout=config.timeout,
    )
    return _keeping_no_cookies(client)


# ------------------------------------------------------------------ streams


class Stream:
    """A streamed 200 answer: its bytes as they come, and a close that keeps the connection
    when only the body's end was left unread."""

    def __init__(self, response: httpx.Response, read_timeout: float | None) -> None:
        self.response = response
        self.read_timeout = read_timeout
        self._chunks: Iterator[bytes] | None = None

    def iter_bytes(self) -> Iterator[bytes]:
        chunks = self._chunks = _streamed(self.response)
        return chunks

    def abandon(self) -> None:
        """Nothing more of this answer is wanted (the caller left mid-answer with ``break``,
        ``close()`` or Ctrl-C, or its first event never came): :meth:`close` reads nothing more.
        The rest is not the body's end, and the caller should not wait for it."""
        self._chunks = None

    def close(self) -> None:
        """Close; read on only for the body's end, for at most ``DRAIN_SECONDS`` (a caller
        stops at ``[DONE]``, which the end-of-body marker may follow a moment later)."""
        chunks, self._chunks = self._chunks, None
        try:
            if chunks is not None:
                _read_end(self.response, chunks)
        finally:
            self.response.close()


def _read_end(response: httpx.Response, chunks: Iterator[bytes]) -> None:
    """Read the rest of a stream if it is only the body's end; the connection then goes back
    to the pool. httpcore reads with the request's read timeout, for which a server that
    holds the connection after its last event would make the caller wait: the socket is shut
    down after ``DRAIN_SECONDS`` instead, which ends the read (and the connection).

    The shutdown never reaches a connection back in the pool: httpx returns it there inside
    the read that finds the body's end (``iter_raw`` closes the response), a moment before
    the watchdog can be cancelled, and another thread may by then be sending its request on
    it ("Server disconnected without sending a response"). :class:`_Releasing` marks the
    release under the lock the watchdog shuts the socket under.

    A known race is left (measured: 22 of 12,000 streams from 8 threads sharing an instance
    with the window narrowed to 1 ms, none in 4,000 at the real 50 ms; such a request is
    retried by default). A read still returns what arrived before a shutdown, so the read that
    finds the end can finish after the watchdog shut the socket, and the connection goes back
    to the pool idle with its socket shut. httpcore's pool looks at an idle connection's socket
    before reuse, but ``ConnectionPool._assign_requests_to_connections`` checks
    ``has_expired()`` (which looks at the socket of an idle connection only) before it takes
    any idle one, while a response's close makes its connection idle outside the pool's lock:
    a connection active at the check and idle a moment later is sent on unchecked. Closing it
    needs the read itself to fail, which only replacing ``read`` on httpcore's network stream
    could do: that relies on how httpcore reads, and this layer keeps to httpx's and
    httpcore's public interfaces."""
    body = response.stream
    if response.is_closed or not isinstance(body, httpx.SyncByteStream):
        return  # read to its end already: its connection may be another request's by now
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:
        return
    releasing = _Releasing(body)
    response.stream = releasing
    watchdog = threading.Timer(DRAIN_SECONDS, releasing.shut, (sock,))
    watchdog.start()
    try:
        next(chunks, None)  # the end: back to the pool; more data: dropped by the close
    except httpx.TransportError:
        pass  # shut down, reset, ...: the connection is dropped by the close
    finally:
        watchdog.cancel()


class _Releasing(httpx.SyncByteStream):
    """A response's body stream whose close (which hands the connection back to the pool)
    first stops :meth:`shut` from touching the connection's socket."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._released = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)

    def shut(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._released:
                _shut(sock)

    def close(self) -> None:
        with self._lock:
            self._released = True
        self._stream.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _PooledConnection(Exception):
    """A request with a deadline got a pooled connection, whose socket it cannot learn."""


class Deadline:
    """A limit on a whole sync request (connecting, the answer's headers and its body), where
    httpx's timeouts bound each read: a server that sends a byte now and then holds a request
    for as long as it likes. When the time is up the request's socket is shut down, which ends
    the read in progress as a server's close would (``httpx.RemoteProtocolError`` or
    ``ReadError``), and :attr:`expired` says why.

    The socket comes from httpcore's ``trace`` request extension
    (https://www.encode.io/httpcore/extensions/#trace): its ``connect_tcp.complete`` event
    carries the new connection's network stream. A pooled connection has no such event: a
    request that gets one is stopped before it writes anything (httpcore then closes that idle
    connection) and :meth:`send` sends it again, until it gets a new one. On a transport that
    is not httpcore's (a user's own), nothing is learned and only httpx's timeouts apply.
    Once the response is closed (its ``response_closed`` event: the connection goes back to
    the pool) the socket is no longer this request's, and is never shut.

    Usage: ``with Deadline(10) as deadline: response = deadline.send(client, request)`` and
    read the body inside the ``with``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:  # not while the response's close hands the connection back (_trace)
            self.expired = True
            if self._socket is not None:
                _shut(self._socket)

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith((".connect_tcp.complete", ".connect_unix_socket.complete")):
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                if self._socket is None:  # through a proxy: the proxy's connection
                    self._socket = sock
                expired = self.expired
            if expired and sock is not None:
                _shut(sock)
        elif event == "http11.send_request_headers.started" and self._socket is None:
            raise _PooledConnection
        elif event in ("http2.send_request_headers.started", "http11.response_closed.started"):
            # One HTTP/2 connection carries other requests too: it is not shut for this one.
            # An HTTP/1.1 response's close hands its connection back to the pool, where
            # another thread's request may take it before this deadline is cancelled.
            with self._lock:
                self._socket = None

    def send(self, client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """``client.send(request, stream=True, **kwargs)`` on a new connection."""
        request.extensions = {**request.extensions, "trace": self._trace}
        for _ in range(MAX_CONNECTIONS + 1):  # each try closes one pooled connection: bounded
            try:
                return client.send(request, stream=True, **kwargs)
            except _PooledConnection:
                continue
        raise httpx.ConnectError("no new connection for a request", request=request)


class AsyncStream:
    """The async :class:`Stream`: every failure as httpx's exception, every piece of the
    body within the read timeout."""

    def __init__(self, response: httpx.Response, read_timeout: float | None) -> None:
        self.response = response
        self.read_timeout = read_timeout
        self._chunks: AsyncIterator[bytes] | None = None

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        chunks = self._chunks = _astreamed(self.response, self.read_timeout)
        return chunks

    def abandon(self) -> None:
        """Nothing more of this answer is wanted (the caller left mid-answer or was cancelled,
        or its first event never came): :meth:`aclose` reads nothing more. Besides the wait, a
        read then would race asyncio's own closing of the body's
        generators when the loop shuts down (``shutdown_asyncgens`` closes every one it
        knows, at once: "aclose(): asynchronous generator is already running")."""
        self._chunks = None

    async def aclose(self) -> None:
        chunks, self._chunks = self._chunks, None
        try:
            if chunks is not None:
                # aiohttp parses what arrives as it comes: at the body's end this returns at
                # once; a piece of data means the caller left mid-answer (dropped below).
                # ``wait_for``, not ``asyncio.timeout``: on early 3.11 releases the latter
                # raises CancelledError for its own expiry in a task whose earlier cancel was
                # caught (CPython gh-102780), and this expiry is common (a server that holds
                # the connection after ``[DONE]``).
                await asyncio.wait_for(_read_one(chunks), DRAIN_SECONDS)
        except Exception:  # timed out: the connection is dropped by the close
            pass
        finally:
            with contextlib.suppress(Exception):  # closing a failed connection
                await self.response.aclose()


async def _read_one(chunks: AsyncIterator[bytes]) -> None:
    """Read one piece, or the end. A failure (reset, ...) is dropped here, not raised: before
    3.12 ``wait_for`` runs this in a task of its own, whose exception nobody would retrieve
    if the caller is cancelled meanwhile ("Task exception was never retrieved"); the
    connection is dropped by the close either way."""
    with contextlib.suppress(Exception):
        await anext(chunks, None)


# A shell around the reads, kept out of mutation testing (scripts/mutation.sh).
async def _bounded(  # pragma: no mutate block
    response: httpx.Response, read_timeout: float | None
) -> AsyncIterator[bytes]:
    """The raw body (decoded above this), each piece within ``read_timeout``, failures as
    httpx's."""
    pieces = response.aiter_raw()
    while True:
        error: Exception | None = None
        try:
            piece = await _next_within(pieces, read_timeout)
        except Exception as exc:
            error = httpx_error(exc, response.request)
            if error is None:
                raise
        if error is not None:
            raise error  # outside the except block: no aiohttp exception as context
        if piece is None:
            return
        yield piece


_WATCH = "llama_index.llms.ai21.write_watch"  # the request extension that carries it
# The running request's watch, for the aiohttp request that learns its connection.
_watch: contextvars.ContextVar[_WriteWatch | None] = contextvars.ContextVar(
    "ai21_write_watch", default=None
)


class _WriteWatch:
    """Bounds the write of each piece of a request body by the write timeout (what httpcore
    does for every write; aiohttp has no write timeout, and its read timeout does not run
    while a body is written, so a peer that stops reading would hold the call for as long as
    it keeps the connection). On expiry the connection is aborted (closing it would wait for
    the unsent data to drain), the request fails, and :meth:`HTTPClients.asend` raises
    ``httpx.WriteTimeout``."""

    def __init__(self, content: bytes, timeout: float | None) -> None:
        self.content = content
        self.timeout = timeout
        self.transport: asyncio.BaseTransport | None = None  # told by _FreshConnectionRequest
        self.expired = False

    def _expire(self) -> None:
        self.expired = True
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    # A shell around the timer, kept out of mutation testing (scripts/mutation.sh).
    async def pieces(self) -> AsyncIterator[bytes]:  # pragma: no mutate block
        loop = asyncio.get_running_loop()
        for start in range(0, len(self.content), BODY_PIECE):
            timer = None
            if self.timeout is not None:
                timer = loop.call_later(self.timeout, self._expire)
            try:
                yield self.content[start : start + BODY_PIECE]  # written before we resume
            finally:
                if timer is not None:
                    timer.cancel()


async def _next_within(pieces: AsyncIterator[bytes], seconds: float | None) -> bytes | None:
    if seconds is None:
        return await anext(pieces, None)
    if sys.version_info >= (3, 11):  # a timer, where wait_for would start a task per piece
        async with asyncio.timeout(seconds):
            return await anext(pieces, None)
    return await asyncio.wait_for(anext(pieces, None), seconds)  # pragma: no cover


# ------------------------------------------------------------------ bodies, decoded here


class BodyNotRead(Exception):
    """A body that was not read (whole): larger than its limit, or in a content coding the
    request did not accept. The message says which, and quotes nothing of the body."""


class _Inflater:
    """Inflates a gzip or deflate body as httpx's ``GZipDecoder`` and ``DeflateDecoder`` do (a
    deflate body is a zlib stream or, as some servers send it, a raw one), but at most
    :data:`INFLATED_PIECE` bytes a step, through zlib's ``max_length``
    (https://docs.python.org/3/library/zlib.html#zlib.Decompress.decompress): httpx inflates
    each piece it reads whole, and 64 KiB of gzip can be 64 MiB. A reader that stops early
    inflates nothing more. Raises ``zlib.error`` for bytes that do not inflate."""

    __slots__ = ("_may_be_raw", "_zlib", "coding")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        gzip = coding in {"gzip", "x-gzip"}
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._may_be_raw = not gzip  # deflate, until its first bytes inflate

    def feed(self, data: bytes) -> Iterator[bytes]:
        """What ``data`` adds to the body, in pieces of at most ``INFLATED_PIECE`` bytes."""
        while True:
            try:
                piece = self._zlib.decompress(data, INFLATED_PIECE)
            except zlib.error:
                if not self._may_be_raw:
                    raise
                self._may_be_raw = False
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # httpx's raw fallback
                continue
            self._may_be_raw = False
            data = self._zlib.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < INFLATED_PIECE:  # nothing held back: all inflated
                return


def _inflater(response: httpx.Response) -> _Inflater | None:
    """How ``response``'s body is decoded: None (not encoded), or an :class:`_Inflater`.
    :class:`BodyNotRead` for any other coding, or more than one (httpx would decode those,
    without bound)."""
    value = response.headers.get("content-encoding")
    if not value:
        return None
    codings = [c.strip().lower() for c in value.split(",")]
    codings = [c for c in codings if c not in {"", "identity"}]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in {"gzip", "x-gzip", "deflate"}:
        return _Inflater(codings[0])
    raise BodyNotRead(
        f"the body is encoded as {', '.join(codings)!r}, which the request did not accept "
        f"(Accept-Encoding: {ACCEPT_ENCODING}); it was not read"
    )


def _corrupt(response: httpx.Response, inflater: _Inflater, exc: zlib.error) -> httpx.HTTPError:
    """A whole body whose gzip or deflate bytes do not inflate: httpx's own
    ``DecodingError``, as ``response.read()`` raises it."""
    message = f"the {inflater.coding} body does not inflate: {exc}"
    return httpx.DecodingError(message, request=response.request)


def _broken(
    response: httpx.Response, inflater: _Inflater, exc: zlib.error
) -> httpx.RemoteProtocolError:
    """A stream whose gzip or deflate bytes stop inflating: ``httpx.RemoteProtocolError``, the
    class httpcore raises for a body broken in its framing ("the protocol was violated by the
    server", httpx's docs), not httpx's ``DecodingError``, which is no ``TransportError``: so
    a stream broken this way after its first event ends in ``StreamInterruptedError`` (with the
    text that arrived) like any other broken stream, and one broken before it is retried as
    those are."""
    return httpx.RemoteProtocolError(
        f"the {inflater.coding} stream does not inflate: {exc}", request=response.request
    )


class _Collected:
    """A body's decoded bytes, up to a limit (the sync and async readers feed it raw pieces)."""

    __slots__ = ("inflater", "limit", "pieces", "size")

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self.inflater = _inflater(response)
        self.limit = limit
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, raw: bytes) -> bool:
        """Add a raw piece of the body; whether the body is longer than the limit (then its
        first ``limit`` bytes are kept and nothing more is inflated)."""
        for piece in (raw,) if self.inflater is None else self.inflater.feed(raw):
            if len(piece) > self.limit - self.size:
                self.pieces.append(piece[: self.limit - self.size])
                self.size = self.limit
                return True
            self.pieces.append(piece)
            self.size += len(piece)
        return False

    def too_large(self) -> BodyNotRead:
        return BodyNotRead(f"the body is larger than {_size(self.limit)}; the rest was not read")


def _size(limit: int) -> str:
    for unit, name in ((1024 * 1024, "MiB"), (1024, "KiB")):
        if limit >= unit and limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit} bytes"


class _BodyDeadline:
    """A whole body within ``seconds`` of its headers (the read timeout), where httpx bounds
    each read: a server that sends its answer a few bytes at a time held a call for as long as
    it kept sending. A real server sends a whole answer at once, once it is generated (what may
    take long comes before the headers); a piece that arrives after the deadline is
    ``httpx.ReadTimeout``, so a body takes at most about twice ``seconds``."""

    __slots__ = ("_end", "_request", "_seconds")

    def __init__(self, response: httpx.Response, seconds: float | None) -> None:
        self._seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds
        self._request = response.request

    def check(self) -> None:
        if self._end is not None and time.monotonic() > self._end:
            raise httpx.ReadTimeout(
                f"the answer's body did not arrive within {self._seconds:g} s of its headers: "
                "the server sent it a piece at a time (timeout= bounds this as well as each read)",
                request=self._request,
            )


def read_body(response: httpx.Response, limit: int, seconds: float | None = None) -> bytes:
    """The whole decoded body, if it is at most ``limit`` bytes; else :class:`BodyNotRead`
    (as for a coding not accepted). A body that does not inflate: ``httpx.DecodingError``.
    ``seconds``: the :class:`_BodyDeadline`, if any."""
    body = _Collected(response, limit)
    deadline = _BodyDeadline(response, seconds)
    try:
        for raw in response.iter_raw():
            deadline.check()
            if body.add(raw):
                raise body.too_large()
    except zlib.error as exc:
        assert body.inflater is not None
        raise _corrupt(response, body.inflater, exc) from exc
    return b"".join(body.pieces)


async def aread_body(response: httpx.Response, read_timeout: float | None, limit: int) -> bytes:
    body = _Collected(response, limit)
    deadline = _BodyDeadline(response, read_timeout)
    try:
        async for raw in _bounded(response, read_timeout):
            deadline.check()
            if body.add(raw):
                raise body.too_large()
    except zlib.error as exc:
        assert body.inflater is not None
        raise _corrupt(response, body.inflater, exc) from exc
    return b"".join(body.pieces)


def _read_some(response: httpx.Response, limit: int, seconds: float | None) -> bytes:
    """The first ``limit`` bytes of the decoded (error) body, inflated only that far; a
    body in a coding not accepted says so instead, quoting nothing of it."""
    try:
        body = _Collected(response, limit)
    except BodyNotRead as exc:
        return f"({exc})".encode()
    deadline = _BodyDeadline(response, seconds)
    with contextlib.suppress(zlib.error):  # a broken body: what was read so far
        for raw in response.iter_raw():
            deadline.check()
            if body.add(raw):
                break
    return b"".join(body.pieces)


async def _aread_some(response: httpx.Response, read_timeout: float | None, limit: int) -> bytes:
    try:
        body = _Collected(response, limit)
    except BodyNotRead as exc:
        return f"({exc})".encode()
    deadline = _BodyDeadline(response, read_timeout)
    with contextlib.suppress(zlib.error):
        async for raw in _bounded(response, read_timeout):
            deadline.check()
            if body.add(raw):
                break
    return b"".join(body.pieces)


def _stream_inflater(response: httpx.Response) -> _Inflater | None:
    try:
        return _inflater(response)
    except BodyNotRead as exc:
        raise MalformedResponseError(f"malformed AI21 stream: {exc}") from None


def _streamed(response: httpx.Response) -> Iterator[bytes]:
    """A streamed body, decoded a bounded step at a time as it comes; a stream in a coding not
    accepted is refused (:class:`MalformedResponseError`) before any of it is read."""
    inflater = _stream_inflater(response)
    if inflater is None:
        yield from response.iter_raw()
        return
    for raw in response.iter_raw():
        try:
            yield from inflater.feed(raw)
        except zlib.error as exc:
            raise _broken(response, inflater, exc) from exc


# A shell around the inflater, kept out of mutation testing (scripts/mutation.sh).
async def _astreamed(  # pragma: no mutate block
    response: httpx.Response, read_timeout: float | None
) -> AsyncIterator[bytes]:
    inflater = _stream_inflater(response)
    async for raw in _bounded(response, read_timeout):
        if inflater is None:
            yield raw
            continue
        try:
            for piece in inflater.feed(raw):
                yield piece
        except zlib.error as exc:
            raise _broken(response, inflater, exc) from exc


# ------------------------------------------------------------------ event loops and forks


def _run_without_loop(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run a closing coroutine that has nothing left to wait for (its loop is closed, so
    aiohttp closes nothing on it) to its end, without a loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    except Exception:  # pragma: no cover - closing what is already unusable
        return
    coroutine.close()  # it wanted to wait (on the closed loop): give up on it


class _LoopClient:
    """One event loop's client, and the parked async generator that closes it with the loop."""

    def __init__(self, client: httpx.AsyncClient, forget: Any) -> None:
        self.client = client
        self.held = _Held()
        self.loop_closed = False
        self.closer = self._close_with_loop(forget)
        # Closes the client on its loop if the instance is collected while the loop runs.
        self.on_drop: weakref.finalize[Any, Any] | None = None

    # The async generators in this package are shells around ordinary methods, kept out of
    # mutation testing (scripts/mutation.sh says why); what they call is mutated.
    async def _close_with_loop(
        self, forget: Any
    ) -> AsyncGenerator[None, None]:  # pragma: no mutate block
        """Suspended for the loop's lifetime; the loop's ``shutdown_asyncgens`` (run by
        ``asyncio.run``) resumes it into ``finally``, which closes the client on that loop
        and drops it from the instance's map. An instance collected while its loop runs has
        ``on_drop`` start this on the loop (see :func:`_close_soon`)."""
        try:
            yield
        finally:
            await self._close(forget)

    async def _close(self, forget: Any) -> None:
        if self.on_drop is not None:
            self.on_drop.detach()  # it would keep the loop referenced
        for entries in list(_stopped.values()):
            entries.discard(self)
        owner = forget()
        if owner is not None:
            owner(self)
        if self.loop_closed:
            # Run apart: where closing would wait on the dead loop, only that is given up
            # and the closer still ends (awaited, it would stay suspended in ``finally``).
            _run_without_loop(self.client.aclose())
        else:
            await self.client.aclose()

    def abandon(self) -> None:
        """For a loop closed without ``shutdown_asyncgens``: finish the closer without the
        loop, so neither it nor the client keeps the loop (or a socket) referenced from here."""
        self.loop_closed = True
        _run_without_loop(self.closer.aclose())


_closing: set[asyncio.Task[Any]] = set()  # closers started by _close_soon, until they end


def _close_soon(loop: asyncio.AbstractEventLoop, entry: _LoopClient) -> None:
    """An instance was collected while this loop's client was open: close it on its loop.
    Left to the garbage collector, aiohttp's session and connector would be collected with it
    and print "Unclosed client session" / "Unclosed connector". A loop that is not running
    now (between two ``run_until_complete``) closes it when it runs again, or
    :func:`_close_at_exit` does."""
    if loop.is_closed():
        entry.abandon()
        return
    if not loop.is_running():
        _stopped.setdefault(loop, set()).add(entry)

    def start() -> None:
        task = loop.create_task(entry.closer.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # the loop closed meanwhile
        entry.abandon()


# The clients of collected instances whose loop was not running then (see _close_soon).
_stopped: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[_LoopClient]] = (
    weakref.WeakKeyDictionary()
)


def _close_at_exit() -> None:
    """At interpreter exit: close the clients still open on loops that nobody will run again
    (``loop.run_until_complete`` without ``loop.close()``, a finished thread's loop), on their
    loop, as ``asyncio.run`` would have; those of closed loops without it. Otherwise aiohttp
    prints "Unclosed client session" as the interpreter collects them. A loop still running
    (a daemon thread's) is left alone. Registered with ``atexit`` after the first
    ``weakref.finalize`` of a loop client, so it runs before the finalizers do."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_LoopClient]] = {}
    for clients in list(_ALL):
        for loop, entry in list(clients._async.items()):
            by_loop.setdefault(loop, []).append(entry)
    for loop, dropped in list(_stopped.items()):
        by_loop.setdefault(loop, []).extend(dropped)
    _stopped.clear()
    for loop, open_ in by_loop.items():
        if loop.is_closed():
            for entry in open_:
                entry.abandon()
        elif not loop.is_running():
            with contextlib.suppress(Exception):
                loop.run_until_complete(_close_all(open_))


async def _close_all(entries: list[_LoopClient]) -> None:  # pragma: no mutate block
    closing = asyncio.gather(*(entry.closer.aclose() for entry in entries))
    await asyncio.wait_for(closing, EXIT_CLOSE_SECONDS)


_exit_hook_registered = False


def _register_exit_hook() -> None:
    """Once, after a ``weakref.finalize`` exists: ``atexit`` runs the later hook first."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        atexit.register(_close_at_exit)


# Every live HTTPClients, so that a forked child can drop its parent's pools (see below).
_ALL: weakref.WeakSet[HTTPClients] = weakref.WeakSet()
# The sockets of the sync connections that carried an answer (the async ones: ``_carried``),
# for a forked child to let go of. Weak: a closed one just goes.
_sync_sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
# In a forked child: everything of the parent's pools, referenced for the child's lifetime.
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    """The child's pools start empty; what the parent's pools hold is kept, and made inert.

    Nothing may run on the parent's pools in the child. Their sockets are the parent's
    connections (closing a TLS one writes its close alert into the parent's stream), and the
    epoll descriptor of an inherited event loop is the parent's epoll instance: when aiohttp's
    connector, collected unclosed, closes its connections, asyncio removes each socket from
    that epoll, for the parent too, whose next read on the connection then waits out its read
    timeout. So:

    1. every inherited object (clients, sessions, loops, closers) is kept referenced in
       ``_inherited`` while the child lives: no finaliser of ours, aiohttp's or asyncio's
       runs on it (and aiohttp prints no "Unclosed connector");
    2. every descriptor of a connection that carried an answer (the only ones a pool keeps)
       is made ``/dev/null`` (:func:`_let_go_of_sockets`), so that whatever still runs on those
       objects (at the child's interpreter exit, say) cannot reach the parent's sockets.
    """
    kept: list[Any] = list(_stopped.items())  # the parent's loops and their closers
    _stopped.clear()
    for clients in list(_ALL):
        kept.append(clients._forget_pools())
    _inherited.append(kept)
    sockets: list[Any] = list(_sync_sockets)
    for protocol in list(_carried):
        # Internal aiohttp API (3.12.7-3.14.5): ResponseHandler.transport.
        transport = protocol.transport
        if transport is not None:
            sockets.append(transport.get_extra_info("socket"))
    _let_go_of_sockets({sock.fileno() for sock in sockets if sock is not None})


def _let_go_of_sockets(fds: set[int]) -> None:
    """Point each descriptor at ``/dev/null`` (``dup2``). The socket it referred to loses the
    child's reference, exactly as a plain ``close`` would drop it (no FIN, no RST: the parent
    holds its own, and the parent's close still ends the connection, which it would not while
    the child held one). The number stays taken by ``/dev/null`` until its owner closes it,
    so no later socket of the child's gets it while a stale object still uses it, and what
    such an object does reaches nothing of the parent's: epoll keys its registrations by the
    open file, not the number (``epoll_ctl`` finds none: ENOENT), and ``send``, ``recv`` and
    ``shutdown`` fail with ENOTSOCK."""
    fds.discard(-1)  # closed already
    if not fds:
        return
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in fds - {null}:
            with contextlib.suppress(OSError):
                os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class HTTPClients:
    """The lazily built clients for one configuration, and the requests sent on them."""

    def __init__(self, config: HTTPConfig) -> None:
        self.config = config
        self._timeout = httpx.Timeout(config.timeout)
        self._timeouts = {"timeout": self._timeout.as_dict()}
        # The user's own clients get the URL's credentials per request; ours have them built in.
        self._auth: Any = httpx.USE_CLIENT_DEFAULT
        if config.auth is not None:
            self._auth = httpx.BasicAuth(*config.auth)
        self._urls: dict[str, httpx.URL] = {}
        self._lock = threading.Lock()
        # How many times close() / aclose() closed a pool: a stream that breaks after its pool
        # was closed under it says so, not "Server disconnected" (base._interrupted).
        self.closes = self.acloses = 0
        self._sync: httpx.Client | None = None
        self._closes_sync: weakref.finalize[Any, Any] | None = None
        self._ssl: ssl.SSLContext | None = None
        # Strong references, removed when each loop shuts down (or is found closed).
        self._async: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        # For the user's own clients: their headers as last seen, and ours merged over them.
        self._headers: dict[int, tuple[list[tuple[bytes, bytes]], httpx.Headers]] = {}
        _ALL.add(self)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def _forget_pools(self) -> tuple[Any, ...]:
        """In a forked child: start with no pools, without closing the parent's (see
        :func:`_after_fork_in_child`); return them, for the caller to keep."""
        self._lock = threading.Lock()
        if self._closes_sync is not None:
            self._closes_sync.detach()
        for entry in self._async.values():
            if entry.on_drop is not None:
                entry.on_drop.detach()
        inherited = (self._sync, self._async)
        self._sync = None
        self._async = {}
        return inherited

    # ------------------------------------------------------------------ requests

    def request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        path: str,
        body: Any,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """The request, built directly: ``client.build_request`` would parse and merge
        the URL and headers again on every call, a visible share of a call's CPU.
        ``extra_headers`` (one call's, checked by the caller) go over the others."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.config.base_url + path)
        headers = client.headers
        cookies = None  # this package's clients keep none (_keeping_no_cookies)
        if client is self.config.http_client or client is self.config.async_http_client:
            headers = self._user_headers(client)
            if client.params:  # the user's client's query, as its own requests carry it
                url = url.copy_merge_params(client.params)
            if client.cookies:  # its cookies (a gateway's session), as its own requests too
                cookies = client.cookies
        if extra_headers:
            headers = httpx.Headers(headers)
            headers.update(extra_headers)
        content = None if body is None else encode_body(body)
        if (
            content is not None
            and len(content) > BODY_PIECE
            and isinstance(client, httpx.AsyncClient)
        ):
            # Handed to aiohttp in pieces, with its length: aiohttp has no write timeout, and
            # each piece's write is bounded here (and it warns that a body of more than 1 MiB
            # given as bytes blocks the loop while it is written).
            headers = httpx.Headers(headers)
            headers["Content-Length"] = str(len(content))
            watch = _WriteWatch(content, self._timeout.write)
            return httpx.Request(
                "POST",
                url,
                headers=headers,
                cookies=cookies,
                content=watch.pieces(),
                extensions={**self._timeouts, _WATCH: watch},
            )
        return httpx.Request(
            "GET" if body is None else "POST",
            url,
            headers=headers,
            cookies=cookies,
            content=content,
            extensions=self._timeouts,
        )

    def send(self, request: httpx.Request) -> httpx.Response:
        """Send on the sync client; the response with its body unread."""
        client = self.sync_client()
        response = client.send(request, stream=True, auth=self._auth)
        if client is not self.config.http_client:  # a forked child lets go of ours only
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                _sync_sockets.add(sock)
        return response

    async def asend(self, request: httpx.Request) -> httpx.Response:
        """Send on this loop's client; the response with its body unread. Failures are
        httpx's exceptions, as plain ``httpx.AsyncClient`` raises them."""
        if self.config.async_http_client is not None:
            client, held = self.config.async_http_client, None
        else:
            entry = await self._loop_client()
            client, held = entry.client, entry.held
        _held.set(held)
        watch: _WriteWatch | None = request.extensions.get(_WATCH)
        _watch.set(watch)
        for _ in range(MAX_CONNECTIONS + 1):  # each stale connection is dropped: bounded
            error: Exception | None = None
            try:
                return await client.send(request, stream=True, auth=self._auth)
            except _StaleConnection:
                continue
            except Exception as exc:
                if watch is not None and watch.expired:
                    error = httpx.WriteTimeout(
                        "timed out writing the request body", request=request
                    )
                else:
                    error = httpx_error(exc, request)
                if error is None:
                    raise
            raise error  # outside the except block: no aiohttp exception as context
        raise httpx.ReadError("every pooled connection had unrequested data", request=request)

    def _read(self, response: httpx.Response) -> Any:
        try:
            if response.status_code != 200:
                _raise_for_status(
                    response, _read_some(response, ERROR_BODY_LIMIT, self._timeout.read)
                )
            try:
                return decode_json(read_body(response, ANSWER_LIMIT, self._timeout.read))
            except BodyNotRead as exc:
                raise MalformedResponseError(f"malformed AI21 response: {exc}") from None
        except Exception as exc:
            # The server may have quoted what it was sent: a credential of the request's
            # headers, as sent (the user's client's, its auth's, default_headers, a call's).
            scrub_headers(exc, response.request.headers)
            raise
        finally:
            response.close()

    async def _aread(self, response: httpx.Response) -> Any:
        try:
            read_timeout = self._timeout.read
            if response.status_code != 200:
                _raise_for_status(
                    response, await _aread_some(response, read_timeout, ERROR_BODY_LIMIT)
                )
            try:
                return decode_json(await aread_body(response, read_timeout, ANSWER_LIMIT))
            except BodyNotRead as exc:
                raise MalformedResponseError(f"malformed AI21 response: {exc}") from None
        except Exception as exc:
            scrub_headers(exc, response.request.headers)  # as in _read
            raise
        finally:
            await response.aclose()

    def post(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> Any:
        """POST ``body``; the decoded JSON answer, or the SDK's exception for its status."""
        return self._read(self.send(self.request(self.sync_client(), path, body, headers)))

    def get(self, path: str) -> Any:
        """GET ``path`` (e.g. a server's model list); the decoded JSON answer."""
        return self._read(self.send(self.request(self.sync_client(), path, None)))

    async def apost(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> Any:
        client = await self.async_client()
        return await self._aread(await self.asend(self.request(client, path, body, headers)))

    def open_stream(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> Stream:
        """POST ``body`` for a streamed answer; the open stream once its status is 200."""
        response = self.send(self.request(self.sync_client(), path, body, headers))
        if response.status_code != 200:
            self._read(response)  # raises the SDK's exception
        return Stream(response, self._timeout.read)

    async def aopen_stream(
        self, path: str, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> AsyncStream:
        client = await self.async_client()
        response = await self.asend(self.request(client, path, body, headers))
        if response.status_code != 200:
            await self._aread(response)  # raises the SDK's exception
        return AsyncStream(response, self._timeout.read)

    # ------------------------------------------------------------------ clients

    def _user_headers(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Headers:
        """The user's client's own headers with ours on top (ours win), merged again when the
        client's change: a token rotated in place (``client.headers["X-Api-Key"] = ...``) goes
        with the next request, as the client's own requests carry it. Comparing them costs
        about 0.5 µs a request, merging them again about 7 µs."""
        own = client.headers.raw
        seen = self._headers.get(id(client))
        if seen is not None and seen[0] == own:
            return seen[1]
        headers = httpx.Headers(client.headers)
        headers.update(self.config.headers)
        self._headers[id(client)] = (own, headers)
        return headers

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl_context(self.config.verify, self.config.cert)
        return self._ssl

    def sync_client(self) -> httpx.Client:
        if self.config.http_client is not None:
            return self.config.http_client
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    client = self._sync = _keeping_no_cookies(
                        httpx.Client(
                            headers=self.config.headers,
                            verify=self._tls(),
                            timeout=self.config.timeout,
                        )
                    )
                    # Its sockets close when this object is collected (httpcore's pool has
                    # no finalizer of its own, and would leave them to the GC's warnings).
                    self._closes_sync = weakref.finalize(self, client.close)
        return client

    async def async_client(self) -> httpx.AsyncClient:
        if self.config.async_http_client is not None:
            return self.config.async_http_client
        return (await self._loop_client()).client

    async def _loop_client(self) -> _LoopClient:
        """This loop's client (made on first use), with its pool's count of held connections."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is not None:
            return entry
        self._forget_closed_loops()
        # The closer reaches this object weakly: ``on_drop`` holds it until it runs.
        entry = _LoopClient(
            _async_client(self.config, self._tls()), weakref.WeakMethod(self._forget)
        )
        # Registers it with this loop's async-generator tracking. It runs to the closer's
        # first ``yield`` without suspending, so no other task of this loop gets in between.
        await entry.closer.asend(None)
        entry.on_drop = weakref.finalize(self, _close_soon, loop, entry)
        _register_exit_hook()
        with self._lock:  # other threads' loops change the map as they shut down
            self._async[loop] = entry
        return entry

    def _forget(self, entry: _LoopClient) -> None:
        with self._lock:
            for loop, known in list(self._async.items()):
                if known is entry:
                    del self._async[loop]

    def _forget_closed_loops(self) -> None:
        """Drop the clients of loops closed without ``shutdown_asyncgens``."""
        with self._lock:
            closed = [loop for loop in self._async if loop.is_closed()]
            entries = [self._async.pop(loop) for loop in closed]
        for entry in entries:
            entry.abandon()

    def close(self) -> None:
        """Close the sync client (async ones close with their loops, or via :meth:`aclose`).
        A user's own client is left open: it is theirs."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            self.closes += 1
            client.close()
        self._forget_closed_loops()

    async def aclose(self) -> None:
        """Close the client of the running loop (not a user's own client)."""
        with self._lock:
            entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            self.acloses += 1
            await entry.closer.aclose()
