"""RAG with Jamba: a query engine (sync, async, streaming) and a router that picks the right index.

Run it with one command::

    python examples/rag_query_engine.py
    AI21_API_HOST=http://localhost:8000/v1 python examples/rag_query_engine.py   # your own server

With ``AI21_API_HOST`` set it talks to your Jamba server (its ``/v1`` URL: vLLM, llama.cpp,
LM Studio, Ollama); without it, it starts the emulator of a vLLM server (``ai21-emulator``, the
``[emulator]`` extra) in this process (no key, no network). The emulator
answers from the context the engine retrieved, so the answers below come from the paragraphs.

Embeddings: this package is an LLM only, so retrieval needs an embedding model. Here a
tiny bag-of-words ``HashingEmbedding`` (below) keeps the example offline while still retrieving
the paragraphs that share words with the question. For real use, swap in a real model::

    pip install llama-index-embeddings-huggingface
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    embed_model = HuggingFaceEmbedding(model_name="BAAI/bge-small-en-v1.5")
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import sys
from collections.abc import Iterator

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools import QueryEngineTool

from llama_index.llms.ai21 import AI21

JAMBA = [
    "Jamba is AI21's family of large language models. It combines Transformer layers with "
    "Mamba state-space layers.",
    "Jamba models handle a context window of 256K tokens, enough for several long reports.",
    "Jamba Mini and Jamba Large are the two sizes; both support tool calling and JSON output.",
]
COMPANY = [
    "AI21 Labs is an Israeli company founded in 2017 by Yoav Shoham, Ori Goshen and Amnon Shashua.",
    "AI21 Labs has its headquarters in Tel Aviv.",
    "Before Jamba, AI21 offered the Jurassic-2 models, which were retired in November 2024.",
]
_STOPWORDS = set("a an and are as by for how in is it of on the to was what which who with".split())  # noqa: SIM905


class HashingEmbedding(BaseEmbedding):
    """Bag-of-words vectors by feature hashing: offline, instant, no model download."""

    dim: int = 512

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in _STOPWORDS:
                # md5, not hash(): the same word must land in the same slot in every run.
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


@contextlib.contextmanager
def jamba_server() -> Iterator[str]:
    """Your server's ``/v1`` URL (``AI21_API_HOST``), or an emulated vLLM server started here."""
    if os.environ.get("AI21_API_HOST"):
        print(f"Using your server at {os.environ['AI21_API_HOST']}.")
        yield os.environ["AI21_API_HOST"]
        return
    from ai21_emulator import Emulator

    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as emulator:
        print(f"AI21_API_HOST is not set: using an emulated vLLM server at {emulator.base_url}.")
        yield emulator.base_url


def build_index(paragraphs: list[str]) -> VectorStoreIndex:
    documents = [Document(text=text) for text in paragraphs]
    return VectorStoreIndex.from_documents(documents, embed_model=HashingEmbedding())


def main() -> int:
    with jamba_server() as base_url:
        llm = AI21(base_url=base_url)
        index = build_index(JAMBA + COMPANY)

        print("\n=== query engine ===")
        engine = index.as_query_engine(llm=llm, similarity_top_k=2)
        response = engine.query("How long is Jamba's context window?")
        print(f"A: {response}")
        for source in response.source_nodes:
            print(f"   source ({source.score:.2f}): {source.node.get_content()[:60]}...")

        print("\n=== async query ===")
        response = asyncio.run(engine.aquery("Who founded AI21 Labs?"))
        print(f"A: {response}")

        print("\n=== streaming query ===")
        streaming = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True)
        print("A: ", end="")
        for delta in streaming.query("Where is AI21 Labs headquartered?").response_gen:
            print(delta, end="", flush=True)
        print()

        print("\n=== router: structured output picks the index ===")
        router = RouterQueryEngine.from_defaults(
            [
                QueryEngineTool.from_defaults(
                    build_index(JAMBA).as_query_engine(llm=llm, similarity_top_k=2),
                    name="jamba_models",
                    description="Facts about the Jamba language models",
                ),
                QueryEngineTool.from_defaults(
                    build_index(COMPANY).as_query_engine(llm=llm, similarity_top_k=2),
                    name="company",
                    description="Facts about the company AI21 Labs: founders, history, offices",
                ),
            ],
            llm=llm,
        )
        for question in ("Which layers does Jamba combine?", "When was AI21 Labs founded?"):
            response = router.query(question)
            assert response.metadata is not None
            selection = response.metadata["selector_result"].selections[0]
            print(f"Q: {question}\n   routed to choice {selection.index + 1} ({selection.reason})")
            print(f"A: {response}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
