"""Named templates: sane defaults a job starts from and overrides field by field."""

from __future__ import annotations

from google.protobuf import json_format

from ftlab.v1 import config_pb2

# Every field set: what a job gets for anything neither its template nor its request sets.
DEFAULTS: dict[str, object] = {
    "method": "METHOD_SFT",
    "adapter": "ADAPTER_LORA",
    "lora": {"rank": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["all-linear"]},
    "dataset": {"format": "DATASET_FORMAT_AUTO", "eval_split": 0.0},
    "max_seq_length": 1024,
    "num_epochs": 1,
    "max_steps": 0,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "gradient_accumulation_steps": 4,
    "learning_rate": 2e-4,
    "lr_scheduler": "LR_SCHEDULER_COSINE",
    "warmup_ratio": 0.03,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "precision": "PRECISION_AUTO",
    "gradient_checkpointing": False,
    "eval_strategy": "EVAL_STRATEGY_NO",
    "eval_steps": 50,
    "save_steps": 100,
    "save_total_limit": 3,
    "keep_best_checkpoints": 1,
    "dataloader_num_workers": -1,
    "dataloader_prefetch_factor": 2,
    "packing": False,
    "seed": 42,
    "logging_steps": 1,
    "assistant_only_loss": False,
    "dpo_beta": 0.1,
    "num_gpus": 1,
    "eval_accumulation_steps": 0,
    "divergence_factor": 5.0,
    "early_stopping_patience": 0,
    "early_stopping_threshold": 0.0,
    "samples": {"max_new_tokens": 64, "temperature": 0.0, "seed": 42},
    # Speed: each AUTO is decided by the trainer for its machine, and the run says what it chose and why
    # (Job.effective_config, Job.tuning). padding_free applies to SFT; DPO pads (TRL's DPO cannot yet).
    "padding_free": True,
    "liger_kernel": "SWITCH_AUTO",
    "optimizer": "OPTIMIZER_AUTO",
    "torch_compile": "SWITCH_AUTO",
    "auto_micro_batch": "SWITCH_AUTO",
    "attn_implementation": "auto",
}

_TEMPLATES: list[tuple[str, str, dict[str, object]]] = [
    ("basic", "LoRA r=16 on every linear layer, one epoch, cosine schedule: a safe start.", {}),
    ("advanced", "Larger LoRA (r=64), three epochs with evaluation on a 5% split and best-checkpoint tracking.",
     {"lora": {"rank": 64, "alpha": 128}, "num_epochs": 3, "eval_strategy": "EVAL_STRATEGY_STEPS",
      "dataset": {"eval_split": 0.05}, "learning_rate": 1e-4, "save_steps": 50}),
    ("qa", "Question answering on short prompt/completion pairs: loss on the answer, short sequences.",
     {"max_seq_length": 512, "num_epochs": 2, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}),
    ("coding-assistant", "Code: long sequences, low dropout, attention and MLP projections adapted.",
     {"max_seq_length": 2048, "lora": {"rank": 32, "alpha": 64, "dropout": 0.0}, "learning_rate": 1e-4,
      "gradient_checkpointing": True, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8}),
    ("chatbot-personality", "Style and persona on multi-turn chats: loss on assistant turns only.",
     {"assistant_only_loss": True, "num_epochs": 3, "lora": {"rank": 8, "alpha": 16}, "learning_rate": 3e-4}),
    ("domain-expert", "Domain knowledge: full fine-tuning at a low learning rate with evaluation.",
     {"adapter": "ADAPTER_FULL", "learning_rate": 2e-5, "num_epochs": 2, "eval_strategy": "EVAL_STRATEGY_STEPS",
      "dataset": {"eval_split": 0.05}, "weight_decay": 0.01}),
    ("multilingual", "Several languages: larger rank, longer warm-up, longer sequences.",
     {"lora": {"rank": 32, "alpha": 64}, "warmup_ratio": 0.1, "max_seq_length": 2048, "num_epochs": 2}),
    ("efficient", "Least memory: QLoRA 4-bit with gradient checkpointing and packing.",
     {"adapter": "ADAPTER_QLORA", "gradient_checkpointing": True, "packing": True, "lora": {"rank": 16, "alpha": 16},
      "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8}),
]


def _config(values: dict[str, object]) -> config_pb2.TrainingConfig:
    return json_format.ParseDict(values, config_pb2.TrainingConfig())


def list_templates() -> list[config_pb2.Template]:
    out = []
    for n, d, v in _TEMPLATES:
        resolved, own = defaults(), _config(v)
        if own.lora.target_modules:  # a list replaces the default's, as jobconfig.overlay does
            del resolved.lora.target_modules[:]
        resolved.MergeFrom(own)
        out.append(config_pb2.Template(name=n, description=d, config=_config(v), resolved=resolved))
    return out


def get_template(name: str) -> config_pb2.Template | None:
    return next((t for t in list_templates() if t.name == name), None)


def defaults() -> config_pb2.TrainingConfig:
    return _config(DEFAULTS)
