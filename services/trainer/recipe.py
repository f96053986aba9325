"""Turn a resolved TrainingConfig (as a dict in the proto's JSON shape) into TRL/PEFT objects.

Small pure functions in the manner of TRL's own `get_peft_config` / `get_quantization_config`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where they are used
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import DPOConfig, SFTConfig

_SCHEDULERS = {
    "LR_SCHEDULER_LINEAR": "linear",
    "LR_SCHEDULER_COSINE": "cosine",
    "LR_SCHEDULER_CONSTANT": "constant",
    "LR_SCHEDULER_CONSTANT_WITH_WARMUP": "constant_with_warmup",
}
_EVAL = {"EVAL_STRATEGY_NO": "no", "EVAL_STRATEGY_STEPS": "steps", "EVAL_STRATEGY_EPOCH": "epoch"}


OPTIMIZERS = {  # config enum -> TrainingArguments.optim
    "OPTIMIZER_ADAMW_TORCH": "adamw_torch",
    "OPTIMIZER_ADAMW_TORCH_FUSED": "adamw_torch_fused",
    "OPTIMIZER_ADAMW_8BIT": "adamw_bnb_8bit",
    "OPTIMIZER_PAGED_ADAMW_8BIT": "paged_adamw_8bit",
}


def precision_of(cfg: dict[str, Any]) -> str:
    """"bf16", "fp16" or "fp32" for a decided config (see tuning.decide)."""
    return {"PRECISION_FP32": "fp32", "PRECISION_BF16": "bf16", "PRECISION_FP16": "fp16"}[cfg["precision"]]


def torch_dtype(precision: str) -> torch.dtype:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def quantization_config(cfg: dict[str, Any], precision: str) -> BitsAndBytesConfig | None:
    """bitsandbytes 4-bit nf4 for QLoRA, else None."""
    if cfg.get("adapter") != "ADAPTER_QLORA":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch_dtype("bf16" if precision == "bf16" else "fp16"),
    )


def peft_config(cfg: dict[str, Any]) -> LoraConfig | None:
    """A PEFT LoraConfig for LoRA and QLoRA, else None (full fine-tuning)."""
    if cfg.get("adapter") not in ("ADAPTER_LORA", "ADAPTER_QLORA"):
        return None
    from peft import LoraConfig

    lora = cfg.get("lora", {})
    targets = list(lora.get("target_modules") or ["all-linear"])
    return LoraConfig(
        r=int(lora["rank"]),
        lora_alpha=float(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )


def trackers(cfg: dict[str, Any]) -> list[str]:
    """The job's experiment trackers as transformers names them ("tensorboard", "mlflow", "wandb")."""
    return [t.removeprefix("TRACKER_").lower() for t in cfg.get("report_to") or [] if t != "TRACKER_UNSPECIFIED"]


def tracker_environment(cfg: dict[str, Any], run_dir: str) -> dict[str, str]:
    """Where each tracker writes, offline, inside the run's folder (so the job's logs carry it), as the
    variables transformers' callbacks read."""
    import importlib.util

    env: dict[str, str] = {}
    names = trackers(cfg)
    for name in names:  # each tracker is the package of its name
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"report_to {name}: the {name} package is not installed on this trainer; "
                              f"install it there (pip install {name}) or take {name} out of report_to")
    if "tensorboard" in names:
        env["TENSORBOARD_LOGGING_DIR"] = os.path.join(run_dir, "tensorboard")
    if "mlflow" in names:
        env["MLFLOW_TRACKING_URI"] = Path(run_dir, "mlruns").as_uri()
        env["MLFLOW_EXPERIMENT_NAME"] = "ftlab"
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps its file store in maintenance; it reads offline
    if "wandb" in names:
        env["WANDB_DIR"] = run_dir
        env["WANDB_MODE"] = os.environ.get("WANDB_MODE", "offline")
    return env


def trainer_arguments(cfg: dict[str, Any], output_dir: str, device: str) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig and DPOConfig, from a decided config (tuning.decide)."""
    eval_strategy = _EVAL[cfg["eval_strategy"]]
    save_steps = int(cfg.get("save_steps", 0))
    workers = int(cfg.get("dataloader_num_workers", 0))
    precision = precision_of(cfg)
    args: dict[str, Any] = dict(
        output_dir=output_dir,
        num_train_epochs=float(cfg["num_epochs"]),
        max_steps=int(cfg.get("max_steps", 0)) or -1,
        per_device_train_batch_size=int(cfg["per_device_train_batch_size"]),
        per_device_eval_batch_size=int(cfg["per_device_eval_batch_size"]),
        gradient_accumulation_steps=int(cfg["gradient_accumulation_steps"]),
        learning_rate=float(cfg["learning_rate"]),
        lr_scheduler_type=_SCHEDULERS[cfg["lr_scheduler"]],
        warmup_steps=float(cfg.get("warmup_ratio", 0.0)),
        weight_decay=float(cfg.get("weight_decay", 0.0)),
        max_grad_norm=float(cfg.get("max_grad_norm", 0.0)),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        eval_strategy=eval_strategy,
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=save_steps or 500,
        save_total_limit=None,  # retention.RetentionCallback deletes, and reports each deletion
        dataloader_num_workers=workers,
        dataloader_prefetch_factor=int(cfg.get("dataloader_prefetch_factor", 2)) if workers > 0 else None,
        seed=int(cfg.get("seed", 42)),
        data_seed=int(cfg.get("seed", 42)),
        logging_steps=int(cfg.get("logging_steps", 1)),
        logging_first_step=True,
        report_to=trackers(cfg) or "none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        max_length=int(cfg["max_seq_length"]),
        optim=OPTIMIZERS[cfg.get("optimizer", "OPTIMIZER_ADAMW_TORCH")],
        use_liger_kernel=cfg.get("liger_kernel") == "SWITCH_ON",
        torch_compile=cfg.get("torch_compile") == "SWITCH_ON",
        dataloader_pin_memory=device == "cuda",
        ddp_find_unused_parameters=False,
        # several CPU processes (num_gpus on a CPU trainer) talk over gloo
        ddp_backend="gloo" if device == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
    if eval_strategy == "steps":
        args["eval_steps"] = int(cfg["eval_steps"])
    if int(cfg.get("eval_accumulation_steps", 0)) > 0:
        args["eval_accumulation_steps"] = int(cfg["eval_accumulation_steps"])
    return args


def sft_arguments(cfg: dict[str, Any], output_dir: str, device: str) -> SFTConfig:
    """SFTConfig. Padding-free without packing: TRL refuses a max_length there (it would not be
    enforced by the collator), so the child truncates the tokenized data itself (`truncate`)."""
    from trl import SFTConfig

    args = trainer_arguments(cfg, output_dir, device)
    packing = bool(cfg.get("packing", False))
    padding_free = bool(cfg.get("padding_free", False))
    if padding_free and not packing:
        args["max_length"] = None
    return SFTConfig(**args, packing=packing, padding_free=padding_free,
                     assistant_only_loss=bool(cfg.get("assistant_only_loss", False)))


def truncate(dataset: Dataset | None, max_length: int, name: str = "train") -> Dataset | None:
    """Tokenized examples cut to `max_length` tokens (input_ids and labels), as TRL's own truncation;
    an example left with no label to learn (its completion cut away) is dropped, as TRL drops it, and
    a dataset left with none is an error, not a run that trains on nothing."""
    if dataset is None:
        return dataset
    longest = max(len(ids) for ids in dataset["input_ids"])
    if longest <= max_length:
        return dataset
    cut = dataset.map(lambda ex: {"input_ids": ex["input_ids"][:max_length], "labels": ex["labels"][:max_length]},
                      desc="Truncating")
    kept = cut.filter(lambda ex: any(label != -100 for label in ex["labels"]),
                      desc=f"Dropping fully masked examples from {name} dataset")
    if len(kept) < len(cut):
        print(f"ftlab: max_seq_length {max_length} cut away the completion of {len(cut) - len(kept)} of {len(cut)} "
              f"{name} examples; they were dropped", flush=True)
    if len(kept) == 0:
        raise ValueError(f"max_seq_length {max_length} cuts away the completion of every {name} example (its prompt "
                         f"alone is longer): nothing is left to learn from; max_seq_length {longest} keeps every "
                         "example whole")
    return kept


def dpo_arguments(cfg: dict[str, Any], output_dir: str, device: str) -> DPOConfig:
    from trl import DPOConfig

    return DPOConfig(**trainer_arguments(cfg, output_dir, device), beta=float(cfg.get("dpo_beta", 0.1)))
