"""The failure corpus's seventeenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran. After the sixteenth found a job that trained on nothing and
SUCCEEDED, it looks for more of those (rows with nothing to learn), and adds causes in categories
whose development half has few (evaluation settings, a missing sample-prompts file, divergence in a
plain script): chat rows with no assistant turn under assistant-only loss, completions that are all
empty, training for 0 epochs, a sample-prompts file that does not exist, early stopping without
evaluation, and full fine-tuning at learning rate 10 in a plain TRL script.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 17 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 17

SHARED = [
    ("completions_all_empty", "completions that are all empty", "DATASET_SCHEMA", "DATA_PREP",
     "prompt/completion rows whose completion is \"\" on every row", {"data": "empty-completions.jsonl"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("no_assistant_turn_assistant_loss", "chat rows with no assistant turn under assistant-only loss",
     "DATASET_SCHEMA", "DATA_PREP", "assistant_only_loss with the chatml template on rows of user turns only",
     {"data": "user-only.jsonl", "config": {"assistant_only_loss": True, "chat_template": "chatml"}}),
    ("sample_prompts_file_missing", "sample-prompts file that does not exist", "DATASET_NOT_FOUND", "DATA_PREP",
     "samples.prompts_uri names a file that does not exist", {
         "fix": "samples.prompts_uri",
         "config": {"samples": {"prompts_uri": "@data/no-such-prompts.jsonl"}, "eval_strategy": "steps",
                    "eval_steps": 2, "dataset": {"eval_split": 0.2}}}),
    ("early_stopping_without_evaluation", "early stopping without evaluation", "EVAL_CONFIG", "STARTUP",
     "early_stopping_patience 2 with eval_strategy no", {"config": {"early_stopping_patience": 2,
                                                                     "eval_strategy": "no"}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("zero_epochs", "training for 0 epochs", "INVALID_CONFIG", "STARTUP",
     "num_train_epochs 0 with max_steps -1", {"args": {"num_train_epochs": 0, "max_steps": -1}}),
    ("bare_full_finetune_lr_ten", "full fine-tuning at learning rate 10 in a plain script", "NAN_OR_DIVERGENCE",
     "TRAINING", "SFTTrainer, no adapter, learning_rate 10, max_grad_norm 0, 30 steps",
     {"peft": None, "args": {"learning_rate": 10.0, "max_grad_norm": 0, "max_steps": 30,
                             "lr_scheduler_type": "constant"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 13) % 100) for a in range(64)]
    (root / "empty-completions.jsonl").write_text("".join(
        json.dumps({"prompt": f"{a}+{b}=", "completion": ""}) + "\n" for a, b in sums))
    (root / "user-only.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"}]}) + "\n" for a, b in sums))
