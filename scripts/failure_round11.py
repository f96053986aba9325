"""The failure corpus's eleventh round: new causes, written down (with the category and phase a person
gives each) before any of them ran, spread over the categories rather than aimed at any: chat rows
with an empty list of turns, a weights file that is a folder, an eval split that leaves no training
rows, evaluation every 1.5 steps, and LoRA with an empty list of target modules.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 11 scores the round alone. A `fix` (the one config field a user
would change, decided from the cause) puts a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 11

SHARED = [
    ("messages_empty_list", "chat rows with an empty list of turns", "DATASET_FORMAT", "DATA_PREP",
     "every row's messages is []", {"data": "empty-turns.jsonl"}),
    ("weights_file_is_folder", "base model weights file that is a folder", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's model.safetensors is an empty folder", {"model": "weights-folder"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER = [
    ("eval_split_leaves_no_training_rows", "eval split that leaves no training rows", "INVALID_CONFIG", "DATA_PREP",
     "dataset.eval_split 0.99 on 64 rows", {"config": {"dataset": {"eval_split": 0.99}}, "fix": "dataset.eval_split"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("eval_steps_fraction_over_one", "evaluation every 1.5 steps", "INVALID_CONFIG", "STARTUP",
     "eval_strategy steps with eval_steps 1.5", {"eval": "chat.jsonl", "args": {"eval_strategy": "steps",
                                                                               "eval_steps": 1.5}}),
    ("lora_targets_empty", "LoRA with an empty list of target modules", "LORA_TARGET_MODULES", "MODEL_LOAD",
     "LoraConfig target_modules []", {"peft": {"r": 4, "lora_alpha": 8, "target_modules": []}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    rows = len((root / "chat.jsonl").read_text().splitlines())
    (root / "empty-turns.jsonl").write_text("".join(json.dumps({"messages": []}) + "\n" for _ in range(rows)))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def weights_folder(path: Path) -> None:
        (path / "model.safetensors").unlink()
        (path / "model.safetensors").mkdir()

    variant("weights-folder", weights_folder)
