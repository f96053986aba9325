"""Runs side by side on one trainer: each with torch's default of every core, against each with its
share (`--cpu-threads`, by default CPUs / --max-runs). Real services (`ftlab serve --max-runs R`), the
tiny model, R jobs submitted at once; the time until all of them SUCCEEDED, and their training loops'
own figures.

    .venv/bin/python bench/cpu_share.py [--runs 2] [--steps 60]

Prints the figures and saves bench/results/cpu_share.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftlab import Client  # noqa: E402
from ftlab.v1 import job_pb2  # noqa: E402
from tests.helpers import start_server, wait_for, write_chat_dataset  # noqa: E402


def measure(threads: int, runs: int, steps: int, tiny_model: Path, workdir: Path) -> dict:
    home = workdir / f"threads-{threads}"
    write_chat_dataset(home / "datasets" / "chat.jsonl", rows=128)
    server = start_server(home, args=["--max-runs", str(runs), "--cpu-threads", str(threads)])
    try:
        wait_for(lambda: "zygote" in server.log() and "ready" in server.log(), timeout=120, what="the zygote")
        config = {"base_model": str(tiny_model), "dataset": {"uri": "chat.jsonl"}, "max_steps": steps,
                  "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "max_seq_length": 128,
                  "save_steps": 0}
        with Client(server.address) as client:
            started = time.monotonic()
            jobs = [client.create_job(config) for _ in range(runs)]
            done = [client.wait(j.name, timeout=1800) for j in jobs]
            seconds = time.monotonic() - started
        assert all(d.state == job_pb2.JOB_STATE_SUCCEEDED for d in done), [d.state_reason for d in done]
    finally:
        server.stop()
    return {"cpu_threads": threads, "runs": runs, "steps": steps, "seconds_to_all_done": seconds,
            "tokens_per_second_each": [d.progress.tokens_per_second for d in done]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu_share.json"))
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    cpus = len(os.sched_getaffinity(0))
    shares = sorted({cpus, max(1, cpus // args.runs)}, reverse=True)
    with tempfile.TemporaryDirectory(prefix="ftlab-share-") as tmp:
        work = Path(tmp)
        tiny_model = make_tiny_model(work / "tiny-qwen2")
        results = [measure(t, args.runs, args.steps, tiny_model, work) for t in shares]
    for r in results:
        each = ", ".join(f"{t:,.0f}" for t in r["tokens_per_second_each"])
        print(f"{args.runs} runs x {r['cpu_threads']} threads on {cpus} CPUs: all done in {r['seconds_to_all_done']:.1f}s "
              f"(tokens/s each: {each})")
    if len(results) == 2:
        print(f"sharing the cores: {results[0]['seconds_to_all_done'] / results[1]['seconds_to_all_done']:.1f}x sooner")
    Path(args.out).write_text(json.dumps({"cpus": cpus, "results": results}, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
