"""Training speed side by side, on one machine, the same model, data and number of real (non-padding)
tokens:

  (a) bare TRL: TRL's SFTTrainer in a script of its own, with TRL's defaults;
  (b) FineTune Lab: the same request as a job through a real `ftlab serve`, which decides its own
      speed settings (padding-free batches, fused AdamW, micro-batch search, ...);
  (c) bare TRL with (b)'s settings: the job's effective config replayed in a plain script, so b/c
      is what the services themselves cost.

    .venv/bin/python bench/train_speed.py [--shape tiny|qwen2.5-0.5b|qwen2.5-1.5b] [--adapter lora|full|qlora]
                                          [--rows 512] [--batch 8] [--accum 8] [--max-len 1024]

Every arm gets the same request: micro-batch `--batch` with `--accum` accumulation steps, one epoch
over a variable-length chat dataset (answer lengths drawn from a long-tailed distribution, so
padding is real), the same seed, learning rate, schedule (TRL's: linear, no warm-up) and LoRA
settings. Reported per arm: real tokens/s (non-padding tokens over the training loop's time), end
to end time, the final loss, peak GPU memory and MFU on CUDA (6N per token for full fine-tuning,
4N for adapters, plus the attention term 12 * layers * hidden * seq), and the ratios b/a and b/c.
Saves bench/results/train_speed_<device>_<shape>_<adapter>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]

BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # dense bf16, per GPU

BARE_TRL = r'''
import json, sys, time
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

a = json.loads(sys.argv[1])
extra = a.get("settings", {})  # arm (c): FineTune Lab's effective settings; arm (a): none, TRL's defaults
cuda = torch.cuda.is_available()
tokenizer = AutoTokenizer.from_pretrained(a["model"])
quant = None
if a["adapter"] == "qlora":
    from transformers import BitsAndBytesConfig
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
model = AutoModelForCausalLM.from_pretrained(a["model"], dtype=torch.bfloat16 if cuda and a["adapter"] != "full" else None,
                                             quantization_config=quant, **extra.get("model", {}))
data = load_dataset("json", data_files=a["data"], split="train")
losses = []

class Keep(TrainerCallback):
    """Times the loop as FineTune Lab's reporting callback does: train begin to each logged step."""
    def on_train_begin(self, args, state, control, **kw):
        self.begin = self.last = time.monotonic()
        self.steps = []  # (seconds since train begin, real tokens seen) at each logged step
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            losses.append(logs["loss"])
            self.last = time.monotonic()
            self.steps.append((self.last - self.begin, int(state.num_input_tokens_seen)))

config = SFTConfig(**{**dict(
    output_dir=a["out"], per_device_train_batch_size=a["batch"], gradient_accumulation_steps=a["accum"],
    num_train_epochs=1, max_length=a["max_len"], learning_rate=a["lr"], seed=a["seed"], logging_steps=1,
    save_strategy="no", report_to="none", bf16=cuda, use_cpu=not cuda, include_num_input_tokens_seen="non_padding"),
    **extra.get("args", {})})
peft = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM") if a["adapter"] != "full" else None
trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=peft,
                     callbacks=[keep := Keep()])
if config.max_length is None:  # padding-free without packing: truncate, as FineTune Lab's child does
    cut = lambda ex: {"input_ids": ex["input_ids"][:a["max_len"]], "labels": ex["labels"][:a["max_len"]]}
    trainer.train_dataset = trainer.train_dataset.map(cut)
if cuda:
    torch.cuda.reset_peak_memory_stats()
trainer.train()
seconds = keep.last - keep.begin
print("RESULT " + json.dumps({"seconds": seconds, "tokens": int(trainer.state.num_input_tokens_seen),
                              "final_loss": losses[-1] if losses else None, "steps": trainer.state.global_step,
                              "peak_memory_bytes": torch.cuda.max_memory_reserved() if cuda else None,
                              "parameters": sum(p.numel() for p in trainer.model.parameters()),
                              "step_times": keep.steps,
                              "lengths": [len(x) for x in trainer.train_dataset["input_ids"]]}))
'''


def chat_dataset(path: Path, rows: int, max_words: int, seed: int) -> None:
    """Questions and answers whose lengths follow a long tail: most short, a few near the limit."""
    rng = random.Random(seed)
    words = "the model learns to answer questions about training runs checkpoints loss tokens data".split()
    with open(path, "w") as f:
        for i in range(rows):
            n = min(max_words, max(3, int(rng.lognormvariate(3.6, 0.9))))
            answer = " ".join(rng.choice(words) for _ in range(n))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Question {i}: say {n} words."},
                                             {"role": "assistant", "content": answer}]}) + "\n")


def bare(model: Path, data: Path, out: Path, args, settings: dict | None = None) -> dict:
    spec = dict(model=str(model), data=str(data), out=str(out), batch=args.batch, accum=args.accum,
                max_len=args.max_len, lr=args.lr, seed=args.seed, adapter=args.adapter, settings=settings or {})
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BARE_TRL, json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    result["end_to_end_seconds"] = time.perf_counter() - started
    return result


def through_services(model: Path, home: Path, args, server=None) -> dict:
    """One job through a real `ftlab serve` (started here unless `server` is given)."""
    from ftlab import Client
    from ftlab.v1 import job_pb2
    from tests.helpers import start_server

    own = server is None
    server = server or start_server(home, name="bench")
    try:
        with Client(server.address, user="bench") as client:
            started = time.perf_counter()
            services_cpu = _cpu_seconds(server.proc.pid)
            job = client.create_job({
                "base_model": str(model), "dataset": {"uri": "chat.jsonl"}, "adapter": args.adapter,
                "per_device_train_batch_size": args.batch, "gradient_accumulation_steps": args.accum,
                "num_epochs": 1, "max_seq_length": args.max_len, "learning_rate": args.lr, "seed": args.seed,
                "eval_strategy": "no", "save_steps": 0, "logging_steps": 1,
                # TRL's defaults for what is not speed, so that the losses compare
                "lr_scheduler": "linear", "warmup_ratio": 0.0, "lora": {"rank": 16, "alpha": 32, "dropout": 0.0},
                **json.loads(args.job_settings)}, force=True)
            first_step = None
            while first_step is None:  # CreateJob -> the first optimizer step reported, through the public API
                j = client.get_job(job.name)
                if any(e.HasField("metrics") for e in client.list_events(job.name)):
                    first_step = time.perf_counter() - started
                elif j.state in (job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED):
                    break
                else:
                    time.sleep(0.05)
            done = client.wait(job.name, timeout=7200)
            end_to_end = time.perf_counter() - started
            services_cpu = _cpu_seconds(server.proc.pid) - services_cpu
            metrics = [e.metrics for e in client.list_events(job.name) if e.HasField("metrics")]
        if done.state != job_pb2.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"job {done.state_reason}: {done.error.message}")
        last = metrics[-1]
        return {"seconds": last.elapsed_seconds, "tokens": last.tokens_seen, "final_loss": last.loss,
                "steps": last.step, "end_to_end_seconds": end_to_end, "first_step_seconds": first_step,
                "step_times": [(m.elapsed_seconds, m.tokens_seen) for m in metrics],
                "peak_memory_bytes": max((m.gpu_memory_peak_reserved_bytes for m in metrics), default=0) or None,
                "preflight_estimate_bytes": done.preflight.estimated_gpu_memory_bytes,
                "settings": {t.field: t.value for t in done.tuning},
                "tuning_reasons": {t.field: t.reason for t in done.tuning},
                "services_cpu_seconds": services_cpu, "job": done.name,
                "effective": json_format.MessageToDict(done.effective_config, preserving_proto_field_name=True)}
    finally:
        if own:
            server.stop()


def steady(result: dict, warmup: int) -> float:
    """Real tokens/s after the first `warmup` logged steps (CUDA start-up, allocator growth and the
    first kernels' tuning stay out of it); the whole loop when there are too few steps."""
    times = result.get("step_times") or []
    if warmup <= 0 or len(times) < warmup + 3:
        return result["tokens"] / result["seconds"]
    (t0, n0), (t1, n1) = times[warmup - 1], times[-1]
    return (n1 - n0) / (t1 - t0)


def _cpu_seconds(pid: int) -> float:
    """CPU time of the services' own process (not its training children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def replay(effective: dict) -> dict:
    """FineTune Lab's effective config as the bare script's SFTConfig and model arguments (arm c)."""
    from services.trainer.recipe import OPTIMIZERS

    padding_free = bool(effective.get("padding_free"))
    workers = int(effective.get("dataloader_num_workers", 0))
    args = {"per_device_train_batch_size": effective["per_device_train_batch_size"],
            "gradient_accumulation_steps": effective["gradient_accumulation_steps"],
            "optim": OPTIMIZERS[effective["optimizer"]], "padding_free": padding_free,
            "gradient_checkpointing": bool(effective.get("gradient_checkpointing")),
            "use_liger_kernel": effective.get("liger_kernel") == "SWITCH_ON",
            "torch_compile": effective.get("torch_compile") == "SWITCH_ON",
            "bf16": effective.get("precision") == "PRECISION_BF16", "dataloader_num_workers": workers,
            "lr_scheduler_type": "linear", "warmup_steps": 0}
    if padding_free:
        args["max_length"] = None
    return {"args": args, "model": {"attn_implementation": effective["attn_implementation"]}}


def peak_flops(device: str) -> float | None:
    """The GPU's dense bf16 peak, by its name; None for a CPU or an unknown GPU."""
    return next((v for k, v in BF16_PEAK_FLOPS.items() if k in device), None)


def flops_per_token(shape: dict, adapter: str, seq: float) -> float:
    n = shape["parameters"]
    attention = 12 * shape["layers"] * shape["hidden"] * seq
    return (6 * n if adapter == "full" else 4 * n) + attention


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="tiny", help="tiny, qwen2.5-0.5b or qwen2.5-1.5b (random weights)")
    parser.add_argument("--adapter", default="lora", choices=["lora", "full", "qlora"])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--accum", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=None)
    parser.add_argument("--warmup-steps", type=int, default=0, help="leave the first N optimizer steps out of the "
                        "timing (0: train begin to the last step)")
    parser.add_argument("--repeats", type=int, default=1, help="run each arm this many times, in rotating order, "
                        "and report the median (CPU timings vary by several percent from run to run)")
    parser.add_argument("--job-settings", default="{}", help="JSON config fields added to the job, e.g. "
                        "'{\"padding_free\": false}' to measure one setting's share")
    args = parser.parse_args()
    import torch

    from services.trainer.tiny import make_tiny_model
    from tests.helpers import write_chat_dataset  # noqa: F401  (tests' helpers on the path for start_server)

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        model = make_tiny_model(Path(tmp) / "model", hidden_size=256, layers=4) if args.shape == "tiny" else \
            make_tiny_model(Path(tmp) / "model", shape=args.shape)
        config = json.loads((model / "config.json").read_text())
        (home / "datasets").mkdir(parents=True)
        data = home / "datasets" / "chat.jsonl"
        chat_dataset(data, args.rows, max_words=args.max_len // 2, seed=args.seed)
        runs: dict[str, list[dict]] = {"bare_trl": [], "ftlab": [], "bare_trl_same_settings": []}
        runs["ftlab"].append(through_services(model, home, args))  # first: arm (c) replays its settings
        effective = runs["ftlab"][0]["effective"]
        arms = {"bare_trl": lambda i: bare(model, data, Path(tmp) / f"bare-{i}", args),
                "ftlab": lambda i: through_services(model, home, args),
                "bare_trl_same_settings": lambda i: bare(model, data, Path(tmp) / f"same-{i}", args, replay(effective))}
        order = list(arms)
        for i in range(args.repeats):
            for name in order[i % 3:] + order[:i % 3]:  # rotate, so no arm always runs first or last
                if not (name == "ftlab" and i == 0):
                    runs[name].append(arms[name](i))
    parameters = runs["bare_trl"][0]["parameters"]
    shape = {"parameters": parameters, "layers": config["num_hidden_layers"], "hidden": config["hidden_size"]}
    rows = {}
    for name, results in runs.items():
        for r in results:
            r.pop("parameters", None)
            r.pop("effective", None)
            r["tokens_per_second"] = steady(r, args.warmup_steps)
        ranked = sorted(results, key=lambda r: r["tokens_per_second"])
        rows[name] = {**ranked[len(ranked) // 2], "all_tokens_per_second": [r["tokens_per_second"] for r in results]}
    a, b, c = rows["bare_trl"], rows["ftlab"], rows["bare_trl_same_settings"]
    for r in rows.values():
        if cuda:
            peak = peak_flops(device)
            seq = r["tokens"] / max(1, args.rows)
            r["mfu"] = r["tokens_per_second"] * flops_per_token(shape, args.adapter, seq) / peak if peak else None
    result = {"device": device, "shape": args.shape, "adapter": args.adapter, "rows": args.rows,
              "request": {"micro_batch": args.batch, "accumulation": args.accum, "max_len": args.max_len},
              "repeats": args.repeats, "figures": "median of the repeats",
              "parameters": shape["parameters"], "job_settings": json.loads(args.job_settings), **rows,
              "replayed_settings": replay(effective),
              "ratio_tokens_per_second": b["tokens_per_second"] / a["tokens_per_second"],
              "ratio_same_settings": b["tokens_per_second"] / c["tokens_per_second"],
              "same_real_tokens": len({r["tokens"] for rs in runs.values() for r in rs}) == 1}
    out = Path(args.out or ROOT / "bench" / "results" / f"train_speed_{'cuda' if cuda else 'cpu'}_{args.shape}_{args.adapter}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in rows.items():
        mfu = f", MFU {r['mfu']:.1%}" if r.get("mfu") else ""
        loss = f"{r['final_loss']:.4f}" if r["final_loss"] is not None and not math.isnan(r["final_loss"]) else "?"
        spread = f" [{', '.join(f'{x:,.0f}' for x in r['all_tokens_per_second'])}]" if args.repeats > 1 else ""
        print(f"{name:>22}: {r['tokens_per_second']:10,.0f} real tokens/s{spread} ({r['tokens']:,} tokens in "
              f"{r['seconds']:.1f}s{mfu}), final loss {loss}, end to end {r['end_to_end_seconds']:.1f}s")
    print(f"FineTune Lab chose: {b['settings']}; the services' own process used {b['services_cpu_seconds']:.1f} "
          f"CPU seconds during the job")
    print(f"ratio ftlab / bare TRL defaults: {result['ratio_tokens_per_second']:.3f}x; ftlab / bare TRL with the same "
          f"settings: {result['ratio_same_settings']:.3f}x; same real tokens: {result['same_real_tokens']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
