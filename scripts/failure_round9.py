"""The failure corpus's ninth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, spread over the categories rather than aimed at any: JSONL rows
ending in commas, a misspelled role, a model config naming a dtype torch does not have, a Parquet
`messages` column of numbers, a CSV `messages` column of plain text, a negative warmup, an unknown
torch.compile backend, an unknown LoRA initialization, and an unknown attention implementation.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 9 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 9
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}

SHARED = [
    # data files
    ("jsonl_rows_end_in_commas", "JSONL rows that end in commas", "DATASET_FORMAT", "DATA_PREP",
     "every line of the chat .jsonl file is a row followed by a comma, as a JSON array's lines are",
     {"data": "trailing-commas.jsonl"}),
    ("messages_role_misspelled", "chat turns with a misspelled role", "DATASET_FORMAT", "DATA_PREP",
     "every assistant turn's role is 'asistant'", {"data": "role-misspelled.jsonl"}),
    ("parquet_messages_numbers", "Parquet messages column of numbers", "DATASET_FORMAT", "DATA_PREP",
     "a .parquet file whose messages column holds integers", {"data": "messages-numbers.parquet"}),
    ("csv_messages_plain_text", "CSV messages column of plain text", "DATASET_FORMAT", "DATA_PREP",
     "a .csv file with a messages column holding each row's question as plain text, not a list of turns",
     {"data": "messages-text.csv"}),
    # model folders
    ("config_dtype_unknown", "model config naming a dtype torch does not have", "INVALID_CONFIG", "MODEL_LOAD",
     "the model's config.json says dtype 'float12'", {"model": "dtype-unknown"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("warmup_steps_negative", "negative warmup steps", "INVALID_CONFIG", "STARTUP", "warmup_steps -5",
     {"args": {"warmup_steps": -5}}),
    ("compile_backend_unknown", "torch.compile backend that does not exist", "INVALID_CONFIG", "STARTUP",
     "torch_compile True with torch_compile_backend 'turbo9'",
     {"args": {"torch_compile": True, "torch_compile_backend": "turbo9"}}),
    ("lora_init_unknown", "LoRA initialization that does not exist", "INVALID_CONFIG", "MODEL_LOAD",
     "LoraConfig init_lora_weights 'fancy'", {"peft": {**LORA, "init_lora_weights": "fancy"}}),
    ("attn_implementation_unknown", "attention implementation that does not exist", "INVALID_CONFIG", "MODEL_LOAD",
     "from_pretrained with attn_implementation 'turbo'", {"model_kwargs": {"attn_implementation": "turbo"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (root / "chat.jsonl").read_text().splitlines()]
    (root / "trailing-commas.jsonl").write_text("".join(json.dumps(r) + ",\n" for r in rows))
    misspelled = [{"messages": [m if m["role"] != "assistant" else {**m, "role": "asistant"} for m in r["messages"]]}
                  for r in rows]
    (root / "role-misspelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in misspelled))
    pq.write_table(pa.table({"messages": list(range(len(rows)))}), root / "messages-numbers.parquet")
    lines = ["messages"] + ['"' + r["messages"][0]["content"].replace('"', '""') + '"' for r in rows]
    (root / "messages-text.csv").write_text("\n".join(lines) + "\n")


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def dtype_unknown(path: Path) -> None:
        cfg = json.loads((path / "config.json").read_text())
        cfg.pop("torch_dtype", None)
        cfg["dtype"] = "float12"
        (path / "config.json").write_text(json.dumps(cfg))

    variant("dtype-unknown", dtype_unknown)
