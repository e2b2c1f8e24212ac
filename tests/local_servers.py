"""Scripted loopback servers answering exactly what llama.cpp, LM Studio, Ollama and SGLang
answer, from their public documentation and sources (cited per script), for discovery tests.

A :class:`ScriptedServer` answers ``(method, path)`` routes with a fixed status and body,
records every request (method, path, JSON body, headers) and answers unknown paths the way the
scripted server does (llama.cpp and Ollama: 404; LM Studio: HTTP 200 with an error body).
``POST /v1/chat/completions`` answers a one-choice completion echoing the request's ``model``
(streamed when the request asks).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any]  # (status, JSON-able body, or bytes as they are)


@dataclass
class Seen:
    method: str
    path: str
    json: Any
    headers: dict[str, str]


@dataclass
class Script:
    routes: dict[tuple[str, str], Answer]
    unknown: Answer = (404, {"error": "not found"})
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    api_key: str | None = None  # when set, every route but /health needs this bearer key


def chat_answer(model: str, prompt_tokens: int = 12) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from a laptop."},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 5,
            "total_tokens": prompt_tokens + 5,
        },
    }


def stream_of(answer: dict[str, Any]) -> bytes:
    """``answer`` (a chat completion) as the server streams it: one delta with the whole
    message, then the finish reason with usage, then ``[DONE]``."""
    choice = answer["choices"][0]
    events = [
        {
            **answer,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": choice["message"], "finish_reason": None}],
        },
        {
            **answer,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
        },
    ]
    lines = [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]
    return b"".join(lines) + b"data: [DONE]\n\n"


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                server.seen.append(Seen(method, path, body, dict(self.headers.items())))
                time.sleep(server.script.delays.get(path, 0.0))
                status, answer = server.answer(method, path, body, self.headers)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                kind = "application/json" if not isinstance(answer, bytes) else "text/plain"
                kind = "text/event-stream" if data.startswith(b"data: ") else kind
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (a timeout test)
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, method: str, path: str, body: Any, headers: Any) -> Answer:
        key = self.script.api_key
        authorised = key is None or headers.get("Authorization") == f"Bearer {key}"
        if not authorised and path != "/health":
            return 401, {"error": {"code": 401, "message": "Invalid API Key"}}
        if (method, path) in self.script.routes:
            return self.script.routes[(method, path)]
        if (method, path) == ("POST", "/v1/chat/completions"):
            answer = chat_answer(body.get("model", ""))
            if body.get("stream"):
                return 200, stream_of(answer)
            return 200, answer
        return self.script.unknown

    @property
    def root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]

    def chats(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/chat/completions"]


@contextmanager
def serving(script: Script) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


# ------------------------------------------------------------------------ llama.cpp
# tools/server/server-context.cpp (llama.cpp 0c1e570, vendored by llama-cpp-python 0.3.36):
# get_res_model_info (/v1/models entries), get_res_models, get_res_props.

GGUF = "/models/AI21-Jamba-Reasoning-3B-F16.gguf"
REASONING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n"
    "{% endif %}"
)


def llamacpp(
    *,
    n_ctx: int = 4096,
    n_ctx_train: int = 262_144,
    model: str = GGUF,
    props: Answer | None = None,
    api_key: str | None = None,
) -> Script:
    entry = {
        "id": model,
        "aliases": [model],
        "tags": [],
        "object": "model",
        "created": 1764979200,
        "owned_by": "llamacpp",
        "meta": {
            "vocab_type": 2,
            "n_vocab": 65536,
            "n_ctx": n_ctx,
            "n_ctx_train": n_ctx_train,
            "n_embd": 2560,
            "n_params": 3_000_000_000,
            "size": 6_000_000_000,
            "ftype": 1,
        },
    }
    listing = {
        "models": [
            {"name": model, "model": model, "type": "model", "capabilities": ["completion"]}
        ],
        "object": "list",
        "data": [entry],
    }
    default_props = {
        "default_generation_settings": {"params": {"temperature": 0.8}, "n_ctx": n_ctx},
        "total_slots": 1,
        "model_alias": model,
        "model_path": model,
        "modalities": {"vision": False, "video": False, "audio": False},
        "chat_template": REASONING_TEMPLATE,
        "chat_template_caps": {
            "supports_tools": True,
            "supports_tool_calls": True,
            "supports_parallel_tool_calls": True,
            "supports_system_role": True,
            "supports_preserve_reasoning": True,
        },
        "bos_token": "<|startoftext|>",
        "eos_token": "<|im_end|>",
        "build_info": "b1-0c1e570",
        "is_sleeping": False,
    }
    return Script(
        routes={
            ("GET", "/v1/models"): (200, listing),
            ("GET", "/models"): (200, listing),
            ("GET", "/props"): props or (200, default_props),
            ("GET", "/health"): (200, {"status": "ok"}),
        },
        unknown=(
            404,
            {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}},
        ),
        api_key=api_key,
    )


# ------------------------------------------------------------------------ LM Studio
# https://lmstudio.ai/docs/developer/rest (GET /api/v1/models, 0.4+) and the v0 REST API page
# (GET /api/v0/models, 0.3.6+); unknown endpoints answer 200 {"error": "Unexpected endpoint
# or method. (GET /x)"}.

LMS_KEY = "ai21labs/jamba-reasoning-3b"


def _lms_unknown() -> Answer:
    return 200, {"error": "Unexpected endpoint or method. (GET /props)"}


def lmstudio(
    *,
    context_length: int = 8192,
    loaded: bool = True,
    tools: bool = True,
    api_key: str | None = None,  # "Require authentication" on, with this token
) -> Script:
    instances = [{"id": LMS_KEY, "config": {"context_length": context_length}}] if loaded else []
    native = {
        "models": [
            {
                "type": "llm",
                "publisher": "ai21labs",
                "key": LMS_KEY,
                "display_name": "Jamba Reasoning 3B",
                "architecture": "jamba",
                "quantization": {"name": "Q4_K_M", "bits_per_weight": 4},
                "size_bytes": 1_900_000_000,
                "params_string": "3B",
                "loaded_instances": instances,
                "max_context_length": 262_144,
                "format": "gguf",
                "capabilities": {
                    "vision": False,
                    "trained_for_tool_use": tools,
                    "reasoning": {"allowed_options": ["on"], "default": "on"},
                },
            },
            {
                "type": "embedding",
                "key": "text-embedding-nomic-embed-text-v1.5",
                "loaded_instances": [],
                "max_context_length": 2048,
            },
        ]
    }
    listing = {
        "data": [{"id": LMS_KEY, "object": "model", "owned_by": "organization_owner"}],
        "object": "list",
    }
    return Script(
        routes={("GET", "/v1/models"): (200, listing), ("GET", "/api/v1/models"): (200, native)},
        unknown=_lms_unknown(),
        api_key=api_key,
    )


def lmstudio_03(*, loaded_context_length: int = 4096) -> Script:
    """LM Studio 0.3.x: no /api/v1 (200 with an error body), /api/v0/models instead."""
    older = {
        "object": "list",
        "data": [
            {
                "id": LMS_KEY,
                "object": "model",
                "type": "llm",
                "publisher": "ai21labs",
                "arch": "jamba",
                "compatibility_type": "gguf",
                "quantization": "Q4_K_M",
                "state": "loaded",
                "max_context_length": 262_144,
                "loaded_context_length": loaded_context_length,
            },
            {
                "id": "qwen2.5-7b-instruct",
                "object": "model",
                "type": "llm",
                "state": "not-loaded",
                "max_context_length": 32768,
            },
        ],
    }
    listing = {
        "data": [{"id": LMS_KEY, "object": "model", "owned_by": "organization_owner"}],
        "object": "list",
    }
    return Script(
        routes={("GET", "/v1/models"): (200, listing), ("GET", "/api/v0/models"): (200, older)},
        unknown=_lms_unknown(),
    )


# ------------------------------------------------------------------------ Ollama
# github.com/ollama/ollama: server/routes.go (routes, GET / "Ollama is running",
# /api/version), openai/openai.go (ToListCompletion: owned_by = the name's namespace),
# api/types.go (ProcessModelResponse.context_length, ShowResponse), docs/api.md.

OLLAMA_MODEL = "hf.co/bartowski/ai21labs_AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M"


def ollama(
    *,
    loaded_context: int | None = 4096,
    parameters: str = 'stop "<|im_end|>"',
    version: str = "0.12.3",
    models: tuple[str, ...] = (OLLAMA_MODEL,),
    capabilities: tuple[str, ...] = ("completion", "tools", "thinking"),
) -> Script:
    listing = {
        "object": "list",
        "data": [
            {
                "id": m,
                "object": "model",
                "created": 1764979200,
                "owned_by": "bartowski" if m.startswith("hf.co/") else "library",
            }
            for m in models
        ],
    }
    running = [
        {
            "name": models[0],
            "model": models[0],
            "size": 2_400_000_000,
            "digest": "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
            "details": {"format": "gguf", "family": "jamba", "quantization_level": "Q4_K_M"},
            "expires_at": "2026-12-05T14:38:31.83753-07:00",
            "size_vram": 0,
            "context_length": loaded_context,
        }
    ]
    show = {
        "license": "Apache License 2.0 ...",
        "modelfile": f"FROM {models[0]}\n",
        "parameters": parameters,
        "template": "{{ .Prompt }}",
        "details": {"format": "gguf", "family": "jamba", "quantization_level": "Q4_K_M"},
        "model_info": {
            "general.architecture": "jamba",
            "general.parameter_count": 3_000_000_000,
            "jamba.context_length": 262_144,
        },
        "capabilities": list(capabilities),
        "modified_at": "2026-12-01T10:00:00Z",
    }
    return Script(
        routes={
            ("GET", "/v1/models"): (200, listing),
            ("GET", "/api/version"): (200, {"version": version}),
            ("GET", "/"): (200, b"Ollama is running"),
            ("GET", "/api/ps"): (200, {"models": running if loaded_context else []}),
            ("POST", "/api/show"): (200, show),
        },
        unknown=(404, b"404 page not found"),
    )


# ------------------------------------------------------------------------ SGLang, unknown
# SGLang's OpenAI-compatible /v1/models (its docs: owned_by "sglang", max_model_len).


def sglang(*, max_model_len: int = 32768) -> Script:
    listing = {
        "object": "list",
        "data": [
            {
                "id": "ai21labs/AI21-Jamba2-3B",
                "object": "model",
                "created": 1764979200,
                "owned_by": "sglang",
                "root": "ai21labs/AI21-Jamba2-3B",
                "max_model_len": max_model_len,
            }
        ],
    }
    return Script(routes={("GET", "/v1/models"): (200, listing)})


def vllm_served_as(name: str, root: str, *, max_model_len: int = 32768) -> Script:
    """vLLM started with ``--served-model-name name`` over the weights ``root``: its
    /v1/models entry (vLLM's ModelCard: ``id`` the served name, ``root`` the model path)."""
    listing = {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": 1764979200,
                "owned_by": "vllm",
                "root": root,
                "parent": None,
                "max_model_len": max_model_len,
                "permission": [],
            }
        ],
    }
    return Script(routes={("GET", "/v1/models"): (200, listing)})


def unknown_server() -> Script:
    listing = {
        "object": "list",
        "data": [{"id": "local-model", "object": "model", "owned_by": "someone"}],
    }
    return Script(routes={("GET", "/v1/models"): (200, listing)})
