"""Legacy Jurassic-2: its own dialect on AI21's hosted API (pure, no I/O).

J2 has ``POST {base_url}/{model}/complete`` and ``POST {base_url}/{model}/chat``, camelCase
fields, no streaming, no tools and no documents (AI21's Jurassic-2 API reference, retired
November 2024). :class:`J2` builds those requests and reads their answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LogProb,
    MessageRole,
)

from llama_index.llms.ai21._convert import (
    _ASSISTANT_ROLES,
    _SYSTEM_ROLES,
    _USER_ROLES,
    USAGE_KEYS,
    _expect,
    _message_text,
    _position,
    _with_system,
    normalize_tool_choice,
)
from llama_index.llms.ai21._dialect import CONTROL_KWARGS, Call, Limits, check_params
from llama_index.llms.ai21._stream import ChatStreamState
from llama_index.llms.ai21.errors import MalformedResponseError

DEFAULT_MAX_TOKENS = 512  # the J2 API's own default is 16 tokens, too short to be useful
LIMITS = Limits(
    max_tokens=None,
    response_formats=frozenset(),
    no_logprobs=(
        "Jurassic-2 has no logprobs field: its /complete answers carry every token's "
        "log-probability (complete() returns them in CompletionResponse.logprobs; "
        "top_k_return=N adds N candidates per token), its /chat answers none"
    ),
)

# J2 speaks camelCase; snake_case per-call keywords are translated.
_NAMES = {
    "max_tokens": "maxTokens",
    "min_tokens": "minTokens",
    "top_p": "topP",
    "stop": "stopSequences",
    "n": "numResults",
    "top_k_return": "topKReturn",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
    "count_penalty": "countPenalty",
}


_MODEL_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_model_name(model: str) -> None:
    """A ``ValueError`` for a name that would change the URL path it is put in."""
    if not _MODEL_NAME.fullmatch(model) or model in (".", ".."):
        raise ValueError(
            f"model {model!r} is not a Jurassic-2 model name: J2 names go into the URL path "
            "({base_url}/{model}/complete), so they may hold only letters, digits, '.', '_' "
            "and '-'"
        )


class J2:
    """The Jurassic-2 dialect: ``/complete`` for completions, ``/chat`` for chat."""

    streams = False
    limits = LIMITS

    def _params(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        check_model_name(model)  # here too: the model may be changed after construction
        choice = params.get("tool_choice")
        asks_for_a_tool = choice is not None and normalize_tool_choice(choice) not in (
            "auto",
            "none",
        )
        if params.get("documents") is not None or params.get("tools") or asks_for_a_tool:
            raise ValueError(f"{model} (Jurassic-2) supports neither documents nor tools")
        if params.get("response_format") is not None:  # its API answers text only
            raise ValueError(
                f"{model} (Jurassic-2) has no response_format (it answers text only), got "
                f"{params['response_format']!r}"
            )
        params = {k: v for k, v in params.items() if k not in CONTROL_KWARGS and k != "tools"}
        params.pop("stream", None)
        params.pop("stream_options", None)  # J2 never streams (as in JambaChat.chat)
        check_params(params, LIMITS, stream=False)
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(params.get("stop"), str):
            params["stop"] = [params["stop"]]
        return {_NAMES.get(k, k): v for k, v in params.items()}

    def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: dict[str, Any],
        *,
        system_prompt: str | None,
        stream: bool,
    ) -> Call:
        system, j2_messages = to_j2_chat(
            messages, system_prompt=system_prompt, preamble_override=params.get("preamble_override")
        )
        body = {"system": system, "messages": j2_messages, **self._params(model, params)}
        return Call(f"/{model}/chat", body)

    def complete(
        self, model: str, prompt: str, params: dict[str, Any], *, system_prompt: str | None
    ) -> Call:
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        text = to_j2_prompt(prompt, params.get("preamble_override"))
        return Call(f"/{model}/complete", {"prompt": text, **self._params(model, params)})

    def chat_response(self, raw: Any, call: Call | None = None) -> ChatResponse:
        return chat_response_from_j2_chat(raw)

    def completion_response(self, raw: Any, call: Call | None = None) -> CompletionResponse:
        text, extra = completion_from_j2(raw)
        usage = {key: extra[key] for key in USAGE_KEYS if key in extra}
        return CompletionResponse(
            text=text,
            # LlamaIndex's TokenCountingHandler reads the counts from raw["usage"] only (else it
            # counts the text with its own tokenizer): J2 sends tokens, not a usage object, so
            # the counts go there in the shape of Jamba's answers.
            raw={**raw, "usage": usage} if usage else raw,
            additional_kwargs=extra,
            logprobs=logprobs_from_j2(raw),
        )

    def stream_state(  # pragma: no cover - J2 never streams
        self, call: Call | None = None
    ) -> ChatStreamState:
        raise NotImplementedError("Jurassic-2 does not stream")


# --------------------------------------------------------------------- conversions


def to_j2_chat(
    messages: Sequence[ChatMessage],
    *,
    system_prompt: str | None = None,
    preamble_override: str | None = None,
) -> tuple[str, list[dict[str, str]]]:
    """Convert a conversation to J2 chat's ``system`` and ``messages`` (AI21 J2 API reference)."""
    system_parts: list[str] = []
    converted: list[dict[str, str]] = []
    for index, message in _with_system(messages, system_prompt, preamble_override):
        text = _message_text(message, index, allow_tool_calls=False)
        if message.role in _SYSTEM_ROLES:
            system_parts.append(text)
        elif message.role in _USER_ROLES:
            converted.append({"role": "user", "text": text})
        elif message.role in _ASSISTANT_ROLES:
            converted.append({"role": "assistant", "text": text})
        else:
            raise ValueError(
                f"messages[{index}] has role {getattr(message.role, 'value', message.role)!r}; "
                "Jurassic-2 chat supports "
                "only system, user and assistant messages (no tools)"
            )
    if not converted:
        raise ValueError("Jurassic-2 chat needs at least one user or assistant message")
    return "\n".join(system_parts), converted


def to_j2_prompt(prompt: str, preamble_override: str | None = None) -> str:
    """J2 ``/complete`` has no system field: a preamble is prepended to the prompt."""
    if preamble_override is None:
        return prompt
    return f"{preamble_override}\n\n{prompt}"


def chat_response_from_j2_chat(raw: Any) -> ChatResponse:
    """Turn a J2 ``/chat`` response (AI21 J2 chat API reference) into a ``ChatResponse``."""
    _expect(raw, dict, "the response body")
    outputs = _expect(raw.get("outputs"), list, "'outputs'")
    if not outputs:
        raise MalformedResponseError("malformed AI21 response: 'outputs' is empty")
    output = _expect(outputs[0], dict, "outputs[0]")
    text = _expect(output.get("text"), str, "outputs[0].text")
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
        raw=raw,
        additional_kwargs={"finish_reason": _j2_finish_reason(output.get("finishReason"))},
    )


def completion_from_j2(raw: Any) -> tuple[str, dict[str, Any]]:
    """Text and ``additional_kwargs`` of a J2 ``/complete`` response (AI21 J2 API reference).

    J2 reports tokens, not counts: the counts are the lengths of the token lists.
    """
    _expect(raw, dict, "the response body")
    completions = _expect(raw.get("completions"), list, "'completions'")
    if not completions:
        raise MalformedResponseError("malformed AI21 response: 'completions' is empty")
    first = _expect(completions[0], dict, "completions[0]")
    data = _expect(first.get("data"), dict, "completions[0].data")
    text = _expect(data.get("text"), str, "completions[0].data.text")
    extra: dict[str, Any] = {}
    prompt = raw.get("prompt")
    prompt_tokens = prompt.get("tokens") if isinstance(prompt, dict) else None
    completion_tokens = data.get("tokens")
    if isinstance(prompt_tokens, list) and isinstance(completion_tokens, list):
        extra = {
            "prompt_tokens": len(prompt_tokens),
            "completion_tokens": len(completion_tokens),
            "total_tokens": len(prompt_tokens) + len(completion_tokens),
        }
    extra["finish_reason"] = _j2_finish_reason(first.get("finishReason"))
    return text, extra


def logprobs_from_j2(raw: Any) -> list[list[LogProb]] | None:
    """The first completion's tokens as LlamaIndex's ``logprobs`` (J2 sends them with every
    answer): per token its ``generatedToken`` first, then the other ``topTokens`` (with
    ``topKReturn``). Tokens are named as J2's tokenizer names them (``▁`` for a space).

    Nobody asked for them (J2 has no such field), so, as the token counts are, they are read
    only from tokens in J2's shape: None, not an error, for anything else."""
    tokens = raw["completions"][0]["data"].get("tokens")  # the rest checked by completion_from_j2
    if not isinstance(tokens, list):
        return None
    positions = []
    for i, token in enumerate(tokens):
        generated = token.get("generatedToken") if isinstance(token, dict) else None
        if not isinstance(generated, dict):
            return None
        entry = {**generated, "top_logprobs": token.get("topTokens")}
        try:
            positions.append(_position(entry, f"completions[0].data.tokens[{i}]"))
        except MalformedResponseError:
            return None
    return positions


def _j2_finish_reason(value: Any) -> str | None:
    if isinstance(value, dict):
        reason = value.get("reason")
        return reason if isinstance(reason, str) else None
    return None
