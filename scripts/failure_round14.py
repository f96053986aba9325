"""The failure corpus's fourteenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran. Like the thirteenth, it leans towards the categories with the
fewest ways in or the lowest held-out figures (chosen from the categories' counts and totals, never
from a log): model folders missing a part, damaged files of a model or a checkpoint, rows whose
columns are not where a format looks, and a memory limit too small to start.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. New here:
`rlimit_as_start` (bytes) limits the bare script's address space from its first instruction. Each
cause is split by the parity of its sha256; bench/analyzer_accuracy.py --round 14 scores the round
alone. A `fix` puts a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 14

SHARED = [
    # model folders missing a part
    ("tokenizer_only_model_folder", "model folder holding only its tokenizer", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model folder keeps its tokenizer files; config.json and the weights were removed",
     {"model": "tokenizer-only"}),
    ("config_dangling_link", "model config.json that is a link to a deleted file", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model's config.json is a symbolic link whose target was removed", {"model": "config-link"}),
    ("weights_in_subfolder", "model weights moved into a subfolder", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "model.safetensors sits in the model folder's weights/ subfolder", {"model": "weights-subfolder"}),
    # damaged files
    ("tokenizer_json_not_a_tokenizer", "tokenizer.json that is JSON but not a tokenizer", "CHECKPOINT_CORRUPT",
     "MODEL_LOAD", "the model's tokenizer.json holds {\"hello\": 1}", {"model": "tokenizer-not-tokenizer"}),
    ("scheduler_state_is_folder", "checkpoint whose scheduler state is a folder", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose scheduler.pt was replaced by an empty folder", {"resume": "scheduler_folder"}),
    ("trainer_state_empty", "checkpoint whose trainer_state.json is empty", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose trainer_state.json has zero bytes", {"resume": "state_empty"}),
    ("adapter_config_other_rank", "checkpoint whose adapter config names another rank", "CHECKPOINT_CORRUPT",
     "STARTUP", "resume from a LoRA checkpoint whose adapter_config.json says r 8 over rank-4 weights",
     {"resume": "adapter_rank", "config": {"adapter": "lora", "lora": {"rank": 4, "alpha": 8}}}),
    # rows whose columns are not where the format looks
    ("turns_without_role", "chat turns without a role", "DATASET_SCHEMA", "DATA_PREP",
     "every turn of messages has content and no role", {"data": "no-role.jsonl"}),
    ("preference_under_other_names", "preference pairs under other column names", "DATASET_SCHEMA", "DATA_PREP",
     "DPO on rows of prompt, good and bad", {"data": "good-bad.jsonl", "config": {"method": "dpo"},
                                              "trainer": "dpo"}),
    ("chat_under_conversation_key", "chat rows under a 'conversation' column", "DATASET_SCHEMA", "DATA_PREP",
     "the turns are under conversation, with role and content", {"data": "conversation-key.jsonl"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("model_path_file_url", "model path given with a file:// prefix", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model is file://<path of the tiny model>", {"model": "file-url"}),
    ("windows_model_path", "model path written Windows-style", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model is C:\\models\\tiny", {"model": "C:\\models\\tiny"}),
    ("address_space_too_small_to_start", "address-space limit too small to start", "HOST_OOM", "STARTUP",
     "the script runs under a 1.5 GiB address-space limit from its start", {"rlimit_as_start": 3 << 29}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 11) % 100) for a in range(64)]

    def lines(name, rows):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    lines("no-role.jsonl", [{"messages": [{"content": f"{a}+{b}?"}, {"content": str(a + b)}]} for a, b in sums])
    lines("good-bad.jsonl", [{"prompt": f"{a}+{b}=", "good": str(a + b), "bad": str(a - b)} for a, b in sums])
    lines("conversation-key.jsonl", [{"conversation": [{"role": "user", "content": f"{a}+{b}?"},
                                                       {"role": "assistant", "content": str(a + b)}]}
                                     for a, b in sums])


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def tokenizer_only(path: Path) -> None:
        for name in ("config.json", "model.safetensors", "generation_config.json"):
            (path / name).unlink(missing_ok=True)

    def config_link(path: Path) -> None:
        (path / "config.json").rename(path / "config-gone.json")
        (path / "config.json").symlink_to(path / "config-gone.json")
        (path / "config-gone.json").unlink()

    def subfolder(path: Path) -> None:
        (path / "weights").mkdir()
        (path / "model.safetensors").rename(path / "weights" / "model.safetensors")

    variant("tokenizer-only", tokenizer_only)
    variant("config-link", config_link)
    variant("weights-subfolder", subfolder)
    variant("tokenizer-not-tokenizer", lambda p: (p / "tokenizer.json").write_text(json.dumps({"hello": 1})))
    models["file-url"] = "file://" + str(tiny)


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "scheduler_folder":
        (ckpt / "scheduler.pt").unlink()
        (ckpt / "scheduler.pt").mkdir()
    elif how == "state_empty":
        (ckpt / "trainer_state.json").write_bytes(b"")
    elif how == "adapter_rank":
        config = json.loads((ckpt / "adapter_config.json").read_text())
        config["r"] = 8
        (ckpt / "adapter_config.json").write_text(json.dumps(config))
    else:
        return False
    return True
