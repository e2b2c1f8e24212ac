"""A chat engine over your documents with Jamba: it retrieves context and keeps the history.

Run it with one command::

    python examples/chat_engine.py
    AI21_API_HOST=http://localhost:8000/v1 python examples/chat_engine.py   # your own server

With ``AI21_API_HOST`` set it talks to your Jamba server (its ``/v1`` URL: vLLM, llama.cpp,
LM Studio, Ollama); without it, it starts the emulator of a vLLM server (``ai21-emulator``, the
``[emulator]`` extra) in this process (no key, no network). The emulator
answers from the context the engine retrieved, so the answers come from the handbook below.

Every turn sends the retrieved paragraphs as the system message, then the whole conversation so
far; against the emulator, the script prints what the last request carried. Embeddings come
from a tiny offline bag-of-words ``HashingEmbedding``; for real use swap in a real model, e.g.
``HuggingFaceEmbedding(model_name="BAAI/bge-small-en-v1.5")`` from
``llama-index-embeddings-huggingface``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sys
from collections.abc import Iterator

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

HANDBOOK = [
    "Vacation: employees get 25 vacation days per year, plus public holidays.",
    "Carry-over: up to five unused vacation days carry over to the next year.",
    "Remote work: everyone may work from home up to three days a week.",
    "Equipment: the company provides a laptop, a monitor and a headset to every employee.",
]
_STOPWORDS = set("a an and are can do does for how i in is it of the to what which".split())  # noqa: SIM905


class HashingEmbedding(BaseEmbedding):
    """Bag-of-words vectors by feature hashing: offline, instant, no model download."""

    dim: int = 512

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in _STOPWORDS:
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
def jamba_llm() -> Iterator[tuple[AI21, Emulator | None]]:
    """Jamba on your server (``AI21_API_HOST``, its ``/v1`` URL), or on an emulated vLLM server
    started here (also yielded, to show what was sent)."""
    if os.environ.get("AI21_API_HOST"):
        print(f"Using your server at {os.environ['AI21_API_HOST']}.")
        yield AI21(base_url=os.environ["AI21_API_HOST"]), None
        return
    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as emulator:
        print(f"AI21_API_HOST is not set: using an emulated vLLM server at {emulator.base_url}.")
        yield AI21(base_url=emulator.base_url), emulator


def main() -> int:
    with jamba_llm() as (llm, emulator):
        index = VectorStoreIndex.from_documents(
            [Document(text=text) for text in HANDBOOK], embed_model=HashingEmbedding()
        )
        engine = index.as_chat_engine(chat_mode="context", llm=llm, similarity_top_k=1)

        for question in ("How many vacation days do I get?", "Can unused days carry over?"):
            print(f"\nUser: {question}")
            print(f"Assistant: {engine.chat(question)}")

        question = "Which equipment does the company provide?"
        print(f"\nUser: {question}\nAssistant (streamed): ", end="")
        for delta in engine.stream_chat(question).response_gen:
            print(delta, end="", flush=True)
        print()

        print(f"\nThe engine remembers {len(engine.chat_history)} messages.")
        if emulator is not None:
            print("The last request carried:")
            for message in emulator.last_request.json["messages"]:
                print(f"  {message['role']:>9}: {message['content'][:70]!r}")

        engine.reset()
        print(f"After reset(): {len(engine.chat_history)} messages.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
