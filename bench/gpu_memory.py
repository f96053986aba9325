"""Measure peak GPU memory of real training runs across configs (needs a CUDA GPU).

    python bench/gpu_memory.py [--out bench/results] [--only NAME ...]

Each config runs the trainer's own child (services.trainer.child) for a few optimizer steps on a
random-weight model of a real shape (Qwen2.5 0.5B / 1.5B, vocabulary 151,936) with every sequence
cut at max_seq_length, so every batch is full length: the worst case pre-flight estimates. Writes
gpu_memory_{calibration,validation}.json: per config the resolved settings, the peak bytes allocated and reserved by
PyTorch's caching allocator, tokens/s, and the pre-flight estimate beside them
(bench/memory_estimate.py compares the two).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts"), str(REPO / "sdk" / "python")]

from capture_failure import resolved_config, run_child  # noqa: E402

# name, shape, overrides: batches of max_seq_length tokens, 3 optimizer steps, no accumulation.
CONFIGS: list[tuple[str, str, dict]] = [
    ("full-0.5b-b8-s1024", "qwen2.5-0.5b", {"adapter": "full", "per_device_train_batch_size": 8, "max_seq_length": 1024}),
    ("full-0.5b-b8-s1024-gc", "qwen2.5-0.5b", {"adapter": "full", "per_device_train_batch_size": 8, "max_seq_length": 1024,
                                                "gradient_checkpointing": True}),
    ("full-0.5b-b4-s2048", "qwen2.5-0.5b", {"adapter": "full", "per_device_train_batch_size": 4, "max_seq_length": 2048}),
    ("full-0.5b-b16-s512", "qwen2.5-0.5b", {"adapter": "full", "per_device_train_batch_size": 16, "max_seq_length": 512}),
    ("lora-0.5b-b8-s1024", "qwen2.5-0.5b", {"adapter": "lora", "per_device_train_batch_size": 8, "max_seq_length": 1024}),
    ("dpo-lora-0.5b-b4-s512", "qwen2.5-0.5b", {"method": "dpo", "adapter": "lora", "per_device_train_batch_size": 4,
                                                "max_seq_length": 512}),
    ("lora-1.5b-b8-s1024", "qwen2.5-1.5b", {"adapter": "lora", "per_device_train_batch_size": 8, "max_seq_length": 1024}),
    ("lora-1.5b-b16-s1024-gc", "qwen2.5-1.5b", {"adapter": "lora", "per_device_train_batch_size": 16, "max_seq_length": 1024,
                                                 "gradient_checkpointing": True}),
    ("lora-1.5b-b4-s2048", "qwen2.5-1.5b", {"adapter": "lora", "per_device_train_batch_size": 4, "max_seq_length": 2048}),
    ("qlora-1.5b-b8-s1024", "qwen2.5-1.5b", {"adapter": "qlora", "per_device_train_batch_size": 8, "max_seq_length": 1024}),
    ("qlora-1.5b-b8-s2048-gc", "qwen2.5-1.5b", {"adapter": "qlora", "per_device_train_batch_size": 8, "max_seq_length": 2048,
                                                 "gradient_checkpointing": True}),
    ("full-1.5b-b4-s1024-gc", "qwen2.5-1.5b", {"adapter": "full", "per_device_train_batch_size": 4, "max_seq_length": 1024,
                                                "gradient_checkpointing": True}),
    ("full-1.5b-b8-s1024", "qwen2.5-1.5b", {"adapter": "full", "per_device_train_batch_size": 8, "max_seq_length": 1024}),
]
# Held out: measured after the estimator's factors were fitted to the configs above, to test it.
VALIDATION: list[tuple[str, str, dict]] = [
    ("lora-0.5b-b4-s2048-gc", "qwen2.5-0.5b", {"adapter": "lora", "per_device_train_batch_size": 4, "max_seq_length": 2048,
                                                "gradient_checkpointing": True}),
    ("qlora-0.5b-b8-s1024", "qwen2.5-0.5b", {"adapter": "qlora", "per_device_train_batch_size": 8, "max_seq_length": 1024}),
    ("full-0.5b-b2-s4096-gc", "qwen2.5-0.5b", {"adapter": "full", "per_device_train_batch_size": 2, "max_seq_length": 4096,
                                                "gradient_checkpointing": True}),
    ("lora-1.5b-b2-s4096", "qwen2.5-1.5b", {"adapter": "lora", "per_device_train_batch_size": 2, "max_seq_length": 4096}),
    ("lora-qv-r64-1.5b-b8-s1024", "qwen2.5-1.5b", {"adapter": "lora", "per_device_train_batch_size": 8, "max_seq_length": 1024,
                                                    "lora": {"rank": 64, "alpha": 128, "target_modules": ["q_proj", "v_proj"]}}),
    ("dpo-lora-1.5b-b4-s1024", "qwen2.5-1.5b", {"method": "dpo", "adapter": "lora", "per_device_train_batch_size": 4,
                                                 "max_seq_length": 1024}),
]

_WORDS = ("the model learns from data and each answer explains a step of the method with care while numbers "
          "like 12 345 and 67 appear in code such as def add(a, b): return a + b").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def write_datasets(workdir: Path, rows: int = 256) -> tuple[Path, Path]:
    """Chat rows and preference rows long enough that every sequence is cut at max_seq_length."""
    rng = random.Random(0)
    chat, pref = workdir / "long-chat.jsonl", workdir / "long-pref.jsonl"
    with chat.open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"messages": [{"role": "user", "content": _text(rng, 1500)},
                                             {"role": "assistant", "content": _text(rng, 1500)}]}) + "\n")
    with pref.open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"prompt": _text(rng, 60), "chosen": _text(rng, 1200),
                                "rejected": _text(rng, 1200)}) + "\n")
    return chat, pref


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--set", choices=("calibration", "validation"), default="calibration")
    args = p.parse_args(argv)

    import torch

    from services.trainer.tiny import make_tiny_model

    if not torch.cuda.is_available():
        print("gpu_memory: needs a CUDA GPU", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_properties(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="ftlab-gpumem-") as tmp:
        work = Path(tmp)
        chat, pref = write_datasets(work)
        models: dict[str, Path] = {}
        for name, shape, overrides in (CONFIGS if args.set == "calibration" else VALIDATION):
            if args.only and name not in args.only:
                continue
            if shape not in models:
                t0 = time.monotonic()
                models[shape] = make_tiny_model(work / shape, shape=shape)
                torch.cuda.empty_cache()
                print(f"built {shape} in {time.monotonic() - t0:.1f}s", flush=True)
            friendly = dict(overrides, max_steps=args.steps, gradient_accumulation_steps=1, logging_steps=1,
                            save_steps=0, eval_strategy="no", divergence_factor=0)
            data = pref if overrides.get("method") == "dpo" else chat
            config = resolved_config(friendly, str(models[shape]), str(data))
            run = run_child(config, work / name, {}, timeout=600)
            metrics = [e["metrics"] for e in run["events"] if "metrics" in e]
            errors = [e["error"] for e in run["events"] if "error" in e]
            last = metrics[-1] if metrics else {}
            row = {
                "name": name, "set": args.set, "shape": shape, "request": overrides, "exit_code": run["exit_code"],
                "error": (errors[-1]["type"] + ": " + errors[-1]["message"][:300]) if errors else None,
                "peak_allocated_bytes": int(last.get("gpu_memory_peak_bytes", 0)) or None,
                "peak_reserved_bytes": int(last.get("gpu_memory_peak_reserved_bytes", 0)) or None,
                "tokens_per_second": last.get("tokens_per_second"),
                "steps": int(last.get("step", 0)),
                "duration_s": run["duration_s"],
            }
            if run["exit_code"] != 0:
                row["log_tail"] = run["lines"][-15:]
            results.append(row)
            gib = (row["peak_reserved_bytes"] or 0) / 2**30
            print(f"{name:28s} exit {run['exit_code']} peak reserved {gib:6.2f} GiB  "
                  f"allocated {(row['peak_allocated_bytes'] or 0) / 2**30:6.2f} GiB  "
                  f"{row['tokens_per_second'] or 0:9.0f} tok/s  {run['duration_s']}s", flush=True)
            shutil.rmtree(work / name, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"gpu": gpu.name, "gpu_total_bytes": gpu.total_memory, "torch": torch.__version__,
           "steps": args.steps, "date": time.strftime("%Y-%m-%d"), "runs": results}
    (out / f"gpu_memory_{args.set}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
