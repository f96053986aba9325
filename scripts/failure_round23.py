"""The failure corpus's twenty-third round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with low held-out totals
(chosen from the categories' counts and totals, never from a log): rows written as Python's repr of
a dict, a weights header whose dtypes do not match its bytes, a logging strategy that does not exist,
and a batch size that is not a whole number.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 23 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

ROUND = 23

SHARED = [
    ("rows_as_python_dicts", "rows written as Python dicts, not JSON", "DATASET_FORMAT", "DATA_PREP",
     "every line of the .jsonl file is str() of a dict: single quotes", {"data": "python-repr.jsonl"}),
    ("weights_header_dtype_lies", "a weights header whose dtypes do not match its bytes", "CHECKPOINT_CORRUPT",
     "MODEL_LOAD", "model.safetensors' header says F16 for every tensor; the bytes are F32",
     {"model": "header-dtype-f16"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("logging_strategy_unknown", "logging strategy that does not exist", "INVALID_CONFIG", "STARTUP",
     "logging_strategy \"often\"", {"args": {"logging_strategy": "often"}}),
    ("batch_size_fraction", "micro-batch size that is not a whole number", "INVALID_CONFIG", "STARTUP",
     "per_device_train_batch_size 2.5", {"args": {"per_device_train_batch_size": 2.5}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 29) % 100) for a in range(64)]
    (root / "python-repr.jsonl").write_text("".join(
        str({"prompt": f"{a}+{b}=", "completion": str(a + b)}) + "\n" for a, b in sums))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def dtype_f16(path: Path) -> None:
        data = (path / "model.safetensors").read_bytes()
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + size])
        for name, info in header.items():
            if name != "__metadata__":
                info["dtype"] = "F16"
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        (path / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])

    variant("header-dtype-f16", dtype_f16)
