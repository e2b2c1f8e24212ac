"""The ``AI21`` LLM: AI21 Labs models (Jamba, legacy Jurassic-2) for LlamaIndex.

Where the requests go and in which dialect is the deployment's business (``_deployments``:
AI21's hosted API, or a self-hosted OpenAI-compatible server such as vLLM); this class only
builds calls through the deployment's dialect, sends them with retries, and hands back
LlamaIndex responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import difflib
import functools
import json
import logging
import os
import pickle
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import httpx
import llama_index.core.instrumentation as instrument
from ai21.errors import AI21APIError
from llama_index.core.base.llms.generic_utils import (
    prompt_to_messages,
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
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.instrumentation.events.llm import (
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.output_parsers.pydantic import PydanticOutputParser
from llama_index.core.output_parsers.utils import extract_json_str
from llama_index.core.program.function_program import get_function_tool
from llama_index.core.program.llm_program import LLMTextCompletionProgram
from llama_index.core.program.utils import create_flexible_model, process_streaming_objects
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools.types import ToolMetadata
from llama_index.core.types import Model, PydanticProgramMode

from llama_index.llms.ai21._convert import (
    _tool_call_to_ai21,
    chosen_tool,
    clipped,
    normalize_tool_choice,
    schema_root,
    tool_parameters,
)
from llama_index.llms.ai21._deployments import Deployment, choose, discover, parse_base_url
from llama_index.llms.ai21._dialect import (
    CONTROL_KWARGS,
    Call,
    Dialect,
    check_json,
    check_request_options,
    check_template_kwargs,
    open_extra_body,
)
from llama_index.llms.ai21._discovery import (
    NOT_TLS,
    Ask,
    DiscoveryLock,
    Served,
    root_text,
    shown_names,
)
from llama_index.llms.ai21._http import (
    AsyncStream,
    HTTPClients,
    HTTPConfig,
    Stream,
    check_headers,
    check_tls,
)
from llama_index.llms.ai21._markup import (
    CUT,
    EXHAUSTED,
    RAISE_MAX_TOKENS,
    reasoning_exhausted,
    watching_cuts,
)
from llama_index.llms.ai21._models import DEFAULT_MODEL, ModelInfo, describe_guess, is_known
from llama_index.llms.ai21._retry import (
    acall_with_retries,
    call_with_retries,
    is_not_tls,
    is_permanent,
)
from llama_index.llms.ai21._secrets import (
    MASK,
    Secrets,
    check_api_key,
    find,
    masked,
    masked_header,
    scrub_headers,
    sent_headers,
    split_credentials,
    split_headers,
)
from llama_index.llms.ai21._stream import (
    ChatStreamState,
    IdleWatch,
    aresponses,
    ended_early,
    responses,
)
from llama_index.llms.ai21._tokenizer import load_tokenizer
from llama_index.llms.ai21.errors import (
    MIGRATION_DOCS,
    SELF_HOSTED_DOCS,
    StreamInterruptedError,
)

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel
    from llama_index.core.tools.types import BaseTool

_T = TypeVar("_T")
_PromptFunction = Callable[[str], str]  # made once: subscripting it costs 0.5 µs a call

logger = logging.getLogger("llama_index.llms.ai21")
# The keyword by which __setstate__ builds a copy whose secrets stayed behind (which ones).
_LOST_SECRETS = "_lost_secrets"
_LOST_HEADERS = "_lost_headers"
dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]

DEFAULT_BASE_URL = "https://api.ai21.com/studio/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 3
OUTPUT_SHARE = 8
"""The default ``num_output`` is at most this share of the context window (an eighth).

Room for the answer that leaves LlamaIndex's chat engines room too: their default memory keeps
up to all but 256 tokens of the window (70 % of it for the conversation), and their response
synthesizer pads 500 tokens besides ``num_output``; with a quarter, a context or
condense-plus-context chat engine on a 4096- or 8192-token server failed ("Chunk size -N is
not positive") once its memory filled, after about 20 turns (docs/rag.md, "A chat engine")."""


NOT_TLS_ADVICE = (
    "the server answered the TLS handshake with something that is not TLS: a server of your "
    "own (vLLM, llama-server, LM Studio, Ollama) speaks plain HTTP unless started with a "
    "certificate, so give its URL as http://..."
)


def _unreachable_advice(failures: Sequence[str]) -> str:
    """What to do when discovery got no list of models, from why (:class:`Ask`'s failures,
    e.g. ``GET http://localhost:8000/v1/models: ConnectError``)."""
    reasons = " ".join(failures)
    if NOT_TLS in reasons:  # an https:// URL for a plain-HTTP server
        return NOT_TLS_ADVICE
    if "ConnectError" in reasons:
        # Also a server still loading its weights: vLLM listens only once the model is loaded.
        return (
            "nothing accepted the connection: is the server running (and done loading its "
            "model), at that host and port?"
        )
    if "HTTP 503" in reasons:  # llama-server answers 503 while it loads the model
        return "the server is not ready (still loading its model?): try again when it is."
    if "HTTP 401" in reasons or "HTTP 403" in reasons:
        return (
            "the server wants a key: pass api_key=... (AI21_API_KEY is never sent to a server "
            "of your own)."
        )
    if "HTTP 404" in reasons:
        return "is base_url the server's /v1 URL (e.g. http://localhost:8000/v1)? Or pass model=..."
    return "pass model=..."


def _url(clients: HTTPClients, call: Call) -> str:
    """Where ``call`` goes, for messages: the clients' base URL has no credentials (a URL's
    user and password travel as ``auth``)."""
    return f"{clients.config.base_url}{call.path}"


class AI21(FunctionCallingLLM):
    """AI21 Labs models (Jamba, and the legacy Jurassic-2 line) as a LlamaIndex LLM.

    Chat, completion, streaming, async, tool calling, structured output, reasoning and
    grounded generation, on a server of your own serving Jamba's open weights (vLLM,
    llama.cpp's ``llama-server``, LM Studio, Ollama: a ``.../v1`` ``base_url``), or on
    anything that still speaks AI21's hosted API, such as the emulator (AI21's own hosted API
    was retired on 2026-08-09: it answers ``HostedAPIRetiredError``). HTTP errors are the
    ``ai21`` SDK's exceptions (``ai21.errors.Unauthorized``, ``TooManyRequestsError``, ...),
    exactly as the SDK raises them; transient ones (408, 429, 500, 502, 503, 504, timeouts,
    dropped connections) are retried first, honouring ``Retry-After``.

    Per call, ``chat`` and ``complete`` (and their streaming and async twins) take ``model=``
    (another model for that call, written and read by that model's recipe),
    ``preamble_override=`` (the system message for that call), ``documents=`` (grounding
    texts), ``chat_template_kwargs=``, the sampling fields (``max_tokens=``, ``temperature=``,
    ...) and any other API field (``n=``, ``response_format=``, ...), which is sent as given;
    ``extra_body=`` (its entries as fields) and ``extra_headers=`` (that request's headers) as
    openai-python takes them, and ``stream_options=`` (streams only). On a server of your own,
    ``logprobs=True`` (and ``top_logprobs=N``) fills the responses' ``logprobs``.
    ``complete`` and its twins apply ``completion_to_prompt`` unless ``formatted=True``.
    ``chat_with_tools`` and its twins also take ``tool_required=``, ``tool_choice=``
    (``"auto"``, ``"none"``, ``"required"`` or a tool's name) and ``strict=``.

    Example:
        ```python
        from llama_index.core.llms import ChatMessage
        from llama_index.llms.ai21 import AI21

        # Jamba2 3B on your own vLLM server, started as its model card says:
        llm = AI21(model="ai21labs/AI21-Jamba2-3B", base_url="http://localhost:8000/v1")
        print(llm.complete("Paul Graham is "))
        print(llm.chat([ChatMessage(role="user", content="What is your name?")],
                       preamble_override="You are a pirate with a colorful personality"))

        # AI21's API semantics, e.g. on the emulator: AI21_API_KEY and AI21_API_HOST set
        emulated = AI21(model="jamba-mini")
        print(emulated.complete("Paul Graham is "))
        ```
    """

    # Assignments are validated as construction is: docs/configuration.md lets fields change
    # between calls, and an unchecked one failed deep inside (or was sent) on the next call.
    # A field's error names the field and the problem, not the value given (pydantic's
    # ``hide_input_in_errors``): the value may be a credential in the wrong place, such as
    # ``default_headers="Authorization: Bearer sk-..."``, which pydantic quoted whole.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    model: str = Field(
        default=DEFAULT_MODEL,
        description=(
            "Model name: jamba-mini, jamba-large, a versioned name or j2-* on AI21's API; the "
            "served name (e.g. ai21labs/AI21-Jamba-Mini-1.7) on a self-hosted server, where it "
            "is optional: by default the model the server serves, learned on first need."
        ),
    )
    deployment: str = Field(
        default="ai21",
        # Chosen at construction (an assignment would change nothing else: a ValidationError);
        # discovery writes the kind it recognised through __dict__.
        frozen=True,
        description=(
            'Where the model runs: "ai21" (AI21\'s hosted API), "openai-compatible" (a '
            'self-hosted server, recognised on first need as one of the following), "vllm", '
            '"sglang", "llamacpp" (llama.cpp\'s llama-server), "lmstudio" or "ollama". '
            "Inferred from base_url when not given."
        ),
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description=(
            "API base URL; default: AI21_API_HOST, else AI21's https://api.ai21.com/studio/v1 "
            "(an ai21.com host alone gets /studio/v1). A self-hosted server's is its /v1 URL, "
            "e.g. http://localhost:8000/v1."
        ),
    )
    max_tokens: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Maximum tokens to generate; None uses the server's default. AI21's API allows "
            "up to 4096; a self-hosted server, up to its max_model_len."
        ),
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature (0 to 2); None: the server's default.",
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
        # The most a socket timeout can be (about 292 years): beyond it, the stdlib's
        # settimeout raises OverflowError on the first connect.
        le=threading.TIMEOUT_MAX,
        allow_inf_nan=False,
        description=(
            "Seconds allowed for each attempt's connect, each read and each write, and for a "
            "stream to bring more of its answer; default: AI21_TIMEOUT_SEC, else 120. None "
            "(0.8's default) is the default."
        ),
    )
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        description="Retries after the first attempt for transient failures (0: one attempt).",
    )
    default_headers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra HTTP headers sent with every request. A credential header's value (a name "
            "with auth, key, token, secret, ... in it: X-Api-Key, Authorization) is held as the "
            "key is and shown as [secure]."
        ),
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra API fields sent with every request (per-call keywords win).",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Variables for the model's chat template on a self-hosted server (vLLM, llama.cpp), "
            'e.g. {"thinking_prefix": "..."} for Jamba Reasoning 3B; sent as the request\'s '
            "chat_template_kwargs. A per-call chat_template_kwargs= adds to these (its keys win)."
        ),
    )
    context_window: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Override the model's context window (default: the model table; on a self-hosted "
            "server, its max_model_len from GET /v1/models, read once when first needed)."
        ),
    )
    num_output: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Override the output budget LlamaIndex reserves (default: max_tokens, else an "
            "eighth of the context window, at most the model's output limit, e.g. 4096)."
        ),
    )
    is_function_calling_model: bool | None = Field(
        default=None,
        description="Override whether the model can call tools (default: the model table).",
    )
    strict: bool = Field(
        default=False,
        description=(
            "Mark every tool offered as strict (OpenAI's function.strict: its arguments must "
            "follow its schema, where the server enforces it); per call, strict= to "
            "chat_with_tools and its twins wins. False sends nothing."
        ),
    )
    verify: bool | str = Field(
        default=True,
        description=(
            "TLS verification: True (certifi's CAs), False (never for production), or "
            "the path of a CA bundle. Ignored when http_client/async_http_client are given."
        ),
    )
    cert: str | tuple[str, str] | None = Field(
        default=None,
        description="Client certificate for mutual TLS: a PEM path, or (cert path, key path).",
    )
    http_client: httpx.Client | None = Field(
        default=None,
        exclude=True,
        description=(
            "Your own httpx.Client for sync calls (proxies, TLS, tracing): its headers, query "
            "and cookies go with each request (this package's headers win). Never closed "
            "here; a copy of the instance shares it."
        ),
    )
    async_http_client: httpx.AsyncClient | None = Field(
        default=None,
        exclude=True,
        description="Your own httpx.AsyncClient for async calls; likewise.",
    )
    # LlamaIndex's field, which has no description; its other modes are refused below.
    pydantic_program_mode: PydanticProgramMode = Field(
        default=PydanticProgramMode.DEFAULT,
        description=(
            "How structured_predict and its twins produce the object: DEFAULT (guided "
            "decoding, response_format json_schema, where the server has it; else function "
            "calling), FUNCTION (the class as the one tool) or LLM (the schema in the prompt, "
            "JSON mode where the server has it). OPENAI, GUIDANCE and LM_FORMAT_ENFORCER run "
            "other LLM classes' programs: a ValueError."
        ),
    )

    _secrets: Secrets = PrivateAttr()
    _deployment: Deployment = PrivateAttr()
    _http: HTTPClients = PrivateAttr()
    _served: Served | None = PrivateAttr(default=None)
    _asked_server: str | None = PrivateAttr(default=None)  # the base_url last asked
    _server_lock: DiscoveryLock = PrivateAttr(default_factory=DiscoveryLock)
    _chosen_kind: type[Deployment] = PrivateAttr()
    _model_learned: bool = PrivateAttr(default=False)
    _built_from: tuple[Any, ...] = PrivateAttr(default=())
    _model_facts: _ModelFacts | None = PrivateAttr(default=None)
    _discovery_failures: tuple[str, ...] = PrivateAttr(default=())  # the last asking's
    _reported: tuple[Any, ...] = PrivateAttr(default=())  # the last discovery warning logged
    _warned_keywords: set[str] = PrivateAttr(default_factory=set)  # near misses said once
    _lost_secrets: tuple[str, ...] = PrivateAttr(default=())  # a pickle's: see __setstate__
    _lost_headers: tuple[str, ...] = PrivateAttr(default=())  # their names, of those

    def __init__(self, *args: Any, api_key: str | None = None, **kwargs: Any) -> None:
        """Create the LLM.

        Args:
            *args: arguments by position, in the order 0.8's constructor took them
                (``model``, ``api_key``, ``base_url``, ``max_tokens``, ``max_retries``,
                ``default_headers``, ``timeout``, ``temperature``, ...), so that
                ``AI21("jamba-mini", key)`` means what it meant; keywords are clearer.
            api_key: the key; for AI21's API it falls back to ``AI21_API_KEY`` (also when
                empty, as in 0.8). A self-hosted server needs one only if it was started
                with ``--api-key``.
            **kwargs: the fields above. ``timeout=None`` (0.8's default) is the default:
                ``AI21_TIMEOUT_SEC``, else 120 s.

        Raises:
            ValueError: a field is invalid or unknown, the deployment is unknown or does not
                fit the model or URL, or AI21's API is used with no key.
        """
        if args:
            api_key = _by_position(args, api_key, kwargs)
        if "timeout" in kwargs and kwargs["timeout"] is None:
            del kwargs["timeout"]  # 0.8's default, in its dumps and in code passing it through
        if "timeout" not in kwargs and os.environ.get(TIMEOUT_ENV):
            # As 0.8 and the ai21 SDK (ai21_env_config.py) read it: an argument wins.
            kwargs["timeout"] = _timeout_from_env(os.environ[TIMEOUT_ENV])
        lost_secrets: tuple[str, ...] = kwargs.pop(_LOST_SECRETS, ())  # __setstate__'s only
        lost_headers: tuple[str, ...] = kwargs.pop(_LOST_HEADERS, ())  # the same
        for name in OPENAI_LIKE_NAMES.keys() & kwargs.keys():
            raise ValueError(
                f"{name}= is a setting of LlamaIndex's OpenAI/OpenAILike, not of AI21: "
                f"{OPENAI_LIKE_NAMES[name]}. See {MIGRATION_DOCS}"
            )
        for name in kwargs.keys() - type(self).model_fields.keys():
            close = _near_field(name)
            if close is not None:  # else pydantic's "Extra inputs are not permitted"
                raise ValueError(f"{name}= is not a setting of AI21: did you mean {close}=?")
        url_source = "base_url"
        if kwargs.get("base_url") is None:
            kwargs.pop("base_url", None)
            if os.environ.get("AI21_API_HOST"):
                kwargs["base_url"] = os.environ["AI21_API_HOST"]
                url_source = "AI21_API_HOST"
        deployment = kwargs.get("deployment")
        try:
            kind = choose(deployment, kwargs.get("base_url"))
            if kwargs.get("base_url") is not None:
                url = parse_base_url(kwargs["base_url"])
                if kind.api_root(url) != url:  # else the URL as given
                    kwargs["base_url"] = str(kind.api_root(url))
        except ValueError as exc:
            if url_source != "base_url" and str(exc).startswith("base_url"):  # say where from
                raise ValueError(f"AI21_API_HOST, the base_url here: {exc}") from None
            raise
        kwargs["deployment"] = kind.kind
        if kwargs.get("base_url") is None:
            if kind.default_base_url is None:
                raise ValueError(
                    f'deployment="{kind.kind}" needs base_url=..., the server\'s /v1 URL '
                    "(e.g. http://localhost:8000/v1)"
                )
            kwargs["base_url"] = kind.default_base_url
        if kind.model_required and "model" not in kwargs:
            raise ValueError(
                f'deployment="{kind.kind}" needs model=..., the name the server serves '
                "(GET <base_url>/models lists them)"
            )
        if kind.lists_models and kwargs.get("model") is None:
            kwargs["model"] = ""  # the served model, learned on first need (_know_server)
        elif not kind.lists_models and kwargs.get("model") == "":
            raise ValueError(
                f'model="" names no model: deployment="{kind.kind}" needs a name '
                f"(or leave model out for {DEFAULT_MODEL!r})"
            )
        super().__init__(**kwargs)
        _, credentials = split_credentials(parse_base_url(self.base_url))
        if credentials is not None:  # kept apart, sent as Basic auth; the field shows a mask
            self.base_url = masked(parse_base_url(self.base_url))
        self._chosen_kind = kind
        self._deployment = kind()
        if self.model:
            self._deployment.check(self.model)
        key, source = api_key, "api_key"
        if (key is None or key == "") and kind.api_key_env is not None:
            # "" too, as 0.8 (through the SDK's ``api_key or AI21_API_KEY``) read it: code
            # passing os.getenv("MY_KEY", "") on with AI21_API_KEY set kept working.
            key, source = os.environ.get(kind.api_key_env), kind.api_key_env
        if not key and kind.api_key_required and not lost_secrets:
            raise ValueError(self._missing_key_message(url_source, chose_by_url=deployment is None))
        self._secrets = Secrets(check_api_key(key, source) if key else None, credentials)
        # On a server that can be asked, the name is checked against what it reports, on
        # first need (_know_server): a name the server reports is not "unknown".
        if not kind.lists_models and not is_known(self.model):
            _warn_unknown_model(self.model)
        if self.query_wrapper_prompt is not None and self._facts.info.is_chat_model:
            # LlamaIndex's LLM.predict/stream wrap the prompt in it only for models that are
            # not chat models (LLM._extend_prompt); every Jamba model is one.
            logger.warning(
                "query_wrapper_prompt= is applied by LlamaIndex only to completion models "
                "(the retired J2 family); %s is a chat model, so it changes no request: put "
                "the wrapping in your prompt templates, or use system_prompt=.",
                repr(self.model) if self.model else "the served model",
            )
        self._lost_secrets = lost_secrets
        self._lost_headers = lost_headers
        self._http = HTTPClients(self._client_config())
        self._built_from = self._settings()

    def _missing_key_message(self, url_source: str, *, chose_by_url: bool) -> str:
        """Why a key is needed, and what to do. A URL of the user's that no kind claims (a
        server's root without ``/v1``, a proxy's path) fell back to AI21's API, which needs a
        key: say so first, since the user meant a server of their own more often than not."""
        kind = self._chosen_kind
        url = parse_base_url(self.base_url)  # the field: its password is masked
        if not chose_by_url or kind.default_base_url == self.base_url or kind.claims(url):
            return kind.missing_key_message
        v1 = url.copy_with(path=url.path.rstrip("/") + "/v1")
        return (
            f"{url_source} {self.base_url!r} does not end in /v1, so it was taken for an endpoint "
            "that speaks AI21's API, which needs a key (api_key=... or AI21_API_KEY). For a "
            "server of your own (vLLM, llama.cpp, LM Studio, Ollama), give its /v1 URL, "
            f'base_url={masked(v1)!r}, or name its kind, e.g. deployment="vllm" (vLLM\'s routes '
            f"are under /v1). See {SELF_HOSTED_DOCS}"
        )

    def _server_url(self) -> str:
        """The base URL requests go to: ``base_url`` without credentials. A password set on
        the field after construction is taken out of it here, as at construction."""
        url, credentials = parse_base_url(self.base_url), None
        if url.password != MASK:
            url, credentials = split_credentials(url)
            if credentials is not None:
                self.base_url = masked(parse_base_url(self.base_url))
            self._secrets.credentials = credentials
        else:
            url = url.copy_with(username=None, password=None)
        return str(url).rstrip("/")

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name not in ("default_headers", "base_url"):
            return
        if "_secrets" not in (self.__pydantic_private__ or {}):
            return  # being built: __init__ takes the secrets out
        # A secret leaves the field at the assignment, not at the next call: the instance is
        # shown (repr, dumps, pickles) in between.
        if name == "default_headers":
            self._hold_header_secrets()
        else:
            # A URL that does not parse: the next call raises, as documented.
            with contextlib.suppress(ValueError):
                self._server_url()
        self._built_from = ()  # a value held anew is sent: the clients are built again

    def _hold_header_secrets(self) -> None:
        """Take the values of ``default_headers``' credential headers out of the field into
        the secrets (the field shows the mask), a masked value keeping the one held."""
        shown, held = split_headers(self.default_headers, self._secrets.headers)
        if shown != self.default_headers:
            self.__dict__["default_headers"] = shown  # validated already: as given, masked
        self._secrets.headers = held

    def _client_config(self) -> HTTPConfig:
        # Checked here, at construction and whenever a setting changes (checks across
        # fields, and of files and clients, which no field validator runs): before any
        # request, by name.
        self._hold_header_secrets()  # a dict changed in place, or given at construction
        headers = sent_headers(self.default_headers, self._secrets.headers)
        check_headers(headers)  # as sent: a value held is checked too, never quoted
        for header in filter(masked_header, headers.items()):
            raise ValueError(
                f"default_headers[{header[0]!r}] is {MASK!r}, the mask this package shows in "
                "place of a credential header's value, and this instance holds no value for "
                "it: pass the real value"
            )
        check_tls(self.verify, self.cert)
        for name, client in (
            ("http_client", self.http_client),
            ("async_http_client", self.async_http_client),
        ):
            if client is not None and client.is_closed:
                raise ValueError(
                    f"{name} is closed: pass an open client (this package never closes yours)"
                )
        base_url = self._server_url()
        credentials = self._secrets.credentials
        return HTTPConfig(
            base_url=base_url,
            # Sent as httpx sends a URL's credentials: Basic auth, on every path.
            auth=None if credentials is None else (credentials.username, credentials.password),
            timeout=self.timeout,
            headers=self._deployment.headers(self._secrets.api_key, headers),
            verify=self.verify,
            cert=self.cert,
            http_client=self.http_client,
            async_http_client=self.async_http_client,
        )

    def _settings(self) -> tuple[Any, ...]:
        """What the clients are built from (compared on every call: kept cheap)."""
        return (
            self.base_url,
            self.timeout,
            self.verify,
            self.cert,
            id(self.http_client),
            id(self.async_http_client),
            tuple(self.default_headers.items()),
        )

    def _clients(self) -> HTTPClients:
        """The clients for the current settings (rebuilt if ``base_url``, ``timeout``,
        ``default_headers`` or the TLS settings were changed on the instance after creation).
        Every request, discovery's included, gets its clients here: an instance unpickled
        without its secrets raises here, before any request."""
        if self._lost_secrets:
            env = self._chosen_kind.api_key_env
            raise ValueError(
                f"This AI21 instance was pickled with its {' and '.join(self._lost_secrets)}, "
                "which pickles never carry, and this process cannot find them: "
                + (
                    f"set {env} in its environment, or "
                    if env and self._lost_secrets == ("api_key",)
                    else ""
                )
                + "build the instance here (e.g. in the worker's initializer) with "
                + (
                    "api_key=..., the full base_url and default_headers with their values"
                    if self._lost_headers
                    else "api_key=... and the full base_url"
                )
            )
        if self._settings() != self._built_from:
            self._http = HTTPClients(self._client_config())
            self._built_from = self._settings()  # after: the config masks a new password
        return self._http

    @field_validator(
        *("max_tokens", "temperature", "top_p", "timeout", "max_retries"),
        *("context_window", "num_output"),
        mode="before",
    )
    @classmethod
    def _not_a_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads True as 1; a per-call keyword refuses it (_dialect.check_params).
        if isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be a number, got {value!r}")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _not_zero(cls, value: Any) -> Any:
        # 0.8 handed its timeout to the ai21 SDK, which read 0 as "the default" (timeout_sec or
        # its 300 s); here 0 would end every attempt at once.
        if not isinstance(value, bool) and value == 0:
            raise ValueError(
                "timeout must be greater than 0 (the seconds each attempt's connect, read and "
                "write may take); 0.8 read 0 as its default: leave timeout out, or pass None, "
                f"for the default ({TIMEOUT_ENV}, else {DEFAULT_TIMEOUT:g} s)"
            )
        return value

    @field_validator("strict", "is_function_calling_model", mode="before")
    @classmethod
    def _a_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads "yes", "no", 1 and 0 as bools; a per-call keyword refuses them.
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be True or False, got {value!r}")
        return value

    @field_validator("num_output")
    @classmethod
    def _output_leaves_room(cls, value: int | None, info: ValidationInfo) -> int | None:
        window = info.data.get("context_window")
        if value is not None and window is not None and value >= window:
            raise ValueError(
                f"num_output ({value}) must be less than context_window ({window}): "
                "LlamaIndex reserves it out of the window, leaving nothing for the prompt"
            )
        return value

    @field_validator("pydantic_program_mode")
    @classmethod
    def _a_mode_this_package_runs(cls, value: PydanticProgramMode) -> PydanticProgramMode:
        # LlamaIndex's other modes run another LLM class's own program: they failed on the first
        # structured call ("No module named 'llama_index.program'", "Unsupported pydantic
        # program mode", an ImportError).
        if value in _FOREIGN_PROGRAM_MODES:
            raise ValueError(
                f"pydantic_program_mode={value.value!r} {_FOREIGN_PROGRAM_MODES[value]}; AI21 "
                "runs 'default' (guided decoding where the server has it, else function "
                "calling), 'function' or 'llm' (the schema in the prompt, JSON mode)"
            )
        return value

    # LlamaIndex's own fields: BaseLLM types the rate limiter as Any and lets any object through
    # as the callback manager, so a wrong one failed (AttributeError) or was ignored on a call.
    # (The rate limiter is newer than the oldest llama-index-core this package supports: on
    # those versions there is no such field to check.)
    @field_validator("rate_limiter", check_fields=False)
    @classmethod
    def _a_rate_limiter(cls, value: Any) -> Any:
        if value is not None and not (
            callable(getattr(value, "acquire", None))
            and callable(getattr(value, "async_acquire", None))
        ):
            raise ValueError(
                f"rate_limiter must be a LlamaIndex rate limiter (acquire and async_acquire, "
                f"e.g. TokenBucketRateLimiter), got {type(value).__name__}"
            )
        return value

    @field_validator("callback_manager", mode="before")
    @classmethod
    def _a_callback_manager(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, CallbackManager):
            raise ValueError(
                f"callback_manager must be a LlamaIndex CallbackManager, got {type(value).__name__}"
            )
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("default_headers", "additional_kwargs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        # llama-index-llms-openai takes None for both (its defaults): code written for it
        # passes it.
        return {} if value is None else value

    @field_validator("additional_kwargs")
    @classmethod
    def _json_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        # At construction, as every call would (a ValueError if extra_body is not a dict).
        check_request_options(open_extra_body(value) if "extra_body" in value else value)
        check_json("additional_kwargs", value)
        return value

    @field_validator("chat_template_kwargs", mode="before")
    @classmethod
    def _template_kwargs(cls, value: Any) -> Any:
        if value is not None:
            check_template_kwargs(value)
            check_json("chat_template_kwargs", value)
        return value

    @classmethod
    def class_name(cls) -> str:
        return "AI21_LLM"

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """The fields, without secrets; not the connection pools, and not clients you passed
        in (a copy in another process cannot share their sockets: it builds its own, with
        the same ``verify``/``cert`` settings).

        The key, the URL's password and the values of ``default_headers``' credential
        headers stay out of the pickle: it holds a token that finds them again in this
        process, or in one forked from it while this instance lives; elsewhere the key comes
        from the environment as for a new instance (see ``_secrets``), and a copy that cannot
        find one of them loads all the same, its first call a ``ValueError`` naming what is
        missing.
        """
        # pydantic's state, not LlamaIndex's BaseComponent's: that one deletes what does not
        # pickle (your own clients, a lambda given as completion_to_prompt) from the dicts
        # pydantic hands it, which are the instance's own, so the instance pickled lost those
        # fields (an AttributeError on its next call), and it says so through the root logger.
        # The same is left out here, of a copy.
        self._hold_header_secrets()  # a value put into the dict in place: not pickled either
        state = BaseModel.__getstate__(self)
        fields = {}
        for name, value in state["__dict__"].items():
            if name in ("http_client", "async_http_client"):
                value = None
            elif not _pickles(value):
                logger.warning(
                    "%s cannot be pickled (%s): the pickled copy has the default",
                    name,
                    type(value).__name__,
                )
                continue
            fields[name] = value
        state["__dict__"] = fields
        state["__pydantic_private__"] = None  # rebuilt by __init__ (holds the secrets)
        state["ai21_secrets"] = self._secrets.token
        # A copy that lost its secrets pickles as the instance it copied: where its own copy
        # lands, they are looked for again.
        lost = self._lost_secrets
        state["ai21_had_key"] = self._secrets.api_key is not None or "api_key" in lost
        state["ai21_had_credentials"] = (
            self._secrets.credentials is not None or "base_url's password" in lost
        )
        # their names
        state["ai21_held_headers"] = sorted([*self._secrets.headers, *self._lost_headers])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        fields = dict(state["__dict__"])
        found = find(state.get("ai21_secrets"))
        lost = []
        if found is not None and found.credentials is not None:
            url = parse_base_url(fields["base_url"]).copy_with(
                username=found.credentials.username, password=found.credentials.password
            )
            fields["base_url"] = str(url)
        elif state.get("ai21_had_credentials"):
            lost.append("base_url's password")
        held = found.headers if found is not None else {}
        if held:
            fields["default_headers"] = sent_headers(fields["default_headers"], held)
        missing = [name for name in state.get("ai21_held_headers", ()) if name not in held]
        if missing:
            names = [repr(name) for name in missing]
            values = "value" if len(names) == 1 else "values"
            listed = " and ".join([", ".join(names[:-1]), names[-1]] if names[:-1] else names)
            lost.append(f"default_headers' {values} of {listed}")
            # Left out until given again: their masks would be refused at construction.
            shown = fields["default_headers"] or {}
            fields["default_headers"] = {k: v for k, v in shown.items() if k not in missing}
            fields[_LOST_HEADERS] = tuple(missing)
        kind = choose(fields.get("deployment"), fields.get("base_url"))
        env = kind.api_key_env
        key_found = found is not None and found.api_key is not None
        if state.get("ai21_had_key") and not key_found and not (env and os.environ.get(env)):
            lost.append("api_key")
        if lost:
            # Raised by the copy's first request, not here: multiprocessing.Pool's worker dies
            # on an exception raised while it unpickles its task, and the pool then waits
            # forever for that task (IngestionPipeline.run(num_workers=2) hung). Raised on
            # the first call, the error travels back to the caller as the task's own.
            fields["base_url"] = str(
                parse_base_url(fields["base_url"]).copy_with(username=None, password=None)
            )
            fields[_LOST_SECRETS] = tuple(lost)
        api_key = found.api_key if found is not None else None
        self.__init__(api_key=api_key, **fields)  # type: ignore[misc]

    # ------------------------------------------------------------------ copies

    def __copy__(self) -> AI21:
        """A shallow copy (``copy.copy``, ``model_copy()``), as pydantic makes it (fields and
        connection pools shared), with its own secrets: a password set later on the copy's
        ``base_url`` stays the copy's (shared, the original sent it once its clients were
        rebuilt)."""
        copied = super().__copy__()
        copied._secrets = copy.copy(self._secrets)
        return copied

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> AI21:
        """pydantic's copy (``update`` unvalidated, as pydantic sets it); a secret given in
        ``update`` (a ``base_url`` password, a credential header's value) leaves the copy's
        field at once, as an assignment's does."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            if "default_headers" in update and isinstance(copied.default_headers, dict):
                copied._hold_header_secrets()
            if "base_url" in update and isinstance(copied.base_url, str):
                with contextlib.suppress(ValueError):  # the next call raises it
                    copied._server_url()
            copied._built_from = ()  # built again, from what the copy holds
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> AI21:
        """A deep copy (``copy.deepcopy``, ``model_copy(deep=True)``: LlamaIndex and users copy
        LLMs): its own fields, secrets and connection pools. Your own ``http_client`` and
        ``async_http_client`` are shared, not copied: they are yours, with their pools, TLS
        settings and hooks (and httpx cannot copy a client: its ``TypeError``). So are the
        ``callback_manager`` (a copy's calls reach your handlers: its token counts are in your
        ``TokenCountingHandler``, not in a copy of it) and the ``rate_limiter`` (one budget for
        both; LlamaIndex's ``TokenBucketRateLimiter`` holds a lock, which cannot be copied)."""
        memo = {} if memo is None else memo
        for yours in (
            self.http_client,
            self.async_http_client,
            self.callback_manager,
            self.rate_limiter,
        ):
            if yours is not None:
                memo[id(yours)] = yours
        return super().__deepcopy__(memo)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the sync connection pool now.

        Optional: pools also close when the instance is garbage-collected, and each event
        loop's async pool when that loop shuts down. The instance stays usable (a new pool
        opens on the next call). Clients you passed in are never closed. A shallow copy
        (``copy.copy``, ``model_copy()``) shares the pools, so this closes them for both; a
        deep copy has its own.
        """
        self._http.close()

    async def aclose(self) -> None:
        """Close the running event loop's async connection pool now (see `close`)."""
        await self._http.aclose()

    # ------------------------------------------------------------------ metadata

    @property
    def metadata(self) -> LLMMetadata:
        """Context window, output budget and capabilities of ``model``.

        Never fails for an unknown name (see the models page). On a self-hosted server they
        are what the server reports (vLLM's and SGLang's ``max_model_len``, llama.cpp's
        ``/props``, LM Studio's and Ollama's own APIs: see "Jamba on your computer"), asked
        once, when first needed, and again while the server is not ready (it refuses the
        connection, or answers 503); the model table fills in what it does not say.
        """
        return self._metadata(ask_server=True)

    def to_payload(self) -> dict[str, Any]:
        """What observability events carry about this LLM (LlamaIndex calls it on every
        call): the metadata, without asking the server for its context window."""
        return {"class_name": self.class_name(), **self._metadata(ask_server=False).model_dump()}

    def _metadata(self, *, ask_server: bool) -> LLMMetadata:
        needed = (
            not self.model
            or self.context_window is None
            or (self.is_function_calling_model is None and not self._facts.known)
        )
        served = self._know_server() if ask_server and needed else self._served
        info = self._facts.info
        context_window = (
            self.context_window
            or (served.context_window if served is not None else None)
            or info.context_window
        )
        function_calling = self.is_function_calling_model
        if function_calling is None and served is not None and not self._facts.known:
            function_calling = served.function_calling  # the server's word on a name we lack
        return LLMMetadata(
            context_window=context_window,
            # A small share of a small window: a query engine needs room for its prompt.
            num_output=(
                self.num_output
                or self.max_tokens
                or min(info.max_output, max(1, context_window // OUTPUT_SHARE))
            ),
            is_chat_model=info.is_chat_model,
            is_function_calling_model=(
                info.is_function_calling_model if function_calling is None else function_calling
            ),
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    # ------------------------------------------------------------------ knowing the server

    def _know_server(self) -> Served | None:
        """What the server said about itself and its model: asked once per ``base_url``, when
        first needed (``metadata``, or a request that depends on it); ``None`` where the
        deployment cannot be asked or the server did not answer."""
        if not self._deployment.lists_models:
            return None
        if self._asked_server != self.base_url:
            with self._server_lock:
                if self._asked_server != self.base_url:
                    self._ask_server()
        return self._served

    def _ask_server(self) -> None:
        if self._asked_server is not None:  # base_url changed: start again
            self._deployment = self._chosen_kind()
            self.__dict__["deployment"] = self._chosen_kind.kind
            self._model_facts = None
            if self._model_learned:
                self.model, self._model_learned = "", False
        clients = self._clients()  # first: it may mask a password set on base_url
        self._asked_server = self.base_url
        self._served = None
        ask = Ask(
            clients.sync_client(),
            clients.config.base_url,  # without credentials: those are ``auth``
            dict(clients.config.headers),
            self.timeout,
            auth=clients.config.auth,
        )
        try:
            deployment, served = discover(self._deployment, ask, self.model or None)
        except Exception as exc:  # metadata never fails: fall back to the model table
            ask.failures.append(f"{type(exc).__name__} reading the answers")
            deployment, served = self._deployment, None
        if deployment is not self._deployment:  # the generic kind adopts the server's own
            self._deployment = deployment
            self.__dict__["deployment"] = deployment.kind
        self._deployment.served = served
        self._model_facts = None  # they include what the server said
        if served is not None and served.model and not self.model:
            self.model, self._model_learned = served.model, True
        self._served = served
        said_before, self._discovery_failures = self._discovery_failures, tuple(ask.failures)
        if ask.not_ready:
            # A server still starting: nothing listening (vLLM, until its model is loaded) or
            # a 503 (llama-server, while it loads); the request itself is retried meanwhile.
            # Ask again on next need, or the model table's figures would stand in for the
            # server's for good. Both answers are instant; the same failure is not reported
            # twice in a row.
            self._asked_server = None
            if said_before == self._discovery_failures:
                return
        self._report(served, ask)

    def _report(self, served: Served | None, ask: Ask) -> None:
        """Say once what discovery could not learn, and warn about a name neither the model
        table nor the server knows."""
        where = root_text(self.base_url)  # the field: a password in it is masked
        kind = served.kind if served else self._deployment.kind
        reasons = [*(served.notes if served else ()), *ask.failures]
        if ask.not_ready:  # asked again at the next need: nothing is known about it yet
            logger.warning(
                "The server at %s is not ready (%s): the model table's figures apply until "
                "it answers (it is asked again at the next need); a query or chat engine "
                "built meanwhile keeps them (LlamaIndex reads the context window once): build "
                "it once the server answers, or pass context_window=...",
                where,
                "; ".join(reasons),
            )
            return
        unknown_window = served is None or served.context_window is None
        if unknown_window and self.context_window is None:
            if served is not None and not self.model and len(served.models) > 1:
                # No model chosen among several: each has its own window (a request without
                # a model= is a ValueError naming them: _ready_for_request).
                reasons.append(
                    f"model= was not given and it serves {len(served.models)} models, each "
                    "with its own window: pass model=... naming one"
                )
            self._warn_once(
                "Could not read the context window from the server at %s (%s: %s); using "
                "the model table's. Pass context_window=... to set it.",
                where,
                kind,
                "; ".join(reasons) or "it did not say",
            )
        elif reasons:  # a context_window given needs no word about the server's
            self._warn_once("The server at %s (%s): %s", where, kind, "; ".join(reasons))
        reported = served.models if served is not None else ()
        if self.model and self.model not in reported and not self._deployment.knows(self.model):
            _warn_unknown_model(self.model)

    def _warn_once(self, message: str, *args: Any) -> None:
        """Log a discovery WARNING unless it is the one logged last: a server asked again at
        each call (no model chosen yet) says the same thing each time."""
        if (message, *args) != self._reported:
            self._reported = (message, *args)
            logger.warning(message, *args)

    def _server_to_ask(self) -> bool:
        """Whether :meth:`_ready_for_request` would ask the server now."""
        return self._asks_before_requests() and self._asked_server != self.base_url

    def _asks_before_requests(self) -> bool:
        """Whether a request waits for the server's word: with no ``model``, or where the
        server can say what the request must be (which kind it is; which weights a served name
        stands for, and so where documents go and how tool calls and reasoning come back)."""
        return not self.model or self._deployment.lists_models

    def _ready_for_request(self, call: Call) -> bool:
        """Before a request whose content depends on the server (no ``model`` given, or a
        server not yet recognised), ask it, once; whether it was asked just now. A ``call``
        for a per-call ``model=`` needs no model of the instance's (one server, several
        models: LM Studio, Ollama, vLLM's router)."""
        if not self._asks_before_requests():
            return False
        asked = self._asked_server != self.base_url
        served = self._know_server()
        if not self.model and not call.body.get("model"):
            # Nothing can be sent without a model; the next call asks the server again (it
            # may have started, or loaded a model, since).
            self._asked_server = None
            where = root_text(self.base_url)  # the field: a password in it is masked
            served_names = list(served.models) if served is not None else []
            if served_names:
                raise ValueError(
                    f"model= was not given and the server at {where} serves more than one "
                    f"model ({shown_names(served_names)}): pass model=... naming the one to use"
                )
            failures = self._discovery_failures
            raise ValueError(
                f"model= was not given and the server at {where} could not be asked which "
                f"model it serves ({'; '.join(failures) or 'no answer'}): "
                f"{_unreachable_advice(failures)}"
            )
        return asked

    @property
    def _facts(self) -> _ModelFacts:
        """What the deployment says about ``model``, kept per model: LlamaIndex reads the
        metadata on every call (``to_payload``), and every call needs the dialect. Dropped
        when the deployment learns about its server (:meth:`_ask_server`)."""
        facts = self._model_facts
        if facts is None or facts.model != self.model:
            deployment, model = self._deployment, self.model
            facts = self._model_facts = _ModelFacts(
                model,
                deployment.dialect(model),
                deployment.model_info(model),
                deployment.knows(model),
            )
        return facts

    @property
    def _dialect(self) -> Dialect:
        return self._facts.dialect

    def _dialect_of(self, model: str | None) -> Dialect:
        """How a call's request is written and its answer read: for the instance's model, or
        for a per-call ``model=`` (:func:`_call_model`) by that model's own recipe."""
        if model is None or model == self.model:
            return self._dialect
        self._deployment.check(model)  # as the instance's model is (a J2 name on your server)
        return self._deployment.dialect(model)

    # ------------------------------------------------------------------ payloads

    def _params(self, call_kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": self.stop,
        }
        params = {k: v for k, v in params.items() if v is not None}
        instance = self.additional_kwargs
        params.update(open_extra_body(instance) if "extra_body" in instance else instance)
        if "extra_body" in call_kwargs:
            call_kwargs = open_extra_body(call_kwargs)
        if "model" in call_kwargs:  # the dialect's argument (_call_model), not a field to copy
            call_kwargs = {k: v for k, v in call_kwargs.items() if k != "model"}
        if self.chat_template_kwargs is not None:
            params["chat_template_kwargs"] = self.chat_template_kwargs
            per_call = call_kwargs.get("chat_template_kwargs")
            if isinstance(per_call, dict):  # anything else is refused by name in the dialect
                merged = {**self.chat_template_kwargs, **per_call}
                call_kwargs = {**call_kwargs, "chat_template_kwargs": merged}
        params.update(call_kwargs)
        _warn_near_misses(call_kwargs, self._warned_keywords)
        return params

    def _chat_build(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], *, stream: bool
    ) -> Callable[[], Call]:
        if "extra_headers" in kwargs:
            return _with_headers(
                kwargs, lambda rest: self._chat_build(messages, rest, stream=stream)
            )
        model = _call_model(kwargs)
        return lambda: self._dialect_of(model).chat(
            model or self.model,
            messages,
            self._params(kwargs),
            system_prompt=self.system_prompt,
            stream=stream,
        )

    def _complete_build(self, prompt: str, kwargs: dict[str, Any]) -> Callable[[], Call]:
        if "extra_headers" in kwargs:
            return _with_headers(kwargs, lambda rest: self._complete_build(prompt, rest))
        model = _call_model(kwargs)
        return lambda: self._dialect_of(model).complete(
            model or self.model, prompt, self._params(kwargs), system_prompt=self.system_prompt
        )

    def _built(self, build: Callable[[], Call]) -> Call:
        call = build()  # bad input is a ValueError before any request, discovery's included
        if self._ready_for_request(call):
            call = build()  # for the server it turned out to be, with the model it serves
        return self._checked(call)

    async def _abuilt(self, build: Callable[[], Call]) -> Call:
        """:meth:`_built` for the async methods: the server, when it must be asked first, is
        asked on a worker thread (blocking I/O), never on the caller's event loop."""
        call = build()
        asked = self._server_to_ask()
        if asked:
            await asyncio.to_thread(self._know_server)
        if self._ready_for_request(call) or asked:
            call = build()
        return self._checked(call)

    def _checked(self, call: Call) -> Call:
        if self._deployment.checks_calls:
            self._deployment.check_call(call.body, self._served)
        return call

    # ------------------------------------------------------------------ requests

    def _with_retries(self, attempt: Callable[[], _T], url: str) -> _T:
        """``attempt()`` under the retry policy; a failure as the deployment words it (AI21's
        retired API: a 410 that says so). Every request goes through here or its twin."""
        try:
            return call_with_retries(attempt, self.max_retries)
        except Exception as exc:
            self._secrets.scrub(exc)  # a server may have quoted the key back
            self._explain(exc, url)
            mapped = self._deployment.error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def _awith_retries(self, attempt: Callable[[], Awaitable[_T]], url: str) -> _T:
        """The async twin of :meth:`_with_retries`."""
        try:
            return await acall_with_retries(attempt, self.max_retries)
        except Exception as exc:
            self._secrets.scrub(exc)
            self._explain(exc, url)
            mapped = self._deployment.error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def _explain(self, exc: BaseException, url: str) -> None:
        """Add a note (PEP 678, Python 3.11+; class and message stay as they are) naming the
        request that failed, where its cause is not plain: httpx's message for a refused
        connection is the socket's (``[Errno 111] Connection refused``, no URL), and a server
        of one's own answers a missing key or a wrong URL with a bare 401 or 404."""
        if not hasattr(exc, "add_note"):
            return
        request = f"AI21: POST {url}"
        note = None
        if isinstance(exc, httpx.ConnectError) and is_not_tls(exc):
            note = f"{request} failed: {NOT_TLS_ADVICE}"
        elif isinstance(exc, httpx.ConnectError) and not is_permanent(exc):
            attempts = self.max_retries + 1
            note = (
                f"{request} was refused ({attempts} attempt{'' if attempts == 1 else 's'}): is "
                "the server running (and done loading its model), at that host and port? A "
                "self-hosted base_url is the server's /v1 URL."
            )
        elif isinstance(exc, httpx.TransportError):
            note = request
        elif isinstance(exc, AI21APIError) and self._deployment.api_key_env is None:
            status = exc.status_code
            if status in (401, 403) and self._secrets.api_key is None:
                note = (
                    f"{request} answered {status}: the server wants a key "
                    f"({self._deployment.key_setting}): pass api_key=... (AI21_API_KEY is never "
                    "sent to a server of your own)."
                )
            elif status in (401, 403):
                note = f"{request} answered {status}: the server refused the api_key given."
            elif status == 404:
                note = (
                    f"{request} answered 404: is base_url the server's /v1 URL, and model= a "
                    "name it serves (GET <base_url>/models lists them)?"
                )
        elif isinstance(exc, AI21APIError) and exc.status_code == 404:
            # AI21's API, or a URL no kind claimed (a server's root without /v1, with
            # AI21_API_KEY set): say both, since nothing here tells them apart.
            note = (
                f"{request} answered 404: is base_url the API's root (AI21's API: "
                ".../studio/v1; a server of your own: its /v1 URL), and model= a name it serves?"
            )
        if note is not None and note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)

    def _post(self, call: Call) -> Any:
        clients = self._clients()
        return self._with_retries(
            lambda: clients.post(call.path, call.body, call.headers), _url(clients, call)
        )

    async def _apost(self, call: Call) -> Any:
        clients = self._clients()
        return await self._awith_retries(
            lambda: clients.apost(call.path, call.body, call.headers), _url(clients, call)
        )

    def _stream_events(self, call: Call, dialect: Dialect) -> ChatResponseGen:
        """Yield responses; retry until the first one has reached the caller, never after."""
        clients = self._clients()

        def open_stream() -> tuple[Stream, ChatStreamState, Iterator[ChatResponse], Any]:
            response = clients.open_stream(call.path, call.body, call.headers)
            state = dialect.stream_state(call)
            chunks = responses(response.iter_bytes(), state, _idle_watch(response, state))
            if call.single_tool_call:
                chunks = map(_single_tool_call, chunks)
            try:
                return response, state, chunks, next(chunks, None)
            except BaseException as exc:  # nothing of the answer is used: none of it is read on
                scrub_headers(exc, response.response.request.headers)  # an error event's quote
                response.abandon()
                response.close()
                raise

        closes = clients.closes
        response, state, chunks, first = self._with_retries(open_stream, _url(clients, call))
        try:
            if first is None:
                raise ended_early(state)
            yield first
            yield from chunks
        except httpx.TransportError as exc:
            raise _interrupted(exc, state, "close()" if clients.closes != closes else None) from exc
        except Exception as exc:  # an error event, a broken event: may quote a secret back
            self._secrets.scrub(exc, response.response.request.headers)
            raise
        except BaseException:  # the caller left (GeneratorExit) or was interrupted
            response.abandon()
            raise
        finally:
            response.close()

    async def _astream_events(self, call: Call, dialect: Dialect) -> ChatResponseAsyncGen:
        clients = self._clients()

        async def open_stream() -> tuple[
            AsyncStream, ChatStreamState, AsyncIterator[ChatResponse], Any
        ]:
            response = await clients.aopen_stream(call.path, call.body, call.headers)
            state = dialect.stream_state(call)
            chunks = aresponses(response.aiter_bytes(), state, _idle_watch(response, state))
            if call.single_tool_call:
                chunks = _amap(_single_tool_call, chunks)
            try:
                return response, state, chunks, await anext(chunks, None)
            except BaseException as exc:
                scrub_headers(exc, response.response.request.headers)
                response.abandon()
                await response.aclose()
                raise

        closes = clients.acloses
        response, state, chunks, first = await self._awith_retries(open_stream, _url(clients, call))
        try:
            if first is None:
                raise ended_early(state)
            yield first
            async for chunk in chunks:
                yield chunk
        except httpx.TransportError as exc:
            closed = "aclose()" if clients.acloses != closes else None
            raise _interrupted(exc, state, closed) from exc
        except Exception as exc:
            self._secrets.scrub(exc, response.response.request.headers)
            raise
        except BaseException:  # the caller left (GeneratorExit) or was cancelled
            response.abandon()
            raise
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ chat (private)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._built(self._chat_build(messages, kwargs, stream=False))
        response = self._dialect_of(_call_model(kwargs)).chat_response(self._post(call), call)
        return _single_tool_call(response) if call.single_tool_call else response

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = await self._abuilt(self._chat_build(messages, kwargs, stream=False))
        dialect = self._dialect_of(_call_model(kwargs))
        response = dialect.chat_response(await self._apost(call), call)
        return _single_tool_call(response) if call.single_tool_call else response

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        model = _call_model(kwargs)
        if not self._dialect_of(model).streams:  # the whole answer, as one chunk
            return _iter_one(_as_single_chunk(self._chat(messages, **kwargs)))
        call = self._built(self._chat_build(messages, kwargs, stream=True))
        return self._stream_events(call, self._dialect_of(model))

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        model = _call_model(kwargs)
        if not self._dialect_of(model).streams:
            return _aiter_one(_as_single_chunk(await self._achat(messages, **kwargs)))
        call = await self._abuilt(self._chat_build(messages, kwargs, stream=True))
        return self._astream_events(call, self._dialect_of(model))

    def _to_prompt(self, prompt: str) -> str:
        """``prompt`` through ``completion_to_prompt`` (never None: LlamaIndex sets its
        default, which returns the prompt)."""
        return cast(_PromptFunction, self.completion_to_prompt)(prompt)

    # ------------------------------------------------------------------ public API

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat; ``preamble_override=`` replaces the system message for this call, and
        ``model=`` asks another model, the request written and the answer read by its recipe.

        Any other keyword (``n``, ``response_format``, ``documents``, ``logprobs``, ...) goes
        into the request; ``extra_body``'s entries go as fields and ``extra_headers`` as this
        request's headers. ``documents`` takes strings, dicts or LlamaIndex Documents/Nodes.
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
        """Complete a prompt (sent as one user message; J2 models use ``/complete``).

        Unless ``formatted=True``, the prompt goes through ``completion_to_prompt`` first
        (LlamaIndex's default leaves it as it is), as in llama-index-llms-openai-like.
        """
        # Straight to a CompletionResponse, without a ChatResponse in between: this call is
        # hot in RAG loops.
        if not formatted:
            prompt = self._to_prompt(prompt)
        call = self._built(self._complete_build(prompt, kwargs))
        return self._dialect_of(_call_model(kwargs)).completion_response(self._post(call), call)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion (J2: the whole answer as one chunk); ``formatted`` as in
        `complete`."""
        if not formatted:
            prompt = self._to_prompt(prompt)
        call = self._built(
            self._complete_build(prompt, kwargs)
        )  # checks everything before any request
        dialect = self._dialect_of(_call_model(kwargs))
        if not dialect.streams:
            response = dialect.completion_response(self._post(call), call)
            return _iter_one(response.model_copy(update={"delta": response.text}))
        return _completion_chunks(self._stream_chat(prompt_to_messages(prompt), **kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async version of `complete`."""
        if not formatted:
            prompt = self._to_prompt(prompt)
        call = await self._abuilt(self._complete_build(prompt, kwargs))
        dialect = self._dialect_of(_call_model(kwargs))
        return dialect.completion_response(await self._apost(call), call)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async version of `stream_complete`."""
        if not formatted:
            prompt = self._to_prompt(prompt)
        call = await self._abuilt(self._complete_build(prompt, kwargs))
        dialect = self._dialect_of(_call_model(kwargs))
        if not dialect.streams:
            response = dialect.completion_response(await self._apost(call), call)
            return _aiter_one(response.model_copy(update={"delta": response.text}))
        return _acompletion_chunks(await self._astream_chat(prompt_to_messages(prompt), **kwargs))

    # ------------------------------------------------------------ structured output

    def _structured_llm_kwargs(self, llm_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """JSON mode for the text-parsing program (``pydantic_program_mode="llm"``).

        By default structured output is guided decoding where the server has it (``json_schema``)
        and function calling elsewhere. With
        ``pydantic_program_mode=PydanticProgramMode.LLM`` LlamaIndex prompts with the JSON
        schema and parses the text; asking for ``response_format={"type": "json_object"}``
        then guarantees the text is JSON.
        """
        formats = self._dialect.limits.response_formats  # the model's: J2 has none
        if self.pydantic_program_mode != PydanticProgramMode.LLM or "json_object" not in formats:
            return dict(llm_kwargs or {})  # a copy: LlamaIndex's programs pop keys from it
        return {"response_format": {"type": "json_object"}, **(llm_kwargs or {})}

    def _uses_json_schema(self) -> bool:
        """Guided decoding: the server constrains the answer to the output class's schema."""
        return (
            self.pydantic_program_mode == PydanticProgramMode.DEFAULT
            and "json_schema" in self._dialect.limits.response_formats
        )

    def _structured_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> _StructuredStream | None:
        """What a structured call sends (announced as LlamaIndex's own structured predictions
        are), or ``None`` for a mode this package does not run itself."""
        call = self._structured_stream(output_cls, prompt, llm_kwargs, prompt_args)
        if call is not None:
            dispatcher.event(
                LLMStructuredPredictStartEvent(
                    output_cls=output_cls, template=prompt, template_args=prompt_args
                )
            )
        return call

    def _structured_result(self, call: _StructuredStream, response: ChatResponse) -> Any:
        output = self._final_object(call, response)
        dispatcher.event(LLMStructuredPredictEndEvent(output=output))
        return output

    @dispatcher.span
    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Predict a validated ``output_cls``.

        By ``pydantic_program_mode``: "default" constrains the answer to the class's JSON
        schema where the server has guided decoding (``response_format`` ``json_schema``: a
        server of your own) and uses function calling elsewhere (AI21's API); "function"
        always uses function calling; "llm" puts the schema in the prompt and asks for JSON
        mode where the server has it. ``llm_kwargs`` go with the request; a ``tool_choice``
        there that rules out the class's tool is a ``ValueError``. The answer is read as a
        stream's whole answer is: the validated object, or a ``ValueError`` naming the class
        and what was wrong (``max_tokens``, for an answer cut there).
        """
        check_output_cls(output_cls)
        call = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        if call is None:
            with _naming_exhaustion(output_cls):
                result = _unspanned(FunctionCallingLLM.structured_predict)(
                    self,
                    output_cls,
                    copy.copy(prompt),  # LlamaIndex's text program sets its parser on it
                    llm_kwargs=self._structured_llm_kwargs(llm_kwargs),
                    **prompt_args,
                )
            return cast(Model, result)
        if call.tool is None:
            response = self.chat(call.messages, **call.kwargs)
        else:
            response = self.chat_with_tools([call.tool], chat_history=call.messages, **call.kwargs)
        return cast(Model, self._structured_result(call, response))

    @dispatcher.span
    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async version of `structured_predict`."""
        check_output_cls(output_cls)
        call = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        if call is None:
            with _naming_exhaustion(output_cls):
                result = await _unspanned(FunctionCallingLLM.astructured_predict)(
                    self,
                    output_cls,
                    copy.copy(prompt),
                    llm_kwargs=self._structured_llm_kwargs(llm_kwargs),
                    **prompt_args,
                )
            return cast(Model, result)
        if call.tool is None:
            response = await self.achat(call.messages, **call.kwargs)
        else:
            response = await self.achat_with_tools(
                [call.tool], chat_history=call.messages, **call.kwargs
            )
        return cast(Model, self._structured_result(call, response))

    def stream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | FlexibleModel, None, None]:
        """Stream partial ``output_cls`` objects as the answer arrives, ending with the
        validated object.

        The request is the one `structured_predict` sends in the same
        ``pydantic_program_mode``. An answer that ends without a valid object (text instead of
        the call, JSON that does not validate, an answer cut at ``max_tokens``) is a
        ``ValueError`` at the end of the stream.
        """
        check_output_cls(output_cls)
        return _unspanned(FunctionCallingLLM.stream_structured_predict)(
            self, output_cls, prompt, llm_kwargs, **prompt_args
        )

    async def astream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | FlexibleModel, None]:
        """Async version of `stream_structured_predict`."""
        check_output_cls(output_cls)
        return await _unspanned(FunctionCallingLLM.astream_structured_predict)(
            self, output_cls, prompt, llm_kwargs, **prompt_args
        )

    # LlamaIndex's own streamed programs ask for the tool without requiring it (core's
    # ``FunctionCallingProgram.stream_call`` drops ``tool_required``), and end on an empty
    # partial object, silently, when the answer holds none. Here a stream sends what the
    # non-streamed call sends, hands out LlamaIndex's partial objects, and its whole answer is
    # then read as the non-streamed one is: the validated object, or a ``ValueError``.

    def _structured_stream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None, None]:
        call = self._structured_stream(output_cls, prompt, llm_kwargs, prompt_args)
        if call is None:
            llm_kwargs = self._structured_llm_kwargs(llm_kwargs)
            return super()._structured_stream_call(
                output_cls, copy.copy(prompt), llm_kwargs, **prompt_args
            )
        if call.tool is None:
            stream = self.stream_chat(call.messages, **call.kwargs)
        else:
            stream = self.stream_chat_with_tools(
                [call.tool], chat_history=call.messages, **call.kwargs
            )
        return self._partial_objects(call, stream)

    async def _structured_astream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None]:
        call = self._structured_stream(output_cls, prompt, llm_kwargs, prompt_args)
        if call is None:
            llm_kwargs = self._structured_llm_kwargs(llm_kwargs)
            return await super()._structured_astream_call(
                output_cls, copy.copy(prompt), llm_kwargs, **prompt_args
            )
        if call.tool is None:
            stream = await self.astream_chat(call.messages, **call.kwargs)
        else:
            stream = await self.astream_chat_with_tools(
                [call.tool], chat_history=call.messages, **call.kwargs
            )
        return self._apartial_objects(call, stream)

    def _structured_stream(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> _StructuredStream | None:
        """What a streamed structured call sends, and how its whole answer is read: as
        `structured_predict` does in each ``pydantic_program_mode``. ``None`` for a mode this
        package does not run itself (LlamaIndex's own program then runs)."""
        mode = self.pydantic_program_mode
        if self._uses_json_schema():  # guided decoding
            messages = self._extend_messages(prompt.format_messages(llm=self, **prompt_args))
            kwargs = {"response_format": json_schema_format(output_cls), **(llm_kwargs or {})}
            return _StructuredStream(output_cls, messages, kwargs)
        if mode == PydanticProgramMode.FUNCTION or (
            mode == PydanticProgramMode.DEFAULT and self.metadata.is_function_calling_model
        ):
            # As LlamaIndex's program: the class as the one tool, required, one call.
            tool = _class_tool(output_cls)
            kwargs = _structured_tool_kwargs(tool.metadata.name or output_cls.__name__, llm_kwargs)
            messages = self._extend_messages(prompt.format_messages(llm=self, **prompt_args))
            return _StructuredStream(output_cls, messages, kwargs, tool)
        if mode in (PydanticProgramMode.LLM, PydanticProgramMode.DEFAULT) and (
            self.metadata.is_chat_model
        ):
            # As LlamaIndex's text program: the schema in the prompt (its parser sets itself
            # on the template), the answer's JSON read by that parser; JSON mode where there.
            parser = _SchemaInPrompt(output_cls=output_cls)
            program: LLMTextCompletionProgram[Model] = LLMTextCompletionProgram.from_defaults(
                output_parser=parser, prompt=copy.copy(prompt), llm=self
            )
            messages = program.prompt.format_messages(llm=self, **prompt_args)
            messages = self._extend_messages(messages)
            kwargs = self._structured_llm_kwargs(llm_kwargs)
            return _StructuredStream(output_cls, messages, kwargs, parser=parser)
        return None

    def _partial_objects(
        self, call: _StructuredStream, stream: Iterable[ChatResponse]
    ) -> Generator[Any, None, None]:
        reader = _PartialReader(call.output_cls, self)
        partial: Any = None
        last: ChatResponse | None = None
        for last in stream:
            partial = reader.feed(last)
            yield partial
        final = self._final_object(call, last)
        if final != partial:
            yield final

    async def _apartial_objects(
        self, call: _StructuredStream, stream: AsyncIterator[ChatResponse]
    ) -> AsyncGenerator[Any, None]:
        reader = _PartialReader(call.output_cls, self)
        partial: Any = None
        last: ChatResponse | None = None
        async for last in stream:
            partial = reader.feed(last)
            yield partial
        final = self._final_object(call, last)
        if final != partial:
            yield final

    def _final_object(self, call: _StructuredStream, response: ChatResponse | None) -> Any:
        """The whole answer as the class, or a ``ValueError`` saying why it is not one."""
        name = call.output_cls.__name__
        if response is None:
            raise ValueError(f"no {name}: the stream ended without an answer")
        if call.tool is None:
            if call.parser is None:
                return parse_structured(call.output_cls, response)
            try:
                return call.parser.parse(response.message.content or "")
            except ValueError as exc:
                _raise_if_cut(call.output_cls, response, exc)
                raise ValueError(f"no {name} in the answer: {exc}") from exc
        message = response.message
        if not message.additional_kwargs.get("tool_calls") and not any(
            isinstance(b, ToolCallBlock) for b in message.blocks
        ):
            _raise_if_cut(call.output_cls, response, None)
            raise _NoToolCall(message.content or "").naming(name)
        selection = self.get_tool_calls_from_response(response)[0]
        try:
            return call.output_cls.model_validate(selection.tool_kwargs)
        except ValueError as exc:
            raise ValueError(
                f"the {name} tool was called with arguments that are not a valid {name} "
                f"({exc}): {selection.tool_kwargs!r}"
            ) from exc

    # ------------------------------------------------------------------ tokenizer

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (``encode(text) -> list[int]``), loaded lazily.

        Needs the ``tokenizer`` extra (``pip install "llama-index-llms-ai21[tokenizer]"``).
        """
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
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Offer ``tools`` as function definitions, without touching ``chat_history``.

        ``tool_choice`` (``"auto"``, ``"none"``, ``"required"``, a tool's name or
        ``{"type": "function", "function": {"name": ...}}``) and ``tool_required=True`` (the same
        as ``"required"`` when no tool is named) reach the server as it honours them: vLLM and
        other OpenAI-compatible servers get the field itself, every tool offered; AI21's API
        has no such field, so a named tool is offered alone, ``"none"`` offers none, and a
        required call is logged once as not enforceable (docs/tools-and-agents.md).
        ``allow_parallel_tool_calls=False`` keeps only the first tool call of each answer.
        ``strict=True`` (default: the ``strict`` field) marks each tool ``"strict": true`` with
        ``additionalProperties: false``, as llama-index-llms-openai does; otherwise nothing is
        added (a ``"strict": false`` would reach the model's prompt on vLLM).
        """
        if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
            raise ValueError(
                f"tools must be a list of LlamaIndex tools (FunctionTool, ...), got "
                f"{type(tools).__name__}"
            )
        for index, tool in enumerate(tools):
            if not hasattr(getattr(tool, "metadata", None), "to_openai_tool"):
                raise ValueError(
                    f"tools[{index}] is a {type(tool).__name__}, not a LlamaIndex tool (wrap a "
                    "function with FunctionTool.from_defaults(fn))"
                )
        if tool_required is None:
            tool_required = False
        elif not isinstance(tool_required, bool):  # "no" and "false" are true
            raise ValueError(f"tool_required must be True or False, got {tool_required!r}")
        if strict is None:
            strict = self.strict
        elif not isinstance(strict, bool):
            raise ValueError(f"strict must be True or False, got {strict!r}")
        specs = [_tool_spec(tool) for tool in tools]
        if strict:
            for spec in specs:  # new dicts on every call: ours to change
                spec["function"]["strict"] = True
                spec["function"]["parameters"]["additionalProperties"] = False
        messages = list(chat_history or [])
        if user_msg is not None:
            if isinstance(user_msg, str):
                user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            prepared["parallel_tool_calls"] = allow_parallel_tool_calls
        if tool_required:
            if not specs:
                raise ValueError("tool_required=True, but no tools are offered")
            if tool_choice is None:
                tool_choice = "required"
            elif normalize_tool_choice(tool_choice) in ("auto", "none"):
                raise ValueError(
                    f"tool_required=True contradicts tool_choice={tool_choice!r}: pass one of them"
                )
        if tool_choice is not None:
            prepared["tool_choice"] = tool_choice
        return prepared

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The response's tool calls with parsed arguments.

        Raises:
            ValueError: there is no tool call (only when ``error_on_no_tool_call``), or a
                call's arguments are not a JSON object. Without ``error_on_no_tool_call``
                such a call is skipped while a stream's arguments are still arriving, but not
                in a whole answer (one with its ``finish_reason``): LlamaIndex's agents ask
                with ``error_on_no_tool_call=False``, and would end the run on an empty answer
                with the call dropped.
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
                raise _NoToolCall(response.message.content or "")
            return []
        finish_reason = response.additional_kwargs.get("finish_reason")
        # A stream's chunk before its last (a whole answer has no delta): a call named whose
        # arguments have not begun is left out as one whose arguments are still arriving, not
        # shown as a call without arguments ({}) that the next chunk would take back. A call
        # that takes none ends with its "{}", or with the stream.
        arriving = (
            not error_on_no_tool_call and finish_reason is None and response.delta is not None
        )
        selections = []
        for call_id, name, arguments in calls:
            if arriving and isinstance(arguments, str) and not arguments.strip():
                continue
            parsed = _parse_arguments(arguments)
            if parsed is None:
                if error_on_no_tool_call or finish_reason is not None:
                    text = arguments if isinstance(arguments, str) else repr(arguments)
                    shown = repr(text[:200]) + ("..." if len(text) > 200 else "")
                    cut = (
                        "; the answer was cut at max_tokens (finish_reason 'length'): "
                        f"{RAISE_MAX_TOKENS}"
                        if finish_reason == "length"
                        else ""
                    )
                    raise ValueError(
                        f"Tool call {call_id or name!r} to {name!r} has arguments that are not "
                        f"a JSON object: {shown}{cut}"
                    )
                continue  # a stream's call whose arguments are still arriving
            selections.append(ToolSelection(tool_id=call_id, tool_name=name, tool_kwargs=parsed))
        return selections


# ---------------------------------------------------------------------- helpers


_FOREIGN_PROGRAM_MODES = {
    PydanticProgramMode.OPENAI: "runs the OpenAI LLM's own program (llama-index-program-openai)",
    PydanticProgramMode.GUIDANCE: "runs a guidance model's program, not an LLM's",
    PydanticProgramMode.LM_FORMAT_ENFORCER: (
        "runs a local HuggingFace or LlamaCPP model's program "
        "(llama-index-program-lmformatenforcer)"
    ),
}


class _ModelFacts(NamedTuple):
    model: str
    dialect: Dialect
    info: ModelInfo  # the model table's, as the deployment reads it
    known: bool  # whether the model table has the name


# The per-call keywords this package reads or checks (docs/configuration.md, "Per-call
# keywords"). Any other keyword is sent as a request field unchanged, and vLLM ignores a field
# it does not know, so a misspelt one (max_token=) would do nothing without a word.
KNOWN_CALL_KEYWORDS = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "response_format",
    "chat_template_kwargs",
    "tools",
    "logprobs",
    "top_logprobs",
    "extra_body",
    "extra_headers",
    "stream_options",
    "formatted",
    *CONTROL_KWARGS,
)


_LEAVE_OUT = "leave it out"
# Constructor arguments of llama-index-llms-openai's OpenAI and OpenAILike that AI21 has no
# field for, and what to write instead: code moving from OpenAILike would otherwise get
# pydantic's bare "Extra inputs are not permitted".
OPENAI_LIKE_NAMES = {
    "api_base": 'AI21 calls it base_url=, e.g. base_url="http://localhost:8000/v1"',
    "is_chat_model": (
        f"Jamba models are chat models, always sent to /chat/completions; {_LEAVE_OUT}"
    ),
    "reuse_client": (
        "AI21 always reuses its connection pools, one per event loop (so async calls from "
        f"several loops are safe); {_LEAVE_OUT}"
    ),
    "should_use_structured_outputs": (
        "structured output uses the server's guided decoding (response_format json_schema) "
        f"by default, and pydantic_program_mode= chooses; {_LEAVE_OUT}"
    ),
    "tokenizer": (
        "llm.tokenizer is the model's own (the [tokenizer] extra), and max_tokens is never "
        f"inferred from a prompt; {_LEAVE_OUT}"
    ),
    "api_version": f"an Azure OpenAI setting; {_LEAVE_OUT}",
    "max_new_tokens": "AI21 calls it max_tokens=",
    "logprobs": 'pass logprobs=True per call, or additional_kwargs={"logprobs": True}',
    "top_logprobs": ("pass top_logprobs=N per call (with logprobs=True), or in additional_kwargs"),
    "reasoning_effort": (
        "pass reasoning_effort= per call, or in additional_kwargs: it is sent as the request field"
    ),
    "modalities": f"Jamba reads and writes text only; {_LEAVE_OUT}",
    "audio_config": f"Jamba reads and writes text only; {_LEAVE_OUT}",
    "default_query": (
        "pass your own http_client=/async_http_client= built with it, "
        "httpx.Client(params=...): its query goes with every request"
    ),
    "openai_client": "pass your own httpx clients instead: http_client=, async_http_client=",
    "async_openai_client": "pass your own httpx clients instead: http_client=, async_http_client=",
}


# The parameters of 0.8's constructor, in its order (llama-index-llms-ai21 0.8.0, base.py): it
# took them by position as well as by name.
POSITIONAL_0_8 = (
    "model",
    "api_key",
    "base_url",
    "max_tokens",
    "max_retries",
    "default_headers",
    "timeout",
    "temperature",
    "additional_kwargs",
    "callback_manager",
    "system_prompt",
    "messages_to_prompt",
    "completion_to_prompt",
    "pydantic_program_mode",
    "output_parser",
)
TIMEOUT_ENV = "AI21_TIMEOUT_SEC"


def _by_position(args: tuple[Any, ...], api_key: str | None, kwargs: dict[str, Any]) -> Any:
    """Put arguments given by position into ``kwargs`` under 0.8's names for those positions
    (a model name first, never a key); the ``api_key`` to use. A ``TypeError`` as Python's own
    for too many, or for a name given both ways."""
    if len(args) > len(POSITIONAL_0_8):
        raise TypeError(
            f"AI21() takes at most {len(POSITIONAL_0_8)} arguments by position "
            f"({', '.join(POSITIONAL_0_8)}), {len(args)} were given"
        )
    for name, value in zip(POSITIONAL_0_8, args, strict=False):
        if name in kwargs or (name == "api_key" and api_key is not None):
            raise TypeError(f"AI21() got multiple values for argument {name!r}")
        if name == "api_key":
            api_key = value
        else:
            kwargs[name] = value
    return api_key


def _timeout_from_env(value: str) -> float:
    """``AI21_TIMEOUT_SEC`` as the timeout, or a ``ValueError`` naming the variable."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= threading.TIMEOUT_MAX:  # NaN fails too
        raise ValueError(
            f"{TIMEOUT_ENV} must be a number of seconds greater than 0 (the timeout of each "
            f"attempt), got {value!r}"
        )
    return seconds


def _call_model(kwargs: dict[str, Any]) -> str | None:
    """A call's own ``model=`` (llama-index-llms-openai takes one per call too), checked; ``None``:
    the instance's. The call's request is written and its answer read by that model's recipe
    (``AI21._dialect_of``): its tool-call format and reasoning, where its documents go (a field
    or the prompt), J2's routes."""
    model = kwargs.get("model")
    if model is None:
        return None
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model= must name a model (a non-empty string), got {model!r}")
    return model


def _with_headers(
    kwargs: dict[str, Any], build: Callable[[dict[str, Any]], Callable[[], Call]]
) -> Callable[[], Call]:
    """A call's builder with its ``extra_headers=`` (openai-python's per-request headers:
    LlamaIndex's own ``DocumentContextExtractor`` passes them) sent as headers, checked now,
    before any request; the other keywords built as usual."""
    rest = dict(kwargs)  # the caller's: stream_complete builds from them twice
    headers = rest.pop("extra_headers")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise ValueError(
                # Its type only: what was passed may hold a credential (an Authorization).
                "extra_headers must be a dict of header names and values, got "
                f"{type(headers).__name__}"
            )
        check_headers(headers, "extra_headers")
        headers = dict(headers)
    built = build(rest)
    if not headers:
        return built
    return lambda: built()._replace(headers=headers)


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # whatever pickling raises: left out, as LlamaIndex leaves it out
        return False
    return True


def _warn_near_misses(call_kwargs: dict[str, Any], warned: set[str]) -> None:
    """Warn about a per-call keyword that is almost one this package knows (``max_token``,
    ``temprature``, ``document``, ``top-p``): it is still sent, as documented. Once per
    instance and name (``warned``): a loop of calls with the same typo says it once."""
    for name in call_kwargs:
        if name in KNOWN_CALL_KEYWORDS or name in warned:
            continue
        close = _near_miss(name)
        if close is not None:
            warned.add(name)
            logger.warning(
                "%s= is not a keyword this package knows: it is sent to the server as a "
                "request field as it is, which the server may ignore. Did you mean %s=?",
                name,
                close,
            )


@functools.lru_cache(maxsize=512)
def _near_miss(name: str) -> str | None:
    """The known keyword ``name`` is a letter or two away from, if any. Kept per name: difflib
    takes about 10 µs a name, and fields passed through on every call (``seed=``, an
    ``extra_body``'s ``top_k``) would pay it on every call."""
    # 0.85: a letter dropped, doubled or swapped in a name of six letters or more, never
    # top_k for top_p (0.8) nor min_tokens for max_tokens (0.8), real sampling fields.
    close = difflib.get_close_matches(
        name.replace("-", "_").lower(), KNOWN_CALL_KEYWORDS, n=1, cutoff=0.85
    )
    return close[0] if close else None


def _near_field(name: str) -> str | None:
    """The field of ``AI21`` a misspelt constructor keyword (``timout``, ``max_token``,
    ``base_uri``) is a letter or two away from, if any; ``api_key`` too, an argument."""
    fields = [*AI21.model_fields, "api_key"]
    close = difflib.get_close_matches(name.replace("-", "_").lower(), fields, n=1, cutoff=0.8)
    return close[0] if close else None


def _warn_unknown_model(model: str) -> None:
    logger.warning(
        "Model %r is not in llama-index-llms-ai21's model table; assuming %s. Pass "
        "context_window=..., is_function_calling_model=... to set them.",
        model,
        describe_guess(model),
    )


def check_output_cls(output_cls: Any) -> None:
    """A ``ValueError`` before any request unless ``output_cls`` is a pydantic class whose JSON
    schema can be written (it is what the request carries, as a tool, a ``response_format`` or
    in the prompt): else an ``AttributeError`` came from deep inside, or pydantic's error
    named no field."""
    if not (isinstance(output_cls, type) and issubclass(output_cls, BaseModel)):
        raise ValueError(
            "output_cls must be a pydantic model class (a subclass of pydantic.BaseModel), "
            f"got {clipped(output_cls, 100)}"
        )
    _check_schema(output_cls)


@functools.lru_cache(maxsize=256)  # a class's schema is checked once (0.1-1 ms a class)
def _check_schema(output_cls: type[BaseModel]) -> None:
    try:
        output_cls.model_json_schema()
    except Exception as exc:  # pydantic's PydanticInvalidForJsonSchema, and any other failure
        fields = [name for name, f in output_cls.model_fields.items() if _no_schema(f.annotation)]
        where = f" (field {', '.join(map(repr, fields))})" if fields else ""
        raise ValueError(
            f"{output_cls.__name__} has no JSON schema to send{where}: {str(exc).splitlines()[0]}"
        ) from exc


def _no_schema(annotation: Any) -> bool:
    """Whether pydantic can write no JSON schema for one field's type."""
    try:
        adapter = TypeAdapter(annotation)
    except Exception:  # a type pydantic takes only with arbitrary_types_allowed
        try:
            adapter = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:
            return False
    try:
        adapter.json_schema()
    except Exception:
        return True
    return False


def json_schema_format(output_cls: type[Any]) -> dict[str, Any]:
    """``response_format`` asking for JSON that validates against ``output_cls``'s schema."""
    return {
        "type": "json_schema",
        "json_schema": {"name": output_cls.__name__, "schema": output_cls.model_json_schema()},
    }


def _unspanned(method: Callable[..., _T]) -> Callable[..., _T]:
    """A LlamaIndex method without its ``dispatcher.span`` decorator (a ``wrapt`` wrapper, which
    keeps the function as ``__wrapped__``, as ``functools.wraps`` does). An override here is a
    span of its own (LlamaIndex's ``DispatcherSpanMixin`` makes it one): calling the parent's
    wrapped method would nest a second span of the same name in every trace."""
    return cast(Callable[..., _T], getattr(method, "__wrapped__", method))


@contextlib.contextmanager
def _naming_exhaustion(output_cls: type[Any]) -> Iterator[None]:
    """Around LlamaIndex's own structured programs: if one fails (its error is about the text
    or the tool call it got) after an answer was cut at ``max_tokens``, say that first (all of
    it spent on reasoning, or the answer cut short); an answer without the class's tool call is
    worded as a stream's (:meth:`_final_object`)."""
    with watching_cuts() as cuts:
        try:
            yield
        except ValueError as exc:
            name = output_cls.__name__
            if "reasoning" in cuts:
                raise ValueError(f"no {name}: {EXHAUSTED}") from exc
            if cuts and "max_tokens" not in str(exc):  # the tool call's error may say it
                raise ValueError(f"no {name}: {CUT} ({exc})") from exc
            if isinstance(exc, _NoToolCall):
                raise exc.naming(name) from exc
            raise


class _NoToolCall(ValueError):
    """An answer without the tool call asked for (``get_tool_calls_from_response``); ``text``:
    what the model answered instead."""

    def __init__(self, text: str) -> None:
        super().__init__(
            f"Expected at least one tool call, but the response has none; the model answered: "
            f"{text[:200]!r}"
        )
        self.text = text

    def naming(self, name: str) -> ValueError:
        """The error of a structured prediction of ``name`` (its tool is named for it)."""
        return ValueError(
            f"no {name}: the model answered without calling the {name} tool: {self.text[:200]!r}"
        )


def parse_structured(output_cls: type[Model], response: ChatResponse) -> Model:
    """The answer's JSON as ``output_cls``; a ``ValueError`` quoting the text if it is not."""
    text = response.message.content or ""
    try:
        return output_cls.model_validate_json(text)
    except ValueError as exc:
        with contextlib.suppress(ValueError):  # a server that wrote it in a fence, or in prose
            return output_cls.model_validate_json(extract_json_str(text))
        _raise_if_cut(output_cls, response, exc)
        raise ValueError(
            f"the answer is not a valid {output_cls.__name__} ({exc}): {text[:200]!r}"
        ) from exc


def _class_tool(output_cls: type[BaseModel]) -> BaseTool:
    """The class as the one tool of a structured call (LlamaIndex's ``get_function_tool``),
    described by the class's docstring. LlamaIndex reads that at the schema's root, where a
    recursive class has none; with no description the model was shown the one FunctionTool
    writes of a function's signature ("Node(*args: Any, **kwargs: Any) -> ~Model\nModel
    function.")."""
    tool = get_function_tool(output_cls)
    description = schema_root(output_cls.model_json_schema()).get("description")
    tool.metadata.description = description or f"The answer, as {tool.metadata.name}."
    return tool


def _structured_tool_kwargs(tool: str, llm_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The keywords of a structured call by function calling: the ``tool`` call required and
    one call kept, unless ``llm_kwargs`` says otherwise in a way that still lets the model call
    it (``tool_choice`` ``"required"``, ``"auto"`` or the tool's name; ``tool_required=False``).
    LlamaIndex's program drops these three silently; one that rules the call out is a
    ``ValueError`` here, before any request."""
    kwargs = dict(llm_kwargs or {})
    tool_choice = kwargs.pop("tool_choice", None)
    tool_required = kwargs.pop("tool_required", None)
    if kwargs.pop("allow_parallel_tool_calls", None):
        raise ValueError(
            f"allow_parallel_tool_calls=True: a structured prediction returns one {tool}; for "
            f"several, ask for a class with a list of {tool} objects"
        )
    if tool_choice is not None:
        choice = normalize_tool_choice(tool_choice)
        if choice == "none" or (chosen_tool(choice) not in (None, tool)):
            raise ValueError(
                f"tool_choice={tool_choice!r} rules out the call of the {tool} tool that a "
                f"structured prediction reads: leave tool_choice out (the call is required), "
                "or set pydantic_program_mode=PydanticProgramMode.LLM for JSON in the answer"
            )
        kwargs["tool_choice"] = tool_choice
    elif tool_required is not False:
        kwargs["tool_required"] = True
    kwargs["allow_parallel_tool_calls"] = False
    return kwargs


class _PartialReader:
    """The object so far, chunk by chunk: LlamaIndex's reading of partial JSON and of growing
    tool calls (``process_streaming_objects``), given the class's flexible twin (every field
    optional) made once per class. Its own ``flexible_mode`` makes that twin, a new pydantic
    class, for every chunk: 0.75 ms a chunk, three fifths of the time a 4000-chunk answer took
    (a list of 400 objects: 3.0 of 5.0 s, cProfile)."""

    def __init__(self, output_cls: type[BaseModel], llm: AI21) -> None:
        self.output_cls = output_cls
        self.flexible = _flexible_model(output_cls)
        self.llm = llm
        self.current: Any = None  # the flexible object read so far

    def feed(self, response: ChatResponse) -> Any:
        """The object so far: the class once what has arrived validates, else its twin."""
        self.current = process_streaming_objects(
            response,
            self.flexible,
            cur_objects=None if self.current is None else [self.current],
            allow_parallel_tool_calls=False,
            flexible_mode=False,  # self.flexible is the twin
            llm=self.llm,
        )
        try:
            return self.output_cls.model_validate(self.current.model_dump(exclude_unset=True))
        except ValidationError:
            return self.current


@functools.lru_cache(maxsize=64)
def _flexible_model(output_cls: type[BaseModel]) -> type[FlexibleModel]:
    return create_flexible_model(output_cls)


class _SchemaInPrompt(PydanticOutputParser[Any]):
    """LlamaIndex's parser, appending the schema as JSON: its own ``format()`` doubles every
    brace (``{{"properties": ...}}``) for a template, but runs on the prompt already formatted,
    so the model was shown a schema that is not JSON (run-llama/llama_index PR 22380)."""

    def format(self, query: str) -> str:
        return query + "\n\n" + self.get_format_string(escape_json=False)


class _StructuredStream(NamedTuple):
    """A streamed structured call: what goes out, and what reads its whole answer (the tool's
    arguments, the text as the schema's JSON, or the text through LlamaIndex's parser)."""

    output_cls: type[Any]
    messages: list[ChatMessage]
    kwargs: dict[str, Any]
    tool: BaseTool | None = None
    parser: PydanticOutputParser[Any] | None = None


def _raise_if_cut(output_cls: type[Any], response: ChatResponse, exc: Exception | None) -> None:
    """A ``ValueError`` naming ``max_tokens`` if the answer was cut there: all of it spent on
    reasoning, or the answer (JSON, or text before a tool call) cut short."""
    if response.additional_kwargs.get("finish_reason") != "length":
        return
    name = output_cls.__name__
    text = response.message.content or ""
    if reasoning_exhausted("length", text, _reasoning(response)):
        raise ValueError(f"no {name}: {EXHAUSTED}") from exc
    raise ValueError(f"no {name}: {CUT}; the answer: {text[:200]!r}") from exc


def _reasoning(response: ChatResponse) -> str:
    return "".join(b.content or "" for b in response.message.blocks if isinstance(b, ThinkingBlock))


async def _amap(
    function: Callable[[ChatResponse], ChatResponse], items: AsyncIterator[ChatResponse]
) -> AsyncIterator[ChatResponse]:
    async for item in items:
        yield function(item)


def _idle_watch(response: Stream | AsyncStream, state: ChatStreamState) -> IdleWatch | None:
    """The watch that ends a stream whose answer stands still for the read timeout."""
    if response.read_timeout is None:
        return None
    return IdleWatch(state, response.read_timeout, response.response.request)


def _interrupted(
    exc: Exception, state: ChatStreamState, closed: str | None = None
) -> StreamInterruptedError:
    """The error of a stream broken after its first chunk; ``closed``: the instance's
    ``close()``/``aclose()`` closed the pool under it (else the transport's own words, such as
    "Server disconnected", would blame the server)."""
    cause = f"{type(exc).__name__}: {exc}"
    if closed is not None:
        cause = f"the instance's {closed} closed its connection pool while it was read; {cause}"
    return StreamInterruptedError(
        f"AI21 stream broke{state.arrived()} ({cause}); not retried, since "
        "the caller already has part of it",
        state.text,
        state.reasoning,
    )


def _tool_spec(tool: BaseTool) -> dict[str, Any]:
    """The tool as a function definition (LlamaIndex's ``to_openai_tool``), with what its
    parameters leave out of the class's schema put back (:func:`tool_parameters`): a recursive
    class's properties, ``additionalProperties``."""
    spec: dict[str, Any] = tool.metadata.to_openai_tool(skip_length_check=True)
    fn_schema = tool.metadata.fn_schema
    if fn_schema is not None and _leaves_out(fn_schema):
        spec["function"]["parameters"] = tool_parameters(fn_schema.model_json_schema())
    return spec


# Decided once per class: writing a class's schema again on every call cost about 100 µs a tool
# (as much as to_openai_tool itself), and most classes lose nothing.
@functools.lru_cache(maxsize=256)
def _leaves_out(fn_schema: type[BaseModel]) -> bool:
    """Whether LlamaIndex's parameters of ``fn_schema`` leave out what :func:`tool_parameters`
    keeps."""
    theirs = ToolMetadata(description="", fn_schema=fn_schema).get_parameters_dict()
    ours = tool_parameters(fn_schema.model_json_schema())
    return "properties" not in theirs or ours.keys() - theirs.keys() == {"additionalProperties"}


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


def _completion_chunk(response: ChatResponse) -> CompletionResponse:
    """A streamed chat chunk as a completion chunk, as LlamaIndex's
    ``stream_chat_to_completion_decorator`` makes it, with its ``logprobs`` (which that drops)
    and without writing the chunk's ``additional_kwargs`` into its message's."""
    return CompletionResponse(
        text=response.message.content or "",
        additional_kwargs={**response.message.additional_kwargs, **response.additional_kwargs},
        delta=response.delta,
        raw=response.raw,
        logprobs=response.logprobs,
    )


def _completion_chunks(chunks: ChatResponseGen) -> CompletionResponseGen:
    for chunk in chunks:
        yield _completion_chunk(chunk)


async def _acompletion_chunks(chunks: ChatResponseAsyncGen) -> CompletionResponseAsyncGen:
    async for chunk in chunks:
        yield _completion_chunk(chunk)


def _iter_one(item: _T) -> Generator[_T, None, None]:
    yield item


async def _aiter_one(item: _T) -> AsyncGenerator[_T, None]:
    yield item


def _parse_arguments(arguments: dict[str, Any] | str) -> dict[str, Any] | None:
    if isinstance(arguments, dict):
        return arguments
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except (ValueError, RecursionError):  # not JSON, or nested past the interpreter's limit
        return None
    return parsed if isinstance(parsed, dict) else None
