"""Texts, an index, engine tools and a fixture shared by the RAG tests (tests/test_rag.py) and
the emulator's own end-to-end heuristics tests (tests/test_emulator_heuristics.py)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import LLM
from llama_index.core.tools import QueryEngineTool

JAMBA = [
    "Jamba is AI21's family of large language models. Jamba combines Transformer layers "
    "with Mamba state-space layers.",
    "Jamba models handle a context window of 256K tokens.",
]
COMPANY = [
    "AI21 Labs is an Israeli company founded in 2017 by Yoav Shoham, Ori Goshen and Amnon Shashua.",
    "AI21 Labs has its headquarters in Tel Aviv.",
]
CONTEXT_WINDOW = "How long is Jamba's context window?"


def make_index(texts: list[str]) -> VectorStoreIndex:
    """An index of ``texts`` on MockEmbedding, which gives every text the same vector: engines
    retrieve every chunk (up to their ``similarity_top_k``), so what is ranked is the emulator's
    doing, or nobody's where the answers are scripted."""
    return VectorStoreIndex.from_documents(
        [Document(text=text) for text in texts], embed_model=MockEmbedding(embed_dim=8)
    )


def engine_tools(llm: LLM) -> list[QueryEngineTool]:
    """A query engine over the Jamba texts and one over the company texts, as tools described
    for a router or a sub-question engine to choose between."""
    return [
        QueryEngineTool.from_defaults(
            make_index(JAMBA).as_query_engine(llm=llm, similarity_top_k=2),
            name="jamba_models",
            description="Facts about the Jamba language models",
        ),
        QueryEngineTool.from_defaults(
            make_index(COMPANY).as_query_engine(llm=llm, similarity_top_k=2),
            name="company",
            description="Facts about the company AI21 Labs: founders, history, offices",
        ),
    ]


@pytest.fixture(autouse=True)
def _close_the_loop_llama_index_leaves_open() -> Iterator[None]:
    """Close the event loop llama-index-core's ``asyncio_run`` leaves behind.

    Sync queries estimate tokens through ``asyncio_run``, which makes the thread's event loop
    with ``asyncio.get_event_loop()`` and never closes it; the next ``asyncio.run`` drops it,
    and its garbage collection is a ResourceWarning (an error in this test run).
    """
    yield
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # none is set: nothing was left open
        return
    loop.close()
    asyncio.set_event_loop(None)
