"""Write the tiny Jamba GGUF that tests/llamacpp serves with llama.cpp's llama-server.

    python scripts/llamacpp/build_model.py OUT_DIR

Nothing is downloaded: the tokenizer is trained here and the weights are set here with numpy, and
the ``gguf`` package (llama.cpp's gguf-py, on PyPI) writes the file. The model is the real
``jamba`` architecture of llama.cpp (src/models/jamba.cpp): three layers, Mamba, attention,
Mamba (a layer with ``head_count_kv`` 0 is a Mamba layer), each with a dense feed-forward block.
The tokenizer is a byte-level BPE ("gpt2" with the GPT-2 pre-tokenizer) with the special tokens
of Jamba Reasoning 3B's chat template, and the GGUF carries that template, so llama-server
renders prompts, finds reasoning and Hermes tool calls exactly as it does for the real model.

How the answers are fixed (any temperature, any sampler): the Mamba and feed-forward output
projections are zero, so the residual stream holds the current token's embedding (a one-hot
direction per token plus a constant "bias" direction), plus what the attention layer writes.
Jamba's attention layers have no RoPE; here the query is constant and only marker tokens have
keys, so a marker anywhere in the prompt takes the attention of every later position, and its
value writes that marker's *mode* direction into the residual. The output head is a bigram table
over unique "chain" tokens (each piece of a chain is a token of its own), plus two branch points
that read the mode: the prompt's end (the template's generation prompt ends ``<think>\\n``) starts
the mode's reasoning, and ``</think>`` starts the mode's answer. Without a marker the default
chains run. Markers, strongest first (a tool result outranks the request that led to it):

- ``<tool_response>`` (a tool result is in the prompt): mode ``answer``
- `` multiply`` (the word, after a space, as a user writes it; the tools block's ``"multiply"``
  is not it): mode ``tool``, a Hermes call ``multiply(a=3, b=4)``
- ``#json``: mode ``json``, a fixed JSON object
- ``#long``: mode ``long``, 40 reasoning tokens before the answer (for ``max_tokens`` runs out)
- ``#loop``: mode ``loop``, a short reasoning, then an answer that never ends (until
  ``max_tokens`` or the context runs out: for long streams)

``chains.json`` beside the model gives, per mode, the pieces of its reasoning and of its answer
(each piece one token; the answer is followed by the end-of-sequence token ``<|im_end|>``), the
markers and the special tokens, for the tests to compare against. The builder checks, with the
same arithmetic in numpy, that every mode follows its chain with a margin of at least
``MARGIN`` logits over every other token.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path

import gguf
import numpy as np

# Jamba Reasoning 3B's chat template, in chat_template.jinja beside this file. The text down to
# the tools block and the start of the reverse scan is as LM Studio's model page for
# ai21labs/jamba-reasoning-3b ships it (https://lmstudio.ai/models/ai21labs/jamba-reasoning-3b);
# the rest as in the Hugging Face repository ai21labs/AI21-Jamba-Reasoning-3B (chat_template in
# tokenizer_config.json), without its indentation (whitespace between ``{%- %}`` tags is trimmed
# either way).
CHAT_TEMPLATE = (Path(__file__).parent / "chat_template.jinja").read_text()

BOS, EOS = "<|startoftext|>", "<|im_end|>"
# Special tokens as a Hugging Face tokenizer marks them: control tokens (never printed) and the
# template's tags, which are added but printed (llama.cpp: CONTROL and USER_DEFINED).
CONTROL = [BOS, "<|endoftext|>", "<|im_start|>", EOS]
TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
THINK_END = "</think>"

MARKERS = {
    "<tool_response>": "answer",
    " multiply": "tool",
    "#json": "json",
    "#long": "long",
    "#loop": "loop",
}
# Attention score of each marker (before softmax); the strongest marker in a prompt wins.
MARKER_SCORE = {marker: 80.0 if mode == "answer" else 50.0 for marker, mode in MARKERS.items()}

# mode -> (reasoning pieces, answer pieces); every piece is one token, unique across chains.
CHAINS: dict[str, tuple[list[str], list[str]]] = {
    "default": (
        ["The user", " greets me;", " a short greeting", " will do.\n"],
        ["\n\nHello", " from", " a tiny", " Jamba."],
    ),
    "tool": (
        ["The user wants", " a product;", " the multiply tool", " computes it.\n"],
        [
            "\n\n",
            "<tool_call>",
            '\n{"name": "multiply", ',
            '"arguments": {"a": 3, "b": 4}}',
            "\n</tool_call>",
        ],
    ),
    "answer": (
        ["The tool", " returned", " 12.\n"],
        ["\n\nThe product", " is 12."],
    ),
    "json": (
        ["A JSON object", " is wanted.\n"],
        ['\n\n{"name": ', '"pen", ', '"count": 3}'],
    ),
    "long": (
        [f" step {i}" for i in range(1, 41)] + [" and done.\n"],
        ["\n\nFinally", " an answer."],
    ),
    # never ends: its answer's last piece leads back to the one after its first (LOOP_BACK)
    "loop": (
        ["Looping", " forever.\n"],
        ["\n\nRound", " and round", " and again"],
    ),
}
LOOP_BACK = {"loop": 1}  # mode -> the answer piece its last piece leads to (instead of EOS)
MODES = [m for m in CHAINS if m != "default"]

# Logit targets (the builder checks the margins): a chain link, the two branch points, and the
# mode's pull on its chain's first tokens (smaller than a link, so a started chain continues).
LINK = 120.0
BRANCH = 60.0  # '</think>' -> an answer's first token
MODE_REASONING = 80.0  # mode -> its reasoning's first token
MODE_ANSWER = 40.0  # mode -> its answer's first token (with BRANCH after '</think>')
DEFAULT_REASONING = 40.0  # no mode -> the default reasoning's first token
DEFAULT_ANSWER = 20.0  # no mode -> the default answer's first token (with BRANCH)
MARGIN = 19.0  # the design above gives 20 at the closest branch

N_MERGES = 300
CORPUS = [
    CHAT_TEMPLATE,
    "Begin by thinking about the reasoning process in the mind within tags and then proceed "
    "to give your response.",
    '{"type": "function", "function": {"name": "multiply", "description": "Multiply two '
    'integers and return the product.", "parameters": {"properties": {"a": {"title": "A", '
    '"type": "integer"}, "b": {"title": "B", "type": "integer"}}, "required": ["a", "b"], '
    '"type": "object"}}}',
    "You are a helpful assistant. Answer the question with the documents and the tools.",
    "What is 3 times 4? Please multiply 3 by 4. Hello, how are you today? Tell me about Paris.",
    "Paris is the capital of France. The quick brown fox jumps over the lazy dog. "
    "Answer the question using the documents below. Context information is below.",
]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable character table (every byte-level BPE uses it)."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


BYTE_CHARS = bytes_to_unicode()
# GPT-2's pre-tokenizer (llama.cpp's "gpt-2" pre type) on ASCII text, which is all the corpus has.
PRE_TOKENIZE = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"""
)


def train_merges() -> tuple[list[str], list[str]]:
    """A small byte-level BPE: the merged tokens and the merges, most frequent pair first."""
    words: Counter[tuple[str, ...]] = Counter()
    for text in CORPUS:
        for word in PRE_TOKENIZE.findall(text):
            words[tuple(BYTE_CHARS[b] for b in word.encode())] += 1
    tokens: list[str] = []
    merges: list[str] = []
    for _ in range(N_MERGES):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        (a, b), count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if count < 2:
            break
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, n in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return tokens, merges


def build_vocab() -> tuple[list[str], list[int], list[str]]:
    merged, merges = train_merges()
    pieces = [p for reasoning, answer in CHAINS.values() for p in reasoning + answer]
    if len(set(pieces)) != len(pieces) or set(pieces) & set(MARKERS):
        raise SystemExit("a chain piece is repeated, or is a marker")
    added = list(dict.fromkeys([*TAGS, *MARKERS, *pieces]))
    normal = [BYTE_CHARS[b] for b in range(256)] + list(dict.fromkeys(merged))
    tokens = normal + CONTROL + added
    types = (
        [gguf.TokenType.NORMAL] * len(normal)
        + [gguf.TokenType.CONTROL] * len(CONTROL)
        + [gguf.TokenType.USER_DEFINED] * len(added)
    )
    if len(set(tokens)) != len(tokens):
        clash = [t for t, n in Counter(tokens).items() if n > 1]
        raise SystemExit(f"tokens with the same text: {clash}")
    return tokens, [int(t) for t in types], merges


def logits(
    head: np.ndarray, embed: np.ndarray, mode_vec: np.ndarray | None, token: int
) -> np.ndarray:
    """The model's logits at a position holding ``token``, with ``mode_vec`` (what the
    attention layer wrote) or none: the same arithmetic as the graph, layers that add zero left
    out (final RMSNorm with weight 1, then the output head)."""
    x = embed[token] + (mode_vec if mode_vec is not None else 0.0)
    x = x / np.sqrt(np.mean(x * x) + 1e-6)
    return head @ x


def build(out: Path) -> None:
    tokens, types, merges = build_vocab()
    tid = {t: i for i, t in enumerate(tokens)}
    vocab = len(tokens)
    n_modes = len(MODES)
    bias_dim = 0
    mode_dim = {m: 1 + vocab + i for i, m in enumerate(MODES)}
    hidden = -(-(1 + vocab + n_modes) // 64) * 64
    n_head, n_ff, d_state, d_conv = 4, 32, 16, 4
    head_dim = hidden // n_head
    d_inner = 2 * hidden  # llama.cpp supports only an expansion factor of 2 for Jamba
    dt_rank = -(-hidden // 16)

    embed = np.zeros((vocab, hidden), dtype=np.float32)
    embed[:, bias_dim] = 1.0
    embed[np.arange(vocab), 1 + np.arange(vocab)] = 1.0
    s = float(np.sqrt(hidden / 2.0))  # what attn_norm multiplies an embedding by (norm sqrt 2)

    # The attention layer: a constant query, keys on markers only, each marker's value a
    # direction of its own (head 0 only; the other heads have no query and no value).
    wq = np.zeros((hidden, hidden), dtype=np.float32)
    wk = np.zeros((hidden, hidden), dtype=np.float32)
    wv = np.zeros((hidden, hidden), dtype=np.float32)
    wo = np.zeros((hidden, hidden), dtype=np.float32)
    wq[0, bias_dim] = 1.0 / s  # q[0] = 1 at every position
    mode_unit = 1.0  # size of the mode direction in the residual
    for i, (marker, mode) in enumerate(MARKERS.items()):
        wk[0, 1 + tid[marker]] = MARKER_SCORE[marker] * np.sqrt(head_dim) / s
        wv[1 + i, 1 + tid[marker]] = 1.0 / s
        wo[mode_dim[mode], 1 + i] = mode_unit

    # The output head. Scales: after the final RMSNorm a component of size 1 reads s3 with a
    # mode present (three unit components) and s2 without (two).
    s2, s3 = np.sqrt(hidden / 2.0), np.sqrt(hidden / 3.0)
    head = np.zeros((vocab, hidden), dtype=np.float32)
    eos, think_end = tid[EOS], tid[THINK_END]
    successor: dict[int, int] = {}
    for mode, (reasoning, answer) in CHAINS.items():
        ids = [tid[p] for p in reasoning] + [think_end]
        ids_answer = [tid[p] for p in answer]
        ids_answer.append(ids_answer[LOOP_BACK[mode]] if mode in LOOP_BACK else eos)
        for a, b in [*itertools.pairwise(ids), *itertools.pairwise(ids_answer)]:
            if a in successor:
                raise SystemExit(f"token {tokens[a]!r} is in two chains")
            successor[a] = b
            head[b, 1 + a] += LINK / s3
        first_reasoning, first_answer = ids[0], ids_answer[0]
        head[first_answer, 1 + think_end] += BRANCH / s3
        if mode == "default":
            head[first_reasoning, bias_dim] += DEFAULT_REASONING / s2
            head[first_answer, bias_dim] += DEFAULT_ANSWER / s2
        else:
            head[first_reasoning, mode_dim[mode]] += MODE_REASONING / (mode_unit * s3)
            head[first_answer, mode_dim[mode]] += MODE_ANSWER / (mode_unit * s3)
    check(tokens, tid, embed, head, successor, mode_dim)

    writer = gguf.GGUFWriter(str(out / "tiny-jamba.gguf"), "jamba")
    writer.add_name("tiny-jamba-reasoning")
    writer.add_block_count(3)
    writer.add_context_length(262144)  # Jamba Reasoning 3B's trained context (256K)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv([0, n_head, 0])  # Mamba, attention, Mamba
    writer.add_ssm_conv_kernel(d_conv)
    writer.add_ssm_inner_size(d_inner)
    writer.add_ssm_state_size(d_state)
    writer.add_ssm_time_step_rank(dt_rank)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tid[BOS])
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(False)  # the template writes bos_token itself
    writer.add_chat_template(CHAT_TEMPLATE)

    def name(tensor: gguf.MODEL_TENSOR, bid: int | None = None, suffix: str = ".weight") -> str:
        return gguf.TENSOR_NAMES[tensor].format(bid=bid) + suffix

    T = gguf.MODEL_TENSOR
    ones = np.ones(hidden, dtype=np.float32)
    writer.add_tensor(name(T.TOKEN_EMBD), embed)
    writer.add_tensor(name(T.OUTPUT_NORM), ones)
    writer.add_tensor(name(T.OUTPUT), head)
    rng = np.random.default_rng(0)

    def small(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    for bid in range(3):
        writer.add_tensor(name(T.ATTN_NORM, bid), ones)
        if bid == 1:
            writer.add_tensor(name(T.ATTN_Q, bid), wq)
            writer.add_tensor(name(T.ATTN_K, bid), wk)
            writer.add_tensor(name(T.ATTN_V, bid), wv)
            writer.add_tensor(name(T.ATTN_OUT, bid), wo)
        else:
            # A working Mamba block (small random mixing, stable decay) whose output projection
            # is zero: it runs on every token and adds nothing to the residual.
            writer.add_tensor(name(T.SSM_IN, bid), small(2 * d_inner, hidden))
            writer.add_tensor(name(T.SSM_CONV1D, bid), small(d_inner, d_conv))
            writer.add_tensor(name(T.SSM_CONV1D, bid, ".bias"), np.zeros(d_inner, np.float32))
            writer.add_tensor(name(T.SSM_X, bid), small(dt_rank + 2 * d_state, d_inner))
            writer.add_tensor(name(T.SSM_DT_NORM, bid), np.ones(dt_rank, np.float32))
            writer.add_tensor(name(T.SSM_DT, bid), small(d_inner, dt_rank))
            writer.add_tensor(name(T.SSM_DT, bid, ".bias"), np.zeros(d_inner, np.float32))
            writer.add_tensor(name(T.SSM_B_NORM, bid), np.ones(d_state, np.float32))
            writer.add_tensor(name(T.SSM_C_NORM, bid), np.ones(d_state, np.float32))
            a = -np.tile(np.arange(1, d_state + 1, dtype=np.float32), (d_inner, 1))
            writer.add_tensor(name(T.SSM_A, bid, ""), a)
            writer.add_tensor(name(T.SSM_D, bid, ""), np.ones(d_inner, np.float32))
            writer.add_tensor(name(T.SSM_OUT, bid), np.zeros((hidden, d_inner), np.float32))
        writer.add_tensor(name(T.FFN_NORM, bid), ones)
        writer.add_tensor(name(T.FFN_GATE, bid), small(n_ff, hidden))
        writer.add_tensor(name(T.FFN_UP, bid), small(n_ff, hidden))
        writer.add_tensor(name(T.FFN_DOWN, bid), np.zeros((hidden, n_ff), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    (out / "chains.json").write_text(
        json.dumps(
            {
                "modes": {m: {"reasoning": r, "answer": a} for m, (r, a) in CHAINS.items()},
                "loop_back": LOOP_BACK,
                "markers": MARKERS,
                "eos": EOS,
                "bos": BOS,
                "chat_template": CHAT_TEMPLATE,
            },
            indent=2,
        )
        + "\n"
    )


def check(
    tokens: list[str],
    tid: dict[str, int],
    embed: np.ndarray,
    head: np.ndarray,
    successor: dict[int, int],
    mode_dim: dict[str, int],
) -> None:
    """Each mode follows its chains from any prompt end, by at least MARGIN logits."""
    # Branch-free tokens a prompt may end with: every token that is not in a chain.
    prompt_ends = [i for i in range(len(tokens)) if i not in successor and tokens[i] != THINK_END]
    for mode, (reasoning, answer) in CHAINS.items():
        vec = None
        if mode != "default":
            vec = np.zeros(embed.shape[1], dtype=np.float32)
            vec[mode_dim[mode]] = 1.0
        expected = dict(successor)
        expected[tid[THINK_END]] = tid[answer[0]]
        for end in prompt_ends:
            expected[end] = tid[reasoning[0]]
        for token, want in expected.items():
            if token == tid[EOS]:
                continue
            row = logits(head, embed, vec, token)
            best = int(np.argmax(row))
            margin = row[want] - np.max(np.delete(row, want))
            if best != want or margin < MARGIN:
                raise SystemExit(
                    f"mode {mode}: after {tokens[token]!r} the model prefers {tokens[best]!r} "
                    f"to {tokens[want]!r} (margin {margin:.1f})"
                )


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    build(target)
