"""The failure corpus's twenty-ninth round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with few development
causes or low held-out totals (chosen from the categories' counts and totals, never from a log):
a learned position table shorter than the sequences in another architecture (OPT's), precisions
asked where they cannot run (bfloat16 autocast over float64 weights, fp8 mixed precision asked
through accelerate's environment), LoRA targets that match nothing by a regular expression or by
excluding every target, rows without what a setting needs (assistant-only loss on prompt/completion
rows), text that is a number, and a negative sequence length.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 29 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 29

SHARED = [
    ("opt_positions_shorter_than_rows", "OPT-shaped model with 16 learned positions, rows longer than that",
     "SEQUENCE_TOO_LONG", "TRAINING", "an OPT model with max_position_embeddings 16 trained on chat rows with a "
     "sequence length of 64", {"model": "opt-16-positions"}),
    ("text_as_number", "text rows whose text is a number", "DATASET_FORMAT", "DATA_PREP",
     "every row's text is a JSON number", {"data": "text-number.jsonl"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("accelerate_env_fp8", "fp8 mixed precision asked through accelerate's environment", "PRECISION_UNSUPPORTED",
     "STARTUP", "ACCELERATE_MIXED_PRECISION=fp8 in the trainer's environment on a CPU-only machine",
     {"env": {"ACCELERATE_MIXED_PRECISION": "fp8"}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("bf16_autocast_over_float64", "bfloat16 autocast over float64 weights", "PRECISION_UNSUPPORTED", "TRAINING",
     "bf16 True, model loaded with dtype float64, no adapter", {
         "args": {"bf16": True}, "model_kwargs": {"dtype": "float64"}, "peft": None}),
    ("lora_targets_regex_matching_nothing", "LoRA targets given as a regular expression that matches no module",
     "LORA_TARGET_MODULES", "MODEL_LOAD", "LoraConfig target_modules \"q_proj|k_proj\" (a full match of whole "
     "module names)", {"peft": {"r": 4, "lora_alpha": 8, "target_modules": "q_proj|k_proj"}}),
    ("lora_excluding_every_target", "LoRA excluding every module it targets", "LORA_TARGET_MODULES", "MODEL_LOAD",
     "LoraConfig target_modules [q_proj, v_proj], exclude_modules [q_proj, v_proj]", {
         "peft": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                  "exclude_modules": ["q_proj", "v_proj"]}}),
    ("assistant_loss_on_prompt_completion", "assistant-only loss on prompt/completion rows", "DATASET_SCHEMA",
     "DATA_PREP", "assistant_only_loss True on plain-text prompt/completion rows",
     {"data": "prompt-completion.jsonl", "args": {"assistant_only_loss": True}}),
    ("sequence_length_negative", "negative sequence length", "INVALID_CONFIG", "DATA_PREP", "max_length -1",
     {"args": {"max_length": -1}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    (root / "text-number.jsonl").write_text("".join(json.dumps({"text": a * 1000 + (a * 37) % 100}) + "\n"
                                                    for a in range(64)))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def opt(path: Path) -> None:
        import torch
        from transformers import AutoTokenizer, OPTConfig, OPTForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(path)
        for f in list(path.glob("*.safetensors")) + [path / "config.json", path / "generation_config.json"]:
            f.unlink(missing_ok=True)
        torch.manual_seed(0)
        config = OPTConfig(vocab_size=512, hidden_size=64, word_embed_proj_dim=64, ffn_dim=128, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=16,
                           pad_token_id=tokenizer.pad_token_id or 0, bos_token_id=tokenizer.eos_token_id,
                           eos_token_id=tokenizer.eos_token_id)
        OPTForCausalLM(config).save_pretrained(path)

    variant("opt-16-positions", opt)
