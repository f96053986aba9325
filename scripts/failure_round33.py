"""The failure corpus's thirty-third round: new causes, written down (with the category and phase a
person gives each) before any of them ran. After round thirty-two found a template that trained and
succeeded on nothing of the rows, it tries two more ways a job may learn nothing of what it is
given, through FineTune Lab's trainer: a chat template that writes only the user's turns (one written
for other role names), and assistant turns that are all empty under assistant-only loss.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 33 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 33

USER_ONLY_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}"
                      "<|im_end|>\n{% endif %}{% endfor %}")

SHARED: list[tuple] = []

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("template_writing_only_user_turns", "chat template that writes only the user's turns",
     "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP", "the job's chat_template writes the user turns and skips the "
     "assistant's", {"config": {"chat_template": USER_ONLY_TEMPLATE}, "fix": "chat_template"}),
    ("assistant_turns_all_empty", "assistant turns that are all empty, under assistant-only loss",
     "DATASET_FORMAT", "DATA_PREP", "every row's assistant content is \"\"; assistant_only_loss with chatml",
     {"data": "assistant-empty.jsonl", "config": {"assistant_only_loss": True, "chat_template": "chatml"}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE: list[tuple] = []


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    (root / "assistant-empty.jsonl").write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"{a}+{a}="}, {"role": "assistant", "content": ""}]}) + "\n" for a in range(64)))
