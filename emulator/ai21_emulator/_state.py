"""State shared between the server thread and the threads that drive an Emulator."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._faults import FaultQueue
from ._script import Script

if TYPE_CHECKING:
    from ._flavour import Flavour

# Headers that can carry a credential; never recorded (Azure-style clients send ``api-key``).
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
REDACTED = "<redacted>"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it, without its credentials.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Request path without the query string, e.g. ``"/studio/v1/chat/completions"``.
        headers: Request headers except ``Authorization`` (and ``api-key``/``x-api-key``).
        api_key: The bearer token that was sent, or None. Hidden from ``repr``.
        json: The parsed JSON body, or None if there was none or it was not JSON.
        raw_body: The body bytes as received. Hidden from ``repr``.
    """

    method: str
    path: str
    headers: dict[str, str]
    api_key: str | None = field(repr=False)
    json: Any
    raw_body: bytes = field(repr=False)

    def to_public_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_emulator/requests``: the key is replaced by a marker."""
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "api_key": None if self.api_key is None else REDACTED,
            "json": self.json,
            "raw_body": self.raw_body.decode("utf-8", errors="replace"),
        }


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme is case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def public_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers minus credentials."""
    return {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}


class EmulatorState:
    """The flavour, accepted keys (none: no auth, vLLM only), recorded requests, pending faults,
    scripted replies and the optional request logger."""

    def __init__(
        self,
        api_keys: Iterable[str],
        flavour: Flavour,
        script: Script,
        max_records: int | None = None,
    ) -> None:
        self.api_keys: frozenset[str] = frozenset(api_keys)
        self.flavour = flavour
        self.script = script
        self.faults = FaultQueue()
        self.log: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        # The newest ``max_records`` (all when None): a long-running server keeps bounded memory.
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._records.append(request)

    def records(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def last_record(self) -> RecordedRequest | None:
        with self._lock:
            return self._records[-1] if self._records else None

    def clear_records(self) -> int:
        with self._lock:
            cleared = len(self._records)
            self._records.clear()
            return cleared
