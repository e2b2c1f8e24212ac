"""The emulator's scenario core, without a server: request JSON in, response JSON / events out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ai21.models.chat import ChatCompletionChunk, ChatCompletionResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core.agent.react.formatter import ReActChatFormatter
from llama_index.core.base.llms.generic_utils import messages_to_history_str
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine.condense_plus_context import (
    DEFAULT_CONDENSE_PROMPT_TEMPLATE,
    DEFAULT_CONTEXT_PROMPT_TEMPLATE,
)
from llama_index.core.chat_engine.condense_question import (
    DEFAULT_TEMPLATE as CONDENSE_QUESTION_TEMPLATE,
)
from llama_index.core.chat_engine.context import DEFAULT_CONTEXT_TEMPLATE
from llama_index.core.evaluation.correctness import DEFAULT_EVAL_TEMPLATE as CORRECTNESS_PROMPT
from llama_index.core.evaluation.faithfulness import DEFAULT_EVAL_TEMPLATE as FAITHFULNESS_PROMPT
from llama_index.core.evaluation.relevancy import DEFAULT_EVAL_TEMPLATE as RELEVANCY_PROMPT
from llama_index.core.extractors.metadata_extractors import (
    DEFAULT_KEYWORD_EXTRACT_TEMPLATE,
    DEFAULT_QUESTION_GEN_TMPL,
    DEFAULT_TITLE_NODE_TEMPLATE,
)
from llama_index.core.indices.property_graph.sub_retrievers.llm_synonym import (
    DEFAULT_SYNONYM_EXPAND_TEMPLATE,
)
from llama_index.core.indices.query.query_transform.prompts import (
    DEFAULT_STEP_DECOMPOSE_QUERY_TRANSFORM_PROMPT as STEP_DECOMPOSE_PROMPT,
)
from llama_index.core.indices.utils import default_parse_choice_select_answer_fn
from llama_index.core.output_parsers import PydanticOutputParser, SelectionOutputParser
from llama_index.core.prompts import PromptTemplate
from llama_index.core.prompts.chat_prompts import CHAT_REFINE_PROMPT, CHAT_TEXT_QA_PROMPT
from llama_index.core.prompts.default_prompts import (
    DEFAULT_CHOICE_SELECT_PROMPT,
    DEFAULT_REFINE_PROMPT,
    DEFAULT_TEXT_QA_PROMPT,
)
from llama_index.core.prompts.default_prompts import (
    DEFAULT_KG_TRIPLET_EXTRACT_PROMPT as TRIPLET_PROMPT,
)
from llama_index.core.question_gen.output_parser import SubQuestionOutputParser
from llama_index.core.question_gen.prompts import DEFAULT_SUB_QUESTION_PROMPT_TMPL
from llama_index.core.question_gen.types import SubQuestion
from llama_index.core.retrievers.fusion_retriever import QUERY_GEN_PROMPT as QUERY_GEN_TMPL
from llama_index.core.selectors.prompts import (
    DEFAULT_MULTIPLE_SELECT_PROMPT,
    DEFAULT_SINGLE_SELECT_PROMPT,
)
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field
from schema_check import problems

from ai21_emulator import _answer, _flavour_ai21, _scenario, _text
from ai21_emulator._flavour import ChatContext
from ai21_emulator._schema import Filler, find_schema

CHAT_ID = "chatcmpl-" + "00000000-0000-4000-8000-000000000000"
HOSTED = _flavour_ai21.AI21Flavour()


def chat_completions(body: Any, chat_id: str = CHAT_ID) -> _scenario.Response:
    return HOSTED.chat(body, ChatContext(chat_id))


DOCS = [
    {"content": "The Eiffel Tower is in Paris. It was completed in 1889.", "id": "a"},
    {"content": "Mount Everest is the highest mountain on Earth. It is 8849 metres tall."},
    {"content": "The Amazon is the largest rainforest. It spans nine countries."},
]
CONTEXT = "\n\n".join(d["content"] for d in DOCS)


def chat(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "jamba-mini")
    reply = chat_completions(body, CHAT_ID)
    assert reply.events is None
    data: dict[str, Any] = json.loads(reply.body)
    assert reply.status == 200, data
    ChatCompletionResponse.model_validate(data)
    return data


def stream(**body: Any) -> list[dict[str, Any]]:
    body.setdefault("model", "jamba-mini")
    reply = chat_completions({**body, "stream": True}, CHAT_ID)
    assert reply.events is not None
    assert reply.events[-1] == b"data: [DONE]\r\n\r\n"
    chunks = []
    for event in reply.events[:-1]:
        assert event.startswith(b"data: ")
        assert event.endswith(b"\r\n\r\n")  # CRLF CRLF, as the live API frames events
        assert event.count(b"\n") == 2
        chunk = json.loads(event[len(b"data: ") :])
        ChatCompletionChunk.model_validate(chunk)
        chunks.append(chunk)
    return chunks


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def content(data: dict[str, Any], index: int = 0) -> str:
    text: str = data["choices"][index]["message"]["content"]
    return text


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "a", " lead", "two  spaces\nand\ttabs ", "\n\n", "ünï cödé !"]
)
def test_tokens_concatenate_back_to_the_text(text: str) -> None:
    tokens = _text.tokenize(text)
    assert "".join(tokens) == text
    assert _text.count_tokens(text) == len(tokens)


# -- answers --------------------------------------------------------------------------------


def test_echo_answer_names_the_emulator_model_and_system_prompt() -> None:
    data = chat(
        model="jamba-large",
        messages=[
            {"role": "system", "content": "You are a pirate who answers every question in rhyme."},
            {"role": "user", "content": "Hello   there"},
        ],
    )
    assert content(data) == (
        "[system: You are a pirate who answers every question in rhyme.] "
        "This is the AI21 emulator (jamba-large), not a real model. You said: Hello there"
    )
    assert data["id"] == CHAT_ID
    assert data["choices"][0]["logprobs"] is None
    assert data["choices"][0]["message"]["tool_calls"] is None
    assert set(data) == {"id", "choices", "usage"}


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "How tall is Mount Everest?",
            "Mount Everest is the highest mountain on Earth. It is 8849 metres tall.",
        ),
        (
            "When was the Eiffel Tower completed?",
            "The Eiffel Tower is in Paris. It was completed in 1889.",
        ),
        (
            "Which rainforest spans nine countries?",
            "The Amazon is the largest rainforest. It spans nine countries.",
        ),
        (
            "What is the capital of Peru?",
            'I don\'t know. The provided context does not answer "What is the capital of Peru?".',
        ),
    ],
)
def test_documents_ground_the_answer(question: str, expected: str) -> None:
    assert content(chat(messages=user(question), documents=DOCS)) == expected


QUESTION = "How tall is Mount Everest?"
EVEREST = "Mount Everest is the highest mountain on Earth. It is 8849 metres tall."


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param(
            user(DEFAULT_TEXT_QA_PROMPT.format(context_str=CONTEXT, query_str=QUESTION)),
            id="text-qa",
        ),
        pytest.param(
            [
                {"role": m.role.value, "content": m.content}
                for m in CHAT_TEXT_QA_PROMPT.format_messages(
                    context_str=CONTEXT, query_str=QUESTION
                )
            ],
            id="chat-text-qa",
        ),
        pytest.param(
            user(
                DEFAULT_REFINE_PROMPT.format(
                    query_str=QUESTION, existing_answer="I am not sure.", context_msg=CONTEXT
                )
            ),
            id="refine",
        ),
        pytest.param(
            [
                {"role": m.role.value, "content": m.content}
                for m in CHAT_REFINE_PROMPT.format_messages(
                    query_str=QUESTION, existing_answer="I am not sure.", context_msg=CONTEXT
                )
            ],
            id="chat-refine",
        ),
        pytest.param(
            [
                {"role": "system", "content": DEFAULT_CONTEXT_TEMPLATE.format(context_str=CONTEXT)},
                {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": QUESTION},
            ],
            id="context-chat-engine",
        ),
        pytest.param(
            [
                {
                    "role": "system",
                    "content": DEFAULT_CONTEXT_PROMPT_TEMPLATE.format(context_str=CONTEXT),
                },
                {"role": "user", "content": QUESTION},
            ],
            id="condense-plus-context",
        ),
        pytest.param(user(QUESTION), id="documents-field"),
    ],
)
def test_llamaindex_context_prompts_are_grounded(messages: list[dict[str, Any]]) -> None:
    documents = DOCS if len(messages) == 1 and messages[0]["content"] == QUESTION else []
    assert content(chat(messages=messages, documents=documents)) == EVEREST


@pytest.mark.parametrize("template", [DEFAULT_REFINE_PROMPT, CHAT_REFINE_PROMPT])
@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (CONTEXT, EVEREST),
        ("The Amazon is the largest rainforest.", _answer._dont_know(QUESTION)),
    ],
    ids=["answered", "still-unknown"],
)
def test_a_refine_step_after_i_dont_know_answers_from_the_new_context(
    template: Any, context: str, expected: str
) -> None:
    # Refine (and compact refine) asks once per chunk; when the first chunk did not answer,
    # the emulator's "I don't know" (which quotes the query) is the existing answer: ranked
    # with the new context it always won, so the chunk that answers was never used.
    messages = [
        {"role": m.role.value, "content": m.content}
        for m in template.format_messages(
            query_str=QUESTION, existing_answer=_answer._dont_know(QUESTION), context_msg=context
        )
    ]
    assert content(chat(messages=messages)) == expected


SUB_QUESTION_TOOLS = {
    "everest": "Facts about Mount Everest",
    "eiffel": "Facts about the Eiffel Tower in Paris",
}


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "How tall is Mount Everest and when was the Eiffel Tower completed?",
            [
                {"sub_question": "How tall is Mount Everest?", "tool_name": "everest"},
                {"sub_question": "When was the Eiffel Tower completed?", "tool_name": "eiffel"},
            ],
        ),
        (
            "How tall is Mount Everest, and when was the Eiffel Tower completed?",
            [
                {"sub_question": "How tall is Mount Everest?", "tool_name": "everest"},
                {"sub_question": "When was the Eiffel Tower completed?", "tool_name": "eiffel"},
            ],
        ),
        (
            "how tall is Mount Everest",
            [{"sub_question": "How tall is Mount Everest?", "tool_name": "everest"}],
        ),
        (  # no tool fits: the whole question, for the first tool (a generator must name one)
            "What is the capital of Peru?",
            [{"sub_question": "What is the capital of Peru?", "tool_name": "everest"}],
        ),
    ],
)
def test_llamaindexs_sub_question_prompt_gets_one_sub_question_per_clause(
    question: str, expected: list[dict[str, str]]
) -> None:
    # SubQuestionQueryEngine's LLMQuestionGenerator: its prompt carries worked examples with
    # their own tools and output; only the last <Tools> block and question are answered.
    prompt = PromptTemplate(DEFAULT_SUB_QUESTION_PROMPT_TMPL).format(
        tools_str=json.dumps(SUB_QUESTION_TOOLS, indent=4), query_str=question
    )
    chunks = stream(messages=user(prompt))
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    for answer in (content(chat(messages=user(prompt))), streamed):
        assert SubQuestionOutputParser().parse(answer).parsed_output == [
            SubQuestion(**item) for item in expected
        ]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How tall is Mount Everest?", ([2], [10.0])),
        ("Is Mount Everest taller than the Eiffel Tower in Paris?", ([1, 2], [10.0, 6.0])),
        ("What is the capital of Peru?", ([], [])),  # nothing relevant: nothing chosen
    ],
)
def test_llamaindexs_choice_select_prompt_gets_the_matching_documents(
    question: str, expected: tuple[list[int], list[float]]
) -> None:
    # LLMRerank's prompt: a worked example (its own "Document N" and "Doc: 9, Relevance: 7"
    # lines), then the nodes of the batch; LlamaIndex's own parser reads the answer.
    batch = "\n\n".join(f"Document {n}:\n{d['content']}" for n, d in enumerate(DOCS, start=1))
    prompt = DEFAULT_CHOICE_SELECT_PROMPT.format(context_str=batch, query_str=question)
    answer = content(chat(messages=user(prompt)))
    assert default_parse_choice_select_answer_fn(answer, len(DOCS)) == expected


@pytest.mark.parametrize("template", [DEFAULT_CONDENSE_PROMPT_TEMPLATE, CONDENSE_QUESTION_TEMPLATE])
@pytest.mark.parametrize(
    ("earlier", "follow_up", "standalone"),
    [
        (
            "What is Jamba?",
            "How long is its context window?",
            "How long is Jamba's context window?",
        ),
        ("Who founded AI21 Labs?", "Where is it based?", "Where is AI21 Labs based?"),
        ("Can I run Jamba locally?", "Is it fast?", "Is Jamba fast?"),
        ("What is Jamba?", "What about Mamba layers?", "What about Mamba layers?"),
        ("what is jamba?", "Is it fast?", "Is it fast?"),  # no name to put in
    ],
)
def test_llamaindexs_condense_prompts_get_the_follow_up_standing_alone(
    template: str, earlier: str, follow_up: str, standalone: str
) -> None:
    # The condense-question and condense-plus-context chat engines rewrite each follow-up
    # before retrieving with it; an echo of the prompt would be what they retrieve with.
    history = messages_to_history_str(
        [
            ChatMessage(role="user", content=earlier),
            ChatMessage(role="assistant", content="Jamba is a family of models by AI21 Labs."),
        ]
    )
    prompt = PromptTemplate(template).format(chat_history=history, question=follow_up)
    assert content(chat(messages=user(prompt))) == standalone


CHOICES = ["Facts about Mount Everest", "Facts about the Eiffel Tower in Paris", "Rainforests"]


@pytest.mark.parametrize(
    ("multi", "question", "expected"),
    [
        (False, "How tall is Mount Everest?", [1]),
        (False, "When was the Eiffel Tower completed?", [2]),
        (False, "What is the capital of Peru?", [1]),  # none fits: a selector must pick one
        (True, "Is Mount Everest taller than the Eiffel Tower?", [1, 2]),
        (True, "When was the Eiffel Tower completed?", [2]),
    ],
)
def test_llamaindexs_text_selector_prompts_get_the_matching_choices(
    multi: bool, question: str, expected: list[int]
) -> None:
    # RouterQueryEngine on a model without function calling: LLMSingleSelector and
    # LLMMultiSelector, their prompts with SelectionOutputParser's format, read by it.
    choices = "\n\n".join(f"({n}) {c}" for n, c in enumerate(CHOICES, start=1))
    parser = SelectionOutputParser()
    template = DEFAULT_MULTIPLE_SELECT_PROMPT if multi else DEFAULT_SINGLE_SELECT_PROMPT
    prompt = PromptTemplate(parser.format(template.template)).format(
        num_choices=len(CHOICES), context_list=choices, query_str=question, max_outputs=2
    )
    selected = parser.parse(content(chat(messages=user(prompt)))).parsed_output
    assert [answer.choice for answer in selected] == expected


def test_summary_query_gets_the_leading_sentences() -> None:
    data = chat(messages=user("Summarize the text."), documents=DOCS)
    assert content(data) == "The Eiffel Tower is in Paris. It was completed in 1889."


def test_same_request_same_answer() -> None:
    body = {"messages": user("When was the Eiffel Tower completed?"), "documents": DOCS, "n": 3}
    first, second = chat(**body), chat(**body)
    assert first == second


def test_n_gives_n_choices_with_distinct_indexes() -> None:
    data = chat(messages=user("Hi"), n=3)
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert content(data, 1).startswith(
        "This is the AI21 emulator (jamba-mini), not a real model (reply 2 of 3)."
    )
    per_choice = _text.count_tokens(content(data, 0)) + 1
    assert data["usage"]["completion_tokens"] == sum(
        _text.count_tokens(content(data, i)) + 1 for i in range(3)
    )
    assert per_choice > 1


# -- limits and usage -------------------------------------------------------------------------


def test_max_tokens_cuts_with_finish_reason_length() -> None:
    data = chat(messages=user("Hi"), max_tokens=3)
    assert content(data) == "This is the"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


def test_max_tokens_zero_gives_empty_content() -> None:
    data = chat(messages=user("Hi"), max_tokens=0)
    assert content(data) == ""
    assert data["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("emulator", "This is the AI21 "), (["zzz", "model", "AI21"], "This is the ")],
)
def test_stop_cuts_before_the_earliest_sequence(stop: str | list[str], expected: str) -> None:
    data = chat(messages=user("Hi"), stop=stop)
    assert content(data) == expected
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == _text.count_tokens(expected) + 1


def test_stream_and_non_stream_agree() -> None:
    body = {"messages": user("Tell me something, please."), "documents": DOCS}
    whole = chat(**body)
    chunks = stream(**body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all("usage" not in c for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["delta"] == {"content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == content(whole)
    assert chunks[-1]["usage"] == whole["usage"]
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    # One event per token, and the final empty chunk counts (live capture, ref 1.4).
    assert whole["usage"]["completion_tokens"] == len(chunks) - 1
    assert {c["id"] for c in chunks} == {CHAT_ID}


def test_usage_sums_and_counts_prompt_tokens() -> None:
    data = chat(messages=[{"role": "system", "content": "Be brief."}, *user("one two three")])
    usage = data["usage"]
    assert usage["prompt_tokens"] == (4 + 2) + (4 + 3)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_chunks_use_default_json_spacing_and_body_is_compact() -> None:
    reply = chat_completions({"model": "jamba-mini", "messages": user("Hi")}, CHAT_ID)
    assert b'": ' not in reply.body
    events = chat_completions(
        {"model": "jamba-mini", "messages": user("Hi"), "stream": True}, CHAT_ID
    ).events
    assert events is not None
    assert events[0].startswith(
        b'data: {"id": "' + CHAT_ID.encode() + b'", "choices": [{"index": 0'
    )


# -- JSON mode --------------------------------------------------------------------------------


class Address(BaseModel):
    city: str
    country: str = "France"


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)
    home: Address
    nicknames: list[str]
    email: str | None = None
    employed: bool = False


def test_json_mode_fills_an_embedded_llamaindex_schema() -> None:
    prompt = (
        "Create a person named Alice who is 30 years old and lives in Paris.\n\n"
        "Here's a JSON schema to follow:\n"
        f"{json.dumps(Person.model_json_schema())}\n\n"
        "Output a valid JSON object but do not repeat the schema.\n"
    )
    data = chat(messages=user(prompt), response_format={"type": "json_object"})
    person = Person.model_validate_json(content(data))
    assert person.name == "Alice"
    assert person.age == 30
    assert person.home.city == "Paris"


@pytest.mark.parametrize("brace_doubled", [False, True])
def test_a_prompt_asking_for_json_of_its_schema_gets_it_without_json_mode(
    brace_doubled: bool,
) -> None:
    # LlamaIndex's PydanticOutputParser: LLMTextCompletionProgram and a query engine's
    # output_parser ask in the prompt, with no response_format (and leave the braces doubled
    # where the template is formatted twice).
    prompt = PromptTemplate("Create a person named Alice who is 30 years old, from Paris.")
    if brace_doubled:
        prompt.output_parser = PydanticOutputParser(Person)
        text = prompt.output_parser.format(prompt.template)
    else:
        text = prompt.format(llm=None) + PydanticOutputParser(Person).get_format_string(False)
    assert ("{{" in text) is brace_doubled
    person = Person.model_validate_json(content(chat(messages=user(text))))
    assert (person.name, person.age, person.home.city) == ("Alice", 30, "Paris")
    hint = "Create a person named Alice. Here is no schema: output a valid JSON object."
    assert content(chat(messages=user(hint))).startswith("This is the AI21 emulator")


def test_json_mode_with_brace_doubled_schema() -> None:
    schema = json.dumps(Person.model_json_schema()).replace("{", "{{").replace("}", "}}")
    data = chat(messages=user(f"Bob is 41.\n{schema}"), response_format={"type": "json_object"})
    assert Person.model_validate_json(content(data)).age == 41


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


_ENTITY = {"type": "string", "enum": ["PERSON", "COMPANY", "PLACE"]}
_RELATION = {
    "type": "string",
    "enum": ["FOUNDED_BY", "WORKS_AT", "LOCATED_IN"],
    "default": "FOUNDED_BY",
}
_TRIPLE = {
    "type": "object",
    "properties": {"subject": _ENTITY, "relation": _RELATION, "object": _ENTITY},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # each field takes the next mention, in the order the text has them
        (
            "Dana, a person, works at Acme, a company.",
            {"subject": "PERSON", "relation": "WORKS_AT", "object": "COMPANY"},
        ),
        (
            "Acme is a company located in Haifa, a place.",
            {"subject": "COMPANY", "relation": "LOCATED_IN", "object": "PLACE"},
        ),
        # plural, any case, "-" between words; every mention taken: the first mentioned again
        (
            "Companies Located-In places",
            {"subject": "COMPANY", "relation": "LOCATED_IN", "object": "PLACE"},
        ),
        ("A place.", {"subject": "PLACE", "relation": "FOUNDED_BY", "object": "PLACE"}),
        # nothing mentioned: the default, else the first member
        ("Hello.", {"subject": "PERSON", "relation": "FOUNDED_BY", "object": "PERSON"}),
    ],
)
def test_enums_take_the_members_the_text_mentions_in_its_order(
    text: str, expected: dict[str, str]
) -> None:
    assert Filler(text, text).fill(_TRIPLE) == expected


def test_json_mode_fills_a_recursive_schema_whose_root_is_a_reference() -> None:
    # pydantic writes a recursive class's schema as {"$defs": {...}, "$ref": "#/$defs/Tree"}
    schema = Tree.model_json_schema()
    assert "$ref" in schema
    assert "properties" not in schema
    prompt = f'The tree named "oak".\n{json.dumps(schema)}'
    data = chat(messages=user(prompt), response_format={"type": "json_object"})
    assert Tree.model_validate_json(content(data)).name == "oak"


def test_json_mode_without_schema_wraps_the_answer() -> None:
    data = chat(messages=user("Hi"), response_format={"type": "json_object"})
    assert json.loads(content(data)) == {
        "answer": "This is the AI21 emulator (jamba-mini), not a real model. You said: Hi"
    }


def test_json_mode_with_context_takes_values_from_the_grounded_answer() -> None:
    class Height(BaseModel):
        mountain: str
        metres: int

    prompt = f"{QUESTION}\n{json.dumps(Height.model_json_schema())}"
    data = chat(messages=user(prompt), documents=DOCS, response_format={"type": "json_object"})
    assert Height.model_validate_json(content(data)) == Height(
        mountain="Mount Everest", metres=8849
    )


def test_find_schema_ignores_non_schema_json() -> None:
    assert find_schema('data {"a": 1} then {"type": "object", "properties": {}}') == {
        "type": "object",
        "properties": {},
    }
    assert find_schema("no json {here") is None


# -- tools ------------------------------------------------------------------------------------


def tool(
    name: str, description: str, properties: dict[str, Any], required: list[str] | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        params["required"] = required
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": params},
    }


INT2 = {"a": {"type": "integer"}, "b": {"type": "integer"}}
MULTIPLY = tool("multiply", "Multiply two integers and return the result", INT2, ["a", "b"])
ADD = tool("add", "Add two integers and return the result", INT2, ["a", "b"])
WEATHER = tool(
    "get_current_weather",
    "Get the current weather in a given location",
    {
        "location": {"type": "string", "description": "The city, e.g. San Francisco"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    ["location"],
)
SEARCH = tool(
    "searchWeb",
    "Search the web",
    {"query": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1, "maximum": 10}},
)
TOOLS = [MULTIPLY, ADD, WEATHER, SEARCH]


def calls(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    message = data["choices"][0]["message"]
    if message["tool_calls"] is None:
        return []
    assert message["content"] is None
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    out = []
    for call in message["tool_calls"]:
        assert call["id"].startswith("call_")
        assert len(call["id"]) == 5 + 24
        assert call["type"] == "function"
        out.append((call["function"]["name"], json.loads(call["function"]["arguments"])))
    return out


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("What is 3 times 4?", [("multiply", {"a": 3, "b": 4})]),
        ("What's 12 x 7?", [("multiply", {"a": 12, "b": 7})]),
        ("Add five and 6", [("add", {"a": 5, "b": 6})]),
        (
            "What is 3 times 4 and 5 plus 6?",
            [("multiply", {"a": 3, "b": 4}), ("add", {"a": 5, "b": 6})],
        ),
        (
            "What's the weather like in New York in fahrenheit?",
            [("get_current_weather", {"location": "New York", "unit": "fahrenheit"})],
        ),
        (
            "search for the history of jazz",
            [("searchWeb", {"query": "search for the history of jazz", "max_results": 1})],
        ),
        ("Hello, how are you?", []),
    ],
)
def test_tool_choice_and_arguments(prompt: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    data = chat(messages=user(prompt), tools=TOOLS)
    assert calls(data) == expected
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for name, args in calls(data):
        assert problems(args, schemas[name]) == []


def test_a_single_tool_is_always_called_with_valid_arguments() -> None:
    schema = Person.model_json_schema()
    person_tool = {
        "type": "function",
        "function": {"name": "Person", "description": "A person", "parameters": schema},
    }
    data = chat(messages=user("Tell me about Carol Smith, 52, of Rome."), tools=[person_tool])
    [(name, args)] = calls(data)
    assert name == "Person"
    person = Person.model_validate(args)
    assert (person.name, person.age, person.home.city) == ("Carol Smith", 52, "Rome")


def test_tool_call_ids_are_deterministic() -> None:
    first = chat(messages=user("What is 3 times 4?"), tools=TOOLS)
    second = chat(messages=user("What is 3 times 4?"), tools=TOOLS)
    third = chat(messages=user("What is 3 times 5?"), tools=TOOLS)
    ids = [d["choices"][0]["message"]["tool_calls"][0]["id"] for d in (first, second, third)]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize("finished", ["in order", "reversed"])
def test_tool_results_are_reported_in_text(finished: str) -> None:
    """In the order the calls were made, whatever order their results came in (an agent
    running both at once sends them as they finish)."""
    results = [
        {"role": "tool", "tool_call_id": "call_1", "content": "12"},
        {"role": "tool", "tool_call_id": "call_2", "content": "11"},
    ]
    if finished == "reversed":
        results.reverse()
    messages = [
        *user("What is 3 times 4 and 5 plus 6?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "multiply", "arguments": '{"a":3,"b":4}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a":5,"b":6}'},
                },
            ],
        },
        *results,
    ]
    data = chat(messages=messages, tools=TOOLS)
    assert content(data) == "The result of multiply is 12. The result of add is 11."
    assert data["choices"][0]["message"]["tool_calls"] is None
    assert data["choices"][0]["finish_reason"] == "stop"


def test_streamed_tool_calls_match_the_non_streamed_ones() -> None:
    body = {"messages": user("What is 3 times 4 and 5 plus 6?"), "tools": TOOLS}
    whole = chat(**body)
    chunks = stream(**body)
    assembled: dict[int, dict[str, Any]] = {}
    for chunk in chunks[1:-1]:
        [delta] = chunk["choices"][0]["delta"]["tool_calls"]
        entry = assembled.setdefault(delta["index"], {"arguments": ""})
        if "id" in delta:
            assert delta["type"] == "function"
            assert "arguments" not in delta["function"]
            entry.update(id=delta["id"], name=delta["function"]["name"])
        else:
            entry["arguments"] += delta["function"]["arguments"]
    expected = [
        {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in whole["choices"][0]["message"]["tool_calls"]
    ]
    assert [assembled[i] for i in sorted(assembled)] == expected
    final = chunks[-1]["choices"][0]
    assert final["finish_reason"] == "tool_calls"
    assert final["delta"] == {}
    assert chunks[-1]["usage"] == whole["usage"]
    assert whole["usage"]["completion_tokens"] == len(chunks) - 1


# -- validation -------------------------------------------------------------------------------


def errors_for(body: Any) -> list[dict[str, Any]]:
    reply = chat_completions(body, CHAT_ID)
    assert reply.status == 422
    detail: list[dict[str, Any]] = json.loads(reply.body)["detail"]
    for entry in detail:
        assert set(entry) == {"loc", "msg", "type"}
    return detail


OK = {"model": "jamba-mini", "messages": user("Hi")}


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"messages": user("Hi")}, ["body", "model"], "missing"),
        ({**OK, "model": 7}, ["body", "model"], "string_type"),
        ({**OK, "model": "gpt-4"}, ["body", "model"], "enum"),
        ({**OK, "model": "j2-ultra"}, ["body", "model"], "enum"),
        ({"model": "jamba-mini"}, ["body", "messages"], "missing"),
        ({**OK, "messages": "Hi"}, ["body", "messages"], "list_type"),
        ({**OK, "messages": []}, ["body", "messages"], "too_short"),
        ({**OK, "messages": ["Hi"]}, ["body", "messages", 0], "model_attributes_type"),
        ({**OK, "messages": [{"content": "Hi"}]}, ["body", "messages", 0], "union_tag_not_found"),
        (
            {**OK, "messages": [{"role": "bot", "content": "Hi"}]},
            ["body", "messages", 0],
            "union_tag_invalid",
        ),
        (
            {**OK, "messages": [{"role": "user"}]},
            ["body", "messages", 0, "user", "content"],
            "missing",
        ),
        (
            {**OK, "messages": [{"role": "user", "content": 1}]},
            ["body", "messages", 0, "user", "content"],
            "string_type",
        ),
        (
            {**OK, "messages": [{"role": "tool", "content": "1"}]},
            ["body", "messages", 0, "tool", "tool_call_id"],
            "missing",
        ),
        ({**OK, "n": 0}, ["body", "n"], "greater_than_equal"),
        ({**OK, "n": 17}, ["body", "n"], "less_than_equal"),
        ({**OK, "n": 1.5}, ["body", "n"], "int_from_float"),
        ({**OK, "max_tokens": -1}, ["body", "max_tokens"], "greater_than_equal"),
        ({**OK, "max_tokens": 4097}, ["body", "max_tokens"], "less_than_equal"),
        ({**OK, "temperature": 2.5}, ["body", "temperature"], "less_than_equal"),
        ({**OK, "temperature": -0.1}, ["body", "temperature"], "greater_than_equal"),
        ({**OK, "temperature": "hot"}, ["body", "temperature"], "float_type"),
        ({**OK, "top_p": 0}, ["body", "top_p"], "greater_than"),
        ({**OK, "top_p": 1.01}, ["body", "top_p"], "less_than_equal"),
        ({**OK, "stream": "yes"}, ["body", "stream"], "bool_type"),
        ({**OK, "stream": True, "n": 2}, ["body"], "value_error"),
        ({**OK, "tools": {}}, ["body", "tools"], "list_type"),
        (
            {**OK, "tools": [{"type": "retrieval", "function": {"name": "f"}}]},
            ["body", "tools", 0, "type"],
            "literal_error",
        ),
        (
            {**OK, "tools": [{"type": "function", "function": {}}]},
            ["body", "tools", 0, "function", "name"],
            "missing",
        ),
        (
            {
                **OK,
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object"}},
                    }
                ],
            },
            ["body", "tools", 0, "function", "parameters", "properties"],
            "missing",
        ),
        ({**OK, "documents": [{"id": "x"}]}, ["body", "documents", 0, "content"], "missing"),
        (
            {**OK, "documents": [{"content": "x", "metadata": {"k": 1}}]},
            ["body", "documents", 0, "metadata", "k"],
            "string_type",
        ),
        (
            {**OK, "response_format": {"type": "xml"}},
            ["body", "response_format", "type"],
            "literal_error",
        ),
        ({**OK, "response_format": "json"}, ["body", "response_format"], "dict_type"),
        ([1, 2], ["body"], "model_attributes_type"),
    ],
)
def test_validation_errors_look_like_fastapi(body: Any, loc: list[Any], kind: str) -> None:
    detail = errors_for(body)
    assert [(e["loc"], e["type"]) for e in detail] == [(loc, kind)]


def test_union_errors_name_each_branch() -> None:
    assert [(e["loc"], e["type"]) for e in errors_for({**OK, "stop": 5})] == [
        (["body", "stop", "str"], "string_type"),
        (["body", "stop", "list[str]"], "list_type"),
    ]


def test_all_field_errors_are_reported_together() -> None:
    detail = errors_for({"model": "nope", "messages": [], "n": 0, "top_p": 2})
    assert [e["loc"][-1] for e in detail] == ["model", "messages", "top_p", "n"]


def test_lenient_inputs_are_accepted() -> None:
    data = chat(
        messages=[
            *user("Hi"),
            {"role": "assistant", "content": None, "tool_calls": None},
            {"role": "user", "content": "Again"},
        ],
        n=2.0,
        temperature=0,
        top_p=1,
        max_tokens=None,
        stop=None,
        seed=5,
        unknown_option={"x": 1},
    )
    assert len(data["choices"]) == 2


def test_bad_json_body() -> None:
    _, problem = _flavour_ai21.parse_body(b'{"model": ')
    assert problem is not None
    assert problem.status == 422
    [entry] = json.loads(problem.body)["detail"]
    assert entry["type"] == "json_invalid"
    assert entry["loc"] == ["body", 10]


# -- J2 ---------------------------------------------------------------------------------------


def test_j2_complete_shape_and_tokens() -> None:
    reply = _scenario.j2_complete(
        "j2-mid", {"prompt": "Hello\nworld", "maxTokens": 4, "topKReturn": 2}, "uuid"
    )
    data = json.loads(reply.body)
    assert data["id"] == "uuid"
    assert data["prompt"]["text"] == "Hello\nworld"
    assert [t["generatedToken"]["token"] for t in data["prompt"]["tokens"]] == [
        "Hello",
        "<|newline|>",
        "world",
    ]
    assert [t["textRange"] for t in data["prompt"]["tokens"]] == [
        {"start": 0, "end": 5},
        {"start": 5, "end": 6},
        {"start": 6, "end": 11},
    ]
    [completion] = data["completions"]
    assert completion["data"]["text"] == "This is the AI21"
    assert [t["generatedToken"]["token"] for t in completion["data"]["tokens"]] == [
        "This",
        "▁is",
        "▁the",
        "▁AI21",
    ]
    assert len(completion["data"]["tokens"][0]["topTokens"]) == 2
    assert completion["finishReason"] == {"reason": "length", "length": 4}


def test_j2_complete_natural_end_and_stop() -> None:
    data = json.loads(
        _scenario.j2_complete(
            "j2-ultra", {"prompt": "Hi", "maxTokens": 200, "numResults": 2}, "u"
        ).body
    )
    assert len(data["completions"]) == 2
    first = data["completions"][0]
    assert first["finishReason"] == {"reason": "endoftext"}
    assert first["data"]["tokens"][-1]["generatedToken"]["token"] == "<|endoftext|>"
    assert first["data"]["tokens"][0]["topTokens"] is None
    stopped = json.loads(
        _scenario.j2_complete(
            "j2-ultra", {"prompt": "Hi", "maxTokens": 200, "stopSequences": ["AI21"]}, "u"
        ).body
    )
    assert stopped["completions"][0]["finishReason"] == {"reason": "stop", "sequence": "AI21"}
    assert stopped["completions"][0]["data"]["text"] == "This is the "


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "prompt"]),
        ({"prompt": 1}, ["body", "prompt"]),
        ({"prompt": "x", "numResults": 0}, ["body", "numResults"]),
        ({"prompt": "x", "maxTokens": -1}, ["body", "maxTokens"]),
        ({"prompt": "x", "topKReturn": 11}, ["body", "topKReturn"]),
        (
            {"prompt": "x", "countPenalty": {"applyToNumbers": True}},
            ["body", "countPenalty", "scale"],
        ),
    ],
)
def test_j2_complete_validation(body: dict[str, Any], loc: list[Any]) -> None:
    reply = _scenario.j2_complete("j2-mid", body, "u")
    assert reply.status == 422
    assert [e["loc"] for e in json.loads(reply.body)["detail"]] == [loc]


def test_j2_complete_accepts_sdk2_snake_case_penalties() -> None:
    penalty = {"scale": 1.0, "apply_to_whitespaces": None, "apply_to_numbers": False}
    reply = _scenario.j2_complete(
        "j2-light", {"prompt": "x", "frequencyPenalty": penalty, "model": "j2-light"}, "u"
    )
    assert reply.status == 200


def test_j2_chat_shape() -> None:
    body = {
        "system": "You are terse.",
        "messages": [
            {"role": "user", "text": "Hi"},
            {"role": "assistant", "text": "Hello"},
            {"role": "user", "text": "Bye"},
        ],
        "numResults": 1,
        "maxTokens": 300,
    }
    data = json.loads(_scenario.j2_chat("j2-ultra", body, "u").body)
    assert data == {
        "id": "u",
        "outputs": [
            {
                "text": "[system: You are terse.] This is the AI21 emulator (j2-ultra), "
                "not a real model. You said: Bye",
                "role": "assistant",
                "finishReason": {"reason": "endoftext", "length": None, "sequence": None},
            }
        ],
    }
    bad = _scenario.j2_chat(
        "j2-ultra", {"system": "s", "messages": [{"role": "system", "text": "x"}]}, "u"
    )
    assert bad.status == 422


# -- properties -------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(
    text=st.text(max_size=300),
    max_tokens=st.integers(min_value=0, max_value=40),
    stop=st.lists(st.text(min_size=1, max_size=3), max_size=2),
)
def test_any_request_streams_what_it_answers(text: str, max_tokens: int, stop: list[str]) -> None:
    body = {"messages": user(text), "max_tokens": max_tokens, "stop": stop}
    whole = chat(**body)
    chunks = stream(**body)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == content(whole)
    assert chunks[-1]["usage"] == whole["usage"]
    assert whole["usage"]["completion_tokens"] <= max_tokens
    assert _text.count_tokens(content(whole)) <= max_tokens


_SCALAR = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": 3, "maximum": 9},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "string", "enum": ["red", "green"]},
        {"type": "string", "format": "date"},
        {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        {"type": "string", "minLength": 4, "maxLength": 6},
    ]
)
_SCHEMA = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.builds(lambda items: {"type": "array", "items": items, "minItems": 1}, inner),
        st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), inner, max_size=4).map(
            lambda props: {"type": "object", "properties": props, "required": sorted(props)}
        ),
    ),
    max_leaves=8,
)


@PROPERTY_SETTINGS
@given(
    properties=st.dictionaries(
        st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), _SCHEMA, min_size=1, max_size=4
    ),
    text=st.text(max_size=120),
)
def test_tool_arguments_always_validate(properties: dict[str, Any], text: str) -> None:
    schema = {"type": "object", "properties": properties, "required": sorted(properties)}
    the_tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    [(name, args)] = calls(chat(messages=user(text or "x"), tools=[the_tool]))
    assert name == "f"
    assert problems(args, schema) == []


QUERY_GEN_PROMPT = PromptTemplate(QUERY_GEN_TMPL)
KEYWORDS_PROMPT = PromptTemplate(DEFAULT_KEYWORD_EXTRACT_TEMPLATE)
TITLE_PROMPT = PromptTemplate(DEFAULT_TITLE_NODE_TEMPLATE)
QUESTIONS_PROMPT = PromptTemplate(DEFAULT_QUESTION_GEN_TMPL)


def _multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def _add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


REACT_TOOLS = [
    FunctionTool.from_defaults(_multiply, name="multiply", description="Multiply two integers."),
    FunctionTool.from_defaults(_add, name="add", description="Add two integers."),
]


# -- LlamaIndex's judges, transforms, extractors and ReAct agent --------------------------------

EIFFEL = "The Eiffel Tower is in Paris. It was completed in 1889."


@pytest.mark.parametrize(
    ("claim", "verdict"),
    [("The Eiffel Tower was completed in 1889.", "YES"), ("The Eiffel Tower is in Rome.", "NO")],
)
def test_llamaindexs_judges_say_yes_to_what_the_context_supports(claim: str, verdict: str) -> None:
    faithfulness = FAITHFULNESS_PROMPT.format(query_str=claim, context_str=EIFFEL)
    relevancy = RELEVANCY_PROMPT.format(
        query_str=f"Question: When was it built?\nResponse: {claim}", context_str=EIFFEL
    )
    assert content(chat(messages=user(faithfulness))) == verdict
    assert content(chat(messages=user(relevancy))) == verdict


@pytest.mark.parametrize(
    ("answer", "score"), [("It was completed in 1889.", "5.0"), ("In 1920, in Rome.", "1.0")]
)
def test_llamaindexs_correctness_prompt_gets_a_score_line_then_a_reason(
    answer: str, score: str
) -> None:
    messages = CORRECTNESS_PROMPT.format_messages(
        query="When was the Eiffel Tower completed?",
        reference_answer=EIFFEL,
        generated_answer=answer,
    )
    body = [{"role": m.role.value, "content": m.content} for m in messages]
    first, reason = content(chat(messages=body)).split("\n", 1)
    assert first == score
    assert reason


@pytest.mark.parametrize(
    ("reasoning", "expected"),
    [("None", "When was the Eiffel Tower completed?"), ("\n- Q?\n- It was 1889.\n", "None")],
)
def test_llamaindexs_step_decompose_prompt_asks_once_then_stops(
    reasoning: str, expected: str
) -> None:
    prompt = STEP_DECOMPOSE_PROMPT.format(
        query_str="When was the Eiffel Tower completed?",
        context_str="Facts about towers",
        prev_reasoning=reasoning,
    )
    assert content(chat(messages=user(prompt))) == expected


def test_llamaindexs_query_generation_prompt_gets_that_many_queries() -> None:
    prompt = QUERY_GEN_PROMPT.format(num_queries=3, query="When was the Eiffel Tower completed?")
    assert content(chat(messages=user(prompt))).splitlines() == [
        "Eiffel Tower completed",
        "facts about Eiffel Tower completed",
        "Eiffel Tower completed explained",
    ]


def test_llamaindexs_extractor_prompts_get_keywords_a_title_and_questions() -> None:
    text = "The Eiffel Tower is in Paris. The Eiffel Tower was completed in 1889."
    keywords = KEYWORDS_PROMPT.format(context_str=text, keywords=2)
    title = TITLE_PROMPT.format(context_str=text)
    questions = QUESTIONS_PROMPT.format(context_str=text, num_questions=2)
    assert content(chat(messages=user(keywords))) == "Eiffel, Tower"
    assert content(chat(messages=user(title))) == "Eiffel, Tower and Paris"
    assert content(chat(messages=user(questions))) == (
        "1. What does the text say about Eiffel and Tower?\n"
        "2. What does the text say about completed and 1889?"
    )


def test_llamaindexs_triplet_prompt_gets_one_triplet_per_sentence_naming_two_things() -> None:
    prompt = TRIPLET_PROMPT.format(
        text="The Eiffel Tower is in Paris. It was completed in 1889. Gustave Eiffel built it.",
        max_knowledge_triplets=5,
    )
    assert content(chat(messages=user(prompt))) == "(Eiffel Tower, is in, Paris)"


def _react(question: str, *steps: tuple[str, str]) -> list[dict[str, Any]]:
    """A ReAct agent's request: its system header with the tools, the question, then each
    earlier step (the action written, its observation)."""
    header = ReActChatFormatter().format(REACT_TOOLS, [ChatMessage(role="user", content=question)])
    messages = [{"role": m.role.value, "content": m.content} for m in header]
    for action, observation in steps:
        messages.append({"role": "assistant", "content": action})
        messages.append({"role": "user", "content": f"Observation: {observation}"})
    return messages


def test_llamaindexs_react_prompt_gets_an_action_a_step_then_the_answer() -> None:
    question = "What is 3 times 4 and then add 2 plus 5?"
    first = content(chat(messages=_react(question)))
    assert first.splitlines()[1:] == ["Action: multiply", 'Action Input: {"a": 3, "b": 4}']
    second = content(chat(messages=_react(question, (first, "12"))))
    assert second.splitlines()[1:] == ["Action: add", 'Action Input: {"a": 2, "b": 5}']
    last = content(chat(messages=_react(question, (first, "12"), (second, "7"))))
    assert last.splitlines()[1] == "Answer: The result of multiply is 12. The result of add is 7."
    assert content(chat(messages=_react("Tell me about lighthouses."))).startswith("[system:")


def test_llamaindexs_synonym_prompt_gets_the_questions_names_then_keywords() -> None:
    prompt = PromptTemplate(DEFAULT_SYNONYM_EXPAND_TEMPLATE).format(
        max_keywords=3, query_str="When was the Eiffel Tower completed?"
    )
    assert content(chat(messages=user(prompt))) == "Eiffel Tower^Eiffel^Tower"
