"""Where Jamba runs: one module per deployment kind, behind one small interface.

A :class:`Deployment` knows its URL layout (default base URL, paths), how it authenticates,
which request dialect a model speaks there (:meth:`Deployment.dialect`), what it adds to
streamed requests, the shape of grounding documents, its client-side limits, and what it can
tell about a model. ``base.py`` never branches on the kind: it asks the deployment.

Kinds today (docs/self-hosted.md, "Choosing the deployment"):

- ``"ai21"`` (:mod:`.ai21`): AI21's hosted API, the default.
- ``"openai-compatible"`` (:mod:`.openai_compatible`): a self-hosted OpenAI-compatible server.
  It asks the server what it is (:func:`discover`) and adopts that server's own kind:
- ``"vllm"`` (:mod:`.vllm`), ``"sglang"`` (:mod:`.sglang`), ``"llamacpp"`` (:mod:`.llamacpp`:
  llama.cpp's ``llama-server``), ``"lmstudio"`` (:mod:`.lmstudio`), ``"ollama"`` (:mod:`.ollama`).

A new kind is one new module in this package that defines a :class:`Deployment` subclass and
names it ``DEPLOYMENT``; it is found by :func:`kinds` without touching anything else.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, ClassVar, Literal

import httpx

from llama_index.llms.ai21._dialect import CHAT_PATH, Dialect, JambaChat, Limits
from llama_index.llms.ai21._discovery import (
    Ask,
    Served,
    context_length,
    entries,
    names,
    shown_name,
    shown_names,
)
from llama_index.llms.ai21._http import ACCEPT_ENCODING, user_agent
from llama_index.llms.ai21._models import ModelInfo, is_known, model_info
from llama_index.llms.ai21._secrets import masked, shown_url

__all__ = ["CHAT_PATH", "Deployment", "choose", "kinds", "parse_base_url"]

ToolChoiceSupport = Literal["native", "required_only", "ignored", "emulated"]


class Deployment:
    """One deployment kind; subclasses set the class attributes and override what differs."""

    kind: ClassVar[str]
    """The name users pass as ``deployment=``."""
    aliases: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str | None] = None
    """Used when neither ``base_url`` nor ``AI21_API_HOST`` is given (``None``: required)."""
    api_key_env: ClassVar[str | None] = None
    """Environment variable read when no ``api_key`` is passed (``None``: none is read)."""
    api_key_required: ClassVar[bool] = False
    model_required: ClassVar[bool] = False
    """Whether ``model`` must be given."""
    limits: ClassVar[Limits]
    lists_models: ClassVar[bool] = False
    """Whether the server can be asked what it serves (:meth:`learn`): then ``model`` is
    optional (the served one, learned on first need); ``False``: never asked."""
    owned_by: ClassVar[frozenset[str]] = frozenset()
    """``owned_by`` values of ``GET {base_url}/models`` entries that mark this server."""
    adopts_recognised_server: ClassVar[bool] = False
    """Whether this kind (the generic OpenAI-compatible one) becomes the kind of the server it
    recognises on first need (:func:`discover`)."""

    # What the server does with reasoning, tool_choice and documents (docs/self-hosted.md).
    reasoning_fields: ClassVar[tuple[str, ...]] = ("reasoning", "reasoning_content")
    """The assistant-message field(s) that carry earlier reasoning back to the server inside a
    tool loop (vLLM and Ollama read ``reasoning``, llama.cpp and LM Studio
    ``reasoning_content``; both for a server not known)."""
    tool_choice_support: ClassVar[ToolChoiceSupport] = "native"
    """How ``tool_choice`` reaches the server: ``"native"`` (``"required"`` and a named function
    sent as they are, every tool offered), ``"required_only"`` (a named function becomes only
    that tool, offered with ``"required"``), ``"ignored"`` (the field is dropped by the server:
    never sent; a named function offers only that tool; ``tool_required`` logged as not
    enforceable) or ``"emulated"`` (no field: a named function offers only that tool)."""
    reads_documents: ClassVar[bool] = True
    """Whether the server hands a ``documents`` request field to the chat template (documents
    go as the field only where this **and** the model's template read them, else into the
    prompt)."""
    key_setting: ClassVar[str] = "it was started with --api-key"
    """Why a server of this kind wants a key, for the note on its 401 or 403 without one
    (vLLM's, SGLang's and llama-server's flag)."""
    tool_call_advice: ClassVar[str | None] = None
    """What a tool call left as text the package cannot read says to do, for this kind of
    server (``{flags}``: vLLM's for the model's format, ``{models}``: whose recipe they are);
    ``None``: start the server with vLLM's flags (docs/self-hosted.md)."""
    missing_key_message: ClassVar[str] = "No API key: pass api_key=..."
    """The ``ValueError`` message when ``api_key_required`` and no key was found."""
    checks_calls: ClassVar[bool] = False
    """Whether :meth:`check_call` is overridden (set for each subclass): ``base.py`` calls it
    only then, so that a plain request never runs code in this package."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.checks_calls = cls.check_call is not Deployment.check_call

    # ------------------------------------------------------------------ choosing one

    @classmethod
    def claims(cls, url: httpx.URL) -> bool:
        """Whether ``url`` is unmistakably this kind's (used when ``deployment`` is not given)."""
        return False

    @classmethod
    def api_root(cls, url: httpx.URL) -> httpx.URL:
        """The API's root for a ``base_url`` (checked), to which requests' paths are added."""
        return url

    def check(self, model: str) -> None:
        """Raise ``ValueError`` for a model this deployment cannot serve."""

    # ------------------------------------------------------------------ requests

    def headers(self, api_key: str | None, extra: Mapping[str, str]) -> dict[str, str]:
        """Every request header: JSON, our user agent, the codings the HTTP layer decodes
        within bounds (``_http.ACCEPT_ENCODING``: httpx would also ask for br and zstd), the
        bearer key (if any), then ``extra``."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(extra)
        return headers

    def dialect(self, model: str) -> Dialect:
        """How requests for ``model`` are written and answers read."""
        return JambaChat(self)

    def stream_fields(self) -> dict[str, Any]:
        """Fields added to every streamed chat request (the caller's own keywords win)."""
        return {}

    def documents(self, documents: Sequence[Any]) -> list[dict[str, Any]]:
        """The request's ``documents`` field for the ``documents=`` argument."""
        raise NotImplementedError

    def model_info(self, model: str) -> ModelInfo:
        """Static facts about ``model`` (never raises for an unknown name)."""
        return model_info(model)

    def knows(self, model: str) -> bool:
        """Whether the model table has ``model`` (as this deployment's servers name it)."""
        return is_known(model)

    # ------------------------------------------------------------------ knowing the server

    served: Served | None = None
    """What the server said about itself (set on the instance once it was asked)."""

    def __init__(self) -> None:
        self._warned: set[str] = set()  # the topics first_warning has said

    def first_warning(self, topic: str) -> bool:
        """Whether a warning about ``topic`` is due: the first time for this instance, which
        is the ``AI21`` instance's (its dialects are not: a per-call ``model=`` gets one of its
        own at each call, and the model's is made anew once the server was asked)."""
        if topic in self._warned:
            return False
        self._warned.add(topic)
        return True

    @classmethod
    def identify(cls, ask: Ask) -> bool:
        """Whether the server behind ``ask`` is this kind, for a server whose ``/models``
        entries did not say (one request at most; default: never)."""
        return False

    def learn(self, ask: Ask, model: str | None, listed: list[dict[str, Any]]) -> Served:
        """What the server serves and accepts, from its ``GET /models`` entries ``listed``
        (vLLM's and SGLang's ``max_model_len``) and whatever else this kind asks.

        ``model`` is the name given, or ``None``: then the served model, if there is one.
        """
        served = names(listed, "id")
        if model is None and len(served) == 1:
            model = served[0]
        entry = next((e for e in listed if e.get("id") == model), None)
        notes = []
        if entry is None and model is not None and listed:
            notes.append(
                f"the server does not list model {shown_name(model)} with a max_model_len "
                f"(it serves {shown_names(served)})"
            )
        root = entry.get("root") if entry else None
        return Served(
            kind=self.kind,
            model=model,
            models=served,
            root=root if isinstance(root, str) and root else None,
            context_window=context_length(entry.get("max_model_len")) if entry else None,
            notes=tuple(notes),
        )

    def check_call(self, body: dict[str, Any], served: Served | None) -> None:
        """Last look at a request body before it is sent: say (or refuse) what this server
        would silently lose. Default: nothing to say."""

    def error(self, exc: Exception) -> Exception:
        """The exception callers get for ``exc``, a failed request (after retries): the same
        one, unless the deployment knows better (AI21's retired API: a 410 that says so)."""
        return exc


@cache
def kinds() -> dict[str, type[Deployment]]:
    """Every deployment kind in this package, by name and alias."""
    found: dict[str, type[Deployment]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        cls = getattr(module, "DEPLOYMENT", None)
        if isinstance(cls, type) and issubclass(cls, Deployment):
            for name in (cls.kind, *cls.aliases):
                found[name] = cls
    return found


DEFAULT_KIND = "ai21"


def choose(kind: str | None, base_url: str | None) -> type[Deployment]:
    """The deployment class for ``kind``, or the one whose URL ``base_url`` is.

    Without ``kind``: the kind that claims the URL (AI21's host or a ``/studio/v1`` path is
    AI21's; a path ending in ``/v1`` is an OpenAI-compatible server's), else AI21's hosted API.
    """
    available = kinds()
    if kind is not None:
        cls = available.get(kind)
        if cls is None:
            names = ", ".join(repr(k) for k in sorted(available))
            close = difflib.get_close_matches(str(kind).lower(), available, n=1)
            hint = f": did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"deployment={kind!r} is not a known deployment kind ({names}){hint}")
        return cls
    if base_url is not None:
        url = parse_base_url(base_url)
        for cls in dict.fromkeys(available.values()):
            if cls.claims(url):
                return cls
    return available[DEFAULT_KIND]


def discover(deployment: Deployment, ask: Ask, model: str | None) -> tuple[Deployment, Served]:
    """Ask the server once: which kind it is (when ``deployment`` adopts the server it
    recognises) and what it serves. Never raises for what the server answers."""
    listing = ask.get("/models")
    listed = entries(listing)
    if deployment.adopts_recognised_server and listing is not None:
        deployment = recognise(listed, ask) or deployment
    return deployment, deployment.learn(ask, model, listed)


def recognise(listed: list[dict[str, Any]], ask: Ask) -> Deployment | None:
    """The deployment of the server whose ``/models`` entries are ``listed``: by their
    ``owned_by``, else by a kind's own probe (:meth:`Deployment.identify`)."""
    owners = {owner for e in listed if isinstance(owner := e.get("owned_by"), str)}
    candidates = [c for c in dict.fromkeys(kinds().values()) if not c.adopts_recognised_server]
    for cls in candidates:
        if cls.owned_by & owners:
            return cls()
    for cls in candidates:
        if cls.identify(ask):
            return cls()
    return None


def parse_base_url(base_url: str) -> httpx.URL:
    """``base_url`` as a URL, or a ``ValueError`` that says what is wrong with it."""
    if not isinstance(base_url, str | httpx.URL):
        raise ValueError(f"base_url must be a string, got {type(base_url).__name__}")
    text, _ = shown_url(str(base_url))
    shown = repr(text)
    try:
        url = httpx.URL(base_url)
        failure = None
    except httpx.InvalidURL as exc:
        failure = exc
    if failure is not None:  # raised out here: not even the implicit context is kept
        detail = shown_url(str(base_url), str(failure))[1]
        error = ValueError(f"base_url {shown} is not a valid URL: {detail}")
        # With a password, not chained: httpx's message may quote a piece of it (the
        # "port" of http://user:pass/word@host), which ours masks.
        raise error from (failure if text == str(base_url) else None)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url {shown} must be an http:// or https:// URL with a host, "
            "e.g. https://api.ai21.com/studio/v1 or http://localhost:8000/v1"
        )
    if url.query or url.fragment:
        raise ValueError(f"base_url {shown} must not have a query or fragment")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"base_url {shown} has port {url.port}; a port is 1 to 65535")
    path = url.path.rstrip("/")
    for route in API_ROUTES:
        if path.endswith(route):
            # A URL pasted from a server's docs or a curl line: requests would go to
            # .../chat/completions/chat/completions and get a 404 that names no cause.
            root = url.copy_with(path=path.removesuffix(route) or "/")
            raise ValueError(
                f"base_url {shown} ends in the route {route}: give the API's root, "
                f"base_url={masked(root).rstrip('/')!r} (requests add {CHAT_PATH} to it)"
            )
    return url


API_ROUTES = ("/chat/completions", "/completions", "/models")
"""Routes under an API's root: a ``base_url`` ending in one is a route, not the root."""
