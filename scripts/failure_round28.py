"""The failure corpus's twenty-eighth round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with few development
causes or low held-out totals (chosen from the categories' counts and totals, never from a log):
weights stored in float8, token ids past the embedding reached through an added end-of-sequence token
and through a template's literal token, chat templates missing in new ways (several named templates
and no default; an evaluation set of turns where the training rows are text), a model given as an
archive of its folder, and settings written as text or out of range (a schedule's arguments, a
device map, LoRA dropout).

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 28 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

ROUND = 28

ADDED = [f"<|x{i}|>" for i in range(40)]  # 486 + 40 ids: the last ones are past the embedding's 512 rows

SHARED = [
    ("weights_stored_in_float8", "weights stored in float8, loaded as they are", "PRECISION_UNSUPPORTED",
     "TRAINING", "model.safetensors holds float8_e4m3fn tensors and config.json says dtype float8_e4m3fn",
     {"model": "float8-weights"}),
    ("named_templates_without_default", "several named chat templates and no default", "CHAT_TEMPLATE_MISSING",
     "DATA_PREP", "tokenizer_config.json's chat_template is a list of templates named tool_use and rag",
     {"model": "templates-no-default"}),
    ("model_as_archive", "model given as a .tar.gz archive of its folder", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model path is tiny.tar.gz, the folder packed with tar", {"model": "archive"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("eos_token_past_embedding", "end-of-sequence token added to the tokenizer past the embedding",
     "TOKEN_ID_OUT_OF_RANGE", "TRAINING", "SFTConfig eos_token <|x39|>, a token the tokenizer has and the "
     "embedding does not", {"model": "special-tokens-40", "args": {"eos_token": ADDED[-1]}}),
    ("template_token_past_embedding", "chat template writing a token past the embedding", "TOKEN_ID_OUT_OF_RANGE",
     "TRAINING", "a chat template that opens every turn with <|x39|>, a token past the embedding",
     {"model": "special-tokens-40", "chat_template": "{% for m in messages %}" + ADDED[-1] +
      "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"}),
    ("eval_turns_without_template", "evaluation rows of turns where the training rows are text, no template",
     "CHAT_TEMPLATE_MISSING", "DATA_PREP", "train on text rows, evaluate on messages rows, tokenizer without "
     "chat template", {"model": "no-template", "data": "text.jsonl", "eval": "chat.jsonl",
                       "args": {"eval_strategy": "steps", "eval_steps": 2}}),
    ("schedule_arguments_as_text", "a schedule's argument written as text", "INVALID_CONFIG", "STARTUP",
     "lr_scheduler_type cosine with lr_scheduler_kwargs num_cycles \"half\"",
     {"args": {"lr_scheduler_type": "cosine", "lr_scheduler_kwargs": {"num_cycles": "half"}}}),
    ("device_map_unknown", "device map that names no device or strategy", "INVALID_CONFIG", "MODEL_LOAD",
     "from_pretrained with device_map \"everywhere\"", {"model_kwargs": {"device_map": "everywhere"}}),
    ("lora_dropout_as_text", "LoRA dropout written as text", "INVALID_CONFIG", "MODEL_LOAD",
     "LoraConfig lora_dropout \"0.1\"", {"peft": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear",
                                                 "lora_dropout": "0.1"}}),
]


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def float8(path: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        weights = load_file(path / "model.safetensors")
        save_file({k: v.to(torch.float8_e4m3fn) for k, v in weights.items()}, path / "model.safetensors",
                  metadata={"format": "pt"})
        config = json.loads((path / "config.json").read_text())
        config["dtype"] = "float8_e4m3fn"
        (path / "config.json").write_text(json.dumps(config))

    def named_templates(path: Path) -> None:
        for f in path.glob("chat_template.*"):
            f.unlink()
        config = json.loads((path / "tokenizer_config.json").read_text())
        body = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        config["chat_template"] = [{"name": "tool_use", "template": body}, {"name": "rag", "template": body}]
        (path / "tokenizer_config.json").write_text(json.dumps(config))

    def added_tokens(path: Path) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.add_special_tokens({"additional_special_tokens": ADDED})
        tokenizer.save_pretrained(path)

    variant("float8-weights", float8)
    variant("templates-no-default", named_templates)
    variant("special-tokens-40", added_tokens)
    archive = root / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny, arcname="tiny")
    models["archive"] = str(archive)
