"""The failure corpus's thirty-second round: new causes, written down (with the category and phase a
person gives each) before any of them ran. Through FineTune Lab's trainer, a chat template given as
the name of another model's template, which the trainer takes as Jinja text (a one-field fix);
through the plain script, launcher and loss settings refused by other roads (an accelerator setting
that does not exist, FSDP asked in a single process on a CPU, a DPO loss with a smoothing it does
not take).

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 32 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

ROUND = 32

SHARED: list[tuple] = []

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("template_named_after_another_model", "chat template given as another model's template name",
     "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP", "chat_template \"llama3\": not a name the trainer knows, so it is "
     "taken as a template whose whole text is the word", {"config": {"chat_template": "llama3"},
                                                         "fix": "chat_template"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("accelerator_setting_unknown", "accelerator setting that does not exist", "INVALID_CONFIG", "STARTUP",
     "accelerator_config {\"split_batches_by_magic\": true}", {"args": {"accelerator_config": {
         "split_batches_by_magic": True}}}),
    ("fsdp_in_one_cpu_process", "FSDP asked in a single process on a CPU", "INVALID_CONFIG", "STARTUP",
     "fsdp \"full_shard\" with use_cpu, run as one plain process", {"args": {"fsdp": "full_shard"}}),
    ("dpo_loss_with_smoothing_it_refuses", "DPO loss given a label smoothing it does not take", "INVALID_CONFIG",
     "STARTUP", "DPOTrainer with loss_type ipo and label_smoothing 0.3", {
         "trainer": "dpo", "data": "preference-chat.jsonl", "args": {"loss_type": "ipo", "label_smoothing": 0.3}}),
]
