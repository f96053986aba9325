"""How long from the training callback to a WatchJob client, with 1 and with many watchers.

Starts the embedded server on a free port, trains a tiny LoRA job, and has W watchers follow it.
Each metrics event carries the time the training child emitted it; the latency is the client's
receive time minus that (same machine, same clock). Prints and saves bench/results/watch_latency.json.

    .venv/bin/python bench/watch_latency.py [--watchers 1 50] [--steps 200]
"""

from __future__ import annotations

import argparse
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

from ftlab import Client  # noqa: E402
from tests.helpers import start_server, write_chat_dataset  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_once(server, model: Path, watchers: int, steps: int) -> dict:
    with Client(server.address) as client:
        job = client.create_job({"base_model": str(model), "dataset": {"uri": "chat.jsonl"}, "max_steps": steps,
                                 "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                                 "max_seq_length": 128, "save_steps": 0, "learning_rate": 3e-3})
        latencies: list[list[float]] = [[] for _ in range(watchers)]

        def watch(i: int) -> None:
            with Client(server.address) as c:
                for r in c.watch(job.name):
                    if r.event.HasField("metrics"):
                        latencies[i].append(time.time() - r.event.time.ToNanoseconds() / 1e9)

        threads = [threading.Thread(target=watch, args=(i,)) for i in range(watchers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = client.get_job(job.name)
    flat = [x * 1000 for xs in latencies for x in xs]
    return {"watchers": watchers, "events_per_watcher": len(latencies[0]), "state": final.state,
            "latency_ms": {"p50": round(statistics.median(flat), 2), "p95": round(percentile(flat, 0.95), 2),
                           "p99": round(percentile(flat, 0.99), 2), "max": round(max(flat), 2)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        model = make_tiny_model(home / "tiny")
        write_chat_dataset(home / "datasets" / "chat.jsonl", rows=256)
        server = start_server(home, name="bench")
        try:
            results = [run_once(server, model, w, args.steps) for w in args.watchers]
        finally:
            server.stop()
    report = {"benchmark": "watch_latency", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "steps": args.steps,
              "what": "ms from the training child's callback emitting a metrics event to a WatchJob client receiving it",
              "results": results}
    out = ROOT / "bench" / "results" / "watch_latency.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        lat = r["latency_ms"]
        print(f"{r['watchers']:>3} watcher(s): {r['events_per_watcher']} metrics events each, latency "
              f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
