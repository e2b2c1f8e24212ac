"""Request dialects: how a call is written for the server and how its answer is read.

``base.py`` asks the deployment for the dialect of its model and then only builds
:class:`Call` objects and parses answers through it. Two dialects exist: Jamba chat
(:class:`JambaChat`, here: AI21's chat completions, which OpenAI-compatible servers such as
vLLM speak too) and legacy Jurassic-2 (:mod:`._j2`). Both are pure: no I/O.

Imports point one way: deployments import their dialects, never the reverse. A dialect is
handed what it needs to know about the server (:class:`Server`; a deployment is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
)

from llama_index.llms.ai21._convert import (
    chat_response_from_ai21,
    completion_response_from_ai21,
    to_ai21_messages,
)
from llama_index.llms.ai21._params import Limits, check_params
from llama_index.llms.ai21._stream import ChatStreamState

CHAT_PATH = "/chat/completions"
# Keywords that steer this adapter and never go into the payload as-is.
CONTROL_KWARGS = ("preamble_override", "documents", "parallel_tool_calls")


class Call(NamedTuple):
    """One request to send: where, what, and how to treat the answer (a tuple: built on
    every call, so kept cheap)."""

    path: str
    body: dict[str, Any]
    single_tool_call: bool = False  # keep only the first tool call of the answer


class Dialect(Protocol):
    streams: bool
    """Whether the server can stream answers (else a stream is the whole answer, once)."""

    def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: dict[str, Any],
        *,
        system_prompt: str | None,
        stream: bool,
    ) -> Call: ...

    def complete(
        self, model: str, prompt: str, params: dict[str, Any], *, system_prompt: str | None
    ) -> Call: ...

    def chat_response(self, raw: Any) -> ChatResponse: ...

    def completion_response(self, raw: Any) -> CompletionResponse: ...

    def stream_state(self) -> ChatStreamState: ...


class Server(Protocol):
    """What Jamba chat needs to know about the server it writes for (a ``Deployment``)."""

    @property
    def limits(self) -> Limits: ...

    def stream_fields(self) -> dict[str, Any]: ...

    def documents(self, documents: Sequence[Any]) -> list[dict[str, Any]]: ...


def user_message(prompt: str) -> list[ChatMessage]:
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


class JambaChat:
    """Jamba chat completions (``POST {base_url}/chat/completions``), streaming or not."""

    streams = True

    def __init__(self, deployment: Server) -> None:
        self.deployment = deployment

    def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: dict[str, Any],
        *,
        system_prompt: str | None,
        stream: bool,
    ) -> Call:
        params = dict(params)
        preamble = params.pop("preamble_override", None)
        documents = params.pop("documents", None)
        single_tool_call = params.pop("parallel_tool_calls", True) is False
        params.pop("stream", None)
        check_params(params, self.deployment.limits, stream=stream)
        body: dict[str, Any] = {
            "model": model,
            "messages": to_ai21_messages(
                messages, system_prompt=system_prompt, preamble_override=preamble
            ),
        }
        if stream:
            body.update(self.deployment.stream_fields())
        body.update(params)
        body["stream"] = stream
        if documents is not None:
            body["documents"] = self.deployment.documents(documents)
        return Call(CHAT_PATH, body, single_tool_call)

    def complete(
        self, model: str, prompt: str, params: dict[str, Any], *, system_prompt: str | None
    ) -> Call:
        return self.chat(
            model, user_message(prompt), params, system_prompt=system_prompt, stream=False
        )

    def chat_response(self, raw: Any) -> ChatResponse:
        return chat_response_from_ai21(raw)

    def completion_response(self, raw: Any) -> CompletionResponse:
        return completion_response_from_ai21(raw)

    def stream_state(self) -> ChatStreamState:
        return ChatStreamState()
