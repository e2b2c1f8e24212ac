"""Text helpers for the emulator's scenario core: tokens, words, sentences, ranking, values.

Everything here is pure and deterministic (no I/O, no randomness).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# One token = one run of non-whitespace together with the whitespace before it; trailing whitespace
# is a token of its own. Concatenating the tokens gives back the text exactly, so streamed deltas
# add up to the non-streamed content.
_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into emulator tokens (each carries its leading whitespace)."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Return ``len(tokenize(text))`` without building the list."""
    if not text:
        return 0
    n = len(text.split())
    if text[-1].isspace():
        n += 1
    return n


def word_set(text: str) -> frozenset[str]:
    """The set of whitespace-separated words in ``text``."""
    return frozenset(text.split())


STOPWORDS: frozenset[str] = word_set(
    """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers herself
    him himself his how i if in into is isn it its itself just let me more most much must my myself
    no nor not of off on once only or other ought our ours ourselves out over own please same shan
    she should shouldn so some such than that the their theirs them themselves then there these
    they this those through to too under until up upon us very via was wasn we were weren what
    when where which while who whom whose why will with won would wouldn you your yours yourself
    yourselves tell give show know get got also may might shall s t ll re ve d m
    """
)

# Words that usually open a request and are not names even when capitalised.
_REQUEST_VERBS: frozenset[str] = word_set(
    """
    add answer calculate call check compute convert count create describe divide explain extract
    fetch find generate hello hey hi list look lookup make multiply name output produce provide
    return say search send set subtract summarize summarise thanks translate use write yes okay ok
    """
)

_WORD_RE = re.compile(r"[A-Za-z0-9]+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# A tiny synonym table mapping the user's words onto canonical verbs/nouns that tool names use.
SYNONYMS: dict[str, str] = {
    "times": "multiply",
    "multiplied": "multiply",
    "multiplication": "multiply",
    "multiplying": "multiply",
    "product": "multiply",
    "mul": "multiply",
    "mult": "multiply",
    "plus": "add",
    "added": "add",
    "adding": "add",
    "addition": "add",
    "sum": "add",
    "total": "add",
    "minus": "subtract",
    "subtracted": "subtract",
    "subtraction": "subtract",
    "subtracting": "subtract",
    "difference": "subtract",
    "sub": "subtract",
    "divided": "divide",
    "dividing": "divide",
    "division": "divide",
    "quotient": "divide",
    "div": "divide",
    "squared": "power",
    "exponent": "power",
    "pow": "power",
    "temperature": "weather",
    "forecast": "weather",
    "rain": "weather",
    "raining": "weather",
    "sunny": "weather",
    "find": "search",
    "lookup": "search",
    "look": "search",
    "google": "search",
    "mail": "email",
    "e-mail": "email",
}

# "3 x 4", "3 * 4", "10 / 2" ... count as arithmetic words for tool selection.
_TIMES, _MINUS = "\u00d7", "\u2212"  # the multiplication and minus signs
_OPERATOR_RE = re.compile(r"\d\s*([x*+/" + _TIMES + _MINUS + r"-])\s*-?\d")
_OPERATOR_WORDS = {
    "x": "multiply",
    _TIMES: "multiply",
    "*": "multiply",
    "+": "add",
    "/": "divide",
    "-": "subtract",
    _MINUS: "subtract",
}


def stem(word: str) -> str:
    """A deliberately tiny stemmer, applied the same way to both sides of every comparison."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def split_identifier(name: str) -> list[str]:
    """``get_current_weather`` / ``getCurrentWeather`` -> ``["get", "current", "weather"]``."""
    return [w.lower() for w in _WORD_RE.findall(_CAMEL_RE.sub(" ", name))]


def content_words(text: str, *, synonyms: bool = False) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without stopwords, in order (with repeats)."""
    words: list[str] = []
    for raw in _WORD_RE.findall(_CAMEL_RE.sub(" ", text)):
        word = raw.lower()
        if word in STOPWORDS:
            continue
        if synonyms:
            word = SYNONYMS.get(word, word)
        words.append(stem(word))
    if synonyms:
        words.extend(stem(_OPERATOR_WORDS[m.group(1)]) for m in _OPERATOR_RE.finditer(text))
    return words


# --- sentences and ranking ------------------------------------------------------------------

# Lines such as "file_path: /data/a.txt" that LlamaIndex puts in front of node text.
METADATA_LINE_RE = re.compile(r"^[a-z_][a-z0-9_]*: \S.{0,200}$")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_LIST_MARK_RE = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+")


def split_sentences(passage: str) -> list[str]:
    """Split a context passage into sentences, skipping blank and metadata-looking lines."""
    sentences: list[str] = []
    for line in passage.splitlines():
        line = line.strip()
        if not line or METADATA_LINE_RE.match(line) or set(line) <= set("-=_*#"):
            continue
        line = _LIST_MARK_RE.sub("", line)
        for sentence in _SENTENCE_SPLIT_RE.split(line):
            sentence = sentence.strip()
            if sentence:
                sentences.append(sentence)
    return sentences


@dataclass(frozen=True)
class Ranked:
    """A candidate sentence with its BM25 score; ``position`` is its order in the context."""

    position: int
    text: str
    score: float


def rank_texts(query: str, sentences: Sequence[str]) -> list[Ranked]:
    """Rank ``sentences`` (or paragraphs) against ``query`` with BM25 (k1=1.2, b=0.75).

    Ties keep context order.
    """
    terms = list(dict.fromkeys(content_words(query)))
    docs = [content_words(s) for s in sentences]
    if not docs:
        return []
    avg_len = sum(len(d) for d in docs) / len(docs) or 1.0
    df = {t: sum(1 for d in docs if t in d) for t in terms}
    n = len(docs)
    ranked: list[Ranked] = []
    for pos, (sentence, doc) in enumerate(zip(sentences, docs, strict=True)):
        score = 0.0
        length_norm = 1.2 * (1 - 0.75 + 0.75 * len(doc) / avg_len)
        for term in terms:
            tf = doc.count(term)
            if tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf * 2.2 / (tf + length_norm)
        ranked.append(Ranked(pos, sentence, score))
    ranked.sort(key=lambda r: (-r.score, r.position))
    return ranked


# --- values mentioned in text -----------------------------------------------------------------

_SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBER_WORDS = {word: i for i, word in enumerate(_SMALL_NUMBERS.split())}
_NUMBER_RE = re.compile(
    r"(?<![A-Za-z_0-9.])(?:(?<![\w.])-)?\d+(?:,\d{3})*(?:\.\d+)?(?![A-Za-z_])"
    r"|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b",
    re.IGNORECASE,
)
_QUOTED_RE = re.compile(r"\"([^\"\n]{1,200})\"|(?<![\w])'([^'\n]{1,200})'(?!\w)|“([^”\n]{1,200})”")
_NAME_RE = re.compile(r"\b[A-Z][\w'.-]*(?:\s+(?:of\s+|de\s+|van\s+)?[A-Z][\w'.-]*)*")
_DATE_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_URL_RE = re.compile(r"\bhttps?://\S+")


@dataclass(frozen=True)
class Mention:
    """A value found in the text, with its character span."""

    start: int
    end: int
    value: str | float | int


def numbers(text: str) -> list[Mention]:
    """Numeric literals and small number words (``three``) in order of appearance."""
    found: list[Mention] = []
    for m in _NUMBER_RE.finditer(text):
        raw = m.group(0)
        value: float | int
        if raw.lower() in _NUMBER_WORDS:
            value = _NUMBER_WORDS[raw.lower()]
        else:
            clean = raw.replace(",", "")
            value = float(clean) if "." in clean else int(clean)
        found.append(Mention(m.start(), m.end(), value))
    return found


def quoted(text: str) -> list[Mention]:
    """Quoted phrases ("..." or '...') in order of appearance."""
    found: list[Mention] = []
    for m in _QUOTED_RE.finditer(text):
        value = next(g for g in m.groups() if g is not None)
        found.append(Mention(m.start(), m.end(), value))
    return found


def names(text: str, exclude: Iterable[str] = ()) -> list[Mention]:
    """Runs of capitalised words (``New York``, ``Alice``), skipping request verbs and stopwords."""
    skip = STOPWORDS | _REQUEST_VERBS | {w.lower() for w in exclude}
    found: list[Mention] = []
    for m in _NAME_RE.finditer(text):
        words = m.group(0).split()
        start = m.start()
        # Drop leading words that are only capitalised because they start a sentence or request.
        while words and (words[0].lower().strip("'.-") in skip or words[0].lower() == "of"):
            start = text.index(words[0], start) + len(words[0])
            words = words[1:]
        if not words:
            continue
        value = " ".join(words).rstrip(".'-")
        if value and value.lower() not in skip:
            first = text.index(words[0], start)
            found.append(Mention(first, first + len(value), value))
    return found


def dates(text: str) -> list[str]:
    """ISO dates (YYYY-MM-DD) in order."""
    return _DATE_RE.findall(text)


def emails(text: str) -> list[str]:
    """E-mail addresses in order."""
    return _EMAIL_RE.findall(text)


def urls(text: str) -> list[str]:
    """http(s) URLs in order."""
    return [u.rstrip(".,;)") for u in _URL_RE.findall(text)]


def squash(text: str, limit: int) -> str:
    """Collapse whitespace and shorten to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"
