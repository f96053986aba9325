"""The failure corpus's sixth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, reached by library paths the earlier rounds did not take: a
tokenizer's own files, a pad token outside the embedding, Parquet and JSONL files that parse but
hold nothing usable, signals whose default action differs, an adapter config that disagrees with
its weights, PEFT's and transformers' own argument checks, optional packages, and a model placed on
a GPU the machine does not have.

The rows are as in scripts/failure_round5.py (SHARED on both runners, TRAINER for FineTune Lab's
trainer child, BARE for the plain TRL script). Each cause is split by the parity of its sha256;
bench/analyzer_accuracy.py --round 6 scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import json
from pathlib import Path

ROUND = 6

SHARED = [
    # model folders
    ("tokenizer_config_not_json", "tokenizer_config.json that is not JSON", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's tokenizer_config.json holds YAML-like text, not JSON", {"model": "tokenizer-config-not-json"}),
    ("pad_token_past_embedding", "pad token whose id is past the embedding", "TOKEN_ID_OUT_OF_RANGE", "TRAINING",
     "the tokenizer's pad token is a token added past the model's vocab_size; rows of different lengths are padded",
     {"model": "pad-past-vocab"}),
    # data files
    ("parquet_without_rows", "Parquet file with no rows", "DATASET_FORMAT", "DATA_PREP",
     "a valid Parquet file with prompt and completion columns and zero rows", {"data": "no-rows.parquet"}),
    ("jsonl_empty_objects", "JSONL rows that are all empty objects", "DATASET_SCHEMA", "DATA_PREP",
     "every line of the .jsonl file is {}", {"data": "empty-objects.jsonl"}),
    ("conversations_without_turns", "conversations with no turns", "DATASET_FORMAT", "DATA_PREP",
     "every row's messages is an empty list", {"data": "no-turns.jsonl"}),
    ("jsonl_byte_order_mark", "JSONL starting with a UTF-8 byte-order mark", "DATASET_FORMAT", "DATA_PREP",
     "the chat .jsonl file begins with the bytes EF BB BF", {"data": "bom.jsonl"}),
    ("csv_prompt_only", "CSV with a prompt column and no completion", "DATASET_SCHEMA", "DATA_PREP",
     "a CSV whose only column is prompt", {"data": "prompt-only.csv"}),
    # a checkpoint of a good run, then damaged
    ("resume_adapter_rank_changed", "checkpoint whose adapter config disagrees with its weights",
     "CHECKPOINT_CORRUPT", "STARTUP", "resume from a checkpoint whose adapter_config.json gives r four times its weights' rank",
     {"resume": "adapter_rank"}),
    # the process
    ("sigalrm_in_training", "process killed by SIGALRM", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGALRM (no handler installed) at the first training step", {"act": ("signal", 14)}),
    ("sigxcpu_in_training", "process killed by SIGXCPU", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGXCPU, as a CPU-time limit sends, at the first training step", {"act": ("signal", 24)}),
    ("sigint_in_training", "process interrupted (SIGINT)", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGINT (Python raises KeyboardInterrupt) at the first training step", {"act": ("signal", 2)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE); each passes the scheduler's
# validation, as a user's job would
TRAINER = [
    ("columns_mapped_to_absent", "column mapping naming columns the rows lack", "DATASET_SCHEMA", "DATA_PREP",
     "dataset.columns maps prompt and completion to question and answer on rows that hold messages",
     {"config": {"dataset": {"columns": {"prompt": "question", "completion": "answer"}}}, "fix": "dataset.columns"}),
    ("lora_learning_rate_one_unclipped", "LoRA at learning rate 1 with no clipping", "NAN_OR_DIVERGENCE", "TRAINING",
     "adapter LORA, learning_rate 1, max_grad_norm 0, 30 steps on chat rows",
     {"config": {"adapter": "lora", "learning_rate": 1.0, "max_grad_norm": 0, "max_steps": 30},
      "fix": "learning_rate"}),
]

# TRL / transformers / PEFT arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("lora_rank_zero", "LoRA rank 0", "INVALID_CONFIG", "MODEL_LOAD",
     "LoraConfig r=0", {"peft": {"r": 0, "lora_alpha": 8, "target_modules": "all-linear"}}),
    ("lora_dropout_over_one", "LoRA dropout above 1", "INVALID_CONFIG", "MODEL_LOAD",
     "LoraConfig lora_dropout=1.5", {"peft": {"r": 4, "lora_alpha": 8, "lora_dropout": 1.5,
                                              "target_modules": "all-linear"}}),
    ("device_map_cuda_on_cpu", "model placed on CUDA on a CPU-only machine", "GPU_UNAVAILABLE", "MODEL_LOAD",
     "from_pretrained(device_map='cuda') where torch has no CUDA", {"model_kwargs": {"device_map": "cuda"}}),
    ("deepspeed_without_package", "DeepSpeed config where deepspeed is not installed", "DEPENDENCY_MISSING",
     "STARTUP", "deepspeed given a ZeRO-2 config dict where the deepspeed package is not installed",
     {"args": {"deepspeed": {"zero_optimization": {"stage": 2}, "train_batch_size": "auto"}}}),
    ("anyprecision_without_package", "AnyPrecision optimizer without torchdistx", "DEPENDENCY_MISSING", "STARTUP",
     "optim adamw_anyprecision where torchdistx is not installed", {"args": {"optim": "adamw_anyprecision"}}),
    ("save_steps_zero", "checkpoint every 0 steps", "INVALID_CONFIG", "STARTUP",
     "save_strategy steps with save_steps 0", {"args": {"save_strategy": "steps", "save_steps": 0}}),
    ("empty_cache_steps_zero", "emptying the device cache every 0 steps", "INVALID_CONFIG", "STARTUP",
     "torch_empty_cache_steps 0", {"args": {"torch_empty_cache_steps": 0}}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chat = (root / "chat.jsonl").read_text()
    pq.write_table(pa.table({"prompt": pa.array([], pa.string()), "completion": pa.array([], pa.string())}),
                   root / "no-rows.parquet")
    rows = chat.splitlines()
    (root / "empty-objects.jsonl").write_text("{}\n" * len(rows))
    (root / "no-turns.jsonl").write_text((json.dumps({"messages": []}) + "\n") * len(rows))
    (root / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + chat.encode())
    prompts = [json.loads(r)["messages"][0]["content"] for r in rows]
    (root / "prompt-only.csv").write_text("prompt\n" + "".join(f"{p}\n" for p in prompts))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def pad_past_vocab(path):
        from transformers import AutoConfig, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        vocab = AutoConfig.from_pretrained(path).vocab_size
        tok.add_special_tokens({"pad_token": "<pad_past_vocab>"})
        tok.save_pretrained(path)
        if tok.pad_token_id < vocab:
            raise RuntimeError("the pad token did not land past the vocabulary")

    variant("tokenizer-config-not-json",
            lambda p: (p / "tokenizer_config.json").write_text("tokenizer_class: Qwen2Tokenizer\n"))
    variant("pad-past-vocab", pad_past_vocab)


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "adapter_rank":
        cfg = json.loads((ckpt / "adapter_config.json").read_text())
        cfg["r"] = 4 * int(cfg["r"])
        (ckpt / "adapter_config.json").write_text(json.dumps(cfg))
        return True
    return False
