"""The request pipeline, without I/O: record -> fault -> route and auth -> answer -> fault plan.

:func:`handle` turns one request into an :class:`Outcome`: the :class:`Response` to send and
the fault whose timing effects (``delay``, ``stream_delay``, ``stall_after``, ``drop_after``,
``Retry-After``) the HTTP server applies while writing it. Everything else a fault does to the
bytes (an error status, a truncated body or event, an error event inside a stream) is done here,
so it is the same for every flavour and testable without a socket.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._faults import Fault, fault_from_json
from ._flavour import CHAT, ChatContext, Route
from ._scenario import Response
from ._state import EmulatorState, RecordedRequest, bearer_token, public_headers

FAULT_HEADER = "X-Emulator-Fault"
ANSWER_TOKENS_HEADER = "X-Emulator-Answer-Tokens"
CACHED_TOKENS_HEADER = "X-Emulator-Cached-Tokens"

_logger = logging.getLogger(__name__.rsplit(".", 1)[0])
_INVALID = object()  # marker: the body was not JSON


@dataclass(frozen=True)
class Incoming:
    """One API request as received (``headers`` may be any case-insensitive mapping)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    """What to send, the fault to apply while sending, and the model (for the request log)."""

    response: Response
    fault: Fault | None
    model: str | None


def handle(state: EmulatorState, incoming: Incoming) -> Outcome:
    """Record the request, then answer it as the state's flavour would, faults applied."""
    parsed: Any = _INVALID
    if incoming.body:
        try:
            parsed = json.loads(incoming.body)
        except ValueError:
            parsed = _INVALID
    headers = {k.lower(): v for k, v in incoming.headers.items()}  # one pass, then O(1) lookups
    authorization = headers.get("authorization")
    state.record(
        RecordedRequest(
            method=incoming.method,
            path=incoming.path,
            headers=public_headers(incoming.headers),
            api_key=bearer_token(authorization),
            json=None if parsed is _INVALID else parsed,
            raw_body=incoming.body,
        )
    )
    model = parsed.get("model") if isinstance(parsed, dict) else None
    model = model if isinstance(model, str) else None
    flavour = state.flavour
    fault: Fault | None = None
    try:
        header = headers.get(FAULT_HEADER.lower())
        if header is not None:
            try:
                data = json.loads(header)
                if not isinstance(data, dict):
                    raise ValueError("the header must hold one JSON object")
                fault = fault_from_json(data)[0]
            except ValueError as exc:
                return Outcome(
                    flavour.error(400, f"Invalid {FAULT_HEADER} header: {exc}"), None, model
                )
        else:
            fault = state.faults.take(incoming.path)
        if fault is not None and fault.status is not None:
            return Outcome(flavour.error(fault.status), fault, model)
        target = flavour.gate(incoming.method, incoming.path, authorization, state.api_keys)
        if isinstance(target, Route) and target.model is not None:
            model = target.model
        response = _answer(state, incoming, headers, target, parsed)
    except Exception:
        # A bug in the emulator (or in a test's handler) must not look like a transport problem:
        # answer 500 as the real service would, and say why on the logger.
        _logger.exception("AI21 emulator failed on %s %s", incoming.method, incoming.path)
        return Outcome(flavour.error(500), None, model)
    return Outcome(apply_fault(state, response, fault), fault, model)


def _answer(
    state: EmulatorState,
    incoming: Incoming,
    headers: Mapping[str, str],
    target: Route | Response,
    parsed: Any,
) -> Response:
    flavour = state.flavour
    if isinstance(target, Response):
        return target
    refused = flavour.check_content_type(target, headers.get("content-type"))
    if refused is not None:
        return refused
    if target.needs_body and parsed is _INVALID:
        return flavour.unparsable(incoming.body)
    if target.kind != CHAT:
        return flavour.serve(target, parsed, ChatContext(reply_id=""))
    counts: dict[str, int | None] = {}
    for name in (ANSWER_TOKENS_HEADER, CACHED_TOKENS_HEADER):
        value = headers.get(name.lower())
        if value is not None and not (value.isascii() and value.isdigit() and len(value) <= 7):
            return flavour.error(
                400, f"Invalid {name} header: expected a whole number of tokens up to 9999999"
            )
        counts[name] = None if value is None else int(value)
    context = ChatContext(
        reply_id=flavour.new_id(),
        created=int(time.time()),
        answer_tokens=counts[ANSWER_TOKENS_HEADER],
        cached_tokens=counts[CACHED_TOKENS_HEADER],
        take_script=state.script.take,
    )
    return flavour.chat(parsed, context)


def apply_fault(state: EmulatorState, response: Response, fault: Fault | None) -> Response:
    """The byte-level part of a fault: truncation and in-stream error events."""
    if fault is None:
        return response
    flavour = state.flavour
    events = response.events
    if events is None:
        if fault.malformed_after is not None:
            return replace(response, body=response.body[: max(1, len(response.body) // 2)])
        return response
    if fault.stream_error_after is not None:
        # Events up to and including the role event + N, never past the last data event.
        keep = min(1 + fault.stream_error_after, len(events) - 1)
        error = flavour.stream_error_event(fault.stream_error_code, fault.stream_error_message)
        events = (*events[:keep], error, flavour.done())
    if fault.malformed_after is not None and fault.malformed_after < len(events):
        cut = fault.malformed_after
        events = (*events[:cut], flavour.truncated_event(events[cut]))
    return replace(response, events=events)
