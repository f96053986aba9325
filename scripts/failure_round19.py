"""The failure corpus's nineteenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran. It leans towards the categories with the fewest development
causes or the lowest held-out totals (chosen from the categories' counts and totals, never from a
log): a model or dataset named in a way that names nothing, a checkpoint path one folder too high,
LoRA targets written as one string, and optimizers whose package is not installed.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 19 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROUND = 19

SHARED = [
    ("models_folder_as_base_model", "the folder of models given as the base model", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model path is a folder that holds the model folder tiny/", {"model": "models-root"}),
    ("hub_id_with_revision", "hub id with @revision appended", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model is Qwen/Qwen2.5-0.5B@main, the hub unreachable", {"model": "hub:Qwen/Qwen2.5-0.5B@main"}),
    ("dataset_path_trailing_newline", "dataset path ending in a newline", "DATASET_NOT_FOUND", "DATA_PREP",
     "the dataset path is the chat file's path followed by a newline", {"data": "chat.jsonl\n"}),
    ("lora_targets_one_string", "LoRA targets written as one comma-separated string", "LORA_TARGET_MODULES",
     "MODEL_LOAD", "target_modules is the single name 'q_proj,v_proj'",
     {"config": {"lora": {"target_modules": ["q_proj,v_proj"]}}, "fix": "lora.target_modules",
      "peft": {"r": 4, "lora_alpha": 8, "target_modules": "q_proj,v_proj"}}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("resume_from_output_folder", "resume from the output folder instead of a checkpoint in it",
     "CHECKPOINT_NOT_FOUND", "STARTUP", "resume_from_checkpoint names the folder that holds checkpoint-2/",
     {"resume": "one_folder_up"}),
    ("apex_fused_without_apex", "apex's fused AdamW without apex", "DEPENDENCY_MISSING", "STARTUP",
     "optim adamw_apex_fused, and apex is not installed", {"args": {"optim": "adamw_apex_fused"}}),
    ("schedule_free_without_package", "schedule-free AdamW without its package", "DEPENDENCY_MISSING", "STARTUP",
     "optim schedule_free_adamw, and schedulefree is not installed", {"args": {"optim": "schedule_free_adamw"}}),
    ("eval_on_start_without_evaluation", "evaluation at the start with no evaluation set up", "EVAL_CONFIG",
     "STARTUP", "eval_on_start True with eval_strategy no and no eval_dataset", {"args": {"eval_on_start": True}}),
]


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def one_level_up(path: Path) -> None:
        inner = path / "tiny"
        inner.mkdir()
        for f in list(path.iterdir()):
            if f != inner:
                shutil.move(str(f), str(inner / f.name))

    variant("models-root", one_level_up)


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "one_folder_up":
        inner = ckpt / "checkpoint-2"
        inner.mkdir()
        for f in list(ckpt.iterdir()):
            if f != inner:
                shutil.move(str(f), str(inner / f.name))
    else:
        return False
    return True
