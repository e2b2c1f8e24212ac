"""The model's tokenizer, through AI21's ``ai21-tokenizer`` package (the ``tokenizer`` extra).

ai21-tokenizer (1.x) reads ``tokenizer.json`` from a cache directory:
``$AI21_TOKENIZER_CACHE_DIR`` if set, else ``<tempdir>/<tokenizer name, "-" and "." as "_">``
(e.g. ``/tmp/jamba_mini_tokenizer``).
When the file is missing (or unreadable) it downloads it from the Hugging Face Hub
(``tokenizers.Tokenizer.from_pretrained`` -> ``huggingface_hub``), which offline fails only after
network timeouts. So :func:`load_tokenizer` loads a cached file only after checking it parses, and
downloads only after a short connection probe of the Hub; otherwise it fails at once with a
message that says where to put the file.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from llama_index.llms.ai21._models import is_j2, open_model_id

TOKENIZER_FILE = "tokenizer.json"
CACHE_DIR_ENV = "AI21_TOKENIZER_CACHE_DIR"
PROBE_TIMEOUT = 3.0  # seconds to wait for a TCP connection to the Hub before giving up

# ai21-tokenizer's names (``PreTrainedTokenizers``) and the Hub repos it downloads them from.
_HUB_REPOS = {
    "jamba-mini-tokenizer": "ai21labs/AI21-Jamba-Mini-1.6",
    "jamba-large-tokenizer": "ai21labs/AI21-Jamba-Large-1.6",
    "jamba-mini-1.6-tokenizer": "ai21labs/AI21-Jamba-Mini-1.6",
    "jamba-large-1.6-tokenizer": "ai21labs/AI21-Jamba-Large-1.6",
}
_INSTALL_HINT = 'pip install "llama-index-llms-ai21[tokenizer]"'


class AI21Tokenizer(Protocol):
    """What :func:`load_tokenizer` returns (ai21-tokenizer's ``SyncJambaTokenizer``)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: list[int]) -> str: ...


_loaded: dict[tuple[str, Path], AI21Tokenizer] = {}
_lock = threading.Lock()


def tokenizer_source(model: str) -> tuple[str, str]:
    """``(name, Hub repository)`` of the tokenizer for ``model``: for AI21's hosted names,
    ai21-tokenizer's own tokenizer of the model's size; for an open model (its Hugging Face id,
    or the name a local server gives it: a GGUF file, an Ollama or LM Studio name), the
    model's own repository's, as AI21's tokenization docs have it.

    Raises:
        ValueError: ``model`` is a Jurassic-2 model or not a Jamba model.
    """
    if is_j2(model):
        raise ValueError(
            f"No tokenizer is available for {model!r}: Jurassic-2 models were retired and "
            "ai21-tokenizer ships tokenizers for Jamba models only"
        )
    repo = open_model_id(model)
    if repo is not None:
        return repo.rsplit("/", 1)[1].lower(), repo
    name = model.lower()
    if not name.startswith("jamba"):
        raise ValueError(f"No AI21 tokenizer is known for model {model!r} (Jamba models only)")
    size = "large" if "large" in name else "mini"
    # Every other Jamba name (1.5, 1.7, instruct, Jamba2) gets the current tokenizer of its size.
    name = f"jamba-{size}-1.6-tokenizer" if "1.6" in name else f"jamba-{size}-tokenizer"
    return name, _HUB_REPOS[name]


def tokenizer_name(model: str) -> str:
    """The tokenizer's name (its cache directory's, see :func:`cache_dir`)."""
    return tokenizer_source(model)[0]


def cache_dir(name: str) -> Path:
    """Where ai21-tokenizer keeps ``tokenizer.json`` for the tokenizer ``name``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        return Path(configured)
    return Path(tempfile.gettempdir()) / name.replace(".", "_").replace("-", "_")


def load_tokenizer(model: str) -> AI21Tokenizer:
    """Return the tokenizer for ``model``, loading it on first use (cached, thread-safe).

    Raises:
        ValueError: no tokenizer exists for ``model`` (Jurassic-2, non-Jamba names).
        ImportError: the ``ai21-tokenizer`` package (the ``tokenizer`` extra) is missing.
        RuntimeError: ``tokenizer.json`` is not in the cache directory and cannot be
            downloaded, or the file there is not a valid tokenizer.
    """
    name, repo = tokenizer_source(model)
    try:
        from ai21_tokenizer import SyncJambaTokenizer
    except ImportError as exc:
        raise ImportError(
            f"The AI21 tokenizer needs the ai21-tokenizer package: {_INSTALL_HINT}"
        ) from exc
    directory = cache_dir(name)
    with _lock:
        tokenizer = _loaded.get((name, directory))
        if tokenizer is None:
            _check_cached_or_reachable(model, repo, directory)
            try:
                tokenizer = SyncJambaTokenizer(model_path=repo, cache_dir=directory)
            except Exception as exc:
                raise RuntimeError(
                    f"Could not download the {model} tokenizer: {exc}. "
                    f"{_where_to_put_it(repo, directory)}"
                ) from exc
            _loaded[(name, directory)] = tokenizer
    return tokenizer


def _check_cached_or_reachable(model: str, repo: str, directory: Path) -> None:
    """Fail fast unless ai21-tokenizer can load the file without, or with working, network."""
    path = directory / TOKENIZER_FILE
    if path.is_file():
        from tokenizers import Tokenizer

        # ai21-tokenizer would answer a broken file by silently trying to download.
        try:
            Tokenizer.from_file(str(path))
        except Exception as exc:
            raise RuntimeError(
                f"{path} is not a valid tokenizer file ({exc}). {_where_to_put_it(repo, directory)}"
            ) from exc
        return
    endpoint = _hub_endpoint()
    if _offline():
        why = "HF_HUB_OFFLINE is set"
    elif not _reachable(endpoint, PROBE_TIMEOUT):
        why = f"the Hugging Face Hub ({endpoint}) is not reachable"
    else:
        return
    raise RuntimeError(
        f"The {model} tokenizer is not available offline: {TOKENIZER_FILE} is not in {directory} "
        f"and {why}. {_where_to_put_it(repo, directory)}"
    )


def _where_to_put_it(repo: str, directory: Path) -> str:
    url = f"{_hub_endpoint()}/{repo}/resolve/main/{TOKENIZER_FILE}"
    return (
        f"Download {url} and put it in {directory}, or set {CACHE_DIR_ENV} to a directory "
        f"that holds {TOKENIZER_FILE}."
    )


def _hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _reachable(endpoint: str, timeout: float) -> bool:
    """Whether a TCP connection to the endpoint opens within ``timeout`` (DNS included)."""
    parts = urlsplit(endpoint)
    host = parts.hostname
    if host is None:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except Exception:  # DNS failure, refused, timeout, a sandbox that forbids it
            result.append(False)

    # A thread, because name resolution has no timeout of its own.
    thread = threading.Thread(target=probe, name="ai21-tokenizer-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
