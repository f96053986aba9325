"""The failure corpus's fifth round: new causes, written down (with the category and phase a person
gives each) before any of them ran, in the categories where the corpus had the fewest ways in.

SHARED rows run on both runners (scripts/failure_cases.py for FineTune Lab's trainer child,
scripts/bare_trl_cases.py for the plain TRL script): name, cause, category, phase, how, and the
model, dataset, resume damage or act it runs with. TRAINER and BARE rows name settings only one
runner has: a job config field, or a TRL argument. Each cause is split by the parity of its sha256,
as every later round's is (scripts/failure_corpus.split_for); bench/analyzer_accuracy.py --round 5
scores the round alone.

Add a case by adding a row; never edit a log it produced.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

ROUND = 5

SHARED = [
    # model folders
    ("broken_model_symlink", "model path that is a link to a deleted folder", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the model path is a symbolic link whose target was removed", {"model": "dangling-link"}),
    ("sharded_weights_missing_shard", "sharded weights with a shard missing", "MODEL_NOT_FOUND", "MODEL_LOAD",
     "the weights are three shards under model.safetensors.index.json; the last shard was deleted",
     {"model": "missing-shard"}),
    ("tokenizer_json_cut", "tokenizer.json cut short", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's tokenizer.json (its only tokenizer file) is cut to half its bytes", {"model": "tokenizer-cut"}),
    ("config_without_model_type", "model config.json without model_type", "CHECKPOINT_CORRUPT", "MODEL_LOAD",
     "the model's config.json has its architectures but no model_type key", {"model": "no-model-type"}),
    ("pytorch_bin_garbage", "pytorch_model.bin weights that are not a torch file", "CHECKPOINT_CORRUPT",
     "MODEL_LOAD", "the only weights file is pytorch_model.bin holding random bytes", {"model": "bin-garbage"}),
    ("added_tokens_beyond_vocab", "tokens added to the tokenizer but not to the embedding", "TOKEN_ID_OUT_OF_RANGE",
     "TRAINING", "the tokenizer has 32 added tokens past the model's vocab_size, and every row uses them",
     {"model": "added-tokens", "data": "added-tokens.jsonl"}),
    # data files
    ("gzip_named_jsonl", "gzip-compressed file named .jsonl", "DATASET_FORMAT", "DATA_PREP",
     "the .jsonl dataset is gzip-compressed JSON lines", {"data": "gzipped.jsonl"}),
    ("semicolon_csv", "CSV separated by semicolons", "DATASET_SCHEMA", "DATA_PREP",
     "a prompt;completion CSV, read as one column named 'prompt;completion'", {"data": "semicolon.csv"}),
    ("column_type_changes", "a column whose type changes between rows", "DATASET_FORMAT", "DATA_PREP",
     "messages is a list of turns on every row but one, where it is a string", {"data": "mixed.jsonl"}),
    ("turns_without_content", "chat turns with text under another key", "DATASET_SCHEMA", "DATA_PREP",
     "every turn has role and text, no content", {"data": "no-content.jsonl"}),
    # checkpoints, resumed from a real one of a good run, then damaged
    ("resume_state_missing", "checkpoint without trainer_state.json", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose trainer_state.json was deleted", {"resume": "state_missing"}),
    ("resume_adapter_weights_missing", "checkpoint without its adapter weights", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose adapter_model.safetensors was deleted", {"resume": "adapter_missing"}),
    ("resume_optimizer_zeroed", "optimizer state overwritten with zeros", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose optimizer.pt keeps its size but holds only zero bytes",
     {"resume": "optimizer_zeroed"}),
    ("resume_state_wrong_type", "trainer state with a field of the wrong type", "CHECKPOINT_CORRUPT", "STARTUP",
     "resume from a checkpoint whose trainer_state.json has global_step \"two\"", {"resume": "state_types"}),
    ("resume_checkpoint_is_file", "checkpoint path that is a file", "CHECKPOINT_NOT_FOUND", "STARTUP",
     "resume from a checkpoint whose folder was replaced by a file of the same name", {"resume": "as_file"}),
    # the process
    ("sighup_in_training", "process hung up on (SIGHUP)", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGHUP at the first training step", {"act": ("signal", 1)}),
    ("sigusr1_in_training", "process killed by SIGUSR1", "KILLED_BY_SIGNAL", "TRAINING",
     "SIGUSR1 (whose default action ends the process) at the first training step", {"act": ("signal", 10)}),
    ("file_size_limit_final_adapter", "final adapter save past a file-size limit", "DISK_FULL", "CHECKPOINT_SAVE",
     "RLIMIT_FSIZE of 32 KiB at the first step, no checkpoints; the final adapter save hits it",
     {"act": ("rlimit_fsize", 32 << 10)}),
]

# FineTune Lab job config fields (scripts/failure_cases.py adds its BASE). The round's first two,
# fp16 and QLoRA on a CPU-only machine, were causes the corpus had already, and were taken out
# before they were scored; so was a JSONL line cut short.
TRAINER: list[tuple] = []

# TRL / transformers arguments of the bare script (scripts/bare_trl_cases.py adds its BASE_ARGS)
BARE = [
    ("tf32_on_cpu", "tf32 asked on a CPU-only machine", "PRECISION_UNSUPPORTED", "STARTUP",
     "tf32=True with use_cpu=True", {"args": {"tf32": True}}),
    ("galore_without_package", "GaLore optimizer without its package", "DEPENDENCY_MISSING", "STARTUP",
     "optim galore_adamw with optim_target_modules, where galore_torch is not installed",
     {"args": {"optim": "galore_adamw", "optim_target_modules": ["q_proj", "v_proj"]}}),
    ("liger_without_package", "Liger kernels without their package", "DEPENDENCY_MISSING", "STARTUP",
     "use_liger_kernel=True where liger_kernel is not installed", {"args": {"use_liger_kernel": True}}),
    ("cosine_min_lr_missing", "cosine_with_min_lr schedule without its minimum", "INVALID_CONFIG", "STARTUP",
     "lr_scheduler_type cosine_with_min_lr with no min_lr or min_lr_rate in lr_scheduler_kwargs",
     {"args": {"lr_scheduler_type": "cosine_with_min_lr"}}),
    ("eval_steps_negative", "negative eval_steps", "EVAL_CONFIG", "STARTUP",
     "eval_strategy steps with eval_steps -1 and an eval file",
     {"args": {"eval_strategy": "steps", "eval_steps": -1}, "eval": "chat.jsonl"}),
]


def write_datasets(root: Path) -> None:
    """The round's dataset files, beside the ones scripts/failure_corpus.write_datasets makes."""
    chat = [json.loads(line) for line in (root / "chat.jsonl").read_text().splitlines()]
    text = (root / "chat.jsonl").read_text()
    (root / "gzipped.jsonl").write_bytes(gzip.compress(text.encode()))
    pairs = [(t["messages"][0]["content"], t["messages"][1]["content"]) for t in chat]
    (root / "semicolon.csv").write_text("prompt;completion\n" + "".join(f"{p};{c}\n" for p, c in pairs))
    mixed = [dict(r) for r in chat]
    mixed[50] = {"messages": f"{pairs[50][0]} {pairs[50][1]}"}
    (root / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))
    (root / "no-content.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": m["role"], "text": m["content"]} for m in r["messages"]]}) + "\n"
        for r in chat))
    (root / "added-tokens.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"<extra_{i % 32}> {p}"},
                                 {"role": "assistant", "content": f"{c} <extra_{(i + 7) % 32}>"}]}) + "\n"
        for i, (p, c) in enumerate(pairs)))


def write_models(root: Path, tiny: Path, variant, models: dict[str, str]) -> None:
    """The round's model folders: `variant(name, change)` copies the tiny model and changes it."""

    def shard(path):
        from transformers import AutoModelForCausalLM

        for f in path.glob("model*.safetensors*"):
            f.unlink()
        AutoModelForCausalLM.from_pretrained(tiny).save_pretrained(path, max_shard_size="200KB")
        shards = sorted(path.glob("model-*.safetensors"))
        if len(shards) < 2:
            raise RuntimeError("the tiny model did not shard")
        shards[-1].unlink()

    def cut(path):
        f = path / "tokenizer.json"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])

    def bin_garbage(path):
        (path / "model.safetensors").unlink()
        (path / "pytorch_model.bin").write_bytes(random.Random(5).randbytes(300_000))

    def no_model_type(path):
        cfg = json.loads((path / "config.json").read_text())
        cfg.pop("model_type")
        (path / "config.json").write_text(json.dumps(cfg))

    def added_tokens(path):
        from transformers import AutoConfig, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        vocab = AutoConfig.from_pretrained(path).vocab_size
        tok.add_tokens([f"<extra_{i}>" for i in range(32)])
        tok.save_pretrained(path)
        if len(tok) <= vocab:
            raise RuntimeError("the added tokens did not pass the vocabulary")

    variant("missing-shard", shard)
    variant("tokenizer-cut", cut)
    variant("bin-garbage", bin_garbage)
    variant("no-model-type", no_model_type)
    variant("added-tokens", added_tokens)
    variant("link-target", lambda p: None)
    shutil.rmtree(root / "link-target")
    (root / "dangling-link").symlink_to(root / "link-target")
    models["dangling-link"] = str(root / "dangling-link")


def damage(ckpt: Path, how: str) -> bool:
    """The round's checkpoint damages; False where `how` is not one of them."""
    if how == "state_missing":
        (ckpt / "trainer_state.json").unlink()
    elif how == "adapter_missing":
        (ckpt / "adapter_model.safetensors").unlink()
    elif how == "optimizer_zeroed":
        f = ckpt / "optimizer.pt"
        f.write_bytes(bytes(f.stat().st_size))
    elif how == "state_types":
        state = json.loads((ckpt / "trainer_state.json").read_text())
        state["global_step"] = "two"
        (ckpt / "trainer_state.json").write_text(json.dumps(state))
    elif how == "as_file":
        shutil.rmtree(ckpt)
        ckpt.write_text("this was a checkpoint folder\n")
    else:
        return False
    return True
