"""The emulator's made-up answers, through LlamaIndex's real prompts.

The adapter tests (tests/test_rag.py, test_tools.py, test_agents.py, test_structured.py,
test_documents.py) script their answers; these keep the heuristics those tests used to lean on
covered end to end: grounded answers from retrieved context, the router's selection, the
sub-questions of a SubQuestionQueryEngine, an LLM reranker's choice, condensed follow-ups, tool
calls guessed from the user's words (one per clause), reported tool results, JSON filled from
the schema in the prompt, and answers grounded on ``documents``. They go through this package's
``AI21``, so they live here rather than with the emulator's own tests (emulator/tests).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import pytest
from llama_index.core import Document, DocumentSummaryIndex, PropertyGraphIndex
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.evaluation import (
    CorrectnessEvaluator,
    FaithfulnessEvaluator,
    GuidelineEvaluator,
    RelevancyEvaluator,
)
from llama_index.core.extractors import KeywordExtractor, QuestionsAnsweredExtractor, TitleExtractor
from llama_index.core.indices.property_graph import (
    LLMSynonymRetriever,
    SchemaLLMPathExtractor,
    SimpleLLMPathExtractor,
)
from llama_index.core.indices.query.query_transform import StepDecomposeQueryTransform
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.output_parsers import PydanticOutputParser
from llama_index.core.postprocessor import LLMRerank
from llama_index.core.program import LLMTextCompletionProgram
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import (
    MultiStepQueryEngine,
    RetrieverQueryEngine,
    RouterQueryEngine,
    SubQuestionQueryEngine,
)
from llama_index.core.question_gen import LLMQuestionGenerator
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.schema import QueryBundle, TextNode
from llama_index.core.types import PydanticProgramMode

from ai21_emulator import Emulator
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

TWO_CALLS = "What is 3 times 4 and then add 2 plus 5?"


@pytest.fixture
def llm(emulator: Emulator) -> AI21:
    return AI21(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)


def test_a_query_engine_gets_the_best_matching_sentence_of_the_context(llm: AI21) -> None:
    engine = make_index(JAMBA + COMPANY).as_query_engine(llm=llm, similarity_top_k=4)
    assert str(engine.query(CONTEXT_WINDOW)) == JAMBA[1]


@pytest.mark.parametrize("chat_mode", ["condense_question", "condense_plus_context"])
def test_a_condensing_chat_engine_retrieves_with_the_follow_up_standing_alone(
    llm: AI21, emulator: Emulator, chat_mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llama_index.core.chat_engine")
    engine = make_index(JAMBA).as_chat_engine(
        chat_mode=chat_mode, llm=llm, similarity_top_k=2, memory=ChatMemoryBuffer.from_defaults()
    )
    engine.chat("What is Jamba?")
    emulator.reset()
    answer = str(engine.chat("How long is its context window?"))
    condense, *_, final = emulator.requests
    assert (
        condense.json["messages"][-1]["content"]
        .rstrip()
        .endswith(("Standalone question:", "<Standalone question>"))
    )
    assert answer == JAMBA[1]
    if chat_mode == "condense_question":  # the query engine is asked the rewritten question
        assert "Query: How long is Jamba's context window?" in final.json["messages"][-1]["content"]
    else:  # what it retrieves with
        assert "Condensed question: How long is Jamba's context window?" in caplog.messages


def test_a_context_chat_engine_answers_each_question_from_the_context(llm: AI21) -> None:
    engine = make_index(JAMBA).as_chat_engine(
        chat_mode="context", llm=llm, similarity_top_k=2, memory=ChatMemoryBuffer.from_defaults()
    )
    assert str(engine.chat(CONTEXT_WINDOW)) == JAMBA[1]
    assert str(engine.chat("Which layers does it combine?")) == (
        "Jamba combines Transformer layers with Mamba state-space layers."
    )


@pytest.mark.parametrize(
    ("question", "choice", "answer"),
    [(CONTEXT_WINDOW, 0, JAMBA[1]), ("Who founded AI21 Labs?", 1, COMPANY[0])],
)
def test_the_router_selection_follows_the_descriptions(
    llm: AI21, emulator: Emulator, question: str, choice: int, answer: str
) -> None:
    tools = engine_tools(llm)
    response = RouterQueryEngine.from_defaults(tools, llm=llm).query(question)
    assert response.metadata["selector_result"].ind == choice
    assert str(response) == answer
    # A model without function calling: LlamaIndex's text selector, the choice read as JSON.
    text_llm = AI21(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        is_function_calling_model=False,
        max_retries=0,
    )
    response = RouterQueryEngine.from_defaults(tools, llm=text_llm).query(question)
    assert response.metadata["selector_result"].ind == choice
    assert str(response) == answer


@pytest.mark.parametrize("use_async", [False, True], ids=["query", "aquery"])
def test_an_llm_reranker_keeps_the_nodes_that_match_the_question(
    llm: AI21, emulator: Emulator, use_async: bool
) -> None:
    engine = RetrieverQueryEngine.from_args(
        make_index(JAMBA + COMPANY).as_retriever(similarity_top_k=4),
        llm=llm,
        node_postprocessors=[LLMRerank(llm=llm, top_n=1)],
    )
    response = (
        asyncio.run(engine.aquery(CONTEXT_WINDOW)) if use_async else engine.query(CONTEXT_WINDOW)
    )
    assert [node.get_content() for node in response.source_nodes] == [JAMBA[1]]
    assert str(response) == JAMBA[1]
    rerank, answer = emulator.requests
    assert "Question: " + CONTEXT_WINDOW in rerank.json["messages"][-1]["content"]
    assert JAMBA[0] not in answer.json["messages"][-1]["content"]


@pytest.mark.parametrize("use_async", [False, True], ids=["query", "aquery"])
def test_a_sub_question_engine_asks_each_engine_its_part_of_the_question(
    llm: AI21, emulator: Emulator, use_async: bool
) -> None:
    tools = engine_tools(llm)
    engine = SubQuestionQueryEngine.from_defaults(
        tools,
        llm=llm,
        question_gen=LLMQuestionGenerator.from_defaults(llm=llm),
        use_async=use_async,
        verbose=False,
    )
    question = "How long is Jamba's context window and where is AI21 Labs headquartered?"
    response = asyncio.run(engine.aquery(question)) if use_async else engine.query(question)
    texts = [node.get_content() for node in response.source_nodes]
    assert sorted(text for text in texts if text.startswith("Sub question:")) == [
        f"Sub question: How long is Jamba's context window?\nResponse: {JAMBA[1]}",
        f"Sub question: Where is AI21 Labs headquartered?\nResponse: {COMPANY[1]}",
    ]
    assert JAMBA[1] in str(response)
    assert len(emulator.requests) == 4  # the sub-questions, one answer each, the final answer


@pytest.mark.parametrize(
    ("question", "parallel", "calls"),
    [
        ("What is 3 times 4?", True, [("multiply", '{"a":3,"b":4}')]),
        (TWO_CALLS, True, [("multiply", '{"a":3,"b":4}'), ("add", '{"a":2,"b":5}')]),
        (TWO_CALLS, False, [("multiply", '{"a":3,"b":4}')]),
    ],
)
def test_tool_calls_follow_the_users_words_one_per_clause(
    llm: AI21, question: str, parallel: bool, calls: list[tuple[str, str]]
) -> None:
    response = llm.chat_with_tools(TOOLS, question, allow_parallel_tool_calls=parallel)
    sent = response.message.additional_kwargs["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in sent] == calls


def test_a_question_no_tool_fits_gets_a_text_answer(llm: AI21) -> None:
    response = llm.chat_with_tools(TOOLS, "Tell me a story about a lighthouse.")
    assert "lighthouse" in (response.message.content or "")
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is 3 times 4?", "The result of multiply is 12."),
        (TWO_CALLS, "The result of multiply is 12. The result of add is 7."),
    ],
)
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
async def test_tool_results_are_reported_so_an_agent_loop_ends(
    llm: AI21, question: str, answer: str
) -> None:
    agent = FunctionAgent(tools=TOOLS, llm=llm, system_prompt="Use the tools.")
    assert str(await agent.run(question)) == answer


def test_predict_and_call_gets_the_guessed_calls(llm: AI21) -> None:
    result = llm.predict_and_call(TOOLS, user_msg=TWO_CALLS, allow_parallel_tool_calls=True)
    assert result.response == "12\n\n7"


class Album(BaseModel):
    """A music album."""

    title: str = Field(description="The album's title")
    artist: str = Field(description="Who recorded it")
    year: int = Field(description="Year of release")


@pytest.mark.parametrize("mode", [PydanticProgramMode.DEFAULT, PydanticProgramMode.LLM])
def test_structured_output_is_filled_from_the_prompt(emulator: Emulator, mode: str) -> None:
    llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, pydantic_program_mode=mode)
    text = 'The album is called "Abbey Road", the artist is The Beatles, and the year is 1969.'
    prompt = PromptTemplate("Extract the album from this text: {text}")
    assert llm.structured_predict(Album, prompt, text=text) == Album(
        title="Abbey Road", artist="The Beatles", year=1969
    )


@pytest.mark.parametrize("program", ["text_completion", "output_parser"])
def test_a_prompt_asking_for_json_gets_it_without_json_mode(llm: AI21, program: str) -> None:
    text = 'The album is called "Abbey Road", the artist is The Beatles, and the year is 1969.'
    if program == "text_completion":  # LlamaIndex's classic program, built directly
        album = LLMTextCompletionProgram.from_defaults(
            output_cls=Album,
            prompt_template_str="Extract the album from this text: {text}",
            llm=llm,
        )(text=text)
    else:
        prompt = PromptTemplate(
            "Extract the album from this text: {text}", output_parser=PydanticOutputParser(Album)
        )
        album = Album.model_validate_json(llm.predict(prompt, text=text))
    assert album == Album(title="Abbey Road", artist="The Beatles", year=1969)


def test_documents_ground_the_answer(llm: AI21) -> None:
    documents = [
        "Jurassic-2 models were retired in November 2024.",
        "AI21 Labs was founded in 2017.",
        "Jamba handles a context window of 256K tokens.",
    ]
    response = llm.complete("How long is the context window of Jamba?", documents=documents)
    assert response.text == "Jamba handles a context window of 256K tokens."


@pytest.mark.parametrize(
    ("response", "verdict"),
    [("Jamba handles a context window of 256K tokens.", True), ("Jamba was made in Paris.", False)],
)
def test_a_judge_says_yes_to_what_the_context_supports_and_no_to_the_rest(
    llm: AI21, response: str, verdict: bool
) -> None:
    faithful = FaithfulnessEvaluator(llm=llm).evaluate(response=response, contexts=JAMBA)
    relevant = RelevancyEvaluator(llm=llm).evaluate(
        query=CONTEXT_WINDOW, response=response, contexts=JAMBA
    )
    assert (faithful.passing, faithful.feedback) == (verdict, "YES" if verdict else "NO")
    assert (relevant.passing, relevant.feedback) == (verdict, "YES" if verdict else "NO")


@pytest.mark.parametrize(
    ("response", "score"), [("A context window of 256K tokens.", 5.0), ("Ten pages.", 1.0)]
)
def test_a_correctness_judge_scores_the_answer_by_the_reference(
    llm: AI21, response: str, score: float
) -> None:
    result = CorrectnessEvaluator(llm=llm).evaluate(
        query=CONTEXT_WINDOW, response=response, reference=JAMBA[1]
    )
    assert result.score == score
    assert result.passing is (score >= 4.0)


@pytest.mark.parametrize(
    ("question", "answer", "steps"),
    [
        ("What is 3 times 4?", "The result of multiply is 12.", 2),
        (TWO_CALLS, "The result of multiply is 12. The result of add is 7.", 3),
    ],
)
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")
async def test_a_react_agent_takes_one_action_a_step_then_answers(
    emulator: Emulator, question: str, answer: str, steps: int
) -> None:
    text_llm = AI21(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        is_function_calling_model=False,
        max_retries=0,
    )
    assert str(await ReActAgent(tools=TOOLS, llm=text_llm).run(question)) == answer
    assert len(emulator.requests) == steps


def test_extractors_get_keywords_a_title_and_questions_from_the_nodes_text(llm: AI21) -> None:
    pipeline = IngestionPipeline(
        transformations=[
            TitleExtractor(llm=llm, nodes=1),
            KeywordExtractor(llm=llm, keywords=3),
            QuestionsAnsweredExtractor(llm=llm, questions=2),
        ]
    )
    (node,) = pipeline.run(nodes=[TextNode(text=" ".join(COMPANY))])
    assert node.metadata == {
        "document_title": "AI21, Labs and Israeli",
        "excerpt_keywords": "AI21, Labs, Israeli",
        "questions_this_excerpt_can_answer": (
            "1. What does the text say about AI21 and Labs?\n"
            "2. What does the text say about headquarters and Tel?"
        ),
    }


def test_a_path_extractor_gets_a_triplet_from_each_sentence_naming_two_things(
    llm: AI21,
) -> None:
    index = PropertyGraphIndex(
        nodes=[TextNode(text=" ".join(COMPANY))],
        llm=llm,
        kg_extractors=[SimpleLLMPathExtractor(llm=llm, num_workers=1)],
        embed_model=MockEmbedding(embed_dim=8),
        embed_kg_nodes=False,
    )
    triplets = index.property_graph_store.graph.get_triplets()  # type: ignore[attr-defined]
    assert {(s.name, r.label, o.name) for s, r, o in triplets} == {  # as LlamaIndex writes them
        ("Ai21 labs", "Is an", "Israeli"),
        ("Ai21 labs", "Has its headquarters in", "Tel aviv"),
    }


@pytest.mark.parametrize("ai21_emulator", ["ai21", "vllm"], indirect=True)
def test_a_schema_path_extractor_gets_the_types_the_text_names_in_its_order(
    emulator: Emulator,
) -> None:
    # AI21's API gets the schema as a tool, vLLM as a json_schema response format: either way
    # each Literal field takes the next type the text names, so the triplet is one the
    # extractor's own validation schema keeps (the first type of each Literal would not be).
    kwargs = {"model": "ai21labs/AI21-Jamba2-3B"} if emulator.flavour == "vllm" else {}
    llm = AI21(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0, **kwargs)
    extractor = SchemaLLMPathExtractor(
        llm=llm,
        possible_entities=Literal["PERSON", "COMPANY", "PLACE"],
        possible_relations=Literal["FOUNDED_BY", "LOCATED_IN"],
        kg_validation_schema=[("COMPANY", "LOCATED_IN", "PLACE")],
        strict=True,
        num_workers=1,
    )
    index = PropertyGraphIndex(
        nodes=[TextNode(text="AI21 Labs is a company located in Tel Aviv, a place in Israel.")],
        llm=llm,
        kg_extractors=[extractor],
        embed_model=MockEmbedding(embed_dim=8),
        embed_kg_nodes=False,
    )
    triplets = index.property_graph_store.graph.get_triplets()  # type: ignore[attr-defined]
    assert {(s.name, s.label, r.label, o.name, o.label) for s, r, o in triplets} == {
        ("AI21 Labs", "COMPANY", "LOCATED_IN", "Tel Aviv", "PLACE")
    }


@pytest.mark.parametrize(
    ("response", "passing", "feedback"),
    [
        (
            "Jamba has a context window of 256K tokens.",
            True,
            "The response answers the query directly.",
        ),
        (
            "Jamba was made in Paris.",
            False,
            "The response does not address the query's context and window.",
        ),
    ],
)
def test_a_guideline_judge_passes_a_response_that_answers_the_query(
    llm: AI21, response: str, passing: bool, feedback: str
) -> None:
    result = GuidelineEvaluator(llm=llm).evaluate(
        query="What is the context window of Jamba?", response=response
    )
    assert (result.passing, result.feedback) == (passing, feedback)
    assert result.score == (1.0 if passing else 0.0)


def test_a_multi_step_engine_asks_the_question_then_stops(llm: AI21) -> None:
    engine = MultiStepQueryEngine(
        make_index(JAMBA + COMPANY).as_query_engine(llm=llm, similarity_top_k=4),
        StepDecomposeQueryTransform(llm=llm),
        index_summary="Facts about Jamba and AI21 Labs",
        response_synthesizer=get_response_synthesizer(llm=llm),
    )
    response = engine.query("Where is AI21 Labs headquartered?")
    assert [q for q, _ in response.metadata["sub_qa"]] == ["Where is AI21 Labs headquartered?"]
    assert str(response) == COMPANY[1]


def test_query_fusion_searches_with_the_questions_keywords(llm: AI21) -> None:
    fusion = QueryFusionRetriever(
        [make_index(JAMBA).as_retriever(similarity_top_k=2)],
        llm=llm,
        num_queries=3,
        use_async=False,
    )
    assert fusion._get_queries(CONTEXT_WINDOW) == [  # what it searches with beside the question
        QueryBundle("long Jamba context window"),
        QueryBundle("facts about long Jamba context window"),
    ]


def test_a_document_summary_is_the_documents_lead(llm: AI21) -> None:
    index = DocumentSummaryIndex.from_documents(
        [Document(text=" ".join(COMPANY), doc_id="company")],
        llm=llm,
        embed_model=MockEmbedding(embed_dim=8),
        show_progress=False,
    )
    assert index.get_document_summary("company") == " ".join(COMPANY)


def test_a_graphs_synonym_retriever_finds_the_entities_the_question_names(llm: AI21) -> None:
    index = PropertyGraphIndex(
        nodes=[TextNode(text=" ".join(COMPANY)), TextNode(text=" ".join(JAMBA))],
        llm=llm,
        kg_extractors=[SimpleLLMPathExtractor(llm=llm, num_workers=1)],
        embed_model=MockEmbedding(embed_dim=8),
        embed_kg_nodes=False,
    )
    retriever = LLMSynonymRetriever(index.property_graph_store, llm=llm, include_text=False)
    found = [node.get_content() for node in retriever.retrieve("Where is AI21 Labs located?")]
    assert "Ai21 labs -> Has its headquarters in -> Tel aviv" in found
    assert "Jamba -> Models handle a context window of -> 256K" not in found
