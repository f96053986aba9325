"""The failure corpus's thirteenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran. They lean towards the categories whose development half had no
cause or few (a full filesystem, a hang, divergence, precision, models not found, schemas, damaged
files), chosen from the categories' counts, not from any log: a checkpoint or final save onto a
filesystem that really fills (ENOSPC from a small tmpfs, where the earlier rounds used a file-size
limit), a dataset that is a named pipe nobody writes, a LoRA adapter folder given as the base model,
a model given as a URL, weights pickled under the safetensors name, SFT on preference rows, and more.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script); a SHARED row may carry both a job `config` and TRL
`args`, each runner taking its own. New here: `tmpfs` (bytes) mounts a tmpfs of that size where the
run writes (the job's folder, or the bare script's output_dir); `load_timeout` is the job's
watchdog limit for loading; `resume_latest` has the bare script resume from the latest checkpoint
of its output folder. Each cause is split by the parity of its sha256; bench/analyzer_accuracy.py
--round 13 scores the round alone. A `fix` puts a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROUND = 13
FULL = {"adapter": "full"}

SHARED = [
    # a filesystem that really fills: the checkpoint (model and optimizer state, about 1.3 MB) or the
    # final model (about 0.4 MB) does not fit; the log and the run's small files do
    ("checkpoint_on_full_filesystem", "checkpoint save onto a filesystem that fills", "DISK_FULL", "CHECKPOINT_SAVE",
     "the run writes to a 1 MiB tmpfs; full fine-tuning saves a checkpoint at step 2",
     {"tmpfs": 1 << 20, "config": {**FULL, "max_steps": 4, "save_steps": 2},
      "args": {"max_steps": 4, "save_strategy": "steps", "save_steps": 2}, "peft": None}),
    ("final_save_on_full_filesystem", "final model save onto a filesystem that fills", "DISK_FULL",
     "CHECKPOINT_SAVE", "the run writes to a 320 KiB tmpfs; full fine-tuning saves the model at the end",
     {"tmpfs": 320 << 10, "config": FULL, "peft": None}),
    # model folders
    ("adapter_folder_as_base_model", "LoRA adapter folder given as the base model", "MODEL_NOT_FOUND",
     "MODEL_LOAD", "the model path holds a LoRA adapter whose base model folder was since removed",
     {"model": "adapter-as-base"}),
    ("model_given_as_url", "model given as a web address", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model is https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct, the page's address, not a path or hub id",
     {"model": "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct"}),
    ("weights_pickled_as_safetensors", "torch pickle under the safetensors name", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "model.safetensors holds the same weights written by torch.save", {"model": "pickle-weights"}),
    ("optimizer_state_is_folder", "checkpoint whose optimizer state is a folder", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose optimizer.pt was replaced by an empty folder", {"resume": "optimizer_folder"}),
    # rows
    ("dpo_turns_and_text_mixed", "preference rows mixing turns and plain text", "DATASET_SCHEMA", "DATA_PREP",
     "DPO on rows whose prompt and chosen are lists of turns and rejected is a string",
     {"data": "mixed-preference.jsonl", "config": {"method": "dpo"}, "trainer": "dpo"}),
    ("prompt_completion_turns_no_template", "conversational prompt/completion rows without a chat template",
     "CHAT_TEMPLATE_MISSING", "DATA_PREP",
     "prompt and completion are lists of turns and the tokenizer has no chat template",
     {"model": "no-template", "data": "prompt-completion-chat.jsonl", "fix": "chat_template"}),
    # signals
    ("sigpipe_in_training", "process killed by SIGPIPE", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGPIPE sent to the running process at its first step", {"act": ("signal", 13)}),
    ("sigvtalrm_in_training", "process killed by SIGVTALRM", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGVTALRM sent to the running process at its first step", {"act": ("signal", 26)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER = [
    ("sft_on_preference_rows", "SFT on preference rows", "DATASET_SCHEMA", "DATA_PREP",
     "method SFT on prompt/chosen/rejected rows", {"data": "preference-chat.jsonl", "fix": "method"}),
    ("dataset_named_pipe", "dataset path that is a named pipe nobody writes", "STUCK", "DATA_PREP",
     "dataset.uri names a FIFO that no process writes; the watchdog allows 10 s of silence while loading",
     {"data": "pipe.jsonl", "load_timeout": 10.0}),
    ("dpo_learning_rate_two", "DPO at learning rate 2 with no clipping", "NAN_OR_DIVERGENCE", "TRAINING",
     "DPO with LoRA at learning rate 2, max_grad_norm 0, constant schedule", {
         "data": "preference-chat.jsonl", "fix": "learning_rate",
         "config": {"method": "dpo", "learning_rate": 2.0, "max_grad_norm": 0, "max_steps": 30,
                    "lr_scheduler": "constant", "warmup_ratio": 0}}),
    ("full_finetune_lr_half_clipped", "full fine-tuning at learning rate 0.5 despite clipping",
     "NAN_OR_DIVERGENCE", "TRAINING", "full fine-tuning at learning rate 0.5 with max_grad_norm 1",
     {"fix": "learning_rate", "config": {**FULL, "learning_rate": 0.5, "max_grad_norm": 1.0, "max_steps": 30,
                                         "lr_scheduler": "constant", "warmup_ratio": 0}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("sft_on_preference_rows", "SFT on preference rows", "DATASET_SCHEMA", "DATA_PREP",
     "SFTTrainer on prompt/chosen/rejected rows", {"data": "preference-chat.jsonl"}),
    ("float8_weights_on_cpu", "model loaded in float8 on a CPU", "PRECISION_UNSUPPORTED", "TRAINING",
     "from_pretrained with dtype float8_e4m3fn, trained with LoRA on the CPU",
     {"model_kwargs": {"dtype": "float8_e4m3fn"}}),
    ("lomo_without_package", "LOMO optimizer without its package", "DEPENDENCY_MISSING", "STARTUP",
     "optim lomo, and lomo-optim is not installed", {"args": {"optim": "lomo"}}),
    ("lora_exclusions_cover_targets", "LoRA exclusions covering every target", "LORA_TARGET_MODULES",
     "MODEL_LOAD", "LoraConfig target_modules [q_proj] with exclude_modules [q_proj]",
     {"peft": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "exclude_modules": ["q_proj"]}}),
    ("dataset_pattern_matches_nothing", "dataset file pattern that matches no file", "DATASET_NOT_FOUND",
     "DATA_PREP", "the training file is the pattern nothing-*.jsonl, which matches no file",
     {"data": "nothing-*.jsonl"}),
    ("resume_latest_without_checkpoint", "resume from the latest checkpoint when none was saved",
     "CHECKPOINT_NOT_FOUND", "STARTUP", "train(resume_from_checkpoint=True) with an empty output folder",
     {"resume_latest": True}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 7) % 100) for a in range(64)]
    (root / "mixed-preference.jsonl").write_text("".join(json.dumps({
        "prompt": [{"role": "user", "content": f"{a}+{b}?"}],
        "chosen": [{"role": "assistant", "content": str(a + b)}], "rejected": str(a - b)}) + "\n" for a, b in sums))
    (root / "prompt-completion-chat.jsonl").write_text("".join(json.dumps({
        "prompt": [{"role": "user", "content": f"{a}+{b}?"}],
        "completion": [{"role": "assistant", "content": str(a + b)}]}) + "\n" for a, b in sums))
    if not (root / "pipe.jsonl").exists():
        os.mkfifo(root / "pipe.jsonl")


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def pickled(path: Path) -> None:
        import torch
        from safetensors.torch import load

        weights = load((path / "model.safetensors").read_bytes())  # not mapped: the file is rewritten
        torch.save(weights, path / "model.safetensors")

    variant("pickle-weights", pickled)

    # a real LoRA adapter of the tiny model, saved by PEFT, whose base folder is then removed
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = root / "adapter-base"
    shutil.copytree(tiny, base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(root / "adapter-as-base")
    shutil.rmtree(base)
    models["adapter-as-base"] = str(root / "adapter-as-base")


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "optimizer_folder":
        (ckpt / "optimizer.pt").unlink()
        (ckpt / "optimizer.pt").mkdir()
        return True
    return False
