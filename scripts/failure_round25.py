"""The failure corpus's twenty-fifth round: new causes, written down (with the category and phase a
person gives each) before any of them ran. After the twentieth found a learning rate written as text
(a YAML loader's classic), it looks for more settings written as text, each met at its own place in a
plain TRL script (the DPO loss, gradient clipping, the warmup schedule), and adds two settings that
evaluation or the optimizer refuse: saving the best checkpoint with no metric, and GaLore's target
modules given to plain AdamW.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 25 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

ROUND = 25

SHARED: list[tuple] = []

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("dpo_beta_as_text", "DPO beta written as text", "INVALID_CONFIG", "TRAINING", "DPOTrainer with beta \"0.1\"",
     {"trainer": "dpo", "data": "preference-chat.jsonl", "args": {"beta": "0.1"}}),
    ("max_grad_norm_as_text", "gradient clipping norm written as text", "INVALID_CONFIG", "TRAINING",
     "max_grad_norm \"1.0\"", {"args": {"max_grad_norm": "1.0"}}),
    ("warmup_ratio_as_text", "warmup ratio written as text", "INVALID_CONFIG", "STARTUP", "warmup_ratio \"0.1\"",
     {"args": {"warmup_ratio": "0.1"}}),
    ("save_best_without_metric", "saving the best checkpoint with no metric to judge it", "EVAL_CONFIG", "STARTUP",
     "save_strategy best with no metric_for_best_model and no evaluation", {"args": {"save_strategy": "best"}}),
    ("galore_targets_for_adamw", "GaLore target modules given to plain AdamW", "INVALID_CONFIG", "STARTUP",
     "optim adamw_torch with optim_target_modules [q_proj]", {"args": {"optim_target_modules": ["q_proj"]}}),
]
