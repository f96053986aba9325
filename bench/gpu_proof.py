"""Everything the GPU has to prove, in one timed run (bench/gpu_proof.sh is its entry point).

    python bench/gpu_proof.py --out DIR [--budget 330] [--only speed failures] [--tiny]

1. Training speed (bench/train_speed.py's three arms, one shared `ftlab serve`): full fine-tuning
   of the Qwen2.5 0.5B shape, LoRA, full and QLoRA of the 1.5B shape. The request is micro-batch 8 x
   accumulation 8 on variable-length chat data; real tokens/s after a warm-up, MFU, peak memory, the
   final loss, b/a and b/c, and what the job decided (the micro-batch search's choice among them).
   The job's CreateJob -> first step time is the zygote's figure on a GPU machine.
2. Real GPU failures through jobs, analyzed in the service: an evaluation out of memory followed by a
   retry with the suggestions from the best checkpoint; a training out of memory with auto-recovery
   on; a cancel, with the time until the GPU's memory is back to idle.

Parts run in that order while the wall-clock budget lasts (a part that would not fit is skipped and
said so); every figure is written to DIR/gpu_proof.json as soon as it is known, and the jobs' logs
and the server's to DIR/logs.tgz. `--tiny` checks the logic on a CPU with a tiny model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "sdk" / "python")]

import train_speed  # noqa: E402

# (shape, adapter, seconds it may take at most on an H100/H200: the budget check)
SPEED = [("qwen2.5-0.5b", "full", 60), ("qwen2.5-1.5b", "lora", 60), ("qwen2.5-1.5b", "full", 60),
         ("qwen2.5-1.5b", "qlora", 60)]
WORDS = "the model learns to answer questions about training runs checkpoints loss tokens data".split()


def long_rows(path: Path, rows: int, words: int, seed: int = 3) -> Path:
    import random

    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(rows):
            text = " ".join(rng.choice(WORDS) for _ in range(words))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Summarize {i}."},
                                             {"role": "assistant", "content": text}]}) + "\n")
    return path


def gpu_used() -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used)
    except Exception:  # no NVML (CPU check)
        return None


class Proof:
    def __init__(self, out: Path, budget: float, tiny: bool):
        self.out, self.tiny = out, tiny
        self.deadline = time.monotonic() + budget
        self.results: dict = {"speed": [], "failures": {}, "skipped": [], "errors": [], "timings": {}}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        (self.out / "gpu_proof.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def part(self, name: str, seconds: float, fn, *a) -> None:
        if self.left() < seconds:
            self.results["skipped"].append(f"{name}: {self.left():.0f}s left, needs up to {seconds}s")
            print(f"SKIP {name} ({self.left():.0f}s left)", flush=True)
            return
        started = time.monotonic()
        print(f"== {name} ({self.left():.0f}s left)", flush=True)
        try:
            fn(*a)
        except Exception as exc:  # one part's failure must not cost the others' figures
            self.results["errors"].append({"part": name, "error": f"{type(exc).__name__}: {exc}"[-3000:],
                                           "trace": traceback.format_exc()[-3000:]})
            print(f"ERROR in {name}: {exc}"[-2000:], flush=True)
        self.results["timings"][name] = round(time.monotonic() - started, 1)
        self.save()

    # 1. speed ---------------------------------------------------------------------------------
    def speed(self, server, home: Path, model: Path, shape: str, adapter: str) -> None:
        a = SimpleNamespace(batch=2 if self.tiny else 8, accum=2 if self.tiny else 8, max_len=512 if self.tiny else 1024,
                            lr=1e-4, seed=42, adapter=adapter, job_settings="{}", rows=self.rows)
        data = home / "datasets" / "chat.jsonl"
        work = Path(tempfile.mkdtemp(prefix="arm-", dir=home))
        b = train_speed.through_services(model, home, a, server=server)
        arm_a = train_speed.bare(model, data, work / "a", a)
        arm_c = train_speed.bare(model, data, work / "c", a, train_speed.replay(b.pop("effective")))
        config = json.loads((model / "config.json").read_text())
        lengths = arm_a.pop("lengths")
        arm_c.pop("lengths", None)
        warmup = 2 if self.tiny else 4
        row = {"shape": shape, "adapter": adapter, "rows": self.rows, "warmup_steps": warmup,
               "request": {"micro_batch": a.batch, "accumulation": a.accum, "max_len": a.max_len},
               "lengths": {"mean": sum(lengths) / len(lengths), "max": max(lengths),
                           "top64": sorted(lengths, reverse=True)[:64]}}
        dims = {"parameters": arm_a["parameters"], "layers": config["num_hidden_layers"],
                "hidden": config["hidden_size"]}
        peak = self.peak_flops
        for name, r in (("bare_trl", arm_a), ("ftlab", b), ("bare_trl_same_settings", arm_c)):
            r.pop("parameters", None)
            r["tokens_per_second"] = train_speed.steady(r, warmup)
            r["mfu"] = (r["tokens_per_second"] * train_speed.flops_per_token(dims, adapter, sum(lengths) / len(lengths))
                        / peak) if peak else None
            row[name] = r
        row["parameters"] = dims["parameters"]
        row["b_over_a"] = b["tokens_per_second"] / arm_a["tokens_per_second"]
        row["b_over_c"] = b["tokens_per_second"] / arm_c["tokens_per_second"]
        row["same_real_tokens"] = len({arm_a["tokens"], b["tokens"], arm_c["tokens"]}) == 1
        self.results["speed"].append(row)
        mfu = f", MFU {b['mfu']:.1%}" if b.get("mfu") else ""
        print(f"{shape} {adapter}: a {arm_a['tokens_per_second']:,.0f}  b {b['tokens_per_second']:,.0f}  "
              f"c {arm_c['tokens_per_second']:,.0f} tokens/s; b/a {row['b_over_a']:.2f}x b/c {row['b_over_c']:.3f}x"
              f"{mfu}; first step {b['first_step_seconds']:.1f}s; chose {b['settings']}", flush=True)

    # 2. failures ------------------------------------------------------------------------------
    def create(self, client, config: dict, **kw):
        return client.create_job(config, force=True, **kw)

    def analysis(self, client, name: str) -> dict:
        from ftlab.v1 import analyzer_pb2, events_pb2
        from tests.helpers import wait_for

        job = wait_for(lambda: (j := client.get_job(name)).analysis.category and j, timeout=min(60, self.left()),
                       what="the analysis")
        return {"job": name, "state_reason": job.state_reason, "error": job.error.message[-600:],
                "category": analyzer_pb2.FailureCategory.Name(job.analysis.category),
                "phase": events_pb2.Phase.Name(job.analysis.phase),
                "summary": job.analysis.summary[:600],
                "suggestions": [(s.field, s.current, s.suggested) for s in job.analysis.suggestions]}

    def eval_oom(self, client, model: Path) -> None:
        from ftlab.v1 import job_pb2

        config = {"base_model": str(model), "dataset": {"uri": "chat.jsonl", "eval_uri": "long.jsonl"},
                  "adapter": "lora", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
                  "padding_free": False, "max_seq_length": 256 if self.tiny else 3072, "max_steps": 2,
                  "save_steps": 1, "eval_strategy": "steps", "eval_steps": 2,
                  "per_device_eval_batch_size": self.long_rows_count}
        job = self.create(client, config)
        ended = client.wait(job.name, timeout=max(10, min(150, self.left())))
        got = {"first": {"state": job_pb2.JobState.Name(ended.state)}}
        self.results["failures"]["eval_oom"] = got
        if ended.state != job_pb2.JOB_STATE_FAILED:  # no out-of-memory here (a CPU): nothing to retry
            return
        got["first"].update(self.analysis(client, job.name))
        retry = client.retry_job(job.name, checkpoint="best", apply_suggestions=True, force=True)
        done = client.wait(retry.name, timeout=max(10, min(150, self.left())))
        got["retry"] = {"job": retry.name, "state": job_pb2.JobState.Name(done.state),
                        "changes": [(c.field, c.current, c.suggested) for c in retry.changes],
                        "resumed_from": retry.resume_checkpoint,
                        "error": done.error.message[-600:]}

    def train_oom(self, client, model: Path) -> None:
        from ftlab.v1 import job_pb2
        from tests.helpers import wait_for

        config = {"base_model": str(model), "dataset": {"uri": "long.jsonl"}, "adapter": "full",
                  "per_device_train_batch_size": 64, "gradient_accumulation_steps": 1, "auto_micro_batch": "SWITCH_OFF",
                  "max_seq_length": 256 if self.tiny else 3072, "max_steps": 2, "save_steps": 0, "eval_strategy": "no"}
        job = self.create(client, config, retry_policy={"auto_recover": {"CUDA_OOM": 1}})
        ended = client.wait(job.name, timeout=max(10, min(120, self.left())))
        got = {"first": {"state": job_pb2.JobState.Name(ended.state)}}
        self.results["failures"]["train_oom_auto_recovery"] = got
        if ended.state != job_pb2.JOB_STATE_FAILED:
            return
        got["first"].update(self.analysis(client, job.name))
        child = wait_for(lambda: next((j for j in client.list_jobs() if j.parent == job.name), None),
                         timeout=min(60, self.left()), what="the automatic retry")
        done = client.wait(child.name, timeout=max(10, min(120, self.left())))
        got["recovery"] = {"job": child.name, "automatic": child.automatic, "state": job_pb2.JobState.Name(done.state),
                           "changes": [(c.field, c.current, c.suggested) for c in child.changes],
                           "error": done.error.message[-600:]}

    def cancel(self, client, model: Path) -> None:
        from ftlab.v1 import job_pb2
        from tests.helpers import wait_for

        idle = gpu_used()
        config = {"base_model": str(model), "dataset": {"uri": "chat.jsonl"}, "adapter": "full",
                  "max_steps": 100000, "save_steps": 0, "eval_strategy": "no", "max_seq_length": 1024}
        job = self.create(client, config)
        wait_for(lambda: any(e.HasField("metrics") for e in client.list_events(job.name)),
                 timeout=min(90, self.left()), what="the first step")
        busy = gpu_used()
        asked = time.monotonic()
        client.cancel_job(job.name)
        cancelled = client.wait(job.name, timeout=60)
        state_seconds = time.monotonic() - asked
        back = None
        while idle is not None and time.monotonic() - asked < 60:
            if gpu_used() <= idle + 256 * 2**20:
                back = time.monotonic() - asked
                break
            time.sleep(0.05)
        self.results["failures"]["cancel"] = {
            "job": job.name, "state": job_pb2.JobState.Name(cancelled.state), "idle_bytes": idle, "busy_bytes": busy,
            "seconds_to_cancelled": round(state_seconds, 2),
            "seconds_to_idle_memory": round(back, 2) if back is not None else None}
        print(f"cancel: {self.results['failures']['cancel']}", flush=True)

    # the run ------------------------------------------------------------------------------------
    def run(self, parts: list[str], rows: int) -> None:
        import torch

        from services.trainer.tiny import make_tiny_model
        from tests.helpers import start_server

        self.rows = rows
        cuda = torch.cuda.is_available()
        name = torch.cuda.get_device_name(0) if cuda else "cpu"
        self.peak_flops = train_speed.peak_flops(name)
        import peft
        import transformers
        import trl
        self.results.update(device=name, date=time.strftime("%Y-%m-%d"), bf16_peak_flops=self.peak_flops,
                            versions={"torch": torch.__version__, "cuda": torch.version.cuda,
                                      "transformers": transformers.__version__, "trl": trl.__version__,
                                      "peft": peft.__version__},
                            idle_gpu_bytes=gpu_used())
        home = Path(tempfile.mkdtemp(prefix="ftlab-proof-"))
        (home / "datasets").mkdir(parents=True)
        started = time.monotonic()
        models = {}
        for shape in ("qwen2.5-0.5b", "qwen2.5-1.5b"):
            models[shape] = (make_tiny_model(home / shape, hidden_size=128, layers=2, seed=len(models)) if self.tiny
                             else make_tiny_model(home / shape, shape=shape))
        train_speed.chat_dataset(home / "datasets" / "chat.jsonl", rows, max_words=256 if self.tiny else 512, seed=42)
        self.long_rows_count = 16 if self.tiny else 2048
        long_rows(home / "datasets" / "long.jsonl", self.long_rows_count, 120 if self.tiny else 1000)
        self.results["timings"]["setup"] = round(time.monotonic() - started, 1)
        server = start_server(home, name="proof", timeout=120)
        self.results["timings"]["server_start"] = round(time.monotonic() - started, 1)
        try:
            if "speed" in parts:
                for shape, adapter, seconds in SPEED:
                    self.part(f"speed {shape} {adapter}", 20 if self.tiny else seconds, self.speed, server, home,
                              models[shape], shape, adapter)
            if "failures" in parts:
                from ftlab import Client

                with Client(server.address, user="proof") as client:
                    small = models["qwen2.5-0.5b"]
                    self.part("cancel", 20 if self.tiny else 30, self.cancel, client, models["qwen2.5-1.5b"])
                    self.part("train_oom", 20 if self.tiny else 45, self.train_oom, client, small)
                    self.part("eval_oom", 20 if self.tiny else 75, self.eval_oom, client, small)
        finally:
            server.stop()
            log = server.log()
            self.results["zygote"] = {"forked": log.count("forked from the zygote"), "exec": log.count(", exec)"),
                                      "first_step_seconds": [r["ftlab"].get("first_step_seconds")
                                                             for r in self.results["speed"]]}
            self.save()
            with tarfile.open(self.out / "logs.tgz", "w:gz") as tar:
                tar.add(server.log_path, arcname="server.log")
                for log_file in home.rglob("*.log"):
                    if log_file != server.log_path and log_file.stat().st_size < 20 * 2**20:
                        tar.add(log_file, arcname=str(log_file.relative_to(home)))
                for spec in home.rglob("spec.json"):
                    tar.add(spec, arcname=str(spec.relative_to(home)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, default=330, help="wall-clock seconds for all parts")
    p.add_argument("--only", nargs="*", default=["speed", "failures"])
    p.add_argument("--rows", type=int, default=1536, help="chat rows per speed run (64 per optimizer step)")
    p.add_argument("--tiny", action="store_true", help="a tiny model on the CPU: checks the logic only")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proof = Proof(out, args.budget, args.tiny)
    proof.run(args.only, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
