"""Fault injection plan: what to break, for which requests, and a thread-safe FIFO of faults."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for the next matching request(s).

    Args:
        status: Answer with this HTTP error status (400-599) instead of the real response. The body
            is ``{"detail": "<reason phrase>"}`` like FastAPI's; 401 uses the live text
            ``{"detail":"Forbidden: Bad or missing API token."}``, 410 the retired API's text
            (``{"detail":"This API has been retired. ..."}``) and 422 a FastAPI-style list.
        count: How many matching requests this fault applies to.
        every: Apply to one matching request in every ``every`` (the first, then every
            ``every``-th), letting the others through untouched: with ``count=50, every=20``
            about 5% of the next 1,000 requests fail. ``1`` (default) hits consecutive requests.
        retry_after: Sent as the ``Retry-After`` header (e.g. ``"2"`` or an HTTP date).
        delay: Seconds to wait before sending the response headers.
        stream_delay: Seconds to wait between stream events.
        drop_after: Close the connection abruptly after this many stream events, without the
            chunked terminator. On a non-streaming request: after half the body.
        malformed_after: After this many good stream events send one truncated ``data:`` line,
            then end the stream. On a non-streaming request: a truncated JSON body.
        stall_after: For streams: after this many events go silent, connection held open,
            for ``stall_seconds`` (then carry on) -- a server that hangs mid-answer.
        stall_seconds: How long a ``stall_after`` stall lasts.
        stall_keep_alive: During a ``stall_after`` stall, send an SSE comment
            (``: keep-alive``) every this many seconds: a proxy keeping the connection of a
            stalled model open, so that no read ever times out. ``None`` (default): silence.
        stream_error_after: For streams: after the first event and this many more (0: right
            after the role event), send an error event ``data: {"error": {"message": ...,
            "type": ..., "code": ...}}`` and then ``data: [DONE]``, on HTTP 200: how vLLM reports
            an engine failure mid-stream (docs/emulator.md). Non-streaming requests are not
            affected.
        stream_error_code: The ``code`` of that error event (400-599); its ``type`` is the
            status phrase in CamelCase + ``Error`` (500: ``InternalServerError``).
        stream_error_message: The ``message`` of that error event.
        path_contains: Only requests whose path contains this string match.

    Example:
        >>> from ai21_emulator import Fault
        >>> Fault(status=429, count=2, retry_after="1")  # doctest: +ELLIPSIS
        Fault(status=429, count=2, every=1, retry_after='1', delay=0.0, ...)
    """

    status: int | None = None
    count: int = 1
    every: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    stream_delay: float = 0.0
    drop_after: int | None = None
    malformed_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 10.0
    stall_keep_alive: float | None = None
    stream_error_after: int | None = None
    stream_error_code: int = 500
    stream_error_message: str = "The engine failed while generating (injected fault)."
    path_contains: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not (_is_int(self.status) and 400 <= self.status <= 599):
            raise ValueError(
                f"Fault.status must be an HTTP error status 400-599, not {self.status!r}"
            )
        for name in ("count", "every"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise ValueError(f"Fault.{name} must be an integer >= 1, not {value!r}")
        for name in ("delay", "stream_delay", "stall_seconds"):
            value = getattr(self, name)
            if not (_is_number(value) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"Fault.{name} must be a finite number >= 0, not {value!r}")
        keep_alive = self.stall_keep_alive
        if keep_alive is not None and not (
            _is_number(keep_alive) and keep_alive > 0 and math.isfinite(keep_alive)
        ):
            raise ValueError(
                f"Fault.stall_keep_alive must be a finite number > 0 or None, not {keep_alive!r}"
            )
        if not (_is_int(self.stream_error_code) and 400 <= self.stream_error_code <= 599):
            raise ValueError(
                "Fault.stream_error_code must be an HTTP error status 400-599, "
                f"not {self.stream_error_code!r}"
            )
        for name in ("drop_after", "malformed_after", "stall_after", "stream_error_after"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value >= 0):
                raise ValueError(f"Fault.{name} must be an integer >= 0 or None, not {value!r}")
        if not isinstance(self.stream_error_message, str):
            raise ValueError("Fault.stream_error_message must be a string")
        for name in ("retry_after", "path_contains"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Fault.{name} must be a string or None, not {value!r}")
        if self.retry_after is not None and ("\n" in self.retry_after or "\r" in self.retry_after):
            raise ValueError("Fault.retry_after must not contain line breaks")

    def matches(self, path: str) -> bool:
        """Whether this fault applies to a request for ``path``."""
        return self.path_contains is None or self.path_contains in path


_FIELDS = frozenset(f.name for f in dataclasses.fields(Fault))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fault_from_json(data: Any) -> list[Fault]:
    """Faults from JSON (one object or a list), as sent in ``X-Emulator-Fault`` or to
    ``POST /_emulator/faults``. Raises ValueError naming the problem."""
    items = data if isinstance(data, list) else [data]
    faults = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError("a fault must be a JSON object")
        unknown = sorted(set(item) - _FIELDS)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        try:
            faults.append(Fault(**item))
        except TypeError as exc:  # pragma: no cover - guarded by the field check above
            raise ValueError(str(exc)) from exc
    return faults


def fault_to_json(fault: Fault) -> dict[str, Any]:
    """The JSON object form of ``fault`` (inverse of :func:`fault_from_json`)."""
    return dataclasses.asdict(fault)


class FaultQueue:
    """Pending faults; each applies to the next ``count`` matching requests, in FIFO order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[list[Any]] = deque()  # [fault, remaining uses, requests seen]

    def push(self, faults: Iterable[Fault]) -> int:
        with self._lock:
            added = 0
            for fault in faults:
                self._pending.append([fault, fault.count, 0])
                added += 1
            return added

    def take(self, path: str) -> Fault | None:
        """Consume one use of the first pending fault that matches ``path``."""
        with self._lock:
            for entry in self._pending:
                fault: Fault = entry[0]
                if fault.matches(path):
                    entry[2] += 1
                    if (entry[2] - 1) % fault.every:
                        return None  # this one passes; the fault waits for its turn
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._pending.remove(entry)
                    return fault
            return None

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._pending)
            self._pending.clear()
            return cleared

    def pending(self) -> list[tuple[Fault, int]]:
        """Snapshot of (fault, remaining uses)."""
        with self._lock:
            return [(entry[0], entry[1]) for entry in self._pending]
