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
import json
import pickle
import threading
import time
from typing import Any, Literal

import pytest
from llama_index.core import Document, DocumentSummaryIndex, PropertyGraphIndex
from llama_index.core.agent.workflow import ReActAgent
from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.evaluation import (
    BatchEvalRunner,
    CorrectnessEvaluator,
    FaithfulnessEvaluator,
    GuidelineEvaluator,
    RelevancyEvaluator,
)
from llama_index.core.extractors import (
    KeywordExtractor,
    PydanticProgramExtractor,
    QuestionsAnsweredExtractor,
    SummaryExtractor,
    TitleExtractor,
)
from llama_index.core.indices.property_graph import (
    SchemaLLMPathExtractor,
    SimpleLLMPathExtractor,
)
from llama_index.core.indices.query.query_transform import (
    HyDEQueryTransform,
    StepDecomposeQueryTransform,
)
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.program import FunctionCallingProgram
from llama_index.core.query_engine import (
    MultiStepQueryEngine,
    RetrieverQueryEngine,
    RouterQueryEngine,
    TransformQueryEngine,
)
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.core.retrievers import BaseRetriever, QueryFusionRetriever, RouterRetriever
from llama_index.core.schema import (
    BaseNode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.selectors import LLMMultiSelector, PydanticMultiSelector
from llama_index.core.tools import RetrieverTool

from ai21_emulator import Emulator, Fault, Reply, ToolCall
from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS
from tests.rag_corpus import (  # noqa: F401 - the fixture is autouse
    COMPANY,
    CONTEXT_WINDOW,
    JAMBA,
    _close_the_loop_llama_index_leaves_open,
    engine_tools,
    make_index,
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


def test_what_worker_processes_are_sent_carries_no_secret() -> None:
    """What ``run(num_workers=...)`` pickles for its workers (the transformations, and the
    LLM of each) holds neither the key nor ``base_url``'s password."""
    key, password = "sk-worker-key-9f3e", "pw-worker-4b1d"
    llm = AI21(
        api_key=key,
        base_url=f"http://user:{password}@127.0.0.1:9/v1",
        model="ai21labs/AI21-Jamba2-3B",
    )
    data = pickle.dumps(extraction_pipeline(llm).transformations)
    assert key.encode() not in data
    assert password.encode() not in data
    assert b"ai21labs/AI21-Jamba2-3B" in data  # the settings travel


def _run_in_workers(pipeline: IngestionPipeline, method: str) -> list[BaseNode]:
    """``pipeline.run(num_workers=2)`` (spawned workers) or ``arun`` (a ProcessPoolExecutor,
    forked on Linux), failed after 60 s rather than left hanging."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            if method == "run":
                outcome.append(pipeline.run(nodes=_nodes(), num_workers=2))
            else:
                outcome.append(asyncio.run(pipeline.arun(nodes=_nodes(), num_workers=2)))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # a hung pool must not hold the exit
    thread.start()
    thread.join(60)
    assert outcome, "the worker pool hung"
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", ["run", "arun"])
@pytest.mark.parametrize(
    ("ai21_emulator", "key_in_environment"),
    [("vllm", False), ("ai21", True), ("ai21", False)],
    ids=["vllm", "ai21-key-from-environment", "ai21-key-only-in-the-parent"],
    indirect=["ai21_emulator"],
)
def test_an_ingestion_pipeline_in_worker_processes(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, key_in_environment: bool, method: str
) -> None:
    """``run(num_workers=2)`` pickles the extractors, and their LLM, into spawned workers. The
    pickle carries no key: a worker finds it in its environment (``AI21_API_KEY``, AI21's API)
    or needs none (vLLM); else the workers' first call raises, and the ValueError comes back
    as the task's error (a worker that failed to unpickle its task left the pool waiting).
    ``arun`` forks its workers (Linux): they find the key of the instance that lives in the
    parent."""
    emulator.handler = extractor_answers
    if key_in_environment:
        monkeypatch.setenv("AI21_API_KEY", emulator.api_key or "")
    pipeline = extraction_pipeline(_llm(emulator))
    if emulator.flavour == "ai21" and not key_in_environment and method == "run":
        with pytest.raises(ValueError, match=r"pickled with its api_key.*set AI21_API_KEY"):
            _run_in_workers(pipeline, method)
        assert _chats(emulator) == []
        return
    nodes = _run_in_workers(pipeline, method)
    assert {node.node_id: node.metadata for node in nodes} == EXTRACTED
    assert len(_chats(emulator)) == 2 * 6
    if emulator.api_key is not None:
        assert {r.api_key for r in emulator.requests} == {emulator.api_key}


# -- selectors and routers --------------------------------------------------------------------

BOTH = "Who founded AI21 Labs, and how long is Jamba's context window?"


@FLAVOURS
@pytest.mark.parametrize("function_calling", [True, False], ids=["pydantic", "text"])
def test_a_multi_selector_routes_to_every_engine_it_chose(
    emulator: Emulator, function_calling: bool
) -> None:
    llm = _llm(emulator, is_function_calling_model=function_calling)
    selector = (
        PydanticMultiSelector.from_defaults(llm=llm)
        if function_calling
        else LLMMultiSelector.from_defaults(llm=llm)
    )
    router = RouterQueryEngine(selector=selector, query_engine_tools=engine_tools(llm), llm=llm)
    chosen = [{"index": 2, "reason": "founders"}, {"index": 1, "reason": "context window"}]
    if function_calling:
        emulator.reply_next(
            tool_calls=[{"name": "MultiSelection", "arguments": {"selections": chosen}}]
        )
    else:
        emulator.reply_next(
            json.dumps([{"choice": c["index"], "reason": c["reason"]} for c in chosen])
        )
    emulator.reply_next("Founded by three people.")
    emulator.reply_next("256K tokens.")
    emulator.reply_next("Founded by three people; 256K tokens.")
    response = router.query(BOTH)

    assert str(response) == "Founded by three people; 256K tokens."
    assert [s.index for s in response.metadata["selector_result"].selections] == [1, 0]
    selection, first, second, summary = _chats(emulator)
    assert [t["function"]["name"] for t in selection.get("tools", [])] == (
        ["MultiSelection"] if function_calling else []
    )
    # The selection must be a tool call: vLLM is told so; AI21's API has no such field.
    required = function_calling and emulator.flavour == "vllm"
    assert selection.get("tool_choice") == ("required" if required else None)
    assert f"question: '{BOTH}'" in _prompt(selection)
    assert COMPANY[0] in _prompt(first)
    assert JAMBA[0] not in _prompt(first)
    assert JAMBA[1] in _prompt(second)
    assert COMPANY[0] not in _prompt(second)
    assert "Founded by three people.\n" in _prompt(summary)
    assert "256K tokens.\n" in _prompt(summary)


@FLAVOURS
def test_a_router_retriever_retrieves_from_the_chosen_retriever(emulator: Emulator) -> None:
    llm = _llm(emulator)
    tools = [
        RetrieverTool.from_defaults(
            make_index(texts).as_retriever(similarity_top_k=2), description=description
        )
        for texts, description in (
            (JAMBA, "Facts about the Jamba language models"),
            (COMPANY, "Facts about the company AI21 Labs"),
        )
    ]
    emulator.reply_next(
        tool_calls=[{"name": "SingleSelection", "arguments": {"index": 2, "reason": "company"}}]
    )
    nodes = RouterRetriever.from_defaults(tools, llm=llm).retrieve("Who founded AI21 Labs?")
    assert sorted(node.get_content() for node in nodes) == sorted(COMPANY)
    (selection,) = _chats(emulator)
    assert [t["function"]["name"] for t in selection["tools"]] == ["SingleSelection"]
    assert "(2) Facts about the company AI21 Labs" in _prompt(selection)


# -- query transforms ------------------------------------------------------------------------


class RecordingRetriever(BaseRetriever):
    """Retrieves every node of the corpus, and records what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[QueryBundle] = []

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.asked.append(query_bundle)
        return [NodeWithScore(node=TextNode(text=text), score=1.0) for text in JAMBA + COMPANY]


@pytest.mark.parametrize(
    ("method", "use_async"), [("retrieve", False), ("retrieve", True), ("aretrieve", True)]
)
def test_query_fusion_searches_with_each_generated_query(
    emulator: Emulator, method: str, use_async: bool
) -> None:
    retriever = RecordingRetriever()
    fusion = QueryFusionRetriever(
        [retriever], llm=_llm(emulator), num_queries=3, use_async=use_async, similarity_top_k=2
    )
    emulator.reply_next("Jamba context length\nJamba maximum tokens\nan extra query")
    nodes = (  # aretrieve generates the queries with acomplete
        asyncio.run(fusion.aretrieve(CONTEXT_WINDOW))
        if method == "aretrieve"
        else fusion.retrieve(CONTEXT_WINDOW)
    )
    assert len(nodes) == 2
    assert sorted(q.query_str for q in retriever.asked) == sorted(
        [CONTEXT_WINDOW, "Jamba context length", "Jamba maximum tokens"]
    )
    (generation,) = _chats(emulator)
    assert "Generate 2 search queries" in _prompt(generation)
    assert f"Query: {CONTEXT_WINDOW}" in _prompt(generation)


def test_hyde_embeds_the_hypothetical_passage_with_the_question(emulator: Emulator) -> None:
    llm = _llm(emulator)
    retriever = RecordingRetriever()
    engine = TransformQueryEngine(
        RetrieverQueryEngine.from_args(retriever, llm=llm),
        HyDEQueryTransform(llm=llm, include_original=True),
    )
    passage = "Jamba reads up to 256K tokens at once."
    emulator.reply_next(passage)
    emulator.reply_next("256K tokens.")
    assert str(engine.query(CONTEXT_WINDOW)) == "256K tokens."
    (asked,) = retriever.asked
    assert asked.embedding_strs == [passage, CONTEXT_WINDOW]
    hyde, answer = _chats(emulator)
    assert "write a passage to answer the question" in _prompt(hyde)
    assert CONTEXT_WINDOW in _prompt(hyde)
    assert f"Query: {CONTEXT_WINDOW}" in _prompt(answer)


def test_a_multi_step_engine_asks_its_steps_until_the_model_says_none(
    emulator: Emulator,
) -> None:
    llm = _llm(emulator)
    engine = MultiStepQueryEngine(
        make_index(JAMBA + COMPANY).as_query_engine(llm=llm, similarity_top_k=4),
        StepDecomposeQueryTransform(llm=llm),
        index_summary="Facts about Jamba and AI21 Labs",
        num_steps=3,
        response_synthesizer=get_response_synthesizer(llm=llm),  # else Settings.llm's
    )
    question = "Where is the company that made Jamba headquartered?"
    emulator.reply_next("Which company made Jamba?")
    emulator.reply_next("AI21 Labs made Jamba.")
    emulator.reply_next("None")
    emulator.reply_next("In Tel Aviv.")
    response = engine.query(question)
    assert str(response) == "In Tel Aviv."
    assert [(q, str(a)) for q, a in response.metadata["sub_qa"]] == [
        ("Which company made Jamba?", "AI21 Labs made Jamba.")
    ]
    step, sub_answer, stop, final = _chats(emulator)
    assert _prompt(step).endswith(
        f"Question: {question}\nKnowledge source context: Facts about Jamba and AI21 Labs\n"
        "Previous reasoning: None\nNew question: "
    )
    assert "Query: Which company made Jamba?" in _prompt(sub_answer)
    assert "AI21 Labs made Jamba." in _prompt(stop)
    assert f"Query: {question}" in _prompt(final)
    assert "AI21 Labs made Jamba." in _prompt(final)


# -- knowledge graphs and summaries ----------------------------------------------------------

TRIPLET = {
    "subject": {"type": "COMPANY", "name": "AI21 Labs"},
    "relation": {"type": "LOCATED_IN"},
    "object": {"type": "PLACE", "name": "Tel Aviv"},
}


def _triplets(index: PropertyGraphIndex) -> set[tuple[str, str, str]]:
    return {
        (subject.name, relation.label, target.name)  # type: ignore[attr-defined]
        for subject, relation, target in index.property_graph_store.graph.get_triplets()  # type: ignore[attr-defined]
    }


@FLAVOURS
def test_a_schema_path_extractor_sends_its_literal_types_and_reads_the_triplets(
    emulator: Emulator,
) -> None:
    llm = _llm(emulator)

    def answer(request: dict[str, Any]) -> Reply:
        if request.get("tools"):  # AI21's API: the schema as a tool
            return Reply(tool_calls=[ToolCall("KGSchema", {"triplets": [TRIPLET]})])
        return Reply(json.dumps({"triplets": [TRIPLET]}))  # vLLM: guided by json_schema

    emulator.handler = answer
    extractor = SchemaLLMPathExtractor(
        llm=llm,
        possible_entities=Literal["COMPANY", "PLACE"],
        possible_relations=Literal["LOCATED_IN", "FOUNDED_BY"],
        kg_validation_schema=[("COMPANY", "LOCATED_IN", "PLACE")],  # strict: else its default
        strict=True,
        num_workers=1,
    )
    index = PropertyGraphIndex(
        nodes=[TextNode(text=COMPANY[1])],
        llm=llm,
        kg_extractors=[extractor],
        embed_model=MockEmbedding(embed_dim=8),
        embed_kg_nodes=False,
    )
    assert _triplets(index) == {("AI21 Labs", "LOCATED_IN", "Tel Aviv")}
    (request,) = _chats(emulator)
    assert COMPANY[1] in _prompt(request)
    if emulator.flavour == "ai21":
        (tool,) = request["tools"]
        schema = tool["function"]["parameters"]
    else:
        assert "tools" not in request
        schema = request["response_format"]["json_schema"]["schema"]
    definitions = schema["$defs"]
    assert definitions["Entity"]["properties"]["type"]["enum"] == ["COMPANY", "PLACE"]
    assert definitions["Relation"]["properties"]["type"]["enum"] == ["LOCATED_IN", "FOUNDED_BY"]


def test_a_simple_path_extractor_reads_the_triplets_the_model_lists(emulator: Emulator) -> None:
    llm = _llm(emulator)
    emulator.reply_next("(AI21 Labs, located in, Tel Aviv)\n(AI21 Labs, founded in, 2017)")
    index = PropertyGraphIndex(
        nodes=[TextNode(text=" ".join(COMPANY))],
        llm=llm,
        kg_extractors=[SimpleLLMPathExtractor(llm=llm, max_paths_per_chunk=5, num_workers=1)],
        embed_model=MockEmbedding(embed_dim=8),
        embed_kg_nodes=False,
    )
    assert _triplets(index) == {  # LlamaIndex's parser capitalizes the names
        ("Ai21 labs", "Located in", "Tel aviv"),
        ("Ai21 labs", "Founded in", "2017"),
    }
    (request,) = _chats(emulator)
    assert f"Text: {' '.join(COMPANY)}" in _prompt(request)
    assert "extract up to 5 knowledge triplets" in _prompt(request)


def test_a_document_summary_index_summarises_each_document_and_picks_one(
    emulator: Emulator,
) -> None:
    llm = _llm(emulator)

    def answer(request: dict[str, Any]) -> Reply:
        prompt = _prompt(request)
        if "Describe what the provided text is about" in prompt:
            return Reply(f"The {_topic(prompt)} summary.")
        if "Let's try this now:" in prompt:  # the LLM retriever picks a summary
            return Reply("Doc: 2, Relevance: 9")
        return Reply("In Tel Aviv.")

    emulator.handler = answer
    documents = [
        Document(text=" ".join(texts), doc_id=name)
        for name, texts in (("jamba", JAMBA), ("company", COMPANY))
    ]
    index = DocumentSummaryIndex.from_documents(
        documents, llm=llm, embed_model=MockEmbedding(embed_dim=8)
    )
    assert index.get_document_summary("jamba") == "The jamba summary."
    assert index.get_document_summary("company") == "The company summary."
    engine = index.as_query_engine(retriever_mode="llm", llm=llm)
    response = engine.query("Where is AI21 Labs headquartered?")
    assert str(response) == "In Tel Aviv."
    assert {node.node.ref_doc_id for node in response.source_nodes} == {"company"}
    *_, choose, final = _chats(emulator)
    assert "The company summary." in _prompt(choose)
    assert COMPANY[1] in _prompt(final)
    assert JAMBA[1] not in _prompt(final)


# -- evaluators ------------------------------------------------------------------------------


GOOD_ANSWER = "Jamba reads 256K tokens."


def evaluator_answers(request: dict[str, Any]) -> Reply:
    """A judge: the response under test passes when it is :data:`GOOD_ANSWER` (YES, a score of
    4.5, the guideline's JSON saying so), else fails."""
    prompt = _prompt(request)
    good = GOOD_ANSWER in prompt
    if "## Reference Answer" in prompt:
        return Reply("4.5\nMatches the reference." if good else "1.0\nWrong.")
    if "guidelines" in prompt:
        return Reply(json.dumps({"passing": good, "feedback": "Concise." if good else "Vague."}))
    return Reply("YES" if good else "NO")


@pytest.mark.parametrize("use_async", [False, True], ids=["evaluate", "aevaluate"])
@pytest.mark.parametrize("good", [True, False], ids=["good", "bad"])
def test_evaluators_read_the_judges_verdict(
    emulator: Emulator, use_async: bool, good: bool
) -> None:
    llm = _llm(emulator)
    emulator.handler = evaluator_answers
    response = GOOD_ANSWER if good else "About a thousand words."
    cases: list[tuple[Any, dict[str, Any]]] = [
        (FaithfulnessEvaluator(llm=llm), {"contexts": JAMBA}),
        (RelevancyEvaluator(llm=llm), {"contexts": JAMBA}),
        (CorrectnessEvaluator(llm=llm), {"reference": JAMBA[1]}),
        (GuidelineEvaluator(llm=llm, guidelines="The response should be concise."), {}),
    ]
    results = []
    for evaluator, given in cases:
        kwargs = {"query": CONTEXT_WINDOW, "response": response, **given}
        results.append(
            asyncio.run(evaluator.aevaluate(**kwargs))
            if use_async
            else evaluator.evaluate(**kwargs)
        )
    assert [r.passing for r in results] == [good] * 4
    assert [r.score for r in results] == ([1.0, 1.0, 4.5, 1.0] if good else [0.0, 0.0, 1.0, 0.0])
    assert results[3].feedback == ("Concise." if good else "Vague.")
    faithfulness, relevancy, correctness, guideline = _chats(emulator)
    assert f"Information: {response}" in _prompt(faithfulness)
    assert JAMBA[1] in _prompt(faithfulness)
    assert f"Query and Response: \n Question: {CONTEXT_WINDOW}\nResponse: {response}\n" in _prompt(
        relevancy
    )
    assert f"## Reference Answer\n{JAMBA[1]}" in _prompt(correctness)
    assert "The response should be concise." in _prompt(guideline)


@pytest.mark.parametrize("ai21_emulator", ["vllm"], indirect=True)
@pytest.mark.filterwarnings(  # llama-index-core's own call, in BatchEvalRunner
    "ignore:asyncio_module\\(\\) is deprecated:DeprecationWarning"
)
def test_a_batch_eval_runner_sends_its_evaluations_at_once(emulator: Emulator) -> None:
    """``BatchEvalRunner`` runs its evaluations as concurrent ``aevaluate`` calls on one event
    loop, over the instance's async pool: every request arrives while the first is held (each
    answer is held 0.5 s), where calls one after another would arrive 0.5 s apart."""
    llm = _llm(emulator)
    arrivals: list[float] = []

    def answer(request: dict[str, Any]) -> Reply:
        arrivals.append(time.monotonic())
        return evaluator_answers(request)

    emulator.handler = answer
    responses = [GOOD_ANSWER, "About a thousand words.", GOOD_ANSWER, "Ten words."]
    emulator.inject(Fault(delay=0.5, count=len(responses)))
    runner = BatchEvalRunner({"faithfulness": FaithfulnessEvaluator(llm=llm)}, workers=4)
    results = asyncio.run(
        runner.aevaluate_response_strs(
            queries=[CONTEXT_WINDOW] * len(responses),
            response_strs=responses,
            contexts_list=[JAMBA] * len(responses),
        )
    )
    assert [r.passing for r in results["faithfulness"]] == [True, False, True, False]
    assert len(arrivals) == len(responses)
    assert max(arrivals) - min(arrivals) < 0.5  # all sent before the first was answered


# -- the text-based agent --------------------------------------------------------------------


@FLAVOURS
@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
@pytest.mark.filterwarnings(  # llama-index-workflows' inspection of the agent (not ours)
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
    "ignore:is_running called from within a step:DeprecationWarning",
)
async def test_a_react_agent_with_function_calling_off_sends_no_tools(
    emulator: Emulator, streaming: bool
) -> None:
    llm = _llm(emulator, is_function_calling_model=False)
    emulator.reply_next('Thought: I need a tool.\nAction: multiply\nAction Input: {"a": 3, "b": 4}')
    emulator.reply_next("Thought: I can answer without using any more tools.\nAnswer: It is 12.")
    agent = ReActAgent(tools=TOOLS, llm=llm, streaming=streaming)
    assert str(await agent.run("What is 3 times 4?")) == "It is 12."
    first, second = _chats(emulator)
    for request in (first, second):
        assert "tools" not in request
        assert "tool_choice" not in request
        assert request["stream"] is streaming
    system = first["messages"][0]
    assert system["role"] == "system"
    assert "Tool Name: multiply" in system["content"]
    assert '"a": {"title": "A", "type": "integer"}' in system["content"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][-2]["content"].startswith("Thought: I need a tool.")
    assert second["messages"][-1]["content"] == "Observation: 12"
