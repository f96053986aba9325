"""The failure corpus's twenty-seventh round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with few development
causes or low held-out totals (chosen from the categories' counts and totals, never from a log):
sequences cut to nothing by a tiny length, LoRA targets that match nothing by another road (a layer
index past the model, modules to save that do not exist; an empty target list was written down too,
but round eleven has that cause, so it was taken out after it ran and round eleven's log kept), rows with a value of the wrong
kind (turns as one object, a number for a completion, text that is null), and settings out of range
or written as text (loader processes, packing strategy, the evaluation micro-batch). A save interval
of 0 steps and a run of 0 epochs were written down too, but rounds six and seventeen have those
causes: neither kept a log, and their rows were taken out.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 27 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 27

SHARED = [
    ("turns_as_one_object", "chat rows whose turns are one object, not a list", "DATASET_FORMAT", "DATA_PREP",
     "each row's messages is a single {role, content} object", {"data": "turn-object.jsonl"}),
    ("completion_as_number", "prompt/completion rows whose completion is a number", "DATASET_FORMAT", "DATA_PREP",
     "each row's completion is the sum as a JSON number", {"data": "completion-number.jsonl"}),
    ("text_null_on_some_rows", "text rows where some text is null", "DATASET_FORMAT", "DATA_PREP",
     "every eighth row's text is null", {"data": "text-null.jsonl"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("sequence_length_two", "sequence length of 2 on prompt/completion rows", "SEQUENCE_TOO_LONG", "DATA_PREP",
     "max_length 2 on prompt/completion rows", {"data": "prompt-completion.jsonl", "args": {"max_length": 2}}),
    ("lora_layer_past_model", "LoRA on a layer index past the model's layers", "LORA_TARGET_MODULES", "MODEL_LOAD",
     "LoraConfig layers_to_transform [9] on a 2-layer model", {
         "peft": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "layers_to_transform": [9]}}),
    ("lora_modules_to_save_missing", "LoRA modules to save that the model does not have", "LORA_TARGET_MODULES",
     "MODEL_LOAD", "LoraConfig modules_to_save [\"value_head\"]", {
         "peft": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "modules_to_save": ["value_head"]}}),
    ("dataset_processes_zero", "0 processes to prepare the dataset", "INVALID_CONFIG", "DATA_PREP",
     "dataset_num_proc 0", {"args": {"dataset_num_proc": 0}}),
    ("packing_strategy_unknown", "packing strategy that does not exist", "INVALID_CONFIG", "STARTUP",
     "packing True, packing_strategy \"tetris\"", {"args": {"packing": True, "packing_strategy": "tetris"}}),
    ("eval_batch_as_text", "evaluation micro-batch written as text", "EVAL_CONFIG", "STARTUP",
     "per_device_eval_batch_size \"4\" with evaluation every 2 steps", {
         "eval": "chat.jsonl", "args": {"eval_strategy": "steps", "eval_steps": 2, "per_device_eval_batch_size": "4"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 29) % 100) for a in range(64)]
    (root / "turn-object.jsonl").write_text("".join(json.dumps({"messages": {
        "role": "user", "content": f"{a}+{b}="}}) + "\n" for a, b in sums))
    (root / "completion-number.jsonl").write_text("".join(
        json.dumps({"prompt": f"{a}+{b}=", "completion": a + b}) + "\n" for a, b in sums))
    (root / "text-null.jsonl").write_text("".join(json.dumps({
        "text": None if i % 8 == 3 else f"{a}+{b}={a + b}"}) + "\n" for i, (a, b) in enumerate(sums)))
