"""The failure corpus's eighteenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran. It leans towards the categories with the fewest development
causes or the lowest held-out totals (chosen from the categories' counts and totals, never from a
log): model paths that name no model in new ways, a damaged file of a model or a checkpoint that no
round has damaged yet, rows of another trainer's shape, and settings the machine or evaluation
cannot honour.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 18 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py. Two causes written down here were causes of earlier rounds (a
generation_config.json that is not JSON, round seven; fp16 on a CPU-only machine, the first cases):
neither kept a log, and their rows were taken out so that every case has its own name and cause
(tests/unit/test_corpus_tables.py).

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROUND = 18

SHARED = [
    # model paths that name no model
    ("model_path_trailing_space", "model path with a trailing space", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model is the tiny model's path followed by a space", {"model": "trailing-space"}),
    ("model_path_unexpanded_variable", "model path holding an unexpanded environment variable",
     "MODEL_NOT_FOUND", "MODEL_LOAD", "the model is $MODELS_DIR/tiny, written as it is", {"model": "env-variable"}),
    ("training_output_as_base_model", "a training output folder given as the base model", "MODEL_NOT_FOUND",
     "MODEL_LOAD", "the model folder holds only checkpoint-4/, which holds the model", {"model": "run-output"}),
    # damaged files no round has damaged yet
    ("chat_template_file_binary", "chat_template.jinja of random bytes", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's chat_template.jinja is 2 KiB of random bytes", {"model": "template-garbage"}),
    ("resume_adapter_config_not_json", "checkpoint whose adapter_config.json is not JSON", "CHECKPOINT_CORRUPT",
     "STARTUP", "resume from a LoRA checkpoint whose adapter_config.json holds half of its bytes",
     {"resume": "adapter_config_cut"}),
    # rows of another trainer's shape
    ("kto_rows_for_dpo", "unpaired preference rows (prompt, completion, label) for DPO", "DATASET_SCHEMA",
     "DATA_PREP", "DPO on KTO-style rows", {"data": "kto.jsonl", "config": {"method": "dpo"}, "trainer": "dpo"}),
    ("messages_as_json_text", "chat turns stored as JSON text", "DATASET_FORMAT", "DATA_PREP",
     "messages holds json.dumps of the list of turns on every row", {"data": "messages-as-text.jsonl"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("sigill_in_training", "process killed by SIGILL", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGILL sent to the running process at its first step", {"act": ("signal", 4)}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("evaluation_without_eval_dataset", "evaluation asked without an evaluation dataset", "EVAL_CONFIG", "STARTUP",
     "eval_strategy steps, eval_steps 2, and no eval_dataset", {"args": {"eval_strategy": "steps", "eval_steps": 2}}),
    ("fp16_and_bf16_together", "fp16 and bf16 asked together", "INVALID_CONFIG", "STARTUP",
     "fp16=True and bf16=True", {"args": {"fp16": True, "bf16": True}}),
    ("sigfpe_in_training", "process killed by SIGFPE", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGFPE sent to the running process at its first step", {"act": ("signal", 8)}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 17) % 100) for a in range(64)]

    def lines(name, rows):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    lines("kto.jsonl", [{"prompt": f"{a}+{b}=", "completion": str(a + b if i % 2 else a - b), "label": bool(i % 2)}
                        for i, (a, b) in enumerate(sums)])
    lines("messages-as-text.jsonl", [{"messages": json.dumps([{"role": "user", "content": f"{a}+{b}?"},
                                                              {"role": "assistant", "content": str(a + b)}])}
                                     for a, b in sums])


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def run_output(path: Path) -> None:
        inner = path / "checkpoint-4"
        inner.mkdir()
        for f in list(path.iterdir()):
            if f != inner:
                shutil.move(str(f), str(inner / f.name))

    variant("run-output", run_output)
    variant("template-garbage", lambda p: (p / "chat_template.jinja").write_bytes(
        bytes((i * 2654435761 >> 7) & 0xFF for i in range(2048))))
    models["trailing-space"] = str(tiny) + " "
    models["env-variable"] = "$MODELS_DIR/tiny"


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "adapter_config_cut":
        data = (ckpt / "adapter_config.json").read_bytes()
        (ckpt / "adapter_config.json").write_bytes(data[: len(data) // 2])
    else:
        return False
    return True
