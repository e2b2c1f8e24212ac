"""The :class:`Emulator` handle: start/stop the server thread, read records, script faults.

aiohttp is imported only when a server starts, so importing this module (e.g. from the pytest
plugin) stays cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._catalog import DEFAULT_MAX_MODEL_LEN
from ._faults import Fault
from ._script import Handler, Reply, Script, ToolCall
from ._state import EmulatorState, RecordedRequest

if TYPE_CHECKING:
    from ._flavour import Flavour
    from ._server import ServerThread

DEFAULT_API_KEY = "emulator-key"
FLAVOURS = ("ai21", "vllm")


class Emulator:
    """An offline AI21 Studio API (or a vLLM server serving Jamba) on loopback.

    Args:
        api_keys: Bearer tokens to accept. A single string is taken as one key. Default: for
            ``"ai21"`` only ``DEFAULT_API_KEY``; for ``"vllm"`` none, so no key is needed (a
            server started without ``--api-key``).
        host: Interface to listen on.
        port: TCP port; 0 picks a free one (see ``base_url`` after ``start()``).
        flavour: ``"ai21"`` (AI21's hosted API, ``/studio/v1``) or ``"vllm"`` (vLLM's
            OpenAI-compatible server, ``/v1``); see docs/emulator.md.
        handler: Called with the JSON body of every valid chat request that has no queued
            :meth:`script` reply; returns the :class:`Reply` to send, or None to answer as usual.
        models: vLLM only: the served model names (default: AI21's open models by Hugging Face
            id, e.g. ``ai21labs/AI21-Jamba2-Mini``).
        max_model_len: vLLM only: the context length in ``/v1/models`` and for the
            ``max_tokens`` check (default 262144).
        reasoning: vLLM only: True makes every model reason, False none; None (default): only
            ``ai21labs/AI21-Jamba-Reasoning-3B``.
        reasoning_field: vLLM only: ``"reasoning"`` (default) or ``"reasoning_content"``.
        force_include_usage: vLLM only: every stream ends with a usage chunk, asked for or not
            (the server flag ``--enable-force-include-usage``).
        parsers: vLLM only: False answers as a server started without ``--reasoning-parser``,
            ``--enable-auto-tool-choice`` and ``--tool-call-parser``: reasoning stays in
            ``content`` (``...</think>``), and tools with ``tool_choice`` ``"auto"`` (the
            default) get vLLM's 400 naming the flags.
        unparsed_tool_calls: vLLM only, with ``parsers=False``: accept tools anyway and leave
            the model's calls in ``content`` as it wrote them (``<tool_call>...</tool_call>``),
            as a server of another kind without a tool parser (SGLang) does.
        max_records: Keep only the newest this many recorded requests (:attr:`requests`,
            ``GET /_emulator/requests``), so a server that runs for long holds bounded memory
            (about 5 KiB a request of 1.3 KB). Default None: keep every one.

    Example:
        >>> import httpx
        >>> from ai21 import AI21Client
        >>> from ai21.models.chat import UserMessage
        >>> from ai21_emulator import Emulator
        >>> with Emulator() as emu, httpx.Client() as http:
        ...     client = AI21Client(api_key=emu.api_key, api_host=emu.base_url, http_client=http)
        ...     reply = client.chat.completions.create(
        ...         model="jamba-mini", messages=[UserMessage(content="Hi")]
        ...     )
        >>> reply.choices[0].message.content
        'This is the AI21 emulator (jamba-mini), not a real model. You said: Hi'
    """

    def __init__(
        self,
        api_keys: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        flavour: str = "ai21",
        handler: Handler | None = None,
        models: Sequence[str] | None = None,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        reasoning: bool | None = None,
        reasoning_field: str = "reasoning",
        force_include_usage: bool = False,
        parsers: bool = True,
        unparsed_tool_calls: bool = False,
        max_records: int | None = None,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
        vllm_options = {
            "models": models is not None,
            "max_model_len": max_model_len != DEFAULT_MAX_MODEL_LEN,
            "reasoning": reasoning is not None,
            "reasoning_field": reasoning_field != "reasoning",
            "force_include_usage": force_include_usage,
            "parsers": not parsers,
            "unparsed_tool_calls": unparsed_tool_calls,
        }
        if flavour != "vllm" and any(vllm_options.values()):
            named = ", ".join(name for name, given in vllm_options.items() if given)
            raise ValueError(f"{named}: only for flavour='vllm'")
        if handler is not None and not callable(handler):
            raise TypeError("handler must be callable")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            # getaddrinfo would take 70000 as 4464 and "8021" as a service name
            raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1
        ):
            raise ValueError(f"max_records must be None or an integer >= 1, not {max_records!r}")
        if api_keys is None:
            keys: tuple[str, ...] = (DEFAULT_API_KEY,) if flavour == "ai21" else ()
        else:
            keys = (api_keys,) if isinstance(api_keys, str) else tuple(api_keys)
            if not all(isinstance(k, str) and k for k in keys):
                raise ValueError("api_keys must hold non-empty strings")
            if not keys and flavour == "ai21":
                raise ValueError("api_keys must hold at least one non-empty string")
        # The flavours (and the answer generator) load here, not at import: the pytest plugin
        # imports this module in every test session of every user.
        chosen: Flavour
        if flavour == "vllm":
            from ._flavour_vllm import VllmFlavour

            chosen = VllmFlavour(
                models=models,
                max_model_len=max_model_len,
                reasoning=reasoning,
                reasoning_field=reasoning_field,
                force_include_usage=force_include_usage,
                created=int(time.time()),
                parsers=parsers,
                unparsed_tool_calls=unparsed_tool_calls,
            )
        else:
            from ._flavour_ai21 import AI21Flavour

            chosen = AI21Flavour()
        self._keys = keys
        self._host = host
        self._port = port
        self._handler = handler
        self._state = EmulatorState(keys, chosen, Script(handler), max_records)
        self._server: ServerThread | None = None
        self._lifecycle = threading.Lock()

    @property
    def flavour(self) -> str:
        """``"ai21"`` or ``"vllm"``."""
        return self._state.flavour.name

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<Emulator {where}>"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving (no-op if already running). Returns ``self``."""
        with self._lifecycle:
            if self._server is None:
                from ._server import ServerThread

                server = ServerThread(self._state, self._host, self._port)
                server.start()
                self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Idempotent."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is not None:
                server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The TCP port being served (the real one when created with ``port=0``)."""
        return self._running_server().address[1]

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:8021``; control endpoints live under ``/_emulator``."""
        host, port = self._running_server().address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The API's base URL: ``http://HOST:PORT/studio/v1`` (pass it as
        ``AI21Client(api_host=...)``), or ``http://HOST:PORT/v1`` for vLLM."""
        return self.url + self._state.flavour.api_root

    @property
    def api_key(self) -> str | None:
        """The first accepted API key; None when no key is needed (vLLM without keys)."""
        return self._keys[0] if self._keys else None

    def _running_server(self) -> ServerThread:
        server = self._server
        if server is None:
            raise RuntimeError("the emulator is not running; call start() or use `with Emulator()`")
        return server

    # -- records and faults ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, in arrival order (a snapshot copy; the newest
        ``max_records`` when that is set)."""
        return self._state.records()

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request. Raises LookupError if none has arrived yet."""
        record = self._state.last_record()
        if record is None:
            raise LookupError("the emulator has not received any request yet")
        return record

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to its next ``count`` matching requests, in FIFO order."""
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected Fault, got {type(fault).__name__}")
        self._state.faults.push(faults)

    def script(self, *replies: Reply) -> None:
        """Queue exact answers: each valid chat request takes the next one, in order.

        Faults apply first (a request answered with an injected status takes no reply), and a
        request that fails validation takes none either. See :class:`Reply`.
        """
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected Reply, got {type(reply).__name__}")
        self._state.script.push(replies)

    def reply_next(
        self,
        content: str | None = None,
        *,
        tool_calls: Sequence[ToolCall | Mapping[str, Any]] = (),
        reasoning: str | None = None,
        finish_reason: str | None = None,
        usage: Mapping[str, int] | None = None,
    ) -> Reply:
        """Queue one exact answer (``script(Reply(...))`` in one call) and return it.

        ``tool_calls`` may hold :class:`ToolCall` objects or ``{"name", "arguments", "id"}``
        mappings.

        Example:
            >>> from ai21_emulator import Emulator
            >>> emu = Emulator()
            >>> emu.reply_next(tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])
            ... # doctest: +ELLIPSIS
            Reply(content=None, tool_calls=(ToolCall(name='multiply', ...),), ...)
        """
        calls = [
            call
            if isinstance(call, ToolCall)
            else ToolCall(call["name"], call.get("arguments", {}), call.get("id"))
            for call in tool_calls
        ]
        reply = Reply(content, calls, reasoning, finish_reason, usage)
        self.script(reply)
        return reply

    @property
    def handler(self) -> Handler | None:
        """The reply handler (see the constructor); settable, restored by :meth:`reset`."""
        return self._state.script.handler

    @handler.setter
    def handler(self, handler: Handler | None) -> None:
        if handler is not None and not callable(handler):
            raise TypeError("handler must be callable")
        self._state.script.handler = handler

    @property
    def pending_replies(self) -> int:
        """How many scripted replies are still queued."""
        return self._state.script.pending()

    def reset(self) -> None:
        """Forget recorded requests, drop pending faults and scripted replies, and restore the
        constructor's handler."""
        self._state.clear_records()
        self._state.faults.clear()
        self._state.script.clear()
        self._state.script.handler = self._handler
