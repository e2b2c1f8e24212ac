"""AI21's hosted Studio API (the default flavour), as docs/emulator.md describes it.

FastAPI's order of checks: unknown route -> 404, wrong method -> 405 (both before auth), then
``Authorization: Bearer`` -> 401, then body validation -> 422 ``{"detail": [...]}``. Ids are
``chatcmpl-<uuid4>`` with a ``request-id`` header holding the uuid, and stream events end with
CRLF CRLF, as recordings of the live API show (2025-01).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from . import _catalog, _scenario, _validation
from ._flavour import CHAT, J2_CHAT, J2_COMPLETE, MODELS, ChatContext, Flavour, Route, json_default
from ._scenario import Choice, Response, json_bytes
from ._state import bearer_token
from ._validation import body_not_object, error, hosted_limits, validate_chat

API_ROOT = "/studio/v1"
ID_PREFIX = "chatcmpl-"
UNAUTHORIZED_DETAIL = "Forbidden: Bad or missing API token."
# What every hosted route has answered since 2026-08-09 (AI21's deprecation notice;
# Fault(status=410) replays it).
RETIRED_DETAIL = (
    "This API has been retired. The AI21 Gateway is available at https://app.ai21.com \u2014 "
    "see https://docs.ai21.com/august-deprecation-notice"
)


def route(method: str, path: str) -> Route | Response:
    """Resolve an API request to a :class:`Route`, or to FastAPI's 404 or 405 (the latter with
    the ``Allow`` header Starlette sends, naming the route's method).

    Routes are served under ``/studio/v1`` and, for SDKs that drop the prefix, without it.
    J2 routes exist only for J2 models: ``/jamba-mini/complete`` is an unknown route (404).
    """
    if path.startswith(API_ROOT + "/"):
        path = path[len(API_ROOT) :]
    target: Route | None = None
    allowed = "POST"
    if path == "/chat/completions":
        target = Route(CHAT)
    elif path == "/models":
        target, allowed = Route(MODELS), "GET"
    else:
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "" and parts[1] in _catalog.J2_IDS:
            kinds = {"complete": J2_COMPLETE, "chat": J2_CHAT}
            if parts[2] in kinds:
                target = Route(kinds[parts[2]], parts[1])
    if target is None:
        return NOT_FOUND
    if method != allowed:
        return method_not_allowed(allowed)
    return target


def error_reply(status: int, detail: Any = None, model: str | None = None) -> Response:
    """``{"detail": ...}`` error; the detail defaults to FastAPI's (the HTTP reason phrase)."""
    if detail is None:
        if status == 401:
            detail = UNAUTHORIZED_DETAIL
        elif status == 410:
            detail = RETIRED_DETAIL
        elif status == 422:
            detail = [error(("body",), "Emulated validation error (injected fault)", "value_error")]
        else:
            try:
                detail = HTTPStatus(status).phrase
            except ValueError:
                detail = "Error"
    return Response(status, json_bytes({"detail": detail}), model=model)


def parse_body(raw: bytes) -> tuple[Any, Response | None]:
    """Parse a JSON request body the way FastAPI reports problems (422)."""
    if not raw.strip():
        return None, Response(
            422, json_bytes({"detail": [error(("body",), "Field required", "missing")]})
        )
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "Invalid UTF-8"
        entry = error(("body", pos), "JSON decode error", "json_invalid")
        entry["ctx"] = {"error": reason}
        return None, Response(422, json_bytes({"detail": [entry]}))


def method_not_allowed(allowed: str) -> Response:
    """FastAPI's 405: ``{"detail":"Method Not Allowed"}`` and ``Allow`` (RFC 9110, 15.5.6)."""
    return dataclasses.replace(error_reply(405), headers={"Allow": allowed})


UNAUTHORIZED = error_reply(401)
NOT_FOUND = error_reply(404)
MODELS_REPLY = Response(200, _catalog.MODELS_BODY)


def completion_body(
    chat_id: str, choices: Sequence[Choice], usage: dict[str, int]
) -> dict[str, Any]:
    """The non-streaming body (AI21's chat completions reference); ``reasoning_content`` only
    when there is one (the 2026 spec's optional assistant field)."""
    out = []
    for i, choice in enumerate(choices):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.content,
            "tool_calls": [c.to_json() for c in choice.tool_calls] if choice.tool_calls else None,
        }
        if choice.reasoning is not None:
            message["reasoning_content"] = choice.reasoning_text
        out.append(
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    return {"id": chat_id, "choices": out, "usage": usage}


class AI21Flavour(Flavour):
    """AI21's hosted API: ``/studio/v1``, FastAPI errors, CRLF-framed streams."""

    name: ClassVar[str] = "ai21"
    api_root: ClassVar[str] = API_ROOT
    event_end: ClassVar[bytes] = b"\r\n\r\n"

    def gate(
        self, method: str, path: str, authorization: str | None, keys: frozenset[str]
    ) -> Route | Response:
        target = route(method, path)
        if isinstance(target, Response):
            return target
        token = bearer_token(authorization)
        if token is None or token not in keys:
            return UNAUTHORIZED
        return target

    def new_id(self) -> str:
        return ID_PREFIX + str(uuid.uuid4())

    def reply_headers(self, reply_id: str) -> dict[str, str]:
        return {"request-id": reply_id.removeprefix(ID_PREFIX)}

    def error(self, status: int, message: str | None = None) -> Response:
        return error_reply(status, message)

    def unparsable(self, raw: bytes) -> Response:
        _, problem = parse_body(raw)
        assert problem is not None
        return problem

    def dumps(self, obj: Any) -> bytes:
        return json_default(obj)

    def chat(self, body: Any, context: ChatContext) -> Response:
        if not isinstance(body, dict):
            return _scenario._validation_failed(body_not_object(body))
        request, errors = validate_chat(body, hosted_limits())
        if request is None:
            model = body.get("model")
            return _scenario._validation_failed(errors, model if isinstance(model, str) else None)
        plan = _scenario.plan_chat(
            request,
            body,
            max_tokens=(
                _validation.MAX_TOKENS_LIMIT if request.max_tokens is None else request.max_tokens
            ),
            answer_tokens=context.answer_tokens,
            scripted=context.take_script(body),
        )
        headers = self.reply_headers(context.reply_id)
        if request.stream:
            events = self._stream_events(context.reply_id, plan.choices[0], plan.usage)
            return Response(200, events=events, model=request.model, headers=headers)
        body_json = completion_body(context.reply_id, plan.choices, plan.usage)
        return Response(200, json_bytes(body_json), model=request.model, headers=headers)

    def serve(self, route: Route, body: Any, context: ChatContext) -> Response:
        if route.kind == MODELS:
            return MODELS_REPLY
        assert route.model is not None
        if route.kind == J2_COMPLETE:
            return _scenario.j2_complete(route.model, body, str(uuid.uuid4()))
        return _scenario.j2_chat(route.model, body, str(uuid.uuid4()))

    def _stream_events(
        self, chat_id: str, choice: Choice, usage: dict[str, int]
    ) -> tuple[bytes, ...]:
        """SSE events for one choice (AI21's streaming reference): role, one per token, final +
        usage, [DONE]. Chunks use ``json.dumps`` default separators, as the live stream did."""
        head = b'data: {"id": ' + json.dumps(chat_id).encode() + b', "choices": [{"index": 0, '
        tail = b', "logprobs": null, "finish_reason": null}]}' + self.event_end

        def event(delta: dict[str, Any]) -> bytes:
            return head + b'"delta": ' + json.dumps(delta).encode() + tail

        events = [event({"role": "assistant"})]
        events.extend(event({"reasoning_content": token}) for token in choice.reasoning or ())
        events.extend(event({"content": token}) for token in choice.tokens)
        for index, call in enumerate(choice.tool_calls):
            events.append(event(call.start_delta(index)))
            events.extend(event(call.fragment_delta(index, p)) for p in call.fragments())
        final = {
            "id": chat_id,
            "choices": [
                {
                    "index": 0,
                    "delta": {} if choice.tool_calls else {"content": ""},
                    "logprobs": None,
                    "finish_reason": choice.finish_reason,
                }
            ],
            "usage": usage,
        }
        events.append(self.event(final))
        events.append(self.done())
        return tuple(events)
