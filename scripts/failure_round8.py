"""The failure corpus's eighth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, spread over the categories rather than aimed at any: a row
nested too deeply, a file ending in NUL bytes, SIGTRAP, an empty weights file, a chat template that
is not text, an empty eval file, an evaluation micro-batch of 0, optimizer arguments that are not
key=value, data preparation with 0 processes, gradient checkpointing with an argument torch does
not take, an unknown DPO loss, and an unknown LoRA bias mode.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 8 scores the round alone.

A `fix` (the one config field a user would change, decided from the cause) puts a case in
bench/suggestion_fixes.py. Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 8
EVAL_EVERY_2 = {"eval_strategy": "steps", "eval_steps": 2}
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}

SHARED = [
    # data files
    ("jsonl_nested_too_deep", "a row nested thousands of levels deep", "DATASET_FORMAT", "DATA_PREP",
     "one row's user content is a list nested 100,000 levels deep", {"data": "nested-deep.jsonl"}),
    ("jsonl_nul_padding", "dataset file ending in NUL bytes", "DATASET_FORMAT", "DATA_PREP",
     "4,096 NUL bytes after the last row, as a crash while writing leaves", {"data": "nul-padded.jsonl"}),
    # model folders
    ("weights_empty_file", "base model weights file of zero bytes", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's model.safetensors is empty (0 bytes)", {"model": "empty-weights"}),
    ("chat_template_not_text", "tokenizer chat template that is a number", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
     "tokenizer_config.json's chat_template is the number 42 (no chat_template.jinja)",
     {"model": "template-number", "fix": "chat_template"}),
    # the process
    ("sigtrap_in_training", "process killed by SIGTRAP", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGTRAP (no handler installed) at the first training step", {"act": ("signal", 5)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER = [
    ("eval_file_empty", "eval dataset file that is empty", "DATASET_FORMAT", "DATA_PREP",
     "the eval file has no rows; the training file is fine",
     {"config": {"dataset": {"eval_uri": "@data/empty-eval.jsonl"}, **EVAL_EVERY_2}, "fix": "dataset.eval_uri"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("eval_file_empty", "eval dataset file that is empty", "DATASET_FORMAT", "DATA_PREP",
     "the eval file has no rows; the training file is fine", {"eval": "empty-eval.jsonl", "args": EVAL_EVERY_2}),
    ("eval_batch_size_zero", "evaluation micro-batch of 0", "EVAL_CONFIG", "EVALUATION",
     "per_device_eval_batch_size 0 with evaluation every 2 steps",
     {"eval": "chat.jsonl", "args": {**EVAL_EVERY_2, "per_device_eval_batch_size": 0}}),
    ("optim_args_malformed", "optimizer arguments that are not key=value", "INVALID_CONFIG", "STARTUP",
     "optim adamw_torch with optim_args 'betas'", {"args": {"optim": "adamw_torch", "optim_args": "betas"}}),
    ("dataset_num_proc_zero", "data preparation with 0 processes", "INVALID_CONFIG", "DATA_PREP",
     "dataset_num_proc 0", {"args": {"dataset_num_proc": 0}}),
    ("gradient_checkpointing_unknown_kwarg", "gradient checkpointing with an argument torch does not take",
     "INVALID_CONFIG", "TRAINING",
     "gradient_checkpointing True with gradient_checkpointing_kwargs {'use_reentrant': False, 'preserve_rng': True}",
     {"args": {"gradient_checkpointing": True,
               "gradient_checkpointing_kwargs": {"use_reentrant": False, "preserve_rng": True}}}),
    ("dpo_loss_type_unknown", "DPO loss type that does not exist", "INVALID_CONFIG", "STARTUP",
     "DPOTrainer with loss_type 'hinge_v9' on preference rows",
     {"trainer": "dpo", "data": "preference-chat.jsonl", "args": {"loss_type": "hinge_v9"}}),
    ("lora_bias_unknown", "LoRA bias mode that does not exist", "INVALID_CONFIG", "MODEL_LOAD",
     "LoraConfig bias 'some'", {"peft": {**LORA, "bias": "some"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    chat = (root / "chat.jsonl").read_text()
    rows = [json.loads(line) for line in chat.splitlines()]
    deep = "[" * 100_000 + "]" * 100_000
    first = json.dumps(rows[0]).replace(json.dumps(rows[0]["messages"][0]["content"]), deep, 1)
    (root / "nested-deep.jsonl").write_text(first + "\n" + "".join(json.dumps(r) + "\n" for r in rows[1:]))
    (root / "nul-padded.jsonl").write_bytes(chat.encode() + b"\x00" * 4096)
    (root / "empty-eval.jsonl").write_text("")


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def template_number(path: Path) -> None:
        for f in path.glob("chat_template.*"):
            f.unlink()
        tc = json.loads((path / "tokenizer_config.json").read_text())
        tc["chat_template"] = 42
        (path / "tokenizer_config.json").write_text(json.dumps(tc))

    variant("empty-weights", lambda p: (p / "model.safetensors").write_bytes(b""))
    variant("template-number", template_number)
