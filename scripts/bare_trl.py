"""A bare TRL training script, written as a user writes one without FineTune Lab: datasets'
`load_dataset`, transformers' Auto classes, TRL's SFTTrainer or DPOTrainer, PEFT's LoraConfig. The
failure corpus (scripts/bare_trl_corpus.py) runs it to get real failure logs through the libraries'
own paths, where none of FineTune Lab's checks and messages stand in between.

    python scripts/bare_trl.py CONFIG.json

CONFIG: {"trainer": "sft" | "dpo", "model": path, "train_file": path, "eval_file": path or null,
"chat_template": Jinja text or null, "peft": LoraConfig kwargs or null, "model_kwargs": {...},
"resume_from_checkpoint": path or null, "args": SFTConfig / DPOConfig kwargs}. Imports nothing of
FineTune Lab's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def main() -> int:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    files = {"train": cfg["train_file"]}
    if cfg.get("eval_file"):
        files["eval"] = cfg["eval_file"]
    builder = BUILDERS.get(Path(cfg["train_file"]).suffix, Path(cfg["train_file"]).suffix.lstrip("."))
    dataset = load_dataset(builder, data_files=files)
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if cfg.get("chat_template"):
        tokenizer.chat_template = cfg["chat_template"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], **cfg.get("model_kwargs", {}))
    peft_config = None
    if cfg.get("peft"):
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", **cfg["peft"])
    if cfg.get("trainer", "sft") == "dpo":
        from trl import DPOConfig as Config
        from trl import DPOTrainer as Trainer
    else:
        from trl import SFTConfig as Config
        from trl import SFTTrainer as Trainer
    args = Config(**cfg["args"])
    trainer = Trainer(model=model, args=args, train_dataset=dataset["train"], eval_dataset=dataset.get("eval"),
                      processing_class=tokenizer, peft_config=peft_config)
    trainer.train(resume_from_checkpoint=cfg.get("resume_from_checkpoint"))
    trainer.save_model()
    print("training finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
