"""The failure corpus's fifteenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, in the categories whose development half still had none or one
after the fourteenth (a full filesystem, a hang, divergence, quantization), chosen from the counts:
a datasets cache and a LoRA adapter save onto filesystems that fill, a run stopped before it
trained, weight decay that blows the weights up, DPO at learning rate 1, and 8-bit loading on a CPU.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. New here: `tmpfs_cache`
(bytes) mounts a tmpfs of that size on the bare script's datasets cache; `stop_at_start` (seconds)
SIGSTOPs the trainer's child that long after it was started, before any step. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 15 scores the round alone. A `fix`
puts a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

ROUND = 15

SHARED = [
    ("adapter_save_on_full_filesystem", "LoRA adapter save onto a filesystem that fills", "DISK_FULL",
     "CHECKPOINT_SAVE", "LoRA training whose output folder is a 48 KiB tmpfs, saved at the end",
     {"tmpfs": 48 << 10, "config": {"adapter": "lora"}}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("stopped_before_training", "run stopped before its first step", "STUCK", "STARTUP",
     "SIGSTOP half a second after the run started; the watchdog allows 10 s of silence while loading",
     {"stop_at_start": 0.5, "load_timeout": 10.0}),
    ("weight_decay_blows_up", "weight decay of 100 at learning rate 0.1", "NAN_OR_DIVERGENCE", "TRAINING",
     "full fine-tuning with weight_decay 100 and learning_rate 0.1", {
         "fix": "weight_decay", "config": {"adapter": "full", "learning_rate": 0.1, "weight_decay": 100.0,
                                           "max_steps": 30, "lr_scheduler": "constant", "warmup_ratio": 0}}),
    ("dpo_learning_rate_one", "DPO at learning rate 1 with no clipping", "NAN_OR_DIVERGENCE", "TRAINING",
     "DPO with LoRA at learning rate 1, max_grad_norm 0, constant schedule", {
         "data": "preference-chat.jsonl", "fix": "learning_rate",
         "config": {"method": "dpo", "learning_rate": 1.0, "max_grad_norm": 0, "max_steps": 30,
                    "lr_scheduler": "constant", "warmup_ratio": 0}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("datasets_cache_on_full_filesystem", "datasets cache onto a filesystem that fills", "DISK_FULL", "DATA_PREP",
     "the datasets cache folder is a 16 KiB tmpfs", {"tmpfs_cache": 16 << 10}),
    ("load_in_8bit_on_cpu", "8-bit quantized loading on a CPU-only machine", "QUANTIZATION_UNSUPPORTED", "MODEL_LOAD",
     "from_pretrained with a BitsAndBytesConfig(load_in_8bit=True) on a CPU-only machine",
     {"model_kwargs": {"quantization_config": {"quant_method": "bitsandbytes", "load_in_8bit": True}}}),
]
