"""How fast job control acts, through real services in separate processes:

- CancelJob -> the training process is gone (and the job CANCELLED);
- PauseJob -> the job PAUSED (checkpoint saved at the next step, process exited);
- a trainer's death (SIGKILL) -> the job leaves RUNNING (requeued), with the lease given.

    .venv/bin/python bench/job_control.py [--repeats 3] [--lease-seconds 3]

Prints the figures and saves bench/results/job_control.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftlab import Client  # noqa: E402
from ftlab.v1 import job_pb2  # noqa: E402
from tests.helpers import start_server, training_children, wait_for, write_chat_dataset  # noqa: E402


def child_of(job_id: str) -> int | None:
    return next((pid for pid, job, _ in training_children() if job == job_id), None)


def gone(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    except OSError:
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    results: dict[str, list[float]] = {"cancel_to_process_gone_s": [], "cancel_to_cancelled_s": [],
                                       "pause_to_paused_s": [], "trainer_death_to_job_requeued_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        model = make_tiny_model(home / "tiny")
        write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
        sched = start_server(home, module="services.scheduler", name="scheduler",
                             args=["--lease-seconds", str(args.lease_seconds), "--heartbeat-seconds", "0.5"])
        trainers = []
        config = {"base_model": str(model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 100000,
                  "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
                  "save_steps": 0}
        try:
            with Client(sched.address) as client:
                for i in range(args.repeats):
                    trainers.append(start_server(home, module="services.trainer", name=f"t{i}",
                                                 args=["--scheduler", sched.address, "--worker-id", f"t{i}",
                                                       "--cpu-threads", "1"]))
                    wait_for(lambda: client.get_queue().free_slots >= 1, timeout=60, what="a trainer")

                    def training(job):
                        wait_for(lambda: client.get_job(job.name).progress.step >= 5, timeout=120, what="steps")

                    job = client.create_job(config)
                    training(job)
                    pid = child_of(job.id)
                    t0 = time.monotonic()
                    client.cancel_job(job.name)
                    wait_for(lambda: gone(pid), timeout=60, interval=0.005, what="process gone")
                    results["cancel_to_process_gone_s"].append(time.monotonic() - t0)
                    wait_for(lambda: client.get_job(job.name).state == job_pb2.JOB_STATE_CANCELLED, timeout=60,
                             interval=0.005, what="CANCELLED")
                    results["cancel_to_cancelled_s"].append(time.monotonic() - t0)

                    job = client.create_job(config)
                    training(job)
                    t0 = time.monotonic()
                    client.pause_job(job.name)
                    wait_for(lambda: client.get_job(job.name).state == job_pb2.JOB_STATE_PAUSED, timeout=60,
                             interval=0.005, what="PAUSED")
                    results["pause_to_paused_s"].append(time.monotonic() - t0)
                    client.cancel_job(job.name)

                    job = client.create_job(config)
                    training(job)
                    t0 = time.monotonic()
                    trainers[-1].proc.send_signal(signal.SIGKILL)
                    trainers[-1].proc.wait()
                    wait_for(lambda: client.get_job(job.name).state != job_pb2.JOB_STATE_RUNNING, timeout=120,
                             interval=0.01, what="job to leave RUNNING")
                    results["trainer_death_to_job_requeued_s"].append(time.monotonic() - t0)
                    client.cancel_job(job.name)
        finally:
            for t in trainers:
                t.stop()
            sched.stop()
    summary = {k: {"median": round(statistics.median(v), 3), "max": round(max(v), 3), "n": len(v)}
               for k, v in results.items()}
    report = {"benchmark": "job_control", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": f"{os.cpu_count()} cores, CPU only", "lease_seconds": args.lease_seconds,
              "model": "tiny Qwen2 (hidden 64, 2 layers), LoRA", "results": summary}
    out = ROOT / "bench" / "results" / "job_control.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for k, v in summary.items():
        print(f"{k:<36} median {v['median']:.3f} s   max {v['max']:.3f} s   (n={v['n']})")
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
