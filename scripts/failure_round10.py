"""The failure corpus's tenth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, spread over the categories rather than aimed at any: a Parquet
file damaged in its data pages, a tokenizer config naming a tokenizer class that does not exist, a
log that outgrows a file-size limit, and an experiment tracker's name that does not exist.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 10 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 10

SHARED = [
    ("parquet_pages_damaged", "Parquet file damaged in its data pages", "DATASET_FORMAT", "DATA_PREP",
     "a chat .parquet file whose middle third is overwritten with 0xAA bytes (header and footer intact)",
     {"data": "pages-damaged.parquet"}),
    ("tokenizer_class_unknown", "tokenizer config naming a class that does not exist", "INVALID_CONFIG", "MODEL_LOAD",
     "the model's tokenizer_config.json says tokenizer_class 'NoSuchTokenizerFast'", {"model": "tokenizer-class"}),
    ("log_past_size_limit", "log outgrowing a file-size limit", "DISK_FULL", "TRAINING",
     "RLIMIT_FSIZE set to 4 KiB at the first training step, below what the run's log already holds",
     {"act": ("rlimit_fsize", 4 << 10)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("report_to_unknown_name", "experiment tracker name that does not exist", "INVALID_CONFIG", "STARTUP",
     "report_to ['wandbx']", {"args": {"report_to": ["wandbx"]}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (root / "chat.jsonl").read_text().splitlines()]
    path = root / "pages-damaged.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third:2 * third] = b"\xaa" * third
    path.write_bytes(bytes(data))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def tokenizer_class(path: Path) -> None:
        tc = json.loads((path / "tokenizer_config.json").read_text())
        tc["tokenizer_class"] = "NoSuchTokenizerFast"
        (path / "tokenizer_config.json").write_text(json.dumps(tc))

    variant("tokenizer-class", tokenizer_class)
