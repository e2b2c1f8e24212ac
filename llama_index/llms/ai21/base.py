"""The ``AI21`` LLM: AI21 Labs models (Jamba, legacy Jurassic-2) for LlamaIndex."""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from llama_index.core.base.llms.generic_utils import (
    astream_chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr, field_validator
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import Model, PydanticProgramMode

from llama_index.llms.ai21._convert import (
    _tool_call_to_ai21,
    chat_response_from_ai21,
    chat_response_from_j2_chat,
    completion_from_j2,
    completion_response_from_ai21,
    to_ai21_documents,
    to_ai21_messages,
    to_j2_chat,
    to_j2_prompt,
)
from llama_index.llms.ai21._models import DEFAULT_MODEL, is_j2, model_info
from llama_index.llms.ai21._retry import acall_with_retries, call_with_retries
from llama_index.llms.ai21._stream import ChatStreamState, aresponses, ended_early, responses
from llama_index.llms.ai21._transport import ClientConfig, Transport, user_agent
from llama_index.llms.ai21.errors import StreamInterruptedError

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel
    from llama_index.core.tools.types import BaseTool

_T = TypeVar("_T")

DEFAULT_BASE_URL = "https://api.ai21.com/studio/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 3
J2_DEFAULT_MAX_TOKENS = 512  # the J2 API's own default is 16 tokens, too short to be useful
CHAT_PATH = "/chat/completions"

# Keywords that steer this adapter and never go into the payload as-is.
_CONTROL_KWARGS = ("preamble_override", "documents", "parallel_tool_calls")

# Per-call keywords with documented ranges (ai21-api.md 1.2), checked before any request.
_NUMERIC_RANGES: dict[str, tuple[float, float, bool]] = {
    # name: (low, high, low_is_exclusive)
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, True),
    "max_tokens": (0, 4096, False),
    "n": (1, 16, False),
}
_INTEGER_PARAMS = {"max_tokens", "n"}

# J2 speaks camelCase (ai21-api.md 2.2); snake_case per-call keywords are translated.
_J2_NAMES = {
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


def _check_json(name: str, value: Any) -> None:
    """Fail early, naming the keyword, for values that cannot go into a JSON payload."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{name} has a non-string key {key!r}; JSON keys are strings")
            _check_json(f"{name}[{key!r}]", item)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(f"{name}[{i}]", item)
        return
    raise ValueError(f"{name} must be JSON-serializable, got a {type(value).__name__}")


def _check_params(params: dict[str, Any], *, stream: bool) -> None:
    for name, (low, high, exclusive) in _NUMERIC_RANGES.items():
        value = params.get(name)
        if value is None:
            continue
        integer = name in _INTEGER_PARAMS
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            kind = "an integer" if integer else "a number"
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        too_low = value <= low if exclusive else value < low
        if too_low or value > high or (isinstance(value, float) and math.isnan(value)):
            bracket = "(" if exclusive else "["
            raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")
    if stream and (params.get("n") or 1) > 1:
        raise ValueError("n must be 1 when streaming (AI21 streams a single answer)")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise ValueError(f"stop must be a string or a list of strings, got {stop!r}")
    response_format = params.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict)
        or response_format.get("type") not in ("text", "json_object")
    ):
        raise ValueError(
            'response_format must be {"type": "text"} or {"type": "json_object"}, '
            f"got {response_format!r}"
        )
    for name, value in params.items():
        _check_json(name, value)


class AI21(FunctionCallingLLM):
    """AI21 Labs models (Jamba, and the legacy Jurassic-2 line) as a LlamaIndex LLM.

    Chat, completion, streaming, async, tool calling and structured output. HTTP errors are
    the ``ai21`` SDK's exceptions (``ai21.errors.Unauthorized``, ``TooManyRequestsError``,
    ...), exactly as the SDK raises them; transient ones (408, 429, 500, 502, 503, 504,
    timeouts, dropped connections) are retried first, honouring ``Retry-After``.

    Example:
        ```python
        from llama_index.core.llms import ChatMessage
        from llama_index.llms.ai21 import AI21

        llm = AI21(model="jamba-mini")  # key from AI21_API_KEY
        print(llm.complete("Paul Graham is "))
        print(llm.chat([ChatMessage(role="user", content="What is your name?")],
                       preamble_override="You are a pirate with a colorful personality"))
        ```
    """

    model: str = Field(
        default=DEFAULT_MODEL,
        description="AI21 model name: jamba-mini, jamba-large, a versioned name, or j2-*.",
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="API base URL; default: AI21_API_HOST, else AI21's own host.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=0,
        le=4096,
        description="Maximum tokens to generate; None uses the API default (4096 for Jamba).",
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature (0 to 2); None: API default.",
    )
    top_p: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Nucleus sampling mass (0 < top_p <= 1)."
    )
    stop: list[str] | None = Field(
        default=None, description="Stop sequences; generation ends before any of them."
    )
    timeout: float = Field(
        default=DEFAULT_TIMEOUT,
        gt=0,
        description="Seconds allowed for each attempt's connect and each read.",
    )
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        description="Retries after the first attempt for transient failures (0: one attempt).",
    )
    default_headers: dict[str, str] = Field(
        default_factory=dict, description="Extra HTTP headers sent with every request."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra API fields sent with every request (per-call keywords win).",
    )

    _api_key: SecretStr = PrivateAttr()
    _transport: Transport = PrivateAttr()

    def __init__(self, api_key: str | None = None, **kwargs: Any) -> None:
        """Create the LLM; ``api_key`` falls back to the ``AI21_API_KEY`` environment variable.

        Raises:
            ValueError: no key was given and ``AI21_API_KEY`` is not set.
        """
        if kwargs.get("base_url") is None:
            kwargs["base_url"] = os.environ.get("AI21_API_HOST") or DEFAULT_BASE_URL
        super().__init__(**kwargs)
        key = api_key if api_key is not None else os.environ.get("AI21_API_KEY")
        if not key:
            raise ValueError(
                "No AI21 API key: pass api_key=... or set the AI21_API_KEY environment variable"
            )
        self._api_key = SecretStr(key)
        self._transport = Transport(self._client_config())

    def _client_config(self) -> ClientConfig:
        return ClientConfig(
            base_url=self.base_url.rstrip("/"),
            timeout=self.timeout,
            headers={
                "Content-Type": "application/json",
                "User-Agent": user_agent(),
                "Authorization": f"Bearer {self._api_key.get_secret_value()}",
                **self.default_headers,
            },
        )

    def _clients(self) -> Transport:
        """The clients for the current settings (rebuilt if ``base_url``, ``timeout`` or
        ``default_headers`` were changed on the instance after it was created)."""
        transport = self._transport
        config = transport.config
        if (
            self.base_url.rstrip("/") != config.base_url
            or self.timeout != config.timeout
            or self._client_config().headers != config.headers
        ):
            transport = self._transport = Transport(self._client_config())
        return transport

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @classmethod
    def class_name(cls) -> str:
        return "AI21_LLM"

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["ai21_api_key"] = self._api_key.get_secret_value()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(api_key=state["ai21_api_key"], **state["__dict__"])  # type: ignore[misc]

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the sync connection pool now.

        Optional: pools also close when the instance is garbage-collected, and each event
        loop's async pool when that loop shuts down. The instance stays usable (a new pool
        opens on the next call).
        """
        self._transport.close()

    async def aclose(self) -> None:
        """Close the running event loop's async connection pool now (see `close`)."""
        await self._transport.aclose()

    # ------------------------------------------------------------------ metadata

    @property
    def metadata(self) -> LLMMetadata:
        """Context window, output budget and capabilities of ``model`` (never fails for an
        unknown name: see the models page)."""
        info = model_info(self.model)
        return LLMMetadata(
            context_window=info.context_window,
            num_output=self.max_tokens or info.max_output,
            is_chat_model=info.is_chat_model,
            is_function_calling_model=info.is_function_calling_model,
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    @property
    def _is_j2(self) -> bool:
        return is_j2(self.model)

    # ------------------------------------------------------------------ payloads

    def _params(self, call_kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": self.stop,
        }
        params = {k: v for k, v in params.items() if v is not None}
        params.update(self.additional_kwargs)
        params.update(call_kwargs)
        return params

    def _chat_payload(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], *, stream: bool
    ) -> tuple[dict[str, Any], bool]:
        """Build and check the Jamba request body; return it and whether to keep one tool call."""
        if self._is_j2:
            raise AssertionError("J2 models use _j2_* payloads")  # pragma: no cover
        kwargs = dict(kwargs)
        preamble = kwargs.pop("preamble_override", None)
        documents = kwargs.pop("documents", None)
        single_tool_call = kwargs.pop("parallel_tool_calls", True) is False
        params = self._params(kwargs)
        params.pop("stream", None)
        _check_params(params, stream=stream)
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": to_ai21_messages(
                messages, system_prompt=self.system_prompt, preamble_override=preamble
            ),
            **params,
            "stream": stream,
        }
        if documents is not None:
            payload["documents"] = to_ai21_documents(documents)
        return payload, single_tool_call

    def _j2_params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("documents") is not None or kwargs.get("tools"):
            raise ValueError(f"{self.model} (Jurassic-2) supports neither documents nor tools")
        params = self._params(
            {k: v for k, v in kwargs.items() if k not in _CONTROL_KWARGS and k != "tools"}
        )
        _check_params(params, stream=False)
        params.setdefault("max_tokens", J2_DEFAULT_MAX_TOKENS)
        stop = params.get("stop")
        if isinstance(stop, str):
            params["stop"] = [stop]
        return {_J2_NAMES.get(k, k): v for k, v in params.items()}

    # ------------------------------------------------------------------ requests

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        transport = self._clients()
        return call_with_retries(lambda: transport.post(path, body), self.max_retries)

    async def _apost(self, path: str, body: dict[str, Any]) -> Any:
        transport = self._clients()
        return await acall_with_retries(lambda: transport.apost(path, body), self.max_retries)

    def _stream_events(self, body: dict[str, Any], single_tool_call: bool) -> ChatResponseGen:
        """Yield responses; retry until the first one has reached the caller, never after."""
        transport = self._clients()

        def open_stream() -> tuple[httpx.Response, ChatStreamState, Iterator[ChatResponse], Any]:
            response = transport.open_stream(CHAT_PATH, body)
            state = ChatStreamState()
            chunks = responses(response.iter_bytes(), state)
            if single_tool_call:
                chunks = map(_single_tool_call, chunks)
            try:
                return response, state, chunks, next(chunks, None)
            except BaseException:
                response.close()
                raise

        response, state, chunks, first = call_with_retries(open_stream, self.max_retries)
        try:
            if first is None:
                raise ended_early(state)
            yield first
            yield from chunks
        except httpx.TransportError as exc:
            raise _interrupted(exc, state) from exc
        finally:
            response.close()

    async def _astream_events(
        self, body: dict[str, Any], single_tool_call: bool
    ) -> ChatResponseAsyncGen:
        transport = self._clients()

        async def open_stream() -> tuple[
            httpx.Response, ChatStreamState, AsyncIterator[ChatResponse], Any
        ]:
            response = await transport.aopen_stream(CHAT_PATH, body)
            state = ChatStreamState()
            chunks = aresponses(response.aiter_bytes(), state)
            if single_tool_call:
                chunks = _amap(_single_tool_call, chunks)
            try:
                return response, state, chunks, await anext(chunks, None)
            except BaseException:
                await response.aclose()
                raise

        response, state, chunks, first = await acall_with_retries(open_stream, self.max_retries)
        try:
            if first is None:
                raise ended_early(state)
            yield first
            async for chunk in chunks:
                yield chunk
        except httpx.TransportError as exc:
            raise _interrupted(exc, state) from exc
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ chat (private)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._is_j2:
            return self._j2_chat(messages, kwargs)
        body, single = self._chat_payload(messages, kwargs, stream=False)
        response = chat_response_from_ai21(self._post(CHAT_PATH, body))
        return _single_tool_call(response) if single else response

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._is_j2:
            return await self._aj2_chat(messages, kwargs)
        body, single = self._chat_payload(messages, kwargs, stream=False)
        response = chat_response_from_ai21(await self._apost(CHAT_PATH, body))
        return _single_tool_call(response) if single else response

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        if self._is_j2:
            return _iter_one(_as_single_chunk(self._j2_chat(messages, kwargs)))
        body, single = self._chat_payload(messages, kwargs, stream=True)
        return self._stream_events(body, single)

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        if self._is_j2:
            response = await self._aj2_chat(messages, kwargs)
            return _aiter_one(_as_single_chunk(response))
        body, single = self._chat_payload(messages, kwargs, stream=True)
        return self._astream_events(body, single)

    # ------------------------------------------------------------------ legacy J2

    def _j2_chat_body(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Any:
        system, j2_messages = to_j2_chat(
            messages,
            system_prompt=self.system_prompt,
            preamble_override=kwargs.get("preamble_override"),
        )
        return {"system": system, "messages": j2_messages, **self._j2_params(kwargs)}

    def _j2_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        body = self._j2_chat_body(messages, kwargs)
        return chat_response_from_j2_chat(self._post(f"/{self.model}/chat", body))

    async def _aj2_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponse:
        body = self._j2_chat_body(messages, kwargs)
        return chat_response_from_j2_chat(await self._apost(f"/{self.model}/chat", body))

    def _j2_complete_body(self, prompt: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        text = to_j2_prompt(prompt, kwargs.get("preamble_override"))
        return {"prompt": text, **self._j2_params(kwargs)}

    def _j2_complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponse:
        raw = self._post(f"/{self.model}/complete", self._j2_complete_body(prompt, kwargs))
        text, extra = completion_from_j2(raw)
        return CompletionResponse(text=text, raw=raw, additional_kwargs=extra)

    async def _aj2_complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponse:
        body = self._j2_complete_body(prompt, kwargs)
        raw = await self._apost(f"/{self.model}/complete", body)
        text, extra = completion_from_j2(raw)
        return CompletionResponse(text=text, raw=raw, additional_kwargs=extra)

    # ------------------------------------------------------------------ public API

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat; ``preamble_override=`` replaces the system message for this call.

        Any other keyword (``n``, ``response_format``, ``documents``, ...) goes into the
        request. ``documents`` takes strings, dicts or LlamaIndex Documents/Nodes.
        """
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat answer; each response's ``delta`` is the new text."""
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async version of `chat`."""
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async version of `stream_chat`."""
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt (sent as one user message; J2 models use ``/complete``)."""
        if self._is_j2:
            return self._j2_complete(prompt, kwargs)
        # The chat path minus the intermediate ChatResponse: this call is hot in RAG loops.
        body, _ = self._chat_payload(_user_message(prompt), kwargs, stream=False)
        return completion_response_from_ai21(self._post(CHAT_PATH, body))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion (J2: the whole answer as one chunk)."""
        if self._is_j2:
            response = self._j2_complete(prompt, kwargs)
            return _iter_one(response.model_copy(update={"delta": response.text}))
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async version of `complete`."""
        if self._is_j2:
            return await self._aj2_complete(prompt, kwargs)
        body, _ = self._chat_payload(_user_message(prompt), kwargs, stream=False)
        return completion_response_from_ai21(await self._apost(CHAT_PATH, body))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async version of `stream_complete`."""
        if self._is_j2:
            response = await self._aj2_complete(prompt, kwargs)
            return _aiter_one(response.model_copy(update={"delta": response.text}))
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # ------------------------------------------------------------ structured output

    def _structured_llm_kwargs(self, llm_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
        """JSON mode for the text-parsing program (``pydantic_program_mode="llm"``).

        By default structured output goes through function calling. With
        ``pydantic_program_mode=PydanticProgramMode.LLM`` LlamaIndex prompts with the JSON
        schema and parses the text; asking AI21 for ``response_format={"type":
        "json_object"}`` then guarantees the text is JSON.
        """
        if self.pydantic_program_mode != PydanticProgramMode.LLM or self._is_j2:
            return llm_kwargs
        return {"response_format": {"type": "json_object"}, **(llm_kwargs or {})}

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Predict a validated ``output_cls`` (function calling; JSON mode in "llm" mode)."""
        result = super().structured_predict(
            output_cls, prompt, llm_kwargs=self._structured_llm_kwargs(llm_kwargs), **prompt_args
        )
        return cast(Model, result)

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async version of `structured_predict`."""
        result = await super().astructured_predict(
            output_cls, prompt, llm_kwargs=self._structured_llm_kwargs(llm_kwargs), **prompt_args
        )
        return cast(Model, result)

    def stream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | FlexibleModel, None, None]:
        """Stream partial ``output_cls`` objects as the answer arrives."""
        return super().stream_structured_predict(
            output_cls, prompt, llm_kwargs=self._structured_llm_kwargs(llm_kwargs), **prompt_args
        )

    async def astream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | FlexibleModel, None]:
        """Async version of `stream_structured_predict`."""
        return await super().astream_structured_predict(
            output_cls, prompt, llm_kwargs=self._structured_llm_kwargs(llm_kwargs), **prompt_args
        )

    # ------------------------------------------------------------------ tokenizer

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (``encode(text) -> list[int]``), loaded lazily.

        Needs the ``tokenizer`` extra (``pip install "llama-index-llms-ai21[tokenizer]"``).
        """
        from llama_index.llms.ai21._tokenizer import load_tokenizer

        return load_tokenizer(self.model)

    # ------------------------------------------------------------------ tools

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Offer ``tools`` as AI21 function definitions, without touching ``chat_history``.

        AI21 has no ``tool_choice`` field. ``tool_choice`` naming a tool offers only that
        tool, ``"none"`` offers none; ``tool_required`` cannot be enforced by the API and
        adds nothing to the request. ``allow_parallel_tool_calls=False`` keeps only the
        first tool call of each answer (streamed or not).
        """
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        chosen = _chosen_tool_name(tool_choice)
        if chosen == "none":
            specs = []
        elif chosen is not None:
            specs = [s for s in specs if s["function"]["name"] == chosen]
            if not specs:
                raise ValueError(f"tool_choice names {chosen!r}, which is not among the tools")
        messages = list(chat_history or [])
        if user_msg is not None:
            if isinstance(user_msg, str):
                user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            prepared["parallel_tool_calls"] = allow_parallel_tool_calls
        return prepared

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The response's tool calls with parsed arguments.

        Raises:
            ValueError: there is no tool call, or a call's arguments are not a JSON
                object (only when ``error_on_no_tool_call``; otherwise such calls are
                skipped, as they are in a stream while the arguments are still arriving).
        """
        blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if blocks:
            calls = [(b.tool_call_id or "", b.tool_name, b.tool_kwargs) for b in blocks]
        else:
            raw_calls = response.message.additional_kwargs.get("tool_calls") or []
            normalised = [_tool_call_to_ai21(call, 0) for call in raw_calls]
            calls = [
                (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in normalised
            ]
        if not calls:
            if error_on_no_tool_call:
                raise ValueError("Expected at least one tool call, but the response has none")
            return []
        selections = []
        for call_id, name, arguments in calls:
            parsed = _parse_arguments(arguments)
            if parsed is None:
                if error_on_no_tool_call:
                    raise ValueError(
                        f"Tool call {call_id or name!r} to {name!r} has arguments that are not "
                        f"a JSON object: {arguments!r}"
                    )
                continue
            selections.append(ToolSelection(tool_id=call_id, tool_name=name, tool_kwargs=parsed))
        return selections


# ---------------------------------------------------------------------- helpers


def _user_message(prompt: str) -> list[ChatMessage]:
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


async def _amap(
    function: Callable[[ChatResponse], ChatResponse], items: AsyncIterator[ChatResponse]
) -> AsyncIterator[ChatResponse]:
    async for item in items:
        yield function(item)


def _interrupted(exc: Exception, state: ChatStreamState) -> StreamInterruptedError:
    return StreamInterruptedError(
        f"AI21 stream broke after {len(state.text)} characters of the answer had arrived "
        f"({type(exc).__name__}: {exc}); not retried, since the caller already has part of it",
        state.text,
    )


def _single_tool_call(response: ChatResponse) -> ChatResponse:
    """Keep only the first tool call (``allow_parallel_tool_calls=False``)."""
    calls = response.message.additional_kwargs.get("tool_calls")
    if not calls or len(calls) < 2:
        return response
    first_id = calls[0]["id"]
    message = response.message
    message.blocks = [
        b for b in message.blocks if not isinstance(b, ToolCallBlock) or b.tool_call_id == first_id
    ]
    message.additional_kwargs["tool_calls"] = calls[:1]
    return response


def _as_single_chunk(response: ChatResponse) -> ChatResponse:
    return response.model_copy(update={"delta": response.message.content or ""})


def _iter_one(item: _T) -> Generator[_T, None, None]:
    yield item


async def _aiter_one(item: _T) -> AsyncGenerator[_T, None]:
    yield item


def _chosen_tool_name(tool_choice: str | dict[str, Any] | None) -> str | None:
    if tool_choice is None or tool_choice in ("auto", "required", "any"):
        return None
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
        if not isinstance(name, str):
            raise ValueError(f"tool_choice {tool_choice!r} does not name a tool")
        return name
    return tool_choice


def _parse_arguments(arguments: dict[str, Any] | str) -> dict[str, Any] | None:
    if isinstance(arguments, dict):
        return arguments
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
