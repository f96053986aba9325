"""The failure corpus's twenty-fourth round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories whose development half has
the fewest causes (precision, evaluation settings, a missing accelerator; chosen from the categories'
counts, never from a log), in a plain TRL script: float16 evaluation on a CPU, full fine-tuning of
float16 weights on a CPU, a plateau schedule with nothing evaluated, and the fused AdamW kernel on a
CPU.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 24 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

ROUND = 24

SHARED: list[tuple] = []

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("fp16_full_eval_on_cpu", "float16 evaluation on a CPU-only machine", "PRECISION_UNSUPPORTED", "STARTUP",
     "fp16_full_eval True with evaluation every 2 steps, use_cpu", {
         "eval": "chat.jsonl", "args": {"fp16_full_eval": True, "eval_strategy": "steps", "eval_steps": 2}}),
    ("float16_weights_full_finetune_on_cpu", "full fine-tuning of float16 weights on a CPU", "PRECISION_UNSUPPORTED",
     "TRAINING", "from_pretrained with dtype float16, no adapter, AdamW on the CPU",
     {"peft": None, "model_kwargs": {"dtype": "float16"}}),
    ("plateau_schedule_without_evaluation", "a plateau schedule with nothing evaluated", "EVAL_CONFIG", "STARTUP",
     "lr_scheduler_type reduce_lr_on_plateau with eval_strategy no", {"args": {"lr_scheduler_type": "reduce_lr_on_plateau"}}),
    ("fused_adamw_on_cpu", "the fused AdamW kernel on a CPU-only machine", "GPU_UNAVAILABLE", "STARTUP",
     "optim adamw_torch_fused with use_cpu", {"args": {"optim": "adamw_torch_fused"}}),
]
