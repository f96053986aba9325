"""Turn a resolved TrainingConfig (as a dict in the proto's JSON shape) into TRL/PEFT objects.

Small pure functions in the manner of TRL's own `get_peft_config` / `get_quantization_config`.
"""

from __future__ import annotations

from typing import Any

_SCHEDULERS = {
    "LR_SCHEDULER_LINEAR": "linear",
    "LR_SCHEDULER_COSINE": "cosine",
    "LR_SCHEDULER_CONSTANT": "constant",
    "LR_SCHEDULER_CONSTANT_WITH_WARMUP": "constant_with_warmup",
}
_EVAL = {"EVAL_STRATEGY_NO": "no", "EVAL_STRATEGY_STEPS": "steps", "EVAL_STRATEGY_EPOCH": "epoch"}


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """Return "bf16", "fp16" or "fp32" for the requested precision on this device."""
    import torch

    if precision in ("PRECISION_AUTO", "PRECISION_UNSPECIFIED", ""):
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    return {"PRECISION_FP32": "fp32", "PRECISION_BF16": "bf16", "PRECISION_FP16": "fp16"}[precision]


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def quantization_config(cfg: dict[str, Any], precision: str):
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


def peft_config(cfg: dict[str, Any]):
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


def trainer_arguments(cfg: dict[str, Any], output_dir: str, precision: str, device: str) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig and DPOConfig."""
    eval_strategy = _EVAL[cfg["eval_strategy"]]
    save_steps = int(cfg.get("save_steps", 0))
    workers = int(cfg.get("dataloader_num_workers", 0))
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
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        max_length=int(cfg["max_seq_length"]),
    )
    if eval_strategy == "steps":
        args["eval_steps"] = int(cfg["eval_steps"])
    if int(cfg.get("eval_accumulation_steps", 0)) > 0:
        args["eval_accumulation_steps"] = int(cfg["eval_accumulation_steps"])
    return args


def sft_arguments(cfg: dict[str, Any], output_dir: str, precision: str, device: str):
    from trl import SFTConfig

    return SFTConfig(
        **trainer_arguments(cfg, output_dir, precision, device),
        packing=bool(cfg.get("packing", False)),
        assistant_only_loss=bool(cfg.get("assistant_only_loss", False)),
    )


def dpo_arguments(cfg: dict[str, Any], output_dir: str, precision: str, device: str):
    from trl import DPOConfig

    return DPOConfig(**trainer_arguments(cfg, output_dir, precision, device), beta=float(cfg.get("dpo_beta", 0.1)))
