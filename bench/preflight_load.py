"""Reads under a burst of submissions: N concurrent `CreateJob(validate_only)` calls (each one a
pre-flight: the dataset read, the chat template rendered over it, the memory estimate), each from
its own user, while another user calls GetQueue and ListJobs in a loop. Real `ftlab serve` on the
tiny model.

Reported: the latency of the pre-flights that ran (p50, p99), how many were turned away busy, and
the latency of the other user's reads during the burst (p50, p99, max) against the same reads on an
idle server.

    .venv/bin/python bench/preflight_load.py [--calls 200]

Prints the figures and saves bench/results/preflight_load.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftlab import Client, FtlabError  # noqa: E402
from tests.helpers import start_server, write_chat_dataset  # noqa: E402


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def reads(client: Client, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        client.get_queue()
        list(client.list_jobs())
        out.append(time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = make_tiny_model(work / "tiny")
        home = work / "home"
        write_chat_dataset(home / "datasets" / "chat.jsonl", rows=512)
        server = start_server(home, name="preflight-load")
        config = {"base_model": str(model), "dataset": {"uri": "chat.jsonl"}, "max_seq_length": 256}
        try:
            with Client(server.address, user="reader", timeout=120) as reader:
                reader.create_job(config, validate_only=True)  # warm: the worker has the tokenizer
                idle: list[float] = []
                for _ in range(50):
                    started = time.monotonic()
                    reader.get_queue()
                    list(reader.list_jobs())
                    idle.append(time.monotonic() - started)
                busy_reads: list[float] = []
                stop = threading.Event()
                reading = threading.Thread(target=reads, args=(reader, stop, busy_reads))
                reading.start()

                def submit(i: int):
                    with Client(server.address, user=f"user{i}", timeout=120) as c:
                        started = time.monotonic()
                        try:
                            job = c.create_job(config, validate_only=True)
                            return "ran", time.monotonic() - started, job.preflight.ok
                        except FtlabError as err:
                            return err.code.name, time.monotonic() - started, False

                burst_started = time.monotonic()
                with concurrent.futures.ThreadPoolExecutor(args.calls) as pool:
                    results = list(pool.map(submit, range(args.calls)))
                burst = time.monotonic() - burst_started
                stop.set()
                reading.join()
        finally:
            server.stop()
    ran = [t for kind, t, _ in results if kind == "ran"]
    outcome = {kind: sum(1 for k, _, _ in results if k == kind) for kind in {k for k, _, _ in results}}
    figures = {
        "calls": args.calls, "burst_seconds": round(burst, 2), "outcomes": outcome,
        "preflight_ran_p50_seconds": round(quantile(ran, 0.5), 3), "preflight_ran_p99_seconds": round(quantile(ran, 0.99), 3),
        "reads_during_burst": len(busy_reads),
        "reads_p50_seconds": round(quantile(busy_reads, 0.5), 4), "reads_p99_seconds": round(quantile(busy_reads, 0.99), 4),
        "reads_max_seconds": round(max(busy_reads, default=float("nan")), 4),
        "idle_reads_p50_seconds": round(statistics.median(idle), 4), "idle_reads_p99_seconds": round(quantile(idle, 0.99), 4),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
    }
    print(json.dumps(figures, indent=2))
    out = ROOT / "bench" / "results" / "preflight_load.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
