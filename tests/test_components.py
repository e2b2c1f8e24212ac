"""LlamaIndex's other components that call an LLM, on ``AI21`` over HTTP: metadata extractors
in an ingestion pipeline (worker processes included), selectors and routers, query transforms,
knowledge-graph extraction, evaluators and the text-based ReAct agent.

Answers are scripted (by a handler that reads the prompt, where a component sends requests
concurrently), and each test asserts what went over the wire and what the component made of the
answer. The emulator's own answers to these prompts are tested in
tests/test_emulator_heuristics.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from typing import Any

import pytest
from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.extractors import (
    KeywordExtractor,
    PydanticProgramExtractor,
    QuestionsAnsweredExtractor,
    SummaryExtractor,
    TitleExtractor,
)
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.program import FunctionCallingProgram
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode

from ai21_emulator import Emulator, Reply, ToolCall
from llama_index.llms.ai21 import AI21
from tests.rag_corpus import (  # noqa: F401 - the fixture is autouse
    COMPANY,
    JAMBA,
    _close_the_loop_llama_index_leaves_open,
)

FLAVOURS = pytest.mark.parametrize("ai21_emulator", ["ai21", "vllm"], indirect=True)


def _llm(emulator: Emulator, **kwargs: Any) -> AI21:
    if emulator.flavour == "vllm":
        kwargs.setdefault("model", "ai21labs/AI21-Jamba2-3B")
    return AI21(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0, **kwargs)


def _prompt(request: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content")) for m in request.get("messages", []))


def _chats(emulator: Emulator) -> list[dict[str, Any]]:
    return [r.json for r in emulator.requests if r.path.endswith("/chat/completions")]


# -- ingestion: metadata extractors ---------------------------------------------------------


class NodeFacts(BaseModel):
    """Facts about a node."""

    topic: str = Field(description="What the text is about")
    names: list[str] = Field(description="Names in the text")


def _topic(prompt: str) -> str:
    """Whose prompt this is: the node's text, or (combining titles) its candidate title."""
    for topic, text in (("jamba", JAMBA[1]), ("company", COMPANY[1])):
        if text in prompt or f"{topic} candidate title" in prompt:
            return topic
    return "?"


def extractor_answers(request: dict[str, Any]) -> Reply | None:
    """Each extractor's answer, for the node its prompt holds (they run concurrently)."""
    prompt = _prompt(request)
    topic = _topic(prompt)
    if request.get("tools"):
        facts = {"topic": topic, "names": [topic.title()]}
        return Reply(tool_calls=[ToolCall("NodeFacts", facts)])
    if "comprehensive title" in prompt:
        return Reply(f"All about {topic}")
    answers = {
        "Give a title": f"{topic} candidate title",
        "questions this context can provide": f"1. What is {topic}?",
        "Summarize the key topics": f"A summary of {topic}.",
        "unique keywords": f"{topic}, models, facts",
    }
    return next((Reply(a) for cue, a in answers.items() if cue in prompt), None)


EXTRACTED = {
    topic: {
        "document_title": f"All about {topic}",
        "questions_this_excerpt_can_answer": f"1. What is {topic}?",
        "section_summary": f"A summary of {topic}.",
        "excerpt_keywords": f"{topic}, models, facts",
        "topic": topic,
        "names": [topic.title()],
    }
    for topic in ("jamba", "company")
}


def _nodes() -> list[BaseNode]:
    """One node per document (TextNodes: a SentenceSplitter in a spawned worker loads its
    tiktoken encoding, which needs the network on a machine without the cache)."""
    return [
        TextNode(
            text=" ".join(texts),
            id_=name,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"{name}-document")},
        )
        for name, texts in (("jamba", JAMBA), ("company", COMPANY))
    ]


def extraction_pipeline(llm: AI21) -> IngestionPipeline:
    program = FunctionCallingProgram.from_defaults(
        output_cls=NodeFacts,
        prompt_template_str="Extract the facts of this text: {context_str}",
        llm=llm,
    )
    return IngestionPipeline(
        transformations=[
            TitleExtractor(llm=llm, nodes=1),
            QuestionsAnsweredExtractor(llm=llm, questions=1),
            SummaryExtractor(llm=llm),
            KeywordExtractor(llm=llm, keywords=3),
            PydanticProgramExtractor(program=program, input_key="context_str"),
        ]
    )


@FLAVOURS
@pytest.mark.parametrize("method", ["run", "arun"])
def test_extractors_fill_each_nodes_metadata_from_its_own_answers(
    emulator: Emulator, method: str
) -> None:
    emulator.handler = extractor_answers
    pipeline = extraction_pipeline(_llm(emulator))
    nodes = (
        pipeline.run(nodes=_nodes())
        if method == "run"
        else asyncio.run(pipeline.arun(nodes=_nodes()))
    )
    assert {node.node_id: node.metadata for node in nodes} == EXTRACTED
    chats = _chats(emulator)
    assert len(chats) == 2 * 6  # per node: title, its combination, questions, summary, ...
    assert sorted(_topic(_prompt(request)) for request in chats) == 6 * ["company"] + 6 * ["jamba"]
    (jamba_facts,) = [r for r in chats if r.get("tools") and JAMBA[1] in _prompt(r)]
    (tool,) = jamba_facts["tools"]
    assert tool["function"]["name"] == "NodeFacts"
    assert set(tool["function"]["parameters"]["properties"]) == {"topic", "names"}


def _run_in_workers(pipeline: IngestionPipeline) -> list[BaseNode]:
    """``pipeline.run(num_workers=2)``, failed after 60 s rather than left hanging."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(pipeline.run(nodes=_nodes(), num_workers=2))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # a hung pool must not hold the exit
    thread.start()
    thread.join(60)
    assert outcome, "the worker pool hung"
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("ai21_emulator", "key_in_environment"),
    [("vllm", False), ("ai21", True), ("ai21", False)],
    ids=["vllm", "ai21-key-from-environment", "ai21-key-only-in-the-parent"],
    indirect=["ai21_emulator"],
)
def test_an_ingestion_pipeline_in_worker_processes(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, key_in_environment: bool
) -> None:
    """``run(num_workers=2)`` pickles the extractors, and their LLM, into spawned workers. The
    pickle carries no key: a worker finds it in its environment (``AI21_API_KEY``, AI21's API)
    or needs none (vLLM); else the workers' first call raises, and the ValueError comes back
    as the task's error (a worker that failed to unpickle its task left the pool waiting)."""
    assert multiprocessing.get_start_method() != "spawn"  # the pipeline asks for spawn itself
    emulator.handler = extractor_answers
    if key_in_environment:
        monkeypatch.setenv("AI21_API_KEY", emulator.api_key or "")
    pipeline = extraction_pipeline(_llm(emulator))
    if emulator.flavour == "ai21" and not key_in_environment:
        with pytest.raises(ValueError, match=r"pickled with its api_key.*set AI21_API_KEY"):
            _run_in_workers(pipeline)
        assert _chats(emulator) == []
        return
    nodes = _run_in_workers(pipeline)
    assert {node.node_id: node.metadata for node in nodes} == EXTRACTED
    assert len(_chats(emulator)) == 2 * 6
    if emulator.api_key is not None:
        assert {r.api_key for r in emulator.requests} == {emulator.api_key}
