"""Build a tiny model of a real architecture (Qwen2) with a byte-level BPE tokenizer trained on the spot.

There is no model hub here; the demo and the tests load this model by path through exactly the code
that loads a real one. Random weights: it learns the toy data quickly and that is all it is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from services.common.chat_templates import CHATML

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

CHAT_TEMPLATE = CHATML
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "You are a helpful assistant.",
    "What is the capital of France? The capital of France is Paris.",
    "Translate 'good morning' into German: Guten Morgen.",
    "Write a Python function that adds two numbers: def add(a, b): return a + b",
    "The quick brown fox jumps over the lazy dog.",
    "Fine-tuning adapts a pretrained language model to a task with a small dataset.",
    "user assistant system instruction input output prompt completion",
    "0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } : ; , . ! ? ' \"",
]


def build_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


# Real Qwen2.5 shapes (as in their config.json), for benchmarks and GPU measurements: random weights.
SHAPES: dict[str, dict[str, int | bool]] = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
}


def make_tiny_model(out_dir: str | Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0,
                    shape: str | None = None) -> Path:
    """Write a random-weight Qwen2 model and its tokenizer to `out_dir`; returns the path.

    `shape` names a real model's shape in SHAPES (its vocabulary is kept; the tokenizer uses the first
    ids): built on the GPU in bf16 when there is one, so a 1.5B shape takes seconds."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    dims: dict[str, int | bool] = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    if shape is not None:
        dims = dict(SHAPES[shape])
    config = Qwen2Config(
        **dims,
        max_position_embeddings=32768 if shape else 2048,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    if shape is not None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.device(device):
            model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    else:
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
