"""The failure corpus's twelfth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, spread over the categories rather than aimed at any: a file of
sample prompts that is random bytes, a chat template that renders nothing, and bf16 on a CPU.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 12 scores the round alone. A `fix` (the one config field a user
would change, decided from the cause) puts a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

ROUND = 12
EMPTY_TEMPLATE = "{% for m in messages %}{% endfor %}"

SHARED: list[tuple] = []

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER = [
    ("sample_prompts_binary", "file of sample prompts that is random bytes", "DATASET_FORMAT", "DATA_PREP",
     "samples.prompts_uri names a file of random bytes", {
         "config": {"samples": {"prompts_uri": "@data/binary.jsonl"}, "eval_strategy": "steps", "eval_steps": 2,
                    "dataset": {"eval_split": 0.2}}, "fix": "samples.prompts_uri"}),
    ("chat_template_renders_nothing", "chat template that renders nothing", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
     "the job's chat_template loops over the messages and writes nothing",
     {"config": {"chat_template": EMPTY_TEMPLATE}, "fix": "chat_template"}),
    ("bf16_on_cpu", "bf16 on a machine without a GPU", "PRECISION_UNSUPPORTED", "STARTUP",
     "precision bf16 on a CPU-only machine", {"config": {"precision": "bf16"}, "fix": "precision"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("chat_template_renders_nothing", "chat template that renders nothing", "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP",
     "the script's chat template loops over the messages and writes nothing", {"chat_template": EMPTY_TEMPLATE}),
    ("bf16_on_cpu", "bf16 on a machine without a GPU", "PRECISION_UNSUPPORTED", "STARTUP", "bf16 True with use_cpu",
     {"args": {"bf16": True}}),
]
