"""Build the tiny local stand-in for Jamba Reasoning 3B that tests/vllm serves (run with the vLLM
venv's python).

    python scripts/vllm/build_reasoning_model.py OUT_DIR

Nothing is downloaded: the tokenizer is trained here with ``tokenizers`` and the weights are made
here with ``torch``.

**The chat template** is Jamba Reasoning 3B's own: ``jamba_reasoning_3b.jinja`` beside this
script is the ``chat_template.jinja`` of the Hugging Face repository
``ai21labs/AI21-Jamba-Reasoning-3B`` (LM Studio's model page ``ai21labs/jamba-reasoning-3b``
shows it too, with its ``<tool_response>`` test spelled without ``startswith``). Neither site is
reachable from here: the text was put together from that page and public copies of the Hugging
Face file, which agree; it renders the same, while its indentation may differ. Nothing was
added to it for determinism: the continuation is keyed by the weights on marker tokens in the
prompt (below), which the template passes through unchanged.

The tokenizer has the template's tokens as single tokens: ``<|startoftext|>`` (BOS),
``<|im_start|>``, ``<|im_end|>`` (EOS, the end of a ChatML turn), and ``<think>``, ``</think>``,
``<tool_call>``, ``</tool_call>``, ``<tool_response>``, ``</tool_response>`` as ordinary
(non-special) added tokens: vLLM's ``deepseek_r1`` reasoning parser and ``hermes`` tool parser
look them up in the vocabulary, and a server without parsers returns them in ``content``.

**The weights.** A one-layer ``LlamaForCausalLM`` (vLLM's CPU build cannot run Jamba's Mamba
layers; the OpenAI layer, the parsers and the template are what is tested). Embeddings are
orthonormal; the MLP writes nothing. One attention head finds the *mode* of the prompt: RoPE is
made negligible (a huge ``rope_theta``, and the head uses only the slowest-turning dimension),
every query is the same, and each marker token's key scores it above everything else, so the
highest-priority marker anywhere in the prompt takes the whole attention of every later position
and its value writes that mode's direction into the residual stream. ``<|startoftext|>`` (always
first) is the weakest marker: no other marker, the default mode. The markers, strongest first:

- ``<tool_response>`` (a tool result was rendered): answer with the product;
- ``Use multiply`` (one token; tools offered or not): call ``multiply`` Hermes-style;
- ``#json``: answer in JSON;
- ``<|startoftext|>``: the default answer.

The output logits are a bigram table (each chain piece makes the next one win by 60) plus the
mode: the mode's first reasoning piece gets 40 everywhere, its first answer piece 20 everywhere
and 30 more right after ``</think>`` (so ``</think>``, shared by all chains, leads to the mode's
answer). The prompt always ends with ``<think>\\n``, so generation starts the mode's reasoning,
then follows its chain to ``</think>``, the answer and EOS, greedy or sampled alike.

A few tokens also get a small logit everywhere, for the answers vLLM's guided decoding forces
(``tool_choice`` ``"required"`` or a named function: the hermes parser then constrains the
``<tool_call>`` envelope with a structural tag, and the arguments are free JSON; guided decoding
starts after ``</think>`` with the reasoning parser): ``<tool_call>`` (12), ``\\n{"name": "`` and
``", "arguments": `` (8 each) and the arguments ``{"a": 3, "b": 4}}\\n`` (9). Where the chain's
next piece is not allowed, the best allowed one of these wins, so a forced call to any tool is
``<tool_call>\\n{"name": "<tool>", "arguments": {"a": 3, "b": 4}}\\n</tool_call>``.

The chains (mode: reasoning pieces, answer pieces; each piece one token) are written to
``chains.json`` beside the model for the tests to compare against.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
CHAT_TEMPLATE = (HERE / "jamba_reasoning_3b.jinja").read_text()

HIDDEN = 512  # > vocabulary + modes + 1: every token and mode gets its own orthogonal direction
HEADS, HEAD_DIM = 8, 64
VOCAB_TARGET = 400
LINK = 60.0  # a chain piece -> the next piece
REASON_START = 40.0  # the mode -> its first reasoning piece
ANSWER_START = 20.0  # the mode -> its first answer piece
AFTER_THINK = 30.0  # </think> -> every mode's first answer piece

BOS, EOS = "<|startoftext|>", "<|im_end|>"
SPECIAL = [BOS, EOS, "<|im_start|>"]
TEMPLATE_TOKENS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]
THINK_END = "</think>"

# mode -> (marker token, reasoning pieces, answer pieces); markers from weakest to strongest.
MODES: dict[str, tuple[str, list[str], list[str]]] = {
    "default": (
        BOS,
        ["The user", " says hi."],
        ["Hello", " from", " a", " tiny", " Jamba."],
    ),
    "json": ("#json", ["Answer", " in JSON."], ['{"name": ', '"pen"', ', "count": ', "3", "}"]),
    "tool": (
        "Use multiply",
        ["Three times four", " needs the tool."],
        [
            "<tool_call>",
            '\n{"name": "multiply", "arguments": ',
            '{"a": 3, "b": 4}}\n',
            "</tool_call>",
        ],
    ),
    "tool_result": ("<tool_response>", ["The tool", " returned 12."], ["The product", " is 12."]),
}
# Guided decoding's picks when the chain's next piece is not allowed (piece: logit everywhere).
GUIDED = {
    "<tool_call>": 12.0,
    '\n{"name": "': 8.0,
    '", "arguments": ': 8.0,
    '{"a": 3, "b": 4}}\n': 9.0,
}
MARKER_SCORE = 40.0  # attention score of the weakest marker; each stronger one 40 more

CORPUS = [
    "You are a helpful assistant. Answer the question with the documents and the tools.",
    "What is 3 times 4? Multiply two integers and return the product. Add two integers.",
    '{"type": "function", "function": {"name": "multiply", "description": "Multiply",'
    ' "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}',
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within XML tags:",
    "For each function call, return a json object with function name and arguments within",
    "Begin by thinking about the reasoning process in the mind within tags and then proceed "
    "to give your response.",
    "The quick brown fox jumps over the lazy dog. Name a pen and a count as JSON.",
    "Paris is the capital of France. Hello world, this is a tiny test model for vLLM.",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    pieces = [*TEMPLATE_TOKENS]
    for marker, reasoning, answer in MODES.values():
        pieces += [marker, *reasoning, *answer]
    pieces += list(GUIDED)
    pieces = [p for p in dict.fromkeys(pieces) if p not in SPECIAL]
    tokenizer.add_tokens([AddedToken(p, normalized=False) for p in pieces])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def token_id(tok: PreTrainedTokenizerFast, text: str) -> int:
    ids = tok.convert_tokens_to_ids([text])
    if len(ids) != 1 or ids[0] is None or ids[0] == tok.unk_token_id:
        raise SystemExit(f"{text!r} is not one token")
    return int(ids[0])


def build(out: Path) -> None:
    tok = build_tokenizer()
    vocab = len(tok)
    n_modes = len(MODES)
    if vocab + 1 + n_modes > HIDDEN:
        raise SystemExit(f"vocabulary {vocab} too large for hidden size {HIDDEN}")
    eos, think_end = token_id(tok, EOS), token_id(tok, THINK_END)

    # link[a][b]: the logit token a gives its successor b (a bigram table, chains only).
    link: dict[int, dict[int, float]] = {}
    for _, reasoning, answer in MODES.values():
        for chain in (reasoning, [*answer, EOS]):
            ids = [token_id(tok, p) for p in chain]
            for a, b in itertools.pairwise(ids):
                if a in link:
                    raise SystemExit(f"{tok.convert_ids_to_tokens(a)!r} is in two chains")
                link[a] = {b: LINK}
        link.setdefault(think_end, {})[token_id(tok, answer[0])] = AFTER_THINK
        link[token_id(tok, reasoning[-1])] = {think_end: LINK}

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=4096,
        rope_theta=1e9,
        rms_norm_eps=1e-6,
        bos_token_id=token_id(tok, BOS),
        eos_token_id=eos,
        pad_token_id=eos,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    scale = HIDDEN**0.5  # RMSNorm maps a vector of norm n to norm sqrt(HIDDEN) (weights 1)
    # Residual directions: one per token (e), one shared by all tokens (c), one per mode (u).
    basis, _ = torch.linalg.qr(torch.randn(HIDDEN, HIDDEN, dtype=torch.float64))
    basis = basis.T.float()
    e, c, u = basis[:vocab], basis[vocab], basis[vocab + 1 : vocab + 1 + n_modes]
    norm_in = 2**0.5  # |e_t + c|: the input of the attention layer
    norm_out = 3**0.5  # |e_t + c + u_mode|: the input of the final norm
    # The slowest-turning RoPE dimension of head 0 (rotate_half pairs i with i + HEAD_DIM/2).
    qk_dim = HEAD_DIM // 2 - 1
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(e + c)
        attn = model.model.layers[0].self_attn
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj):
            proj.weight.zero_()
        model.model.layers[0].mlp.down_proj.weight.zero_()
        for norm in (model.model.layers[0].input_layernorm, model.model.norm):
            norm.weight.fill_(1.0)
        read = norm_in / scale  # turns a normalised input back into unit directions
        # Every query is HEAD_DIM**0.5 along qk_dim, so a key of s scores s.
        attn.q_proj.weight[qk_dim] = c * read * HEAD_DIM**0.5
        for i, (marker, _, _) in enumerate(MODES.values()):
            t = token_id(tok, marker)
            attn.k_proj.weight[qk_dim] += e[t] * read * MARKER_SCORE * (i + 1)
            attn.v_proj.weight[i] += e[t] * read  # value: 1 on head 0's dimension i
            attn.o_proj.weight[:, i] = u[i]  # ... written as the mode's direction
        head = torch.zeros(vocab, HIDDEN)
        back = norm_out / scale
        for a, successors in link.items():
            for b, logit in successors.items():
                head[b] += e[a] * logit * back
        for i, (_, reasoning, answer) in enumerate(MODES.values()):
            head[token_id(tok, reasoning[0])] += u[i] * REASON_START * back
            head[token_id(tok, answer[0])] += u[i] * ANSWER_START * back
        for piece, logit in GUIDED.items():
            head[token_id(tok, piece)] += c * logit * back
        model.lm_head.weight.copy_(head)
    check(model, tok)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    chains = {mode: {"reasoning": r, "answer": a} for mode, (_, r, a) in MODES.items()}
    (out / "chains.json").write_text(json.dumps(chains, indent=2) + "\n")


def check(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast) -> None:
    """Greedy decoding in transformers follows each mode's chain from a rendered prompt."""
    tools = [{"type": "function", "function": {"name": "multiply", "parameters": {}}}]
    prompts = {
        "default": [{"role": "user", "content": "Hi"}],
        "json": [{"role": "user", "content": "Name a pen. #json"}],
        "tool": [{"role": "user", "content": "What is 3 times 4? Use multiply."}],
        "tool_result": [
            {"role": "user", "content": "What is 3 times 4? Use multiply."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "multiply", "arguments": '{"a": 3, "b": 4}'}}],
            },
            {"role": "tool", "content": "12"},
        ],
    }
    for mode, messages in prompts.items():
        ids = tok.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), max_new_tokens=24, do_sample=False, eos_token_id=None
            )
        got = tok.decode(out[0][len(ids) :])
        _, reasoning, answer = MODES[mode]
        want = "".join(reasoning) + THINK_END + "".join(answer) + EOS
        if not got.startswith(want):
            raise SystemExit(f"mode {mode}: the model says {got!r}, not {want!r}")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
