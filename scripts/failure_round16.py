"""The failure corpus's sixteenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, in the categories whose development half had the fewest causes
after the fifteenth (sequence lengths, quantization, evaluation settings, a missing GPU, chat
templates, divergence, a hang), chosen from the counts: prompts longer than the sequence length,
full fine-tuning of an 8-bit model, evaluation accumulation of 0 steps, a model placed on Apple's MPS,
LoRA alpha of 100,000, assistant-only loss without a chat template, SIGTSTP and SIGSYS.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 16 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROUND = 16

SHARED = [
    ("prompts_longer_than_sequence", "prompts longer than the sequence length", "SEQUENCE_TOO_LONG", "DATA_PREP",
     "prompt/completion rows whose prompts are 60 words, with a sequence length of 16 tokens",
     {"data": "long-prompts.jsonl", "config": {"max_seq_length": 16}, "args": {"max_length": 16},
      "fix": "max_seq_length"}),
    ("sigsys_in_training", "process killed by SIGSYS", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGSYS sent to the running process at its first step", {"act": ("signal", 31)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER = [
    ("lora_alpha_huge", "LoRA alpha of 100,000", "NAN_OR_DIVERGENCE", "TRAINING",
     "LoRA rank 8 with alpha 100000 (a scale of 12,500), learning rate 0.005, no clipping",
     {"fix": "lora.alpha", "config": {"adapter": "lora", "lora": {"rank": 8, "alpha": 100000.0},
                                      "learning_rate": 0.005, "max_grad_norm": 0, "max_steps": 30}}),
    ("sigtstp_in_training", "process stopped by SIGTSTP", "STUCK", "TRAINING",
     "SIGTSTP sent at the first step; the watchdog allows 3 s between steps",
     {"act": ("signal", 20), "step_timeout": 3.0, "config": {"max_steps": 200}}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("full_finetune_of_8bit_model", "full fine-tuning of an 8-bit model", "QUANTIZATION_UNSUPPORTED", "STARTUP",
     "from_pretrained with load_in_8bit, then SFTTrainer with no adapter",
     {"model_kwargs": {"quantization_config": {"quant_method": "bitsandbytes", "load_in_8bit": True}},
      "peft": None}),
    ("eval_accumulation_zero", "evaluation accumulation of 0 steps", "EVAL_CONFIG", "STARTUP",
     "eval_accumulation_steps 0 with an eval file and evaluation every 2 steps",
     {"eval": "chat.jsonl", "args": {"eval_strategy": "steps", "eval_steps": 2, "eval_accumulation_steps": 0}}),
    ("model_on_mps", "model placed on Apple's MPS on a Linux machine", "GPU_UNAVAILABLE", "MODEL_LOAD",
     "from_pretrained with device_map mps", {"model_kwargs": {"device_map": "mps"}}),
    ("assistant_loss_without_template", "assistant-only loss with a tokenizer without chat template",
     "CHAT_TEMPLATE_MISSING", "DATA_PREP", "assistant_only_loss True on chat rows; the tokenizer has no template",
     {"model": "no-template", "args": {"assistant_only_loss": True}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    rng = random.Random(16)
    rows = [{"prompt": " ".join(f"w{rng.randint(0, 999)}" for _ in range(60)) + " =", "completion": f" {a}"}
            for a in range(64)]
    (root / "long-prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
