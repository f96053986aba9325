"""The failure corpus's twentieth round: new causes, written down (with the category and phase a person
gives each) before any of them ran. Like the rounds before it, it leans towards the categories with
few development causes or low held-out totals (chosen from the categories' counts and totals, never
from a log): model files naming a class the library lacks, data files that a reader refuses in new
ways, rows whose turns and text are mixed, a template written for another shape of turn, a learning
rate written as text (a YAML loader's classic), evaluation steps that saving cannot follow, and a
filesystem with space left but no inodes.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 20 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py. A tokenizer config naming a class that does not exist was written
down here too, but round ten has that cause; it kept no log, and its row was taken out so that every
case has its own name and cause (tests/unit/test_corpus_tables.py).

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 20

# a template for turns whose content is a list of parts ({"type": "text", "text": ...}), as vision
# models' templates are written; the rows give plain text
PARTS_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'][0]['text'] }}<|im_end|>\n"
                  "{% endfor %}")

SHARED = [
    ("csv_with_nul_bytes", "CSV with NUL bytes in its rows", "DATASET_FORMAT", "DATA_PREP",
     "a prompt,completion CSV with a NUL byte inside every tenth row", {"data": "nul.csv"}),
    ("jsonl_with_nan", "JSONL rows holding NaN", "DATASET_FORMAT", "DATA_PREP",
     "prompt/completion rows with a score field of NaN (Python's json writes it; JSON has no NaN)",
     {"data": "nan.jsonl"}),
    ("prompt_text_completion_turns", "prompt as text with completion as turns", "DATASET_SCHEMA", "DATA_PREP",
     "prompt is a string and completion a list of one assistant turn, on every row",
     {"data": "text-prompt-turn-completion.jsonl"}),
    ("template_for_content_parts", "chat template written for content parts, given text turns",
     "CHAT_TEMPLATE_INCOMPATIBLE", "DATA_PREP", "the template reads m['content'][0]['text']; the turns' content is text",
     {"config": {"chat_template": PARTS_TEMPLATE}, "chat_template": PARTS_TEMPLATE, "fix": "chat_template"}),
    ("learning_rate_as_text", "learning rate written as text", "INVALID_CONFIG", "STARTUP",
     "learning_rate \"1e-4\", as PyYAML reads 1e-4", {"config": {"learning_rate": "1e-4"},
                                                     "args": {"learning_rate": "1e-4"}}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("save_steps_off_eval_steps", "best-model loading with saves off the evaluation steps", "EVAL_CONFIG", "STARTUP",
     "load_best_model_at_end with eval_steps 2 and save_steps 3", {
         "eval": "chat.jsonl", "args": {"eval_strategy": "steps", "eval_steps": 2, "save_strategy": "steps",
                                        "save_steps": 3, "load_best_model_at_end": True}}),
    ("output_out_of_inodes", "output folder on a filesystem out of inodes", "DISK_FULL", "CHECKPOINT_SAVE",
     "the output folder is a 16 MiB tmpfs with 4 inodes; LoRA saves the adapter at the end",
     {"tmpfs": "16m,nr_inodes=4"}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 19) % 100) for a in range(64)]
    (root / "nul.csv").write_text("prompt,completion\n" + "".join(
        f"{a}+{b}=,{a + b}{chr(0) if i % 10 == 0 else ''}\n" for i, (a, b) in enumerate(sums)))
    (root / "nan.jsonl").write_text("".join(json.dumps({"prompt": f"{a}+{b}=", "completion": str(a + b),
                                                        "score": float("nan")}) + "\n" for a, b in sums))
    (root / "text-prompt-turn-completion.jsonl").write_text("".join(json.dumps({
        "prompt": f"{a}+{b}=", "completion": [{"role": "assistant", "content": str(a + b)}]}) + "\n" for a, b in sums))
