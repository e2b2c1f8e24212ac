"""vLLM's OpenAI-compatible server serving AI21's open Jamba models (``flavour="vllm"``).

As AI21's model cards have each model served (``vllm serve <model> --enable-auto-tool-choice
--tool-call-parser hermes`` for Jamba2 and Reasoning 3B, which adds ``--reasoning-parser
deepseek_r1``; ``--tool-call-parser jamba`` for Jamba 1.x), optionally ``--api-key`` and
``--enable-force-include-usage``; ``parsers=False`` is a server started without the parser
flags (and ``unparsed_tool_calls=True`` a server of another kind that then takes tools anyway).
Shapes follow vLLM's OpenAI server (docs.vllm.ai, "OpenAI-Compatible Server"); docs/emulator.md
lists them field by field:

- Routes ``POST /v1/chat/completions``, ``GET /v1/models`` (with ``max_model_len``), ``GET
  /health``, ``GET /version``. With keys configured, every path under ``/v1`` (``/v2``,
  ``/inference``, ``/cohere``) needs ``Authorization: Bearer <key>``, the scheme in any case
  (checked before routing, as vLLM's middleware does), else 401 ``{"error":"Unauthorized"}``.
  A wrong method is a 405 with ``Allow``; a chat body not sent as ``application/json`` a 400.
- Errors ``{"error": {"message", "type", "param", "code"}}``: request validation 400 ``"Bad
  Request"``; unknown model 404 ``NotFoundError`` naming the served ones; ``max_tokens`` beyond
  ``max_model_len`` (or a prompt that fills it) 400 ``BadRequestError``, also for ``stream:
  true``; without the parser flags, ``tool_choice`` ``"auto"`` (the default when tools are
  offered) 400 ``BadRequestError`` naming the flags.
- Ids ``chatcmpl-<16 hex>``, tool-call ids ``chatcmpl-tool-<16 hex>``; ``model`` is echoed
  (none, null or "": the first served model).
- Streams: LF framing, compact JSON; role chunk ``{"role":"assistant","content":""}``, reasoning
  pieces, content pieces, the finish chunk; usage only on request (``stream_options``).
- ``logprobs: true`` (``top_logprobs`` 0-20, which needs it): OpenAI's ``logprobs.content``,
  one entry per reasoning and answer token, each stream chunk with its token's; else null.
- Reasoning (Reasoning 3B, or ``reasoning=True``) comes first, and ``max_tokens`` bounds it and
  the answer together, as in vLLM: cut inside the reasoning, the answer is empty (``"length"``).
- Usage details: ``completion_tokens_details.reasoning_tokens`` behind a reasoning parser,
  ``prompt_tokens_details.cached_tokens`` for the ``X-Emulator-Cached-Tokens`` header (a server
  with ``--enable-prompt-tokens-details``); null otherwise, left out of the stream's usage.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from . import _scenario
from ._catalog import (
    DEFAULT_MAX_MODEL_LEN,
    VLLM_JAMBA_REASONING_3B,
    VLLM_MODELS,
    vllm_template,
)
from ._flavour import CHAT, HEALTH, MODELS, VERSION, ChatContext, Flavour, Route, error_type
from ._scenario import ChatPlan, Choice, Response, json_bytes
from ._text import tokenize
from ._validation import ChatLimits, ChatRequest, Errors, StreamOptions, body_not_object
from ._validation import validate_chat as _validate

API_ROOT = "/v1"
REASONING_FIELDS = ("reasoning", "reasoning_content")
_DETAIL_404 = json_bytes({"detail": "Not Found"})
_DETAIL_405 = json_bytes({"detail": "Method Not Allowed"})
# The path prefixes vLLM's API-key middleware guards (GUARDED_PREFIX, vLLM 0.32).
GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")
# What ``GET /version`` reports: the vLLM release whose server this flavour follows (the one
# the project's tests/vllm suite runs against).
VLLM_VERSION = "0.32.0"
# vLLM bounds ``n`` only from below (SamplingParams: "n must be at least 1"); the emulator builds
# every answer in memory, so it refuses more than this many, an emulator limit (docs/emulator.md).
MAX_VLLM_N = 1024
_ROUTES = {
    API_ROOT + "/chat/completions": ("POST", CHAT),
    API_ROOT + "/models": ("GET", MODELS),
    "/health": ("GET", HEALTH),
    "/version": ("GET", VERSION),
}
UNSUPPORTED_MEDIA_TYPE = (
    "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"
)
_NULL_MESSAGE_FIELDS = {"refusal": None, "annotations": None, "audio": None, "function_call": None}


def error_body(
    status: int, message: str, kind: str | None = None, param: str | None = None
) -> bytes:
    """vLLM's ``ErrorResponse``: ``{"error": {"message", "type", "param", "code"}}``."""
    return json_bytes(
        {
            "error": {
                "message": message,
                "type": kind or error_type(status),
                "param": param,
                "code": status,
            }
        }
    )


def _permission(model: str, created: int) -> dict[str, Any]:
    """vLLM's ``ModelPermission``, one per model card (vllm/entrypoints/serve/engine/
    protocol.py, vLLM 0.32): its defaults; the id is a fixed ``modelperm-<16 hex>``."""
    return {
        "id": "modelperm-" + _scenario.digest(model, 0, 0)[:16],
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }


def _bearer_matches(authorization: str | None, keys: frozenset[str]) -> bool:
    """``Authorization: <scheme> <key>``, the scheme ``bearer`` in any case (as vLLM reads it)."""
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and token in keys


def _validation_message(errors: Errors) -> str:
    parts = [f"{'.'.join(str(part) for part in entry['loc'])}: {entry['msg']}" for entry in errors]
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun}: " + "; ".join(parts)


# vLLM's answers to tools on a server started without the tool flags
# (vllm/renderers/online_renderer.py, render_chat; vllm/entrypoints/openai/serving_chat.py
# before): "auto" needs both flags; "required" and a named function need the parser too, since
# vLLM pull request 30613 (December 2025; before it, guided decoding filled them without one).
AUTO_TOOLS_REFUSED = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)


def forced_tools_refused(tool_choice: str, named_tool: str | None) -> str:
    """vLLM's 400 for ``tool_choice`` ``"required"`` or a named function without a parser."""
    described = f'function "{named_tool}"' if tool_choice == "named" else f'"{tool_choice}"'
    return f"tool_choice={described} requires --tool-call-parser to be set"


def _sampling_problem(body: Mapping[str, Any]) -> str | None:
    """vLLM's 400 for a penalty its ``SamplingParams._verify_args`` refuses (vllm/
    sampling_params.py): ``presence_penalty`` and ``frequency_penalty`` lie in [-2, 2]."""
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not -2.0 <= value <= 2.0:
            return f"{name} must be in [-2, 2], got {float(value)}."
    return None


def _unparsed_choice(choice: Choice, model: str) -> Choice:
    """``choice`` as a server without reasoning and tool-call parsers returns it: everything
    the model wrote, tool calls included, in ``content`` (see ``VllmFlavour``'s ``parsers``)."""
    text = ""
    if choice.reasoning is not None:
        text = "".join(choice.reasoning)
        if choice.tokens or choice.tool_calls or choice.finish_reason != "length":
            text += "\n</think>\n\n"  # else max_tokens cut the reasoning: it never ended
    text += choice.text
    if choice.tool_calls:
        calls = [
            f'{{"name": {json.dumps(c.name)}, "arguments": {_as_written(c.arguments)}}}'
            for c in choice.tool_calls
        ]
        if vllm_template(model).tool_markup == "jamba":  # Jamba 1.5-1.7: one <tool_calls> list
            text += "<tool_calls>[" + ", ".join(calls) + "]</tool_calls>"
        else:  # Jamba2 and Reasoning 3B: Hermes blocks
            text += "\n".join(f"<tool_call>\n{c}\n</tool_call>" for c in calls)
    finish = "stop" if choice.finish_reason == "tool_calls" else choice.finish_reason
    return dataclasses.replace(
        choice, tokens=tuple(tokenize(text)), tool_calls=(), reasoning=None, finish_reason=finish
    )


def _as_written(arguments: str) -> str:
    """A call's arguments as the model writes them in its text: JSON with ``json.dumps``'s
    spacing, or, for a scripted call's that are not JSON (cut at ``max_tokens``), as they are."""
    try:
        return json.dumps(json.loads(arguments or "{}"))
    except ValueError:
        return arguments


def _unparsed(plan: ChatPlan, model: str) -> ChatPlan:
    return dataclasses.replace(
        plan, choices=tuple(_unparsed_choice(c, model) for c in plan.choices)
    )


def _tool_call_id(seed: str, choice: int, index: int) -> str:
    return "chatcmpl-tool-" + _scenario.digest(seed, choice, index)[:16]


class VllmFlavour(Flavour):
    """vLLM serving Jamba.

    Args:
        models: Served model names (default: AI21's five open models by Hugging Face id).
        max_model_len: The context length, in emulator tokens, that limits prompt + max_tokens.
        reasoning: True: every model reasons; None: only ``ai21labs/AI21-Jamba-Reasoning-3B``
            (a server started with a reasoning parser); False: none.
        reasoning_field: ``"reasoning"`` (vLLM) or ``"reasoning_content"`` (AI21's spec name).
        force_include_usage: Send the usage chunk on every stream, asked for or not (vLLM's
            ``--enable-force-include-usage``).
        parsers: True (default): a server started with AI21's recipe flags, whose parsers
            return reasoning and tool calls in their own fields. False: one started without
            ``--reasoning-parser``, ``--enable-auto-tool-choice`` and ``--tool-call-parser``:
            reasoning stays in ``content``, ending in ``</think>`` (the prompt opened
            ``<think>``); ``tool_choice`` ``"auto"`` (the default with tools) is refused with
            vLLM's 400 naming the flags, and so are ``"required"`` and a named function
            (vLLM's 400 naming ``--tool-call-parser``); calls the model writes otherwise
            (``tool_choice`` ``"none"``, a scripted reply) arrive as its text.
        unparsed_tool_calls: With ``parsers=False``: accept tools as a server of another kind
            started without a tool parser does (SGLang's ``serving_chat.py`` returns the text
            when ``--tool-call-parser`` is unset) and leave every call in ``content`` as the
            model wrote it: ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``
            (Jamba2, Reasoning 3B: Hermes) or ``<tool_calls>[...]</tool_calls>`` (Jamba 1.x),
            with ``finish_reason`` ``"stop"``.
    """

    name: ClassVar[str] = "vllm"
    api_root: ClassVar[str] = API_ROOT
    event_end: ClassVar[bytes] = b"\n\n"

    def __init__(
        self,
        models: Iterable[str] | None = None,
        max_model_len: int = DEFAULT_MAX_MODEL_LEN,
        reasoning: bool | None = None,
        reasoning_field: str = "reasoning",
        force_include_usage: bool = False,
        created: int = 0,
        parsers: bool = True,
        unparsed_tool_calls: bool = False,
    ) -> None:
        if models is None:
            served = VLLM_MODELS
        else:
            served = (models,) if isinstance(models, str) else tuple(models)
        if not served or not all(isinstance(m, str) and m for m in served):
            raise ValueError("models must hold at least one non-empty string")
        if not (isinstance(max_model_len, int) and max_model_len >= 1):
            raise ValueError(f"max_model_len must be an integer >= 1, not {max_model_len!r}")
        if reasoning_field not in REASONING_FIELDS:
            raise ValueError(f"reasoning_field must be one of {REASONING_FIELDS}")
        if unparsed_tool_calls and parsers:
            raise ValueError("unparsed_tool_calls=True is a server without parsers: parsers=False")
        self.models = served
        self.max_model_len = max_model_len
        self.reasoning = reasoning
        self.reasoning_field = reasoning_field
        self.force_include_usage = force_include_usage
        self.parsers = parsers
        self.unparsed_tool_calls = unparsed_tool_calls
        self.limits = ChatLimits(
            models=None,
            max_tokens=None,
            min_max_tokens=1,
            temperature_max=None,
            documents="vllm",
            response_formats=("text", "json_object", "json_schema"),
            stream_options=True,
            single_choice_streams=False,
            content_parts=True,
            tool_choice=True,
            logprobs=True,
            open_tools=True,
            max_n=MAX_VLLM_N,
        )
        self._models_body = json_bytes(
            {
                "object": "list",
                "data": [
                    {
                        "id": model,
                        "object": "model",
                        "created": created,
                        "owned_by": "vllm",
                        "root": model,
                        "parent": None,
                        "max_model_len": max_model_len,
                        "permission": [_permission(model, created)],
                    }
                    for model in served
                ],
            }
        )

    # -- front: routes, auth, errors -------------------------------------------------------------

    def gate(
        self, method: str, path: str, authorization: str | None, keys: frozenset[str]
    ) -> Route | Response:
        # vLLM's API-key middleware runs before routing, for every path under its guarded
        # prefixes, and takes the scheme in any case (vllm/entrypoints/serve/middleware/
        # authenticate.py, vLLM 0.32).
        if (
            keys
            and path.startswith(GUARDED_PREFIXES)
            and method != "OPTIONS"
            and not _bearer_matches(authorization, keys)
        ):
            return Response(401, json_bytes({"error": "Unauthorized"}))
        entry = _ROUTES.get(path)
        if entry is None:
            return Response(404, _DETAIL_404)
        allowed, kind = entry
        if method != allowed:
            # Starlette's 405 names the route's method (RFC 9110, 15.5.6).
            return Response(405, _DETAIL_405, headers={"Allow": allowed})
        return Route(kind)

    def check_content_type(self, route: Route, content_type: str | None) -> Response | None:
        # vLLM's chat route depends on validate_json_request (vllm/entrypoints/serve/utils/
        # api_utils.py): a media type other than application/json, or none, is a validation
        # error, which vLLM answers 400 "Bad Request" before reading the body.
        if route.kind != CHAT:
            return None
        if (content_type or "").lower().split(";", 1)[0] == "application/json":
            return None
        return self._bad_request(UNSUPPORTED_MEDIA_TYPE)

    def new_id(self) -> str:
        return "chatcmpl-" + uuid.uuid4().hex[:16]

    def error(self, status: int, message: str | None = None) -> Response:
        if status == 401 and message is None:
            return Response(401, json_bytes({"error": "Unauthorized"}))
        return Response(status, error_body(status, message or error_type(status)))

    def unparsable(self, raw: bytes) -> Response:
        what = "Field required" if not raw.strip() else "JSON decode error"
        return self._bad_request(f"1 validation error: body: {what}")

    def dumps(self, obj: Any) -> bytes:
        return json_bytes(obj)

    def stream_error_event(self, code: int, message: str) -> bytes:
        # vLLM's create_streaming_error_response: its ErrorResponse (``param`` included) through
        # json.dumps (generate/base/serving.py, vLLM 0.32)
        error = {"message": message, "type": error_type(code), "param": None, "code": code}
        return b"data: " + json.dumps({"error": error}).encode() + self.event_end

    @staticmethod
    def _bad_request(message: str, kind: str = "Bad Request", model: str | None = None) -> Response:
        return Response(400, error_body(400, message, kind), model=model)

    # -- routes ----------------------------------------------------------------------------------

    def serve(self, route: Route, body: Any, context: ChatContext) -> Response:
        if route.kind == MODELS:
            return Response(200, self._models_body)
        if route.kind == VERSION:
            return Response(200, json_bytes({"version": VLLM_VERSION}))
        return Response(200, b"")  # /health

    def chat(self, body: Any, context: ChatContext) -> Response:
        if not isinstance(body, dict):
            return self._bad_request(_validation_message(body_not_object(body)))
        if body.get("model") in (None, ""):
            # vLLM's ``model`` is optional: none (or "") is the first served model, the name
            # its answer then carries (serve/engine/serving.py, _is_model_supported).
            body = {**body, "model": self.models[0]}
        request, errors = _validate(body, self.limits)
        if request is None:
            return self._bad_request(_validation_message(errors))
        problem = _sampling_problem(body)
        if problem is not None:
            return self._bad_request(problem, "BadRequestError", request.model)
        if request.model not in self.models:
            message = (
                f"The model `{request.model}` does not exist. "
                f"Valid aliases: {', '.join(self.models)}."
            )
            return Response(
                404, error_body(404, message, "NotFoundError", "model"), model=request.model
            )
        if request.tool_choice == "auto" and not (self.parsers or self.unparsed_tool_calls):
            return self._bad_request(AUTO_TOOLS_REFUSED, "BadRequestError", request.model)
        if request.tool_choice in ("required", "named") and not (
            self.parsers or self.unparsed_tool_calls
        ):
            message = forced_tools_refused(request.tool_choice, request.named_tool)
            return self._bad_request(message, "BadRequestError", request.model)
        if request.documents and not vllm_template(request.model).reads_documents:
            # vLLM hands ``documents`` to the chat template; Jamba2's and Reasoning 3B's have no
            # such variable, so the prompt (and the answer) is as without them (_catalog.py).
            request = dataclasses.replace(request, documents=())
        prompt = _scenario.request_prompt_tokens(request, body)
        room = self.max_model_len - prompt
        if room <= 0:
            message = (
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"your request has {prompt} input tokens. Please reduce the length of the input "
                "messages."
            )
            return self._bad_request(message, "BadRequestError", request.model)
        if request.max_tokens is not None and request.max_tokens > room:
            message = (
                f"'max_tokens' or 'max_completion_tokens' is too large: {request.max_tokens}. "
                f"This model's maximum context length is {self.max_model_len} tokens and your "
                f"request has {prompt} input tokens ({request.max_tokens} > "
                f"{self.max_model_len} - {prompt})."
            )
            return self._bad_request(message, "BadRequestError", request.model)
        reasoning = (
            request.model == VLLM_JAMBA_REASONING_3B if self.reasoning is None else self.reasoning
        )
        plan = _scenario.plan_chat(
            request,
            body,
            max_tokens=room if request.max_tokens is None else request.max_tokens,
            answer_tokens=context.answer_tokens,
            scripted=context.take_script(body),
            tool_call_id=_tool_call_id,
            reasoning=reasoning,
            cached_tokens=context.cached_tokens,
        )
        if not self.parsers:
            plan = _unparsed(plan, request.model)
        # A server with a reasoning parser counts reasoning tokens in every answer
        # (``completion_tokens_details``); one without reports none.
        counts_reasoning = reasoning and self.parsers
        if request.stream:
            events = self._stream_events(request, plan, context, counts_reasoning)
            return Response(200, events=events, model=request.model)
        answer = self._body(request, plan, context, counts_reasoning)
        return Response(200, json_bytes(answer), model=request.model)

    # -- rendering -------------------------------------------------------------------------------

    @staticmethod
    def _usage(plan: ChatPlan, counts_reasoning: bool) -> dict[str, Any]:
        """vLLM's ``UsageInfo``: the counts, ``prompt_tokens_details`` (``cached_tokens``, with
        ``--enable-prompt-tokens-details``) and ``completion_tokens_details``
        (``reasoning_tokens``, with a reasoning parser); each null when not reported."""
        cached = plan.cached_tokens
        return {
            **plan.usage,
            "prompt_tokens_details": None if cached is None else {"cached_tokens": cached},
            "completion_tokens_details": (
                {"reasoning_tokens": plan.reasoning_tokens} if counts_reasoning else None
            ),
        }

    def _body(
        self, request: ChatRequest, plan: ChatPlan, context: ChatContext, counts_reasoning: bool
    ) -> dict[str, Any]:
        """vLLM 0.32's ``ChatCompletionResponse.model_dump()`` (openai/chat_completion/
        protocol.py): every field, null where unset, except the message's empty ``tool_calls``,
        which its serializer drops."""
        choices = []
        for i, choice in enumerate(plan.choices):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": choice.content,
                **_NULL_MESSAGE_FIELDS,
            }
            if choice.tool_calls:  # vLLM's ChatMessage leaves an empty list out
                message["tool_calls"] = [call.to_json() for call in choice.tool_calls]
            message[self.reasoning_field] = choice.reasoning_text
            logprobs = None
            if request.logprobs:  # every generated token: the reasoning's, then the answer's
                tokens = (*(choice.reasoning or ()), *choice.tokens)
                logprobs = {"content": _scenario.token_logprobs(tokens, request.top_logprobs)}
            choices.append(
                {
                    "index": i,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": choice.finish_reason,
                    "stop_reason": choice.stop_sequence,
                    "token_ids": None,
                    "routed_experts": None,
                }
            )
        return {
            "id": context.reply_id,
            "object": "chat.completion",
            "created": context.created,
            "model": request.model,
            "choices": choices,
            "service_tier": None,
            "system_fingerprint": None,
            "usage": self._usage(plan, counts_reasoning),
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "prompt_text": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }

    def _stream_events(
        self, request: ChatRequest, plan: ChatPlan, context: ChatContext, counts_reasoning: bool
    ) -> tuple[bytes, ...]:
        """The chunks of a stream. Usage comes only on request: ``include_usage`` adds one chunk
        with empty ``choices`` after the finish chunk; ``continuous_usage_stats`` (with it) puts
        the running usage on every chunk, starting with an empty-choices chunk. The last usage
        leaves out details that are null, as vLLM writes it (``exclude_none``)."""
        options = request.stream_options or StreamOptions()
        include_usage = options.include_usage or self.force_include_usage
        continuous = include_usage and options.continuous_usage_stats
        prompt = plan.usage["prompt_tokens"]
        total = plan.usage["completion_tokens"]
        sent = 0
        thought = 0  # reasoning tokens sent so far
        head: dict[str, Any] = {
            "id": context.reply_id,
            "object": "chat.completion.chunk",
            "created": context.created,
            "model": request.model,
        }
        events: list[bytes] = []

        def usage_so_far() -> dict[str, Any]:
            done = min(sent, total)
            usage: dict[str, Any] = {
                "prompt_tokens": prompt,
                "completion_tokens": done,
                "total_tokens": prompt + done,
            }
            if counts_reasoning:
                reasoning = min(thought, plan.reasoning_tokens)
                usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
            return usage

        def emit(
            index: int, delta: dict[str, Any], finish: Choice | None = None, token: str = ""
        ) -> None:
            logprobs = None
            if request.logprobs and token:  # the token this chunk carries
                logprobs = {"content": _scenario.token_logprobs([token], request.top_logprobs)}
            piece: dict[str, Any] = {
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": None if finish is None else finish.finish_reason,
            }
            if finish is not None:
                piece["stop_reason"] = finish.stop_sequence
            chunk = {**head, "choices": [piece]}
            if continuous:
                chunk["usage"] = usage_so_far()
            events.append(self.event(chunk))

        if continuous:
            events.append(self.event({**head, "choices": [], "usage": usage_so_far()}))
        for index, choice in enumerate(plan.choices):
            emit(index, {"role": "assistant", "content": ""})
            # A length cut ends on the last content chunk (the last reasoning chunk when the
            # reasoning reached max_tokens); a natural end (the end-of-sequence token, no
            # text) gets its own finish chunk with an empty delta.
            cut = choice.finish_reason == "length" and not choice.tool_calls
            thought_cut = cut and not choice.tokens and bool(choice.reasoning)
            for k, token in enumerate(choice.reasoning or ()):
                sent += 1
                thought += 1
                last = thought_cut and k == len(choice.reasoning or ()) - 1
                emit(index, {self.reasoning_field: token}, choice if last else None, token=token)
            for k, token in enumerate(choice.tokens):
                sent += 1
                last = cut and k == len(choice.tokens) - 1
                emit(index, {"content": token}, choice if last else None, token=token)
            for number, call in enumerate(choice.tool_calls):
                sent += 1
                emit(index, call.start_delta(number))
                pieces = call.fragments()
                for k, fragment in enumerate(pieces):
                    sent += 1
                    last = number == len(choice.tool_calls) - 1 and k == len(pieces) - 1
                    emit(index, call.fragment_delta(number, fragment), choice if last else None)
            if not choice.tool_calls and not (cut and (choice.tokens or thought_cut)):
                sent += 1
                emit(index, {}, choice)
        if include_usage:
            usage = self._usage(plan, counts_reasoning)
            final = {key: value for key, value in usage.items() if value is not None}
            events.append(self.event({**head, "choices": [], "usage": final}))
        events.append(self.done())
        return tuple(events)
