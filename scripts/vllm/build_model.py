"""Build the tiny local model that tests/vllm serves with vLLM (run with the vLLM venv's python).

    python scripts/vllm/build_model.py OUT_DIR

Nothing is downloaded: the tokenizer is trained here with ``tokenizers`` and the weights are
made here with ``torch``. The model is a 2-layer ``LlamaForCausalLM`` whose attention and MLP
outputs are zero, so each next token depends on the current token only (a bigram table), and
greedy or sampled decoding alike follow fixed chains of tokens. The chat template ends every
prompt with a mode token chosen from the conversation (a marker in the last user message, or a
tool result), and each mode token starts one chain:

- ``<|assistant|>`` (default): ``Hello from a tiny Jamba.``
- ``<|tool_mode|>`` (tools given and ``multiply`` in the last user message):
  ``<tool_calls>[{"name": "multiply", "arguments": {"a": 3, "b": 4}}]</tool_calls>``,
  the format vLLM's ``jamba`` tool parser reads (vllm/tool_parsers/jamba_tool_parser.py).
  The arguments are one piece: that parser loses argument fragments that reach it in the
  same delta as the name, and the server merges tokens into one delta when the client lags.
  Whole arguments it sends at the end, wherever the deltas fall.
- ``<|answer_mode|>`` (the last message is a tool result): ``The product is 12.``
- ``<|json_mode|>`` (``#json`` in the last user message): ``{"name": "pen", "count": 3}``

Every chain ends with the end-of-sequence token. The template also renders ``tools`` and
``documents`` (``text`` with an optional ``title``, as Jamba's own template reads them), so
they show in ``prompt_tokens``. The chains (mode token: its pieces, one token each) are written
to ``chains.json`` beside the model for the tests to compare against.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HIDDEN = 512  # >= vocabulary size, so every token gets its own orthogonal embedding
VOCAB_TARGET = 400
LOGIT = 60.0  # logit of the chosen next token (all others 0): sampling at temperature 1 is greedy

BOS, EOS = "<|bos|>", "<|eos|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant_turn|>", "<|tool|>"]
MODE_TOKENS = ["<|assistant|>", "<|tool_mode|>", "<|answer_mode|>", "<|json_mode|>"]
FRAME_TOKENS = ["<|tools|>", "<|documents|>"]
TOOL_START, TOOL_END = "<tool_calls>", "</tool_calls>"

# Each chain: mode token, then the pieces it produces (each piece one token), then EOS.
# Pieces are unique across chains, so a bigram table can hold them all.
CHAINS: dict[str, list[str]] = {
    "<|assistant|>": ["Hello", " from", " a", " tiny", " Jamba", "."],
    "<|tool_mode|>": [
        TOOL_START,
        '[{"name": "multiply", ',
        '"arguments": {"a": 3, "b": 4}',
        "}]",
        TOOL_END,
    ],
    "<|answer_mode|>": ["The product", " is", " 12", "!"],
    "<|json_mode|>": ['{"name": ', '"pen"', ', "count": ', "3", "}"],
}

CHAT_TEMPLATE = (
    "{{- '<|bos|>' -}}"
    "{%- if tools -%}{{- '<|tools|>' + (tools | tojson) + '\\n' -}}{%- endif -%}"
    "{%- if documents -%}{{- '<|documents|>' -}}"
    "{%- for d in documents -%}"
    "{%- if d.title -%}{{- '# ' + d.title + '\\n' -}}{%- endif -%}"
    "{{- d.text + '\\n' -}}"
    "{%- endfor -%}{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- set role = 'assistant_turn' if m.role == 'assistant' else m.role -%}"
    "{{- '<|' + role + '|>' -}}"
    "{%- if m.content is string -%}{{- m.content -}}{%- endif -%}"
    "{%- if m.tool_calls -%}"
    "{{- '<tool_calls>' + (m.tool_calls | tojson) + '</tool_calls>' -}}"
    "{%- endif -%}"
    "{{- '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{%- set last = messages[-1] -%}"
    "{%- set text = last.content if last.content is string else '' -%}"
    "{%- if last.role == 'tool' -%}{{- '<|answer_mode|>' -}}"
    "{%- elif tools and last.role == 'user' and 'multiply' in text -%}{{- '<|tool_mode|>' -}}"
    "{%- elif '#json' in text -%}{{- '<|json_mode|>' -}}"
    "{%- else -%}{{- '<|assistant|>' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

CORPUS = [
    "You are a helpful assistant. Answer the question with the documents and the tools.",
    "What is 3 times 4? Use the multiply tool. Multiply two integers and return the product.",
    '{"type": "function", "function": {"name": "multiply", "description": "Multiply",'
    ' "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}',
    "The quick brown fox jumps over the lazy dog. Name a pen and a count as JSON.",
    "Paris is the capital of France. Hello world, this is a tiny test model for vLLM.",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = [BOS, EOS, *ROLE_TOKENS, *MODE_TOKENS, *FRAME_TOKENS, TOOL_START, TOOL_END]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    pieces = [p for chain in CHAINS.values() for p in chain if p not in special]
    tokenizer.add_tokens([AddedToken(p, normalized=False) for p in pieces])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )


def token_id(tok: PreTrainedTokenizerFast, text: str) -> int:
    ids = tok.convert_tokens_to_ids([text])
    if len(ids) != 1 or ids[0] is None or ids[0] == tok.unk_token_id:
        raise SystemExit(f"{text!r} is not one token")
    return int(ids[0])


def build(out: Path) -> None:
    tok = build_tokenizer()
    vocab = len(tok)
    if vocab > HIDDEN:
        raise SystemExit(f"vocabulary {vocab} exceeds hidden size {HIDDEN}")
    eos = token_id(tok, EOS)
    successor = dict.fromkeys(range(vocab), eos)  # anything unplanned ends the answer
    for mode, chain in CHAINS.items():
        ids = [token_id(tok, t) for t in [mode, *chain, EOS]]
        for a, b in itertools.pairwise(ids):
            if successor[a] != eos:
                raise SystemExit(f"token {tok.convert_ids_to_tokens(a)!r} is in two chains")
            successor[a] = b

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=2048,
        bos_token_id=token_id(tok, BOS),
        eos_token_id=eos,
        pad_token_id=eos,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Orthonormal embeddings; the final RMSNorm maps each to a unit vector times sqrt(HIDDEN).
        basis, _ = torch.linalg.qr(torch.randn(HIDDEN, HIDDEN))
        embed = basis[:vocab].clone()
        model.model.embed_tokens.weight.copy_(embed)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = torch.zeros(vocab, HIDDEN)
        for a, b in successor.items():
            head[b] += embed[a] * (LOGIT / HIDDEN**0.5)
        model.lm_head.weight.copy_(head)
        model.model.norm.weight.fill_(1.0)
        check = model(torch.tensor([list(successor)])).logits[0].argmax(-1).tolist()
    if check != list(successor.values()):
        raise SystemExit("the built model does not follow its chains")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "chains.json").write_text(json.dumps(CHAINS, indent=2) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
