"""An offline emulator of the AI21 Studio REST API, for tests, demos and benchmarks.

It is a real HTTP server on loopback (aiohttp, on its own event loop in a daemon thread) that the
unmodified ``ai21`` SDK talks to as if it were ``https://api.ai21.com/studio/v1``. Nothing leaves
the machine. The protocol follows AI21's public API reference (docs.ai21.com: the Jamba chat
completions reference, cited below as "chat ref"; the Jurassic-2 references, "J2 ref"; the
error codes page) and real recorded responses.
``Emulator(flavour="vllm")`` answers instead like vLLM's OpenAI-compatible server serving AI21's
open models (``_flavour_vllm``; docs/emulator.md lists it field by field). This docstring
describes the default flavour, ``"ai21"``; the answers (below) are the same in both.

Quick start::

    from ai21 import AI21Client
    from ai21.models.chat import UserMessage
    from ai21_emulator import Emulator, Fault

    with Emulator() as emu:                    # port 0: a free port
        client = AI21Client(api_key=emu.api_key, api_host=emu.base_url)
        reply = client.chat.completions.create(
            model="jamba-mini", messages=[UserMessage(content="Hi")]
        )
        emu.inject(Fault(status=429, count=2, retry_after="1"))   # the next 2 requests get 429
        emu.last_request.json                  # what the SDK sent (the key is never shown)

Front doors: :class:`Emulator` (in-process), ``python -m ai21_emulator`` (CLI,
see ``__main__``) and the pytest fixtures ``ai21_emulator`` / ``ai21_emulator_server`` /
``ai21_emulator_vllm`` (see ``pytest_plugin``). All of them share one pure core: the pipeline
(``_core``: records, faults, scripted replies), the flavours (``_flavour_ai21``,
``_flavour_vllm``: routes, auth, ids, errors, framing) and the answer generator (``_scenario``,
``_answer``, ``_validation``, ``_schema``, ``_text``). ``_server`` only writes bytes.

Routes
------
Served under ``/studio/v1`` and, for clients that drop the prefix, without it:

- ``POST /chat/completions`` -- Jamba chat (chat ref), streaming and not.
- ``GET /models`` -- every served model in the OAS-2026 ``ModelsInfoResponse`` shape.
- ``POST /{j2-model}/complete`` and ``POST /{j2-model}/chat`` -- legacy Jurassic-2 (J2 ref),
  for ``j2-light``, ``j2-mid``, ``j2-ultra`` only.

Models: jamba-mini, jamba-large, jamba-mini-2(-2026-01), jamba-large-1.7(-2025-07),
jamba-mini-1.7(-2025-07), jamba-{mini,large}-1.6(-2025-03), jamba-1.5-{mini,large},
jamba-instruct; j2-light, j2-mid, j2-ultra.

Order of checks (FastAPI's): unknown route -> 404 ``{"detail":"Not Found"}``; wrong method -> 405
``{"detail":"Method Not Allowed"}`` with ``Allow`` (both before auth); then auth; then body
validation (422).
Every API route needs ``Authorization: Bearer <accepted key>`` (scheme case-insensitive), else
401 with exactly ``{"detail":"Forbidden: Bad or missing API token."}`` (AI21's error codes).

Responses
---------
- Non-streaming bodies are compact JSON; stream chunks use ``json.dumps`` default spacing (as
  the live capture, chat ref). Streams are ``data: `` lines only, each ended by CRLF CRLF
  (``\r\n\r\n``, as recordings of the live API show, ``[DONE]`` included): the role delta, one
  event per token, a final event (finish_reason + ``usage``; ``usage`` is absent on every other
  chunk), then ``data: [DONE]``.
- ``id`` is ``chatcmpl-`` + a uuid4 with dashes, **random** per request, shared by all chunks
  of a stream; the ``request-id`` response header holds the uuid (docs/emulator.md).
  Everything else is deterministic: the same request gives the same answer.
- A scripted reply (:meth:`Emulator.script`, :meth:`Emulator.reply_next`, or the ``handler``)
  replaces the generated answer of the next valid chat request; an assistant ``reasoning``
  goes out as ``reasoning_content`` (the 2026 spec's name), streamed before the content.
- ``logprobs`` is always null; no ``model``/``meta`` keys are added (chat ref, live capture).

Answers
-------
- **Grounded**: if the request has ``documents`` or a message holds a LlamaIndex context block
  (the dashed ``---------------------`` blocks of the QA / tree-summarize / refine prompts and the
  chat-engine system prompt, "Here are the relevant documents for the context:", or
  "New Context: ... Query:") or documents pasted into the user turn ("Context documents:", a
  "Document N" block each, the question as the last paragraph: AI21's Jamba2 cards), the
  answer is taken from the context: paragraphs (documents, or
  blank-line separated blocks) are ranked against the query with BM25 (stopwords removed, a tiny
  stemmer), and the two best-matching sentences of the best paragraph are returned in their
  original order (one if only one matches). The query is the prompt's ``Query:`` /
  "The original query is as follows:" line, else the last user message. Refine prompts rank the
  existing answer together with the new context (an existing answer that is the emulator's own
  "I don't know" is left out, so a later chunk that answers is found). "Summarize ..." queries
  with no matching sentence get the first two sentences; other unmatched queries get
  ``I don't know. The provided context does not answer "<query>".``
- **Sub-questions**: LlamaIndex's sub-question prompt (the last "<Tools>" JSON block, then
  "<User Question>" and "<Output>") gets JSON markdown ``{"items": [{"sub_question", "tool_name"},
  ...]}``: one item per clause that a tool fits (chosen as tool calls are), else one item with
  the whole question for the best tool.
- **Condensed questions**: LlamaIndex's condense prompts ("... standalone question", the chat
  history as "user: ..." lines, the follow-up) get the follow-up with ``it``/``its``/``they``/
  ``them``/``their`` replaced by the capitalised name the latest earlier user turn asked about.
- **Text selection**: the same selector prompt with SelectionOutputParser's format ("ONLY
  JSON", LLMSingleSelector/LLMMultiSelector: RouterQueryEngine on a model without function
  calling) gets ``[{"choice": N, "reason": ...}]`` for the best-matching choice (BM25; the first
  when none matches), or up to its "no more than N" matching ones.
- **Reranking**: LlamaIndex's choice-select prompt (``LLMRerank``: "Let's try this now:", then
  "Document N:" blocks, "Question:" and "Answer:") gets ``Doc: N, Relevance: R`` lines for the
  documents that match the question (BM25), best first, the best at 10; none when none matches.
- **Judges, ReAct, transforms, extractors**: LlamaIndex's faithfulness and relevancy prompts
  get ``YES`` when two thirds of the claim's content words, and all its names and figures, are
  in the context, else ``NO``; the
  correctness prompt ``<1 + 4 * share of the answer's words in the reference>\\n<reason>``; a
  ReAct system prompt ("> Tool Name:" blocks) one ``Action:`` step per tool call the question
  asks for, then ``Answer:`` reporting the observations; the step-decompose prompt the
  question, then ``None``; the query-fusion prompt N keyword queries; the keyword, title and
  questions extractors the node's most frequent words, three of them, and a question per
  sentence; the triplet prompt ``(subject, predicate, object)`` per sentence naming two things;
  the graph synonym prompt the question's names and keywords joined by ``^``; the guideline
  prompt (asking for ``passing`` and ``feedback``) passes a response that holds half of the
  query's content words and is no "I don't know", its feedback naming the query's words the
  response leaves out; the schema path extractor's prompt fills its schema from the text
  between its dashed lines only.
  A context's question sentences ("Question: ...?") are passed over for the sentence that
  answers, without its "Answer:"/"Response:" label.
- **Echo** (no context): ``This is the AI21 emulator (<model>), not a real model. You said: <last
  user message, whitespace-collapsed, max 200 chars>``. With a system message it is prefixed by
  ``[system: <first 60 chars>] `` so you can see the system prompt arrived (only in echo answers,
  not grounded ones). With ``n > 1`` choice *i* says ``... not a real model (reply i+1 of n).``;
  grounded choices *i > 0* use the *i*-th best matching paragraph (identical if only one matches).
- **After tool results** (the conversation ends with ``tool`` messages): text such as
  ``The result of multiply is 12.`` per result, naming the tool through ``tool_call_id`` and the
  preceding assistant ``tool_calls``, in the order the calls were made; no further tool call,
  so agent loops terminate.
- **JSON mode** (``response_format={"type":"json_object"}``): if a user (else system) message
  embeds a JSON schema (an object with ``properties``, e.g. LlamaIndex's "Here's a JSON schema to
  follow:"; brace-doubled ``{{ }}`` templates too), the content is an object that validates
  against it, filled from the user's words (see Tools). Otherwise ``{"answer": "<text answer>"}``.
  JSON content is then subject to ``stop``/``max_tokens`` like any text (so it can be cut).
  Without ``response_format``, a last user message with a schema and PydanticOutputParser's
  "Output a valid JSON object but do not repeat the schema." is answered the same way.

Tokens and usage
----------------
- Tokenizer: ``re.findall(r"\\s*\\S+|\\s+", text)``; each token carries its leading whitespace, so
  the stream's content deltas concatenate to exactly the non-streamed content.
- ``completion_tokens`` = content tokens + 1 (the end-of-sequence token; the live capture counted
  the final empty chunk). If that does not fit in ``max_tokens`` (default 4096) the content is cut
  to ``max_tokens`` tokens, finish_reason is ``"length"`` and ``completion_tokens == max_tokens``.
  ``stop`` (str or list) cuts before the earliest stop sequence, finish_reason ``"stop"``.
  For tool calls: per call 1 + its argument fragments, + 1. Summed over the ``n`` choices.
- ``prompt_tokens`` = per message (content tokens + tool-call name/argument tokens + 4 overhead)
  + document content tokens + tokens of the ``tools`` JSON. ``total_tokens`` is the sum.
  Stream and non-stream report identical usage for the same request.

Tools
-----
- Offered ``tools`` and a last message from the user: one tool offered -> it is always called
  (how LlamaIndex structured output with ``tool_required`` works). Several -> each is scored by word
  overlap of the user message with the tool name (split snake/camelCase, weight 3), description
  (1) and parameter names (1) / descriptions (0.5), after a small synonym table (times /
  multiplied / product / "x" -> multiply, plus / sum -> add, minus -> subtract, divided -> divide,
  temperature / forecast -> weather, find / look up -> search ...). Best score > 0 -> call it
  (ties: first listed); all zero -> a normal text answer. If the message joins clauses ("and",
  "then", ";") and two or more clauses each select a tool, one call per clause (parallel calls).
- Arguments are compact JSON that validates against the tool's ``parameters``: numbers in order
  of mention (``three`` counts) for numeric fields (``<field> is 5`` first), enum members in the
  order the text mentions them (each field takes the next mention not yet taken; an option's
  words in any case, joined by spaces, ``_`` or ``-``, plural too: ``WORKS_AT`` is "works at";
  none mentioned: the default, else the first), ``<field> is/: X``, "named X", "in/at/for
  <Place>" for place-like names, quoted phrases, capitalised names, and the user's text for
  free-text fields (query, text, ...); booleans, arrays, nested objects, ``$ref``/``$defs``,
  ``anyOf`` (first non-null), ``allOf``, min/max bounds and date/email/uri formats are handled;
  all properties are present.
  A LlamaIndex selector prompt ("(1) <summary>" choices, "most relevant to the question: '...'",
  as RouterQueryEngine sends) selects the choice whose summary best matches the question (BM25).
- Tool-call ids are ``call_`` + 24 hex, deterministic (hash of the request's messages and tools,
  the choice index and the call index).
- Non-streaming: ``message.content`` is **null** with ``tool_calls`` set (the chat ref allows
  null or empty), finish_reason **"tool_calls"** (unknown in the reference; the ai21-python
  test mocks use it). Streaming (chat ref, OAS ``ToolCallDeltaStart``/``ToolCallDelta``): the
  role delta, then per call
  ``{"tool_calls":[{"index":i,"id":...,"type":"function","function":{"name":...}}]}`` (no
  ``arguments`` key), then one event per JSON token of the arguments
  ``{"tool_calls":[{"index":i,"function":{"arguments":"..."}}]}``, then the final event whose
  delta is ``{}`` (no content) with finish_reason ``"tool_calls"`` and usage. ``stop`` and
  ``max_tokens`` do not cut tool calls.

Validation (422, FastAPI/pydantic v2 wording)
---------------------------------------------
``{"detail":[{"loc":["body",...],"msg":...,"type":...}]}``, all field errors at once: missing or
non-string ``model``; unknown model (``type: "enum"``, listing the Jamba names; J2 names are
rejected here too); ``messages`` missing / not a list / **empty**; a message that is not an
object, has no ``role`` (``union_tag_not_found``) or an unknown role (``union_tag_invalid``);
non-string ``content`` (required for system/user/tool; assistant ``content`` and ``tool_calls``
may be null); tool message without ``tool_call_id``; ``n`` outside 1-16, ``max_tokens`` outside
0-4096, ``temperature`` outside 0-2, ``top_p`` <= 0 or > 1; wrong types (integral floats pass as
ints, like pydantic's lax mode; strings do not); malformed ``tools`` (type must be "function",
``function.name`` required, ``parameters`` an object with ``properties``; the vLLM flavour
takes ``type`` as "function" when absent and any object or null as ``parameters``, as vLLM
does), ``documents``
(``content`` required; ``id`` string; ``metadata`` string values), ``response_format`` (type
"text" or "json_object"), ``stop``. Only once the fields are valid: ``stream: true`` with
``n > 1`` -> 422 ``loc ["body"]``, ``msg "Value error, n must be 1 when stream = True"`` (the
reference leaves status/body unknown). Explicit ``null`` means "default". Unknown keys are
ignored (the SDK forwards ``**kwargs``). Alternation of user/assistant turns and empty contents
are not checked (unverified on the live API). Body not JSON -> 422 ``json_invalid``; missing
body -> 422 ``missing`` at ``["body"]``; a JSON body that is not an object ->
``model_attributes_type``. ``n > 1`` with ``temperature=0`` is allowed.

Legacy J2
---------
- ``/{model}/complete``: ``prompt`` required; ``numResults`` 1-16 (1), ``maxTokens`` 0-8191
  (16), ``minTokens`` (0; accepted, not enforced), ``temperature`` 0-5, ``topP`` 0-1,
  ``topKReturn`` 0-10, ``stopSequences``, and the penalty objects (``scale`` required, camelCase
  or the SDK2 snake_case flags; the flags are ignored). The completion text comes from the same
  answer generator (the prompt is the user message). Response ``{"id": <uuid4>, "prompt":
  {"text", "tokens"}, "completions": [{"data": {"text", "tokens"}, "finishReason": ...}]}``;
  tokens are the emulator tokens in J2 form (``▁`` for spaces, ``<|newline|>``, a final
  ``<|endoftext|>`` on natural ends) with deterministic fake logprobs, ``textRange`` offsets and
  ``topTokens`` null unless ``topKReturn > 0``. finishReason: ``{"reason":"length","length":N}``,
  ``{"reason":"stop","sequence":S}`` (the reference implies it; unobserved) or
  ``{"reason":"endoftext"}``.
- ``/{model}/chat``: ``system`` (required string; may be empty) and ``messages``
  (``[{role: user|assistant, text}]``) plus the same options (``maxTokens`` default 300).
  Response ``{"id", "outputs": [{"text", "role": "assistant", "finishReason": {"reason",
  "length", "sequence"}}]}``.
- A Jamba (or unknown) model name on a J2 route is an unknown route: 404 ``{"detail":"Not
  Found"}``. A J2 name on ``/chat/completions`` is a 422 on ``model``.

Faults
------
:class:`Fault` scripts misbehaviour: ``status`` (400-599; body ``{"detail": <reason phrase>}`` as
FastAPI's ``HTTPException`` gives, except 401's live text and 422's FastAPI list), ``count``,
``retry_after`` (a ``Retry-After`` header, on whatever response is sent), ``delay`` (before the
headers), ``stream_delay`` (between stream events), ``drop_after`` (close the connection after N
stream events, no chunked terminator -> ``httpx.RemoteProtocolError``; on a non-streaming
request the connection closes after half the body), ``malformed_after`` (after N good events one
truncated line ``data: {"id": "chatcmpl-…", "choi`` then a normal end -> ``StreamingDecodeError``;
non-streaming: a truncated JSON body), ``stream_error_after`` / ``stream_error_code`` /
``stream_error_message`` (after the role event and N more, ``data: {"error": {"message",
"type", "code"}}`` then ``[DONE]``, on HTTP 200), ``stall_after`` / ``stall_seconds`` /
``stall_keep_alive`` (after N events go silent for a while, or send ``: keep-alive``
comments meanwhile, as a proxy in front of a stalled model does), ``path_contains``. Events are
counted from the role event; ``[DONE]`` is an event too. Faults are consumed in FIFO order by
every API request that matches, **before** routing and auth (like a gateway in front of the
service), including 404s and 401s.

Three ways in: ``Emulator.inject(...)`` in-process; a request header ``X-Emulator-Fault: <Fault
as a JSON object>`` (that request only; ``count`` ignored; a bad header -> 400); or the control
endpoints. Control endpoints need **no auth** (bind to loopback only), are not recorded and
never get faults:

- ``POST /_emulator/faults`` -- body: a Fault object or a list -> ``{"queued": n}`` (400 if invalid)
- ``GET /_emulator/faults`` -- pending faults, each with ``remaining``
- ``DELETE /_emulator/faults`` -> ``{"cleared": n}``
- ``GET /_emulator/requests`` -- the records as JSON (``api_key`` shown as ``"<redacted>"``)
- ``DELETE /_emulator/requests`` -> ``{"cleared": n}``
- ``POST /_emulator/replies`` -- a scripted reply object (``{"content", "tool_calls": [{"name",
  "arguments", "id"}], "reasoning", "finish_reason", "usage"}``) or a list -> ``{"queued": n}``
- ``GET /_emulator/replies`` -- the queued replies, next first, in that object form
- ``DELETE /_emulator/replies`` -> ``{"cleared": n}``

Answers of a given length
-------------------------
A request header ``X-Emulator-Answer-Tokens: N`` (chat completions only) makes the answer N
deterministic filler tokens, whatever the conversation says: for load, streaming and memory
tests. N is not capped at the API's 4096 unless the body sets ``max_tokens``; a header that is
not a whole number, or is above 9999999, -> 400. The whole answer is built before its first
event (a million tokens: seconds and hundreds of MB), so measure a client's memory with the
emulator in another process.

Records
-------
Every API request (anything outside ``/_emulator/``) is recorded on arrival as a
:class:`RecordedRequest`. ``headers`` never include ``Authorization`` (nor ``api-key`` /
``x-api-key``); the token is kept in ``api_key``, which ``repr`` hides, as it hides ``raw_body``.

Server
------
A listening socket with backlog 1024 is created first (so port 0 reports its real port) and
handed to aiohttp via ``web.SockSite``; HTTP/1.1 keep-alive; aiohttp sets TCP_NODELAY; no
access log; request bodies up to 64 MiB; client disconnects cancel their handler. A request
aiohttp cannot read (a malformed request line or header, a body that does not match its
``Content-Encoding``) gets a 400, is not recorded, and is logged as one DEBUG line on
``aiohttp.server`` instead of aiohttp's ERROR with a traceback. ``stop()`` waits at most 0.5 s
for in-flight requests, then closes the loop; it is idempotent, and ``start()`` after
``stop()`` serves again.
"""

from ._emulator import DEFAULT_API_KEY, Emulator
from ._faults import Fault
from ._script import Reply, ToolCall
from ._state import RecordedRequest

__all__ = ["DEFAULT_API_KEY", "Emulator", "Fault", "RecordedRequest", "Reply", "ToolCall"]
