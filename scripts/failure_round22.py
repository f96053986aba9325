"""The failure corpus's twenty-second round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with few development
causes or low held-out totals (chosen from the categories' counts and totals, never from a log): a
model's config with values its architecture refuses, an optimizer or launcher setting out of range,
token ids past the embedding reached through DPO, and 8-bit loading on a CPU.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 22 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 22

SHARED = [
    ("rope_type_unknown", "model config naming a RoPE scaling type that does not exist", "INVALID_CONFIG",
     "MODEL_LOAD", "config.json's rope_parameters say rope_type \"spiral\"", {"model": "rope-unknown"}),
    ("heads_not_dividing_hidden", "model config whose attention heads do not divide its hidden size",
     "INVALID_CONFIG", "MODEL_LOAD", "config.json says num_attention_heads 5 over hidden_size 64",
     {"model": "heads-five"}),
    ("dpo_embedding_smaller_than_tokenizer", "DPO with an embedding smaller than the tokenizer",
     "TOKEN_ID_OUT_OF_RANGE", "TRAINING", "DPO on the model whose embedding has 300 rows, with a 486-token tokenizer",
     {"model": "small-vocab", "data": "preference-chat.jsonl", "config": {"method": "dpo"}, "trainer": "dpo"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("adam_epsilon_negative", "negative Adam epsilon", "INVALID_CONFIG", "STARTUP", "adam_epsilon -1e-8",
     {"args": {"adam_epsilon": -1e-8}}),
    ("ddp_backend_unknown", "distributed backend that does not exist", "INVALID_CONFIG", "STARTUP",
     "ddp_backend \"carrier-pigeon\"", {"args": {"ddp_backend": "carrier-pigeon"}}),
    ("eight_bit_on_cpu", "8-bit loading on a CPU", "QUANTIZATION_UNSUPPORTED", "MODEL_LOAD",
     "from_pretrained with a bitsandbytes 8-bit quantization_config on a CPU-only machine",
     {"model_kwargs": {"quantization_config": {"quant_method": "bitsandbytes", "load_in_8bit": True}}}),
]


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def edit(**values):
        def change(path: Path) -> None:
            config = json.loads((path / "config.json").read_text())
            config.update(values)
            (path / "config.json").write_text(json.dumps(config))
        return change

    variant("rope-unknown", edit(rope_parameters={"rope_theta": 10000.0, "rope_type": "spiral"}))
    variant("heads-five", edit(num_attention_heads=5))
