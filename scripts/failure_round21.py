"""The failure corpus's twenty-first round: new causes, written down (with the category and phase a
person gives each) before any of them ran. It leans towards the categories with low held-out totals
(chosen from the categories' counts and totals, never from a log): a model's weights from a model of
another size, a shard index that is not JSON, JSON data files as people write them by hand (with
comments, or pretty-printed under a .jsonl name), gradient-checkpointing options written as text,
and plain SGD at a learning rate that throws the weights away.

The rows are as in scripts/failure_round5.py and scripts/failure_round13.py. Each cause is split by
the parity of its sha256; bench/analyzer_accuracy.py --round 21 scores the round alone. A `fix` puts
a case in bench/suggestion_fixes.py.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

ROUND = 21

SHARED = [
    ("weights_of_another_size", "weights of a model of another size under the same config", "CHECKPOINT_CORRUPT",
     "MODEL_LOAD", "model.safetensors is the weights of the same architecture at hidden size 32; config.json says 64",
     {"model": "other-size-weights"}),
    ("shard_index_not_json", "a shard index that is not JSON", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the weights are shards under model.safetensors.index.json, which is cut to half its bytes",
     {"model": "index-cut"}),
    ("json_with_comments", "JSON dataset with comments in it", "DATASET_FORMAT", "DATA_PREP",
     "a .json array of prompt/completion rows with // comment lines, as JSONC allows", {"data": "commented.json"}),
    ("pretty_json_array_as_jsonl", "pretty-printed JSON array named .jsonl", "DATASET_FORMAT", "DATA_PREP",
     "a JSON array of rows, indented over many lines, in a .jsonl file", {"data": "pretty-array.jsonl"}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE)
TRAINER: list[tuple] = []

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("checkpointing_options_as_text", "gradient-checkpointing options written as text", "INVALID_CONFIG",
     "STARTUP", "gradient_checkpointing True with gradient_checkpointing_kwargs \"use_reentrant=False\"",
     {"args": {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": "use_reentrant=False"}}),
    ("sgd_learning_rate_hundred", "plain SGD at learning rate 100", "NAN_OR_DIVERGENCE", "TRAINING",
     "full fine-tuning with optim sgd, learning_rate 100, no clipping, 30 steps",
     {"peft": None, "args": {"optim": "sgd", "learning_rate": 100.0, "max_grad_norm": 0, "max_steps": 30,
                             "lr_scheduler_type": "constant"}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    sums = [(a, (a * 23) % 100) for a in range(64)]
    rows = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a, b in sums]
    (root / "commented.json").write_text("[\n" + ",\n".join(
        (f"  // row {i}\n" if i % 8 == 0 else "") + "  " + json.dumps(r) for i, r in enumerate(rows)) + "\n]\n")
    (root / "pretty-array.jsonl").write_text(json.dumps(rows, indent=2) + "\n")


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def other_size(path: Path) -> None:
        from services.trainer.tiny import make_tiny_model

        with tempfile.TemporaryDirectory() as tmp:
            small = make_tiny_model(Path(tmp) / "small", hidden_size=32)
            shutil.copyfile(small / "model.safetensors", path / "model.safetensors")

    def index_cut(path: Path) -> None:
        from transformers import AutoModelForCausalLM

        for f in path.glob("model*.safetensors*"):
            f.unlink()
        AutoModelForCausalLM.from_pretrained(tiny).save_pretrained(path, max_shard_size="200KB")
        index = path / "model.safetensors.index.json"
        if not index.exists():
            raise RuntimeError("the tiny model did not shard")
        index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])

    variant("other-size-weights", other_size)
    variant("index-cut", index_cut)
