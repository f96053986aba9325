"""Produce the real GPU failures kept as analyzer fixtures (run on a CUDA machine).

    python scripts/gpu_failures.py --out DIR

Builds a random-weight Qwen2.5-0.5B-shaped model and long chat data, then runs the trainer's child
(scripts/capture_failure.py) on configs that really fail on a GPU machine: out of memory in
evaluation, out of memory in training, and a QLoRA job on a machine whose GPU is hidden.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts"), str(REPO / "bench"), str(REPO / "sdk" / "python")]

import capture_failure  # noqa: E402
from gpu_memory import write_datasets  # noqa: E402

CASES = [
    ("h100-cuda_oom_eval", "CUDA_OOM", "EVALUATION", {},
     {"adapter": "lora", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
      "gradient_checkpointing": True, "per_device_eval_batch_size": 256, "max_seq_length": 32768,
      "eval_strategy": "steps", "eval_steps": 1, "max_steps": 2, "dataset": {"eval_split": 0.85}, "long": True},
     "evaluation batch 256 x 32,768 tokens (8.4M tokens in one forward pass; TRL's fused LM head keeps the logits "
     "out of it, the MLP activations alone need ~80 GB); training (batch 1, gradient checkpointing) fits"),
    ("h100-cuda_oom_train_full", "CUDA_OOM", "TRAINING", {},
     {"adapter": "full", "per_device_train_batch_size": 64, "max_seq_length": 4096, "max_steps": 3},
     "full fine-tune of the 0.5B shape at micro-batch 64 x 4,096 tokens, no gradient checkpointing"),
    ("h100-gpu_hidden_qlora", "GPU_UNAVAILABLE", "MODEL_LOAD", {"CUDA_VISIBLE_DEVICES": ""},
     {"adapter": "qlora", "max_steps": 2, "max_seq_length": 256},
     "QLoRA (4-bit bitsandbytes) job started with CUDA_VISIBLE_DEVICES empty: the GPU is hidden"),
]


def write_long_chat(path: Path, rows: int = 300, words: int = 7000) -> Path:
    import random

    from gpu_memory import _text

    rng = random.Random(1)
    with path.open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"messages": [{"role": "user", "content": _text(rng, words)},
                                             {"role": "assistant", "content": _text(rng, words)}]}) + "\n")
    return path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--only", nargs="*", default=None)
    args = p.parse_args()
    from services.trainer.tiny import make_tiny_model

    with tempfile.TemporaryDirectory(prefix="ftlab-gpufail-") as tmp:
        work = Path(tmp)
        chat, _ = write_datasets(work)
        model = make_tiny_model(work / "qwen2.5-0.5b", shape="qwen2.5-0.5b")
        long_chat = None
        for name, category, phase, env, config, how in CASES:
            if args.only and name not in args.only:
                continue
            config = dict(config)
            data = chat
            if config.pop("long", False):
                long_chat = long_chat or write_long_chat(work / "long-chat-32k.jsonl")
                data = long_chat
            cfg_file = work / f"{name}.json"
            cfg_file.write_text(json.dumps(config))
            argv = [name, "--config", str(cfg_file), "--model", str(model), "--data", str(data),
                    "--category", category, "--phase", phase, "--how", how, "--out", args.out, "--timeout", "300"]
            for k, v in env.items():
                argv += ["--env", f"{k}={v}"]
            capture_failure.main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
