"""The failure corpus's seventh round: new causes, written down (with the category and phase a person
gives each) before any of them ran: a dataset behind a dangling link, text in Latin-1, a CSV quote
never closed, null turns, a capitalized column, a model's generation config that is not JSON, an
optimizer state with another layout, SIGUSR2, DPO out of address space, an optimizer state too big
for the file-size limit, LoRA targets by regex and by layer, a schedule's unknown argument,
persistent loader workers without workers, and a 4-bit optimizer without its package.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 7 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 7

SHARED = [
    # data files
    ("dataset_dangling_symlink", "dataset path that is a link to a deleted file", "DATASET_NOT_FOUND", "DATA_PREP",
     "the .jsonl dataset is a symbolic link whose target was deleted", {"data": "dangling.jsonl"}),
    ("jsonl_latin1", "dataset file in Latin-1", "DATASET_FORMAT", "DATA_PREP",
     "the chat .jsonl file is encoded in Latin-1, with accented letters in every row", {"data": "latin1.jsonl"}),
    ("csv_unclosed_quote", "CSV with a quoted field never closed", "DATASET_FORMAT", "DATA_PREP",
     "a prompt/completion CSV whose third row opens a quote that never closes", {"data": "unclosed-quote.csv"}),
    ("messages_content_null", "chat turns whose content is null", "DATASET_FORMAT", "DATA_PREP",
     "every assistant turn's content is null", {"data": "null-content.jsonl"}),
    ("messages_column_capitalized", "chat column named Messages, capitalized", "DATASET_SCHEMA", "DATA_PREP",
     "the rows hold their turns under 'Messages'", {"data": "capital-messages.jsonl"}),
    # model folders
    ("generation_config_not_json", "generation_config.json that is not JSON", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's generation_config.json holds YAML-like text, not JSON", {"model": "generation-config-not-json"}),
    # a checkpoint of a good run, then damaged
    ("resume_optimizer_groups", "checkpoint whose optimizer state has another parameter layout",
     "CHECKPOINT_CORRUPT", "STARTUP", "resume from a checkpoint whose optimizer.pt lists one parameter group too many",
     {"resume": "optimizer_groups"}),
    # the process
    ("sigusr2_in_training", "process killed by SIGUSR2", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGUSR2 (no handler installed) at the first training step", {"act": ("signal", 12)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER = [
    ("dpo_past_address_limit", "DPO past an address-space limit", "HOST_OOM", "TRAINING",
     "DPO with LoRA on preference rows; RLIMIT_AS set to the process's size plus 64 MiB at the first step",
     {"data": "preference-chat.jsonl", "config": {"method": "dpo", "max_steps": 40}, "act": ("rlimit_as", 64 << 20)}),
    ("optimizer_save_past_size_limit", "optimizer state save past a file-size limit", "DISK_FULL", "CHECKPOINT_SAVE",
     "full fine-tuning saving at step 2 under a 600 KiB file-size limit: the weights (424 KB) fit, optimizer.pt "
     "(about twice that) does not", {"act": ("rlimit_fsize", 600 << 10),
                                     "config": {"adapter": "full", "max_steps": 4, "save_steps": 2}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("dpo_past_address_limit", "DPO past an address-space limit", "HOST_OOM", "TRAINING",
     "DPOTrainer with LoRA on preference rows; RLIMIT_AS set to the process's size plus 64 MiB at the first step",
     {"trainer": "dpo", "data": "preference-chat.jsonl", "args": {"max_steps": 200}, "act": ("rlimit_as", 64 << 20)}),
    ("optimizer_save_past_size_limit", "optimizer state save past a file-size limit", "DISK_FULL", "CHECKPOINT_SAVE",
     "full fine-tuning saving at step 2 under a 600 KiB file-size limit", {
         "peft": None, "act": ("rlimit_fsize", 600 << 10),
         "args": {"max_steps": 4, "save_strategy": "steps", "save_steps": 2}}),
    ("lora_target_regex_matches_nothing", "LoRA target regex matching no module", "LORA_TARGET_MODULES", "MODEL_LOAD",
     "LoraConfig target_modules='.*\\.nonexistent_proj$'",
     {"peft": {"r": 4, "lora_alpha": 8, "target_modules": ".*\\.nonexistent_proj$"}}),
    ("lora_layers_past_model", "LoRA layers to transform past the model's layers", "LORA_TARGET_MODULES",
     "MODEL_LOAD", "LoraConfig layers_to_transform=[7] on a model of two layers",
     {"peft": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "layers_to_transform": [7]}}),
    ("scheduler_kwargs_unknown", "schedule argument the schedule does not take", "INVALID_CONFIG", "STARTUP",
     "lr_scheduler_type linear with lr_scheduler_kwargs {'power': 2}", {"args": {"lr_scheduler_kwargs": {"power": 2}}}),
    ("persistent_workers_without_workers", "persistent loader workers with no workers", "INVALID_CONFIG", "STARTUP",
     "dataloader_persistent_workers True with dataloader_num_workers 0",
     {"args": {"dataloader_persistent_workers": True, "dataloader_num_workers": 0}}),
    ("adamw_4bit_without_torchao", "4-bit AdamW without torchao", "DEPENDENCY_MISSING", "STARTUP",
     "optim adamw_torch_4bit where torchao is not installed", {"args": {"optim": "adamw_torch_4bit"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    chat = [json.loads(line) for line in (root / "chat.jsonl").read_text().splitlines()]
    target = root / "deleted-target.jsonl"
    target.write_text((root / "chat.jsonl").read_text())
    (root / "dangling.jsonl").symlink_to(target)
    target.unlink()
    accented = [{"messages": [{"role": "user", "content": "Café? " + r["messages"][0]["content"]},
                              {"role": "assistant", "content": "Voilà: " + r["messages"][1]["content"]}]}
                for r in chat]
    (root / "latin1.jsonl").write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                for r in accented).encode("latin-1"))
    rows = [f'{r["messages"][0]["content"]},{r["messages"][1]["content"]}\n' for r in chat]
    rows[2] = '"' + rows[2]
    (root / "unclosed-quote.csv").write_text("prompt,completion\n" + "".join(rows))
    (root / "null-content.jsonl").write_text("".join(json.dumps(
        {"messages": [r["messages"][0], {"role": "assistant", "content": None}]}) + "\n" for r in chat))
    (root / "capital-messages.jsonl").write_text("".join(json.dumps({"Messages": r["messages"]}) + "\n" for r in chat))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""
    variant("generation-config-not-json",
            lambda p: (p / "generation_config.json").write_text("do_sample: false\nmax_length: 64\n"))


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "optimizer_groups":
        import copy

        import torch

        state = torch.load(ckpt / "optimizer.pt", weights_only=False)
        extra = copy.deepcopy(state["param_groups"][0])
        extra["params"] = [max(p for g in state["param_groups"] for p in g["params"]) + 1]
        state["param_groups"].append(extra)
        torch.save(state, ckpt / "optimizer.pt")
        return True
    return False
