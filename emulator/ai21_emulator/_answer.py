"""The emulator's answer generator: grounded answers, echo answers, tool calls, JSON mode.

Pure and deterministic: the same messages, tools and documents always give the same answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import _schema, _text
from ._validation import Message, ToolSpec

# -- context blocks in LlamaIndex prompts (llama_index/core/prompts/default_prompts.py,
#    chat_prompts.py, chat_engine/context.py, chat_engine/condense_plus_context.py) -------------

# "---------------------\n{context_str}\n---------------------" (QA, tree-summarize, refine, the
# chat-engine system prompt with 20 dashes, the refine prompt with 12).
_DASHED_RE = re.compile(r"^-{3,}[ \t]*\n(.*?)\n[ \t]*-{3,}[ \t]*$", re.MULTILINE | re.DOTALL)
_CONTEXT_RES = (
    _DASHED_RE,
    re.compile(
        r"Here are the relevant documents for the context:[ \t]*\n(.*?)\n\s*"
        r"(?:Instruction:|Existing Answer:)",
        re.DOTALL,
    ),
    re.compile(r"New Context: (.*?)\nQuery:", re.DOTALL),
)
# Documents pasted into the user turn for a template without a ``documents`` variable, as
# AI21's Jamba2 cards show them: "Context documents:", one "Document N (title: ...)" block each,
# then the question as the last paragraph (llama-index-llms-ai21 writes them so).
_INLINE_DOCUMENTS_RE = re.compile(
    r"^Context documents:[ \t]*\n(.*)\n[ \t]*\n", re.MULTILINE | re.DOTALL
)
_DOCUMENT_HEADER_RE = re.compile(r"^Document \d+(?: \([^\n]*\))?[ \t]*$\n?", re.MULTILINE)
_QUERY_RES = (
    re.compile(r"^\s*Query: (.+?)\s*$", re.MULTILINE),
    re.compile(r"The original query is as follows: (.+?)\s*$", re.MULTILINE),
    re.compile(r"^\s*Question: (.+?)\s*$", re.MULTILINE),
)
_EXISTING_ANSWER_RES = (
    re.compile(r"We have provided an existing answer: (.*?)\nWe have the opportunity", re.DOTALL),
    re.compile(r"Original Answer: (.*?)\n\s*New Answer:", re.DOTALL),
    re.compile(r"Existing Answer:\s*\n(.*?)\n\s*Instruction:", re.DOTALL),
)
_SUMMARY_RE = re.compile(
    r"\b(summar\w*|overview|gist|tl;?dr|main points?|key points?|what is (?:it|this) about"
    # DocumentSummaryIndex's summary query (core/indices/document_summary/base.py)
    r"|describe what (?:the |this )?(?:provided )?text is about)\b",
    re.IGNORECASE,
)

ECHO_USER_LIMIT = 200
PERSONA_LIMIT = 60
TOOL_RESULT_LIMIT = 300
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Context:
    """Grounding material found in the request."""

    passages: tuple[str, ...]
    query: str
    existing_answer: str | None = None


def last_user_text(messages: Sequence[Message]) -> str | None:
    """Content of the last user message, or None if there is none."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return None


def find_context(messages: Sequence[Message], documents: Sequence[str]) -> Context | None:
    """Collect ``documents`` and context blocks embedded in system/user messages."""
    passages: list[str] = list(documents)
    query: str | None = None
    existing: str | None = None
    for message in messages:
        if message.role not in ("system", "user"):
            continue
        text = message.content
        if "---" not in text and "Context" not in text and "context" not in text:
            continue
        for pattern in _CONTEXT_RES:
            passages.extend(m.group(1) for m in pattern.finditer(text))
        inline = _INLINE_DOCUMENTS_RE.search(text)
        if inline is not None:
            passages.append(_DOCUMENT_HEADER_RE.sub("", inline.group(1)))
        for pattern in _QUERY_RES:
            found = pattern.findall(text)
            if found:
                query = found[-1]
                break
        for pattern in _EXISTING_ANSWER_RES:
            answer = pattern.search(text)
            if answer:
                existing = answer.group(1).strip()
                break
    passages = [p for p in passages if p.strip()]
    if not passages:
        return None
    if query is None:
        user = last_user_text(messages) or ""
        for pattern in (*_CONTEXT_RES, _INLINE_DOCUMENTS_RE):
            user = pattern.sub(" ", user)
        query = user
    return Context(tuple(passages), _text.squash(query, 1000), existing)


def grounded_answer(context: Context, variant: int = 0) -> str:
    """One or two sentences from the context that best match the query.

    Paragraphs (documents, or blank-line separated blocks of a context string) are ranked with
    BM25; from the best one, the two best-matching sentences are returned in their original order
    (one if only one matches). ``variant`` (the choice index when ``n > 1``) takes the next-best
    matching paragraph instead, so choices differ slightly.
    """
    paragraphs: list[list[str]] = []
    if context.existing_answer and not _DONT_KNOW_RE.match(context.existing_answer):
        # A refine step's existing answer competes with the new context, unless it is this
        # emulator's own "I don't know": that quotes the query, so it would always rank first
        # and hide an answer the next chunk of context holds.
        paragraphs.append(_text.split_sentences(context.existing_answer))
    for passage in context.passages:
        for block in _PARAGRAPH_SPLIT_RE.split(passage):
            sentences = _text.split_sentences(block)
            if sentences:
                paragraphs.append(sentences)
    if not paragraphs:
        return _dont_know(context.query)
    ranked = _text.rank_texts(context.query, [" ".join(p) for p in paragraphs])
    positive = [r for r in ranked if r.score > 0]
    if not positive:
        if _SUMMARY_RE.search(context.query) or not _text.content_words(context.query):
            # "Summarize ..." or a query without content words: lead with the context's start.
            lead = paragraphs[variant % len(paragraphs)]
            return " ".join(lead[:2])
        return _dont_know(context.query)
    sentences = paragraphs[positive[variant % len(positive)].position]
    matching = [r for r in _text.rank_texts(context.query, sentences) if r.score > 0]
    # A question in the context (a sub-question engine's or a multi-step engine's "Question:
    # ..." beside its answer) matches the query best and answers nothing: its answer does.
    best = [r for r in matching if not r.text.endswith("?")][:2] or matching[:2]
    if not best:  # the paragraph matched only across sentence boundaries
        return " ".join(sentences[:2])
    best.sort(key=lambda r: r.position)
    return " ".join(_ANSWER_LABEL_RE.sub("", r.text) for r in best)


# How LlamaIndex labels an answer it puts in a context: a multi-step engine's "Answer: ...",
# a sub-question engine's "Response: ...".
_ANSWER_LABEL_RE = re.compile(r"^(?:Answer|Response): ")


_DONT_KNOW_RE = re.compile(r"(?:I don't know\. )?The provided context does not answer \"")


def _dont_know(query: str) -> str:
    return f'I don\'t know. The provided context does not answer "{_text.squash(query, 120)}".'


def echo_answer(model: str, messages: Sequence[Message], variant: int = 0, n: int = 1) -> str:
    """The no-context answer: says plainly that this is the emulator and echoes the user."""
    reply = f" (reply {variant + 1} of {n})" if n > 1 else ""
    user = last_user_text(messages)
    said = (
        f"You said: {_text.squash(user, ECHO_USER_LIMIT)}"
        if user is not None and user.strip()
        else "There was no user message."
    )
    text = f"This is the AI21 emulator ({model}), not a real model{reply}. {said}"
    system = next((m.content for m in messages if m.role == "system" and m.content.strip()), None)
    if system is not None:
        text = f"[system: {_text.squash(system, PERSONA_LIMIT)}] {text}"
    return text


def tool_result_answer(messages: Sequence[Message]) -> str | None:
    """If the conversation ends with tool results, a text answer that reports them, in the
    order the calls were made: an agent may run the calls at once and send their results in
    the order they finished (LlamaIndex's ``FunctionAgent`` does), which would make the answer
    depend on scheduling. A result whose call is not found comes last, as it came."""
    results: list[Message] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    if not results:
        return None
    calls = [
        (call.id, call.name)
        for message in messages
        if message.role == "assistant"
        for call in message.tool_calls
    ]
    names = dict(calls)
    made = {call_id: position for position, (call_id, _) in enumerate(calls)}
    results.reverse()
    results.sort(key=lambda message: made.get(message.tool_call_id or "", len(made)))
    sentences = []
    for message in results:
        value = _text.squash(message.content, TOOL_RESULT_LIMIT).rstrip(".") or "empty"
        name = names.get(message.tool_call_id or "")
        if name is None:
            sentences.append(f"The tool returned {value}.")
        else:
            sentences.append(f"The result of {name} is {value}.")
    return " ".join(sentences)


# -- tools -------------------------------------------------------------------------------------

_CLAUSE_SPLIT_RE = re.compile(r"(\b(?:and then|and also|then|and|also)\b|;)", re.IGNORECASE)


def _tool_vocabulary(tool: ToolSpec) -> dict[str, float]:
    vocab: dict[str, float] = {}

    def add(words: list[str], weight: float) -> None:
        for word in words:
            vocab[word] = max(vocab.get(word, 0.0), weight)

    add(_text.content_words(tool.name, synonyms=True), 3.0)
    add(_text.content_words(tool.description, synonyms=True), 1.0)
    props = _root_properties(tool.parameters)
    if isinstance(props, dict):
        for name, spec in props.items():
            add(_text.content_words(str(name), synonyms=True), 1.0)
            if isinstance(spec, dict) and isinstance(spec.get("description"), str):
                add(_text.content_words(spec["description"], synonyms=True), 0.5)
    return vocab


def _root_properties(schema: Mapping[str, Any]) -> Any:
    """A schema's top-level ``properties``, through a root ``$ref`` into ``$defs`` (a recursive
    pydantic class's schema, which vLLM takes as a tool's ``parameters``)."""
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, Mapping):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, Mapping):
            return target.get("properties")
    return schema.get("properties")


def _score(text: str, vocab: dict[str, float]) -> float:
    return sum(vocab.get(w, 0.0) for w in set(_text.content_words(text, synonyms=True)))


def _best(text: str, vocabs: Sequence[dict[str, float]]) -> tuple[int, float]:
    scores = [_score(text, v) for v in vocabs]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best, scores[best]


def choose_tools(
    text: str, tools: Sequence[ToolSpec], *, required: bool = False
) -> list[tuple[ToolSpec, str]]:
    """Pick the tool call(s) a user message asks for, each with the words to fill it from.

    One tool offered: always call it. Several: call the best-scoring one if it scores above zero
    (``required``: even if it does not); if the message joins clauses ("and", "then", ";") and
    two or more clauses each pick a tool, call one per such clause (parallel tool calls). Ties go
    to the tool listed first.
    """
    if not tools:
        return []
    if len(tools) == 1:
        return [(tools[0], text)]
    vocabs = [_tool_vocabulary(t) for t in tools]
    best, score = _best(text, vocabs)
    if score <= 0:
        return [(tools[best], text)] if required else []
    parts = _CLAUSE_SPLIT_RE.split(text)
    clauses = parts[0::2]
    if len(clauses) > 1:
        groups: list[tuple[int, str]] = []
        pending = ""
        for i, clause in enumerate(clauses):
            joiner = parts[2 * i - 1] if i > 0 else ""
            index, clause_score = _best(clause, vocabs) if clause.strip() else (0, 0.0)
            if clause_score > 0:
                groups.append((index, pending + clause))
                pending = ""
            elif groups:
                last_index, last_text = groups[-1]
                groups[-1] = (last_index, last_text + joiner + clause)
            else:
                pending += clause + (parts[2 * i + 1] if 2 * i + 1 < len(parts) else "")
        if len(groups) >= 2:
            return [(tools[i], clause.strip()) for i, clause in groups]
    return [(tools[best], text)]


# LlamaIndex's sub-question prompt (core/question_gen/prompts.py, the LLMQuestionGenerator of
# SubQuestionQueryEngine): worked examples, then the tools as a JSON object of name ->
# description in the last "<Tools>" block, the question after "<User Question>", and "<Output>"
# last, for the sub-questions as JSON markdown.
_SUB_QUESTIONS_RE = re.compile(
    r"<Tools>\s*```json\s*(\{.*\})\s*```\s*<User Question>\s*(.*?)\s*<Output>\s*\Z", re.DOTALL
)


def sub_questions_answer(text: str) -> str | None:
    """For LlamaIndex's sub-question prompt, the sub-questions: one per clause of the question
    that a tool fits (as tool calls are chosen), else the whole question for the best tool.
    ``None`` for any other text."""
    start = text.rfind("<Tools>")
    found = _SUB_QUESTIONS_RE.match(text, start) if start >= 0 else None
    if found is None:
        return None
    try:
        tools = json.loads(found.group(1))
    except ValueError:
        return None
    if not isinstance(tools, dict) or not tools:
        return None
    specs = [ToolSpec(str(name), str(description), {}) for name, description in tools.items()]
    question = found.group(2).strip()
    items = []
    for tool, clause in choose_tools(question, specs, required=True):
        clause = clause.strip().rstrip("?.!,;: ") or question
        sub_question = clause[:1].upper() + clause[1:] + "?"
        items.append({"sub_question": sub_question, "tool_name": tool.name})
    return "```json\n" + json.dumps({"items": items}, indent=4, ensure_ascii=False) + "\n```"


# LlamaIndex's choice-select prompt (core/prompts/default_prompts.py, used by the LLMRerank node
# postprocessor): a worked example, then "Let's try this now:", the nodes as "Document N:"
# blocks, "Question: <query>" and "Answer:" last, for "Doc: N, Relevance: R" lines.
_CHOICE_SELECT_RE = re.compile(
    r"Let's try this now:[ \t]*\n(.*)\nQuestion: (.*?)[ \t]*\nAnswer:\s*\Z", re.DOTALL
)
_DOCUMENT_BLOCK_RE = re.compile(r"^Document (\d+):[ \t]*\n", re.MULTILINE)


def choice_select_answer(text: str) -> str | None:
    """For LlamaIndex's choice-select prompt, the documents that match the question (BM25),
    best first, each with a relevance from 1 to 10 (the best 10); none when none matches.
    ``None`` for any other text."""
    found = _CHOICE_SELECT_RE.search(text)
    if found is None:
        return None
    parts = _DOCUMENT_BLOCK_RE.split(found.group(1))
    documents = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    if not documents:
        return None
    ranked = [r for r in _text.rank_texts(found.group(2), [d for _, d in documents]) if r.score > 0]
    if not ranked:
        return "No document is relevant to the question."
    top = ranked[0].score
    return "\n".join(
        f"Doc: {documents[r.position][0]}, Relevance: {max(1, round(10 * r.score / top))}"
        for r in ranked
    )


# LlamaIndex's condense prompts (core/chat_engine/condense_plus_context.py and
# condense_question.py): the conversation as "user: ..." / "assistant: ..." lines, then the
# follow-up, for it rewritten as a question that stands alone.
_CONDENSE_RES = (
    re.compile(
        r"rephrase the follow up question to be a standalone question\.\s*Chat History:[ \t]*\n"
        r"(.*)\n[ \t]*Follow Up Input: (.*?)\s*Standalone question:\s*\Z",
        re.DOTALL,
    ),
    re.compile(
        r"rewrite the message to be a standalone question.*?<Chat History>[ \t]*\n(.*)\n\s*"
        r"<Follow Up Message>[ \t]*\n(.*?)\s*<Standalone question>\s*\Z",
        re.DOTALL,
    ),
)
_USER_LINE_RE = re.compile(r"^\s*user: (.*)$", re.MULTILINE)
# A name: capitalised words (or words with digits, "AI21") after a sentence's first word.
_NAME_RE = re.compile(r"(?<=\s)(?!I\b)([A-Z][\w-]*(?:\s+(?:[A-Z]|\w*\d)[\w-]*)*)")
_PRONOUNS = (
    (re.compile(r"\b(?:its|their)\b", re.IGNORECASE), "{}'s"),
    (re.compile(r"\b(?:it|they|them)\b", re.IGNORECASE), "{}"),
)


def condense_answer(text: str) -> str | None:
    """For LlamaIndex's condense prompts, the follow-up with its pronouns (it, its, they,
    them, their) replaced by the name the latest earlier user turn asked about ("How long is
    its context window?" after "What is Jamba?": "How long is Jamba's context window?"); the
    follow-up as it is when it has none or no turn names anything. ``None`` for other text."""
    for pattern in _CONDENSE_RES:
        found = pattern.search(text)
        if found is not None:
            break
    else:
        return None
    question = found.group(2).strip()
    for asked in reversed(_USER_LINE_RE.findall(found.group(1))):
        name = _NAME_RE.search(asked)
        if name is not None:
            for pronoun, replacement in _PRONOUNS:
                question = pronoun.sub(replacement.format(name.group(1).rstrip("?.!,")), question)
            break
    return question


# LlamaIndex's selector prompts (core/selectors/prompts.py, used by RouterQueryEngine) list the
# choices as "(1) <summary>" lines and end "... most relevant to the question: '<query>'".
_CHOICE_RE = re.compile(r"^\((\d+)\) (.+)$", re.MULTILINE)
_SELECTOR_QUESTION_RE = re.compile(r"most relevant to the question: '(.*)'", re.DOTALL)


# LlamaIndex's text selectors (LLMSingleSelector, LLMMultiSelector: RouterQueryEngine's choice
# for a model without function calling) append SelectionOutputParser's format: "ONLY JSON",
# a list of {choice, reason} objects.
_SELECTION_FORMAT = "The output should be ONLY JSON formatted as a JSON instance."
_MAX_OUTPUTS_RE = re.compile(r"no more than (\d+)")


def selection_answer(text: str) -> str | None:
    """For LlamaIndex's text selector prompt, the choices whose summaries match the question
    (BM25), best first: one, or up to its "no more than N"; the first choice when none
    matches. ``None`` for any other text."""
    question = _SELECTOR_QUESTION_RE.search(text)
    choices = _CHOICE_RE.findall(text)
    if question is None or not choices:
        return None
    query = question.group(1)
    ranked = _text.rank_texts(query, [summary for _, summary in choices])
    picked = [r for r in ranked if r.score > 0] or ranked[:1]
    most = _MAX_OUTPUTS_RE.search(text)
    picked = picked[: int(most.group(1)) if most else 1]
    items = [
        {
            "choice": int(choices[r.position][0]),
            "reason": f'"{choices[r.position][1].strip()}" fits the question "{query}".',
        }
        for r in picked
    ]
    return json.dumps(items, indent=4, ensure_ascii=False)


# -- LlamaIndex's judges, transforms and extractors ------------------------------------------

# The evaluators' prompts (core/evaluation/faithfulness.py, relevancy.py): worked examples,
# then the claim ("Information: ...", or "Question: ...\nResponse: ...") and "Context: ...",
# for YES or NO. The claim is supported when most of its content words are the context's.
_FAITHFULNESS_RE = re.compile(r"Information: (.*?)\nContext: (.*?)\nAnswer:\s*\Z", re.DOTALL)
_RELEVANCY_RE = re.compile(
    r"Query and Response:\s*\n\s*Question: .*?\nResponse: (.*?)\nContext:\s*\n(.*?)\nAnswer:\s*\Z",
    re.DOTALL,
)
SUPPORTED_SHARE = 2 / 3


def _share_in(claim: str, reference: str) -> float:
    """The share of ``claim``'s distinct content words that ``reference`` holds (0 for none)."""
    words = set(_text.content_words(claim))
    if not words:
        return 0.0
    return len(words & set(_text.content_words(reference))) / len(words)


def _supported(claim: str, context: str) -> bool:
    """Whether ``context`` holds at least two thirds of ``claim``'s content words, and every
    name and figure of it ("in Rome" is not supported by a context about Paris)."""
    lowered = context.lower()
    named = [str(m.value) for m in _text.names(claim)] + _FIGURE_RE.findall(claim)
    return _share_in(claim, context) >= SUPPORTED_SHARE and all(
        _bare(name).lower() in lowered for name in named
    )


def judge_answer(text: str) -> str | None:
    """For LlamaIndex's faithfulness and relevancy prompts, ``YES`` when the context supports
    the claim (:func:`_supported`), else ``NO``. ``None`` for other text."""
    start = text.rfind("Information: ")
    found = _FAITHFULNESS_RE.match(text, start) if start >= 0 else _RELEVANCY_RE.search(text)
    if found is None:
        return None
    return "YES" if _supported(found.group(1), found.group(2)) else "NO"


# GuidelineEvaluator's prompt (core/evaluation/guideline.py, DEFAULT_EVAL_TEMPLATE): the query,
# the response and the guidelines, for an EvaluationData object (``passing``, ``feedback``).
_GUIDELINE_RE = re.compile(
    r"Query: (.*?)\nCritique the following response based on the guidelines below:\n"
    r"Response: (.*?)\nGuidelines: ",
    re.DOTALL,
)
ANSWERED_SHARE = 1 / 2


def guideline_verdict(text: str) -> dict[str, Any] | None:
    """For GuidelineEvaluator's prompt, ``{"passing", "feedback"}``: passing when the response
    holds at least half of the query's content words and is not an "I don't know"; the feedback
    names the query's words the response leaves out. ``None`` for other text."""
    found = _GUIDELINE_RE.search(text)
    if found is None:
        return None
    query, response = found.group(1), found.group(2)
    held = set(_text.content_words(response))
    missing = list(
        dict.fromkeys(
            word
            for word in re.findall(r"[^\W_]+", query)
            if word.lower() not in _text.STOPWORDS
            and _text.stem(word.lower()) not in held
            and _text.content_words(word)
        )
    )
    unknown = _DONT_KNOW_RE.search(response) is not None or not response.strip()
    passing = not unknown and _share_in(query, response) >= ANSWERED_SHARE
    if unknown:
        feedback = "The response does not answer the query."
    elif passing and not missing:
        feedback = "The response answers the query directly."
    elif passing:
        feedback = f"The response answers the query but does not mention {_joined(missing)}."
    else:
        feedback = f"The response does not address the query's {_joined(missing)}."
    return {"passing": passing, "feedback": feedback}


# CorrectnessEvaluator's user prompt (core/evaluation/correctness.py): the query, the reference
# and the generated answer under "## ..." headings, for a score (1-5) on the first line and the
# reasoning after it.
_CORRECTNESS_RE = re.compile(
    r"## Reference Answer\s*\n(.*?)\n\s*## Generated Answer\s*\n(.*?)\s*\Z", re.DOTALL
)


def correctness_answer(text: str) -> str | None:
    """For LlamaIndex's correctness prompt, ``<score>\\n<reason>``: 1 plus 4 times the share of
    the generated answer's content words the reference holds (5.0: all of them). ``None``
    for other text."""
    found = _CORRECTNESS_RE.search(text)
    if found is None:
        return None
    share = _share_in(found.group(2), found.group(1))
    return (
        f"{1 + 4 * share:.1f}\n"
        f"The reference answer holds {round(100 * share)}% of the generated answer's words."
    )


# StepDecomposeQueryTransform's prompt (core/indices/query/query_transform/prompts.py, the
# MultiStepQueryEngine's): worked examples, then "Question:", "Knowledge source context:",
# "Previous reasoning:" and "New question:" last. The first step asks the question itself; once
# there is reasoning, "None" ends the steps.
_STEP_RE = re.compile(
    r"Question: (.*?)\nKnowledge source context: .*?\nPrevious reasoning: ?(.*?)\n"
    r"New question:\s*\Z",
    re.DOTALL,
)


def step_answer(text: str) -> str | None:
    """For LlamaIndex's step-decompose prompt, the question (no reasoning yet) or ``None``."""
    start = text.rfind("\nQuestion: ")
    found = _STEP_RE.match(text, start + 1) if start >= 0 else None
    if found is None:
        return None
    reasoning = found.group(2).strip()
    return found.group(1).strip() if reasoning in ("", "None", "None.") else "None"


# QueryFusionRetriever's prompt (core/retrievers/fusion_retriever.py): "Generate N search
# queries, one on each line, related to the following input query:", "Query: ...", "Queries:".
_FUSION_RE = re.compile(
    r"Generate (\d+) search queries, one on each line, related to the following input "
    r"query:\s*\nQuery: (.*?)\s*\nQueries:\s*\Z",
    re.DOTALL,
)


def _keywords(text: str, limit: int) -> list[str]:
    """Up to ``limit`` keywords of ``text``: its words that are not stopwords, most frequent
    first (ties: first seen), each as first written, one per stem."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for raw in re.findall(r"[A-Za-z][\w'-]*\w|\d+[A-Za-z]\w*|\d{3,}", text):  # 256K, 1889; not 2
        if raw.lower() in _text.STOPWORDS:
            continue
        key = _text.stem(raw.lower().removesuffix("'s"))
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, raw.removesuffix("'s"))
    ranked = sorted(counts, key=lambda key: -counts[key])  # sorted is stable: first seen first
    return [first[key] for key in ranked[:limit]]


def fusion_answer(text: str) -> str | None:
    """For LlamaIndex's query-generation prompt, N queries, one a line: the query's keywords,
    then those with "facts about" and "explained" (more: numbered). ``None`` for other text."""
    found = _FUSION_RE.search(text)
    if found is None:
        return None
    keywords = " ".join(_keywords(found.group(2), 8)) or found.group(2).strip()
    shapes = ("{}", "facts about {}", "{} explained")
    queries = [
        shapes[i].format(keywords) if i < len(shapes) else f"{keywords} ({i + 1})"
        for i in range(int(found.group(1)))
    ]
    return "\n".join(queries)


# The metadata extractors' prompts (core/extractors/metadata_extractors.py): the node's text
# (between the dashed lines of its "[Excerpt from document]" block), then what to give.
_KEYWORDS_RE = re.compile(r"Give (\d+) unique keywords for this document\.")
_TITLE_CUES = (
    "Give a title that summarizes all of the unique entities",
    "what is the comprehensive title for this document?",
)
_QUESTIONS_RE = re.compile(r"generate (\d+) questions this context can provide specific answers")


_CONTEXT_LABEL_RE = re.compile(r"^\s*(?:Here is the context|Context):[ \t]*\n?", re.IGNORECASE)


def _excerpt(text: str) -> str:
    """The node's text in an extractor's prompt: its dashed block(s), else the prompt without
    its "Context:" label; without the metadata lines LlamaIndex puts before a node's text (what
    earlier extractors found)."""
    blocks = [m.group(1) for m in _DASHED_RE.finditer(text)]
    text = "\n".join(blocks) if blocks else _CONTEXT_LABEL_RE.sub("", text)
    text = text.strip().removeprefix("[Excerpt from document]").strip()
    if "\nExcerpt:\n" in text:  # the extractors' node template: metadata, then "Excerpt:"
        text = text.split("\nExcerpt:\n", 1)[1]
    elif _text.METADATA_LINE_RE.match(text.split("\n", 1)[0]) and "\n\n" in text:
        text = text.split("\n\n", 1)[1]  # the metadata (values may span lines), then the text
    return "\n".join(
        line
        for line in text.splitlines()
        if not _text.METADATA_LINE_RE.match(line.strip())
        and line.strip() not in _EXCERPT_LABELS
        and not set(line.strip().rstrip(".")) <= {"-"}
    )


# The labels of a node's text in LlamaIndex's metadata template (core/schema.py, the
# extractors' node_template): "[Excerpt from document]", metadata lines, "Excerpt:", dashes.
_EXCERPT_LABELS = frozenset({"[Excerpt from document]", "Excerpt:"})


def _joined(words: Sequence[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def extractor_answer(text: str) -> str | None:
    """For LlamaIndex's keyword, title and questions extractors: N comma-separated keywords;
    a title of the three keywords; N numbered questions, one about each sentence's keyword.
    ``None`` for other text."""
    keywords = _KEYWORDS_RE.search(text)
    if keywords is not None:
        return ", ".join(_keywords(_excerpt(text[: keywords.start()]), int(keywords.group(1))))
    for cue in _TITLE_CUES:
        if cue in text:
            return _joined(_keywords(_excerpt(text[: text.index(cue)]), 3)) or "Untitled"
    questions = _QUESTIONS_RE.search(text)
    if questions is None:
        return None
    sentences = _text.split_sentences(_excerpt(text[: questions.start()]))
    lines: list[str] = []
    asked: set[str] = set()  # each question about keywords the others did not ask about
    for sentence in sentences:
        about = [word for word in _keywords(sentence, 8) if word not in asked][:2]
        if about and len(lines) < int(questions.group(1)):
            asked.update(about)
            lines.append(f"{len(lines) + 1}. What does the text say about {_joined(about)}?")
    return "\n".join(lines) or None


# SimpleLLMPathExtractor's prompt (core/indices/property_graph/transformations/
# simple_llm.py): an example, then "Text: ..." and "Triplets:" last, for "(subject, predicate,
# object)" lines. Each sentence that names two things gives one: the first two names (or
# numbers), and the words between them.
_TRIPLETS_RE = re.compile(
    r"extract up to (\d+) knowledge triplets.*\nText: (.*?)\s*\nTriplets:\s*\Z", re.DOTALL
)


def triplets_answer(text: str) -> str | None:
    """For LlamaIndex's triplet prompt, up to N ``(subject, predicate, object)`` lines.
    ``None`` for other text."""
    found = _TRIPLETS_RE.search(text)
    if found is None:
        return None
    lines = []
    for sentence in _text.split_sentences(found.group(2)):
        mentions = sorted(
            [
                *((m.start, m.end, str(m.value)) for m in _text.names(sentence)),
                *((m.start(), m.end(), m.group(0)) for m in _FIGURE_RE.finditer(sentence)),
            ]
        )
        if len(mentions) < 2:
            continue
        (_, subject_end, subject), (target_start, _, target) = mentions[0], mentions[1]
        between = sentence[subject_end:target_start].strip(" ,;:")
        if between:
            lines.append(f"({_bare(subject)}, {between}, {_bare(target)})")
    return "\n".join(lines[: int(found.group(1))])


_FIGURE_RE = re.compile(r"(?<![\w.])\d[\d,.]*\w*")  # 2017, 256K, 1.5


def _bare(name: str) -> str:
    return name.removesuffix("'s").rstrip(".,")


# LLMSynonymRetriever's prompt (core/indices/property_graph/sub_retrievers/llm_synonym.py, a
# PropertyGraphIndex's query engine): "synonyms or related keywords up to N", the query after
# "QUERY:", for keywords joined by "^". The names the query holds come first (whole, as a graph
# names its entities), then its keywords.
_SYNONYMS_RE = re.compile(
    r"generate synonyms or related keywords up to (\d+) in total.*QUERY: (.*?)\s*\n-+\s*\n"
    r"KEYWORDS:\s*\Z",
    re.DOTALL,
)


def synonyms_answer(text: str) -> str | None:
    """For LlamaIndex's synonym prompt, up to N keywords joined by ``^``: the query's names,
    then its keywords. ``None`` for other text."""
    found = _SYNONYMS_RE.search(text)
    if found is None:
        return None
    query = found.group(2)
    words = [_bare(str(m.value)) for m in _text.names(query)] + _keywords(query, 10)
    unique = list(dict.fromkeys(word for word in words if word))
    return "^".join(unique[: int(found.group(1))])


def llamaindex_format_answer(text: str) -> str | None:
    """The answer to a LlamaIndex prompt that asks for a format of its own (sub-questions,
    choice select, a condensed question, a text selection, a judge's verdict or score, a
    multi-step question, search queries, keywords, titles, questions, triplets, synonyms), or
    ``None``."""
    if _SELECTION_FORMAT in text:
        return selection_answer(text)
    if "<Tools>" in text:
        return sub_questions_answer(text)
    if "Let's try this now:" in text:
        return choice_select_answer(text)
    if "standalone question" in text:
        return condense_answer(text)
    for answer in (
        judge_answer,
        correctness_answer,
        step_answer,
        fusion_answer,
        extractor_answer,
        triplets_answer,
        synonyms_answer,
    ):
        found = answer(text)
        if found is not None:
            return found
    return None


def _with_selected_choice(text: str) -> str:
    """For a selector prompt, name the choice whose summary best matches the question first.

    A model would pick the fitting choice; ranking the summaries with BM25 and stating the winner
    up front makes the selection's ``index`` (the first number) and ``reason`` (the first quoted
    phrase) come from it. Other text is returned unchanged.
    """
    question = _SELECTOR_QUESTION_RE.search(text)
    choices = _CHOICE_RE.findall(text)
    if question is None or not choices:
        return text
    best = _text.rank_texts(question.group(1), [summary for _, summary in choices])[0]
    if best.score <= 0:
        return text
    number, summary = choices[best.position]
    return f'Choice {number}: "{summary.strip()}" fits the question best.\n{text}'


# SchemaLLMPathExtractor's prompt (core/indices/property_graph/transformations/schema_llm.py,
# DEFAULT_SCHEMA_PATH_EXTRACT_PROMPT): an instruction, then the text between dashed lines. Its
# schema (entity and relation types as enums) is filled from the text alone, so the names and
# types come from what the text says, not from the instruction's words.
_SCHEMA_EXTRACT_RE = re.compile(
    r"\A\s*Give the following text, extract the knowledge graph according to the provided "
    r"schema\..*?\n-{3,}[ \t]*\n(.*?)\n[ \t]*-{3,}[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


def _extraction_text(text: str) -> str:
    """The text a LlamaIndex extraction prompt asks about, else ``text`` as it is."""
    found = _SCHEMA_EXTRACT_RE.match(text)
    return found.group(1) if found else text


def tool_arguments(tool: ToolSpec, text: str) -> dict[str, Any]:
    """Arguments for ``tool`` that validate against its parameters schema, from ``text``."""
    text = _extraction_text(text)
    # Any object schema: one with ``properties``, a ``$ref`` root into ``$defs`` (a recursive
    # pydantic model's), or none at all (``{"type": "object"}``, no ``parameters``: no arguments).
    fallback = _text.squash(text, 300)
    value = _schema.Filler(_with_selected_choice(text), fallback).fill(tool.parameters)
    return value if isinstance(value, dict) else {}


# LlamaIndex's ReAct agent (core/agent/react/formatter.py and templates/
# system_header_template.md, for a model without function calling): the tools in the system
# prompt as "> Tool Name:", "Tool Description:" and "Tool Args: <JSON schema>" lines, the format
# ("Thought:", "Action:", "Action Input: {...}", or "Answer:"), and each tool's result back as a
# user turn "Observation: ...".
_REACT_TOOL_RE = re.compile(
    r"^> Tool Name: (.+)\nTool Description: (.*?)\nTool Args: (\{.*\})[ \t]*$", re.MULTILINE
)
_ACTION_RE = re.compile(r"^Action: (.+)$", re.MULTILINE)
_OBSERVATION = "Observation:"
REACT_ACTION = "Thought: I need to use a tool to help me answer the question."
REACT_ANSWERED = (
    "Thought: I can answer without using any more tools. I'll use the user's language to answer"
)


def _react_tools(system: str) -> list[ToolSpec]:
    tools = []
    for name, description, args in _REACT_TOOL_RE.findall(system):
        try:
            parameters = json.loads(args)
        except ValueError:
            parameters = {}
        if not isinstance(parameters, dict):
            parameters = {}
        tools.append(ToolSpec(name.strip(), description.strip(), parameters))
    return tools


def react_answer(messages: Sequence[Message]) -> str | None:
    """For LlamaIndex's ReAct prompt, the next step: an action for each tool call the question
    asks for (chosen as tool calls are, one per clause), one step at a time; once each has its
    observation, an answer that reports them. ``None`` where no tool fits the question (the
    plain answer, which ReAct reads as an answer too) or for any other conversation."""
    system = next((m.content for m in messages if m.role == "system"), "")
    tools = _react_tools(system) if "Action Input:" in system else []
    asked = [
        i
        for i, m in enumerate(messages)
        if m.role == "user" and not m.content.lstrip().startswith(_OBSERVATION)
    ]
    if not tools or not asked:
        return None
    done: list[tuple[str, str]] = []  # (tool, observation), since the question
    action = "the tool"
    for message in messages[asked[-1] + 1 :]:
        if message.role == "assistant":
            found = _ACTION_RE.search(message.content)
            action = found.group(1).strip() if found else "the tool"
        elif message.role == "user":
            done.append((action, message.content.lstrip()[len(_OBSERVATION) :].strip()))
    picks = choose_tools(messages[asked[-1]].content, tools)
    if len(done) < len(picks):
        tool, words = picks[len(done)]
        arguments = json.dumps(tool_arguments(tool, words), ensure_ascii=False)
        return f"{REACT_ACTION}\nAction: {tool.name}\nAction Input: {arguments}"
    if not done:
        return None
    results = " ".join(
        f"The result of {name} is {_text.squash(value, TOOL_RESULT_LIMIT).rstrip('.') or 'empty'}."
        for name, value in done
    )
    return f"{REACT_ANSWERED}\nAnswer: {results}"


# -- JSON mode ---------------------------------------------------------------------------------

# LlamaIndex's PydanticOutputParser (core/output_parsers/pydantic.py) appends a JSON schema and
# this instruction to a prompt (LLMTextCompletionProgram, a query engine's output_parser); a
# model follows it without JSON mode being asked for.
_JSON_INSTRUCTION = "Output a valid JSON object but do not repeat the schema."


def asks_for_json(messages: Sequence[Message]) -> bool:
    """Whether the last user message asks for a JSON object that follows a schema it embeds,
    as LlamaIndex's output parser writes it."""
    user = last_user_text(messages)
    return user is not None and _JSON_INSTRUCTION in user and _schema.find_schema(user) is not None


def split_schema(messages: Sequence[Message]) -> tuple[dict[str, Any] | None, list[Message]]:
    """Find a JSON schema embedded in a user message (last first), else a system message.

    Returns the schema and the messages with the schema (and its instructions) cut out, so the
    answer generator does not read the schema as part of the question.
    """
    order = [i for i in reversed(range(len(messages))) if messages[i].role == "user"]
    order += [i for i in range(len(messages)) if messages[i].role == "system"]
    for index in order:
        found = _schema.split_schema(messages[index].content)
        if found is not None:
            schema, rest = found
            trimmed = list(messages)
            trimmed[index] = replace(messages[index], content=rest)
            return schema, trimmed
    return None, list(messages)


def json_answer(
    schema: dict[str, Any] | None,
    messages: Sequence[Message],
    text_answer: str,
    context: Context | None,
) -> str:
    """JSON-mode content: fill ``schema`` from the user's words, else ``{"answer": ...}``.

    ``messages`` are the ones with the schema cut out. With context, values come from the query
    and the grounded answer; without, from the last user message.
    """
    if schema is None:
        return json.dumps({"answer": text_answer}, ensure_ascii=False)
    user = last_user_text(messages) or ""
    verdict = guideline_verdict(user)
    properties = schema.get("properties")
    if verdict is not None and isinstance(properties, dict) and set(properties) == set(verdict):
        return json.dumps(verdict, ensure_ascii=False)
    extracted = _extraction_text(user)
    if extracted is not user:
        words, fallback = extracted, _text.squash(extracted, 300)
    elif context is not None:
        words = f"{context.query}\n{text_answer}"
        fallback = text_answer
    else:
        words = last_user_text(messages) or ""
        fallback = _text.squash(words, 300)
    value = _schema.Filler(words, fallback).fill(schema)
    return json.dumps(value, ensure_ascii=False)


def reasoning_text(messages: Sequence[Message]) -> str:
    """What a reasoning model "thinks" before answering: deterministic, names the question."""
    user = last_user_text(messages)
    asked = _text.squash(user, 120) if user and user.strip() else "nothing"
    return f"The user asked: {asked}. I answer from what the conversation gives me."
