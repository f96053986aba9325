"""How soon a job trains after it is submitted: the trainer forking each run from its zygote (a
process that imported torch, transformers, PEFT, TRL and datasets already) against starting each run
with exec (`--no-preload`). Real services (`ftlab serve`) on the tiny model; jobs run one at a time.

For each job: submit -> RUNNING (a process started) and submit -> first optimizer step reported,
polled every 20 ms through the public API; medians over --jobs jobs, after the zygote is ready.

    .venv/bin/python bench/start_latency.py [--jobs 5]

Prints the figures and saves bench/results/start_latency.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftlab import Client  # noqa: E402
from ftlab.v1 import job_pb2  # noqa: E402
from tests.helpers import start_server, wait_for, write_chat_dataset  # noqa: E402


def one_job(client: Client, config: dict) -> dict:
    started = time.monotonic()
    job = client.create_job(config)
    running = first_step = None
    while first_step is None:
        j = client.get_job(job.name)
        now = time.monotonic()
        if running is None and j.state in (job_pb2.JOB_STATE_RUNNING, job_pb2.JOB_STATE_SUCCEEDED):
            running = now - started
        if j.progress.step >= 1:
            first_step = now - started
        if j.state in (job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED):
            raise RuntimeError(f"job failed: {j.state_reason}")
        time.sleep(0.02)
    done = client.wait(job.name, timeout=300)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.state_reason
    return {"running_seconds": running, "first_step_seconds": first_step}


def measure(preload: bool, jobs: int, tiny_model: Path, workdir: Path) -> dict:
    home = workdir / ("preload" if preload else "exec")
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
    server = start_server(home, args=[] if preload else ["--no-preload"])
    try:
        if preload:
            wait_for(lambda: "zygote" in server.log() and "ready" in server.log(), timeout=120, what="the zygote")
        config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 2,
                  "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
                  "save_steps": 0}
        with Client(server.address) as client:
            samples = [one_job(client, config) for _ in range(jobs)]
    finally:
        server.stop()
    return {"preload": preload, "jobs": samples,
            "median_running_seconds": statistics.median(s["running_seconds"] for s in samples),
            "median_first_step_seconds": statistics.median(s["first_step_seconds"] for s in samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "start_latency.json"))
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    with tempfile.TemporaryDirectory(prefix="ftlab-start-") as tmp:
        work = Path(tmp)
        tiny_model = make_tiny_model(work / "tiny-qwen2")
        results = [measure(preload, args.jobs, tiny_model, work) for preload in (True, False)]
    for r in results:
        print(f"{'zygote (fork)' if r['preload'] else 'exec':14s} submit -> running {r['median_running_seconds']:.2f}s, "
              f"submit -> first step {r['median_first_step_seconds']:.2f}s (median of {args.jobs})")
    fork, exe = results
    print(f"first step {exe['median_first_step_seconds'] - fork['median_first_step_seconds']:.2f}s sooner with the zygote "
          f"({exe['median_first_step_seconds'] / fork['median_first_step_seconds']:.1f}x)")
    out = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}, "results": results}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
