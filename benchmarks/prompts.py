"""Prompts that make the emulator answer with a known number of tokens (stdlib only).

The emulator answers a prompt without context with one short echo sentence. Given context
(LlamaIndex's dashed ``---`` block) and a "Summarize" request whose words appear nowhere in
the context, it answers with the context's leading sentences. A context of N lowercase words
without sentence punctuation is one sentence, so the answer is exactly those N words: N tokens
in the emulator's tokenisation (each token is a word with its leading space), N stream events.

The emulator caps answers at ``max_tokens`` (default 4096, the API's limit); the benchmark's
emulator launcher raises that cap so a 10,000-token answer can be streamed.
"""

from __future__ import annotations

from functools import cache

MODEL = "jamba-1.5-mini"  # the one model name that 0.8.0, SDK 4.3 and the emulator all know
# On the vLLM flavour: a served name as AI21's vLLM guide (docs.ai21.com/docs/vllm) serves it.
VLLM_MODEL = "ai21labs/AI21-Jamba-Mini-1.7"
SHORT_PROMPT = "Say hello to the benchmark."

# Words of 3-8 letters, like real subword tokens on average; none stems to "summar*".
# fmt: off
_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basil", "cedar", "dune",
    "ember", "fern", "grove", "heath", "iris", "jade", "kelp", "lotus", "maple", "nectar",
    "olive", "pine", "quartz", "reed", "sage", "thyme", "umber", "vine", "willow", "yarrow",
    "zinnia",
)
# fmt: on


_RULE = "-" * 21  # LlamaIndex's context delimiter, which the emulator looks for


@cache
def answer_words(tokens: int) -> tuple[str, ...]:
    """The words the emulator will answer with for :func:`long_prompt` ``(tokens)``."""
    return tuple(_WORDS[(i * 7 + i // len(_WORDS)) % len(_WORDS)] for i in range(tokens))


@cache
def long_prompt(tokens: int) -> str:
    """A prompt whose emulator answer is exactly ``tokens`` tokens long."""
    context = " ".join(answer_words(tokens))
    return f"{_RULE}\n{context}\n{_RULE}\nSummarize."


def context_of(prompt: str) -> str:
    """The context of a :func:`long_prompt` (which is also the emulator's answer to it)."""
    return prompt.split("\n")[1]


def answer_text(tokens: int) -> str:
    """The answer text itself (what a caller ends up holding after the stream)."""
    return " ".join(answer_words(tokens))
