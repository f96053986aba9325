"""The failure corpus's twenty-sixth round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with few development
causes or low held-out totals (chosen from the categories' counts and totals, never from a log):
token ids (a negative id in pre-tokenized rows, an end-of-sequence token the vocabulary lacks),
precision (weights loaded as integers or complex numbers, float16 weights under fp16 mixed precision
on a CPU, bfloat16 autocast over float16 weights), evaluation settings (a schedule that does not
exist, a step count written as text; evaluation every 0 steps was written down too, but the first
cases have it: it kept no log, and its row was taken out), more settings written as text (seed, epochs,
weight decay, LoRA rank, NEFTune's noise), and a chat template that is an empty string.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 26 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 26

SHARED = [
    ("chat_template_empty", "chat template that is an empty string", "CHAT_TEMPLATE_MISSING", "DATA_PREP",
     "tokenizer_config.json's chat_template is \"\" and there is no chat_template.jinja", {"model": "template-empty"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("negative_token_id", "pre-tokenized rows holding a negative token id", "TOKEN_ID_OUT_OF_RANGE", "TRAINING",
     "SFT on input_ids rows, each with an id of -3", {"data": "negative-ids.jsonl"}),
    ("eos_token_not_in_vocab", "end-of-sequence token the vocabulary does not have", "INVALID_CONFIG", "STARTUP",
     "SFTConfig eos_token \"<|nope|>\"", {"args": {"eos_token": "<|nope|>"}}),
    ("weights_loaded_as_int8", "model loaded as 8-bit integers with no quantization", "PRECISION_UNSUPPORTED",
     "MODEL_LOAD", "from_pretrained with dtype int8 and no quantization_config", {"model_kwargs": {"dtype": "int8"}}),
    ("weights_loaded_as_complex", "model loaded as complex numbers", "PRECISION_UNSUPPORTED", "MODEL_LOAD",
     "from_pretrained with dtype complex64", {"model_kwargs": {"dtype": "complex64"}}),
    ("fp16_over_half_weights_on_cpu", "fp16 mixed precision over float16 weights on a CPU", "PRECISION_UNSUPPORTED",
     "TRAINING", "fp16 True, use_cpu, model loaded with dtype float16", {
         "args": {"fp16": True}, "model_kwargs": {"dtype": "float16"}, "peft": None}),
    ("bf16_autocast_over_half_weights", "bfloat16 autocast over float16 weights on a CPU", "PRECISION_UNSUPPORTED",
     "TRAINING", "bf16 True, use_cpu, model loaded with dtype float16", {
         "args": {"bf16": True}, "model_kwargs": {"dtype": "float16"}, "peft": None}),
    ("eval_strategy_unknown", "evaluation schedule that does not exist", "EVAL_CONFIG", "STARTUP",
     "eval_strategy \"sometimes\" with an eval file", {"eval": "chat.jsonl", "args": {"eval_strategy": "sometimes"}}),
    ("eval_steps_as_text", "evaluation step count written as text", "EVAL_CONFIG", "STARTUP",
     "eval_strategy steps, eval_steps \"2\", with an eval file", {
         "eval": "chat.jsonl", "args": {"eval_strategy": "steps", "eval_steps": "2"}}),
    ("seed_as_text", "seed written as text", "INVALID_CONFIG", "STARTUP", "seed \"42\"", {"args": {"seed": "42"}}),
    ("epochs_as_text", "number of epochs written as text", "INVALID_CONFIG", "STARTUP",
     "num_train_epochs \"1\" with no step limit", {"args": {"num_train_epochs": "1", "max_steps": -1}}),
    ("weight_decay_as_text", "weight decay written as text", "INVALID_CONFIG", "STARTUP", "weight_decay \"0.01\"",
     {"args": {"weight_decay": "0.01"}}),
    ("lora_rank_as_text", "LoRA rank written as text", "INVALID_CONFIG", "MODEL_LOAD", "LoraConfig r \"8\"",
     {"peft": {"r": "8", "lora_alpha": 16, "target_modules": "all-linear"}}),
    ("neftune_noise_as_text", "NEFTune noise written as text", "INVALID_CONFIG", "TRAINING",
     "neftune_noise_alpha \"5\"", {"args": {"neftune_noise_alpha": "5"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    (root / "negative-ids.jsonl").write_text("".join(
        json.dumps({"input_ids": [5 + (i + j) % 40 for j in range(12)] + [-3]}) + "\n" for i in range(64)))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def template_empty(path: Path) -> None:
        for f in path.glob("chat_template.*"):
            f.unlink()
        config = json.loads((path / "tokenizer_config.json").read_text())
        config["chat_template"] = ""
        (path / "tokenizer_config.json").write_text(json.dumps(config))

    variant("template-empty", template_empty)
