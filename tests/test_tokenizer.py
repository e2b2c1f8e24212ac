"""``llm.tokenizer``: ai21-tokenizer loaded from tokenizer files the test builds, never the Hub."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from ai21_tokenizer import SyncJambaTokenizer
from ai21_tokenizer.tokenizer_factory import _get_cache_dir
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.embeddings import MockEmbedding
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._tokenizer import cache_dir, tokenizer_name, tokenizer_source

SENTENCES = [
    "Jamba is a family of language models from AI21 Labs.",
    "Jamba reads long documents with a context window of 256K tokens.",
    "The tokenizer turns text into token ids.",
]


def build_tokenizer(directory: Path) -> Tokenizer:
    """A tiny word-level tokenizer saved where ai21-tokenizer looks: ``<dir>/tokenizer.json``."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    return tokenizer


@pytest.fixture
def tokenizer_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AI21_TOKENIZER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: never the Hub
    return tmp_path


def test_tokenizer_loads_from_the_cache_dir(
    make_llm: Callable[..., AI21], tokenizer_dir: Path
) -> None:
    reference = build_tokenizer(tokenizer_dir)
    tokenizer = make_llm().tokenizer
    text = "Jamba reads long documents"
    assert isinstance(tokenizer, SyncJambaTokenizer)
    assert tokenizer.encode(text) == reference.encode(text).ids
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_tokenizer_is_loaded_once_even_from_many_threads(
    make_llm: Callable[..., AI21], tokenizer_dir: Path
) -> None:
    build_tokenizer(tokenizer_dir)
    llm = make_llm(model="jamba-large")
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(llm.tokenizer)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8
    assert all(t is seen[0] for t in seen)
    assert llm.tokenizer is seen[0]


def test_token_counting_handler_uses_the_tokenizer(
    make_llm: Callable[..., AI21], tokenizer_dir: Path
) -> None:
    reference = build_tokenizer(tokenizer_dir)
    counter = TokenCountingHandler(tokenizer=make_llm().tokenizer.encode)
    VectorStoreIndex.from_documents(
        [Document(text=SENTENCES[1])],
        embed_model=MockEmbedding(embed_dim=8),
        callback_manager=CallbackManager([counter]),
    )
    assert counter.total_embedding_token_count == len(reference.encode(SENTENCES[1]).ids) > 0


def test_missing_files_offline_fail_at_once_saying_where_to_put_them(
    make_llm: Callable[..., AI21], tokenizer_dir: Path
) -> None:
    with pytest.raises(RuntimeError) as info:
        make_llm().tokenizer  # noqa: B018
    message = str(info.value)
    assert str(tokenizer_dir) in message
    assert "tokenizer.json" in message
    assert "AI21_TOKENIZER_CACHE_DIR" in message
    assert "HF_HUB_OFFLINE" in message
    assert "ai21labs/AI21-Jamba-Mini-1.6/resolve/main/tokenizer.json" in message


def test_missing_files_and_unreachable_hub_fail_fast(
    make_llm: Callable[..., AI21], tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection probe answers, not a download attempt (which would retry with backoff):
    the error is the probe's "not reachable", never "Could not download", and nothing is
    written to the cache directory."""
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match="is not reachable") as info:
        make_llm().tokenizer  # noqa: B018
    message = str(info.value)
    assert message.startswith("The jamba-mini tokenizer is not available offline")
    assert "Could not download" not in message
    assert f"the Hugging Face Hub (http://127.0.0.1:{port}) is not reachable" in message
    assert f"http://127.0.0.1:{port}/ai21labs/" in message
    assert list(tokenizer_dir.iterdir()) == []


def test_a_broken_tokenizer_file_is_reported_not_downloaded_over(
    make_llm: Callable[..., AI21], tokenizer_dir: Path
) -> None:
    (tokenizer_dir / "tokenizer.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="not a valid tokenizer file"):
        make_llm().tokenizer  # noqa: B018


def test_missing_extra_gives_the_install_hint(
    make_llm: Callable[..., AI21], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ai21_tokenizer", None)  # as if not installed
    with pytest.raises(ImportError, match=r"llama-index-llms-ai21\[tokenizer\]"):
        make_llm().tokenizer  # noqa: B018


@pytest.mark.parametrize("model", ["j2-ultra", "gpt-4o"])
def test_models_without_an_ai21_tokenizer_say_so(make_llm: Callable[..., AI21], model: str) -> None:
    with pytest.raises(ValueError, match=r"[Nn]o .*tokenizer"):
        make_llm(model=model).tokenizer  # noqa: B018


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("jamba-mini", "jamba-mini-tokenizer"),
        ("jamba-large", "jamba-large-tokenizer"),
        ("jamba-large-1.7-2025-07", "jamba-large-tokenizer"),
        ("jamba-mini-2", "jamba-mini-tokenizer"),
        ("jamba-1.5-large", "jamba-large-tokenizer"),
        ("jamba-instruct", "jamba-mini-tokenizer"),
        ("jamba-1.5", "jamba-mini-tokenizer"),  # in 0.8.0's model table, as in docs/tokenizer.md
        ("jamba-mini-1.6-2025-03", "jamba-mini-1.6-tokenizer"),
        ("jamba-large-1.6", "jamba-large-1.6-tokenizer"),
    ],
)
def test_model_names_map_to_ai21_tokenizer_names(model: str, name: str) -> None:
    assert tokenizer_name(model) == name


@pytest.mark.parametrize(
    ("model", "repo"),
    [
        ("ai21labs/AI21-Jamba2-3B", "ai21labs/AI21-Jamba2-3B"),
        ("ai21labs/ai21-jamba2-mini", "ai21labs/AI21-Jamba2-Mini"),
        ("/models/AI21-Jamba-Reasoning-3B-F16.gguf", "ai21labs/AI21-Jamba-Reasoning-3B"),
        (
            "hf.co/bartowski/ai21labs_AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M",
            "ai21labs/AI21-Jamba-Reasoning-3B",
        ),
        ("ai21labs/jamba-reasoning-3b", "ai21labs/AI21-Jamba-Reasoning-3B"),  # LM Studio
        ("ai21labs/AI21-Jamba-Mini-1.7", "ai21labs/AI21-Jamba-Mini-1.7"),
    ],
)
def test_open_models_use_their_own_repositorys_tokenizer(model: str, repo: str) -> None:
    """A self-hosted open model, in whatever name its server gives it, loads the tokenizer of
    its own Hugging Face repository (AI21's tokenization docs), not a hosted model's."""
    assert tokenizer_source(model) == (repo.rsplit("/", 1)[1].lower(), repo)


def test_a_served_gguf_loads_its_tokenizer_offline_and_says_which_file(
    make_llm: Callable[..., AI21], tokenizer_dir: Path
) -> None:
    llm = make_llm(model="/models/AI21-Jamba-Reasoning-3B-F16.gguf")
    with pytest.raises(RuntimeError) as info:
        llm.tokenizer  # noqa: B018
    assert "ai21labs/AI21-Jamba-Reasoning-3B/resolve/main/tokenizer.json" in str(info.value)
    reference = build_tokenizer(tokenizer_dir)
    text = "Jamba reads long documents"
    assert llm.tokenizer.encode(text) == reference.encode(text).ids


@pytest.mark.parametrize("configured", [None, "/srv/tokenizers"])
def test_cache_dir_follows_ai21_tokenizer(
    configured: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if configured is not None:
        monkeypatch.setenv("AI21_TOKENIZER_CACHE_DIR", configured)
    else:
        monkeypatch.delenv("AI21_TOKENIZER_CACHE_DIR", raising=False)
    for name in ("jamba-mini-tokenizer", "jamba-large-1.6-tokenizer"):
        assert cache_dir(name) == _get_cache_dir(name)
