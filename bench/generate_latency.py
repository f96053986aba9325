"""What chatting with a trained model costs: the time to the first token of the first request (the
weights load in a process forked from the trainer's zygote) and of later ones (already loaded), and
the tokens per second of an answer, through a real `ftlab serve` and GenerateText.

    .venv/bin/python bench/generate_latency.py [--requests 5] [--tokens 128]

Trains a tiny LoRA job first (the tiny model's answers are random text; on a GPU and a real model
the same path runs). Prints and saves bench/results/generate_latency.json.
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
from tests.helpers import start_server, write_chat_dataset  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        write_chat_dataset(home / "datasets" / "chat.jsonl", rows=64)
        model = make_tiny_model(Path(tmp) / "tiny")
        server = start_server(home, name="bench")
        try:
            with Client(server.address) as client:
                job = client.create_job({"base_model": str(model), "dataset": {"uri": "chat.jsonl"}, "max_steps": 4,
                                         "save_steps": 0, "max_seq_length": 64})
                client.wait(job.name, timeout=300)
                rows = []
                for i in range(args.requests):
                    began = time.monotonic()
                    first = None
                    for piece in client.generate(job.name, "What is 2 plus 3?", max_new_tokens=args.tokens,
                                                 temperature=1.0, seed=i):  # sampled: no early end of sequence
                        if first is None and piece.text:
                            first = time.monotonic() - began
                        if piece.HasField("done"):
                            done = piece.done
                    total = time.monotonic() - began
                    rows.append({"request": i + 1, "client_first_token_seconds": round(first or total, 4),
                                 "load_seconds": round(done.load_seconds, 3), "tokens": done.tokens,
                                 "server_seconds": round(done.seconds, 4), "client_seconds": round(total, 4),
                                 "tokens_per_second": round(done.tokens / done.seconds, 1) if done.seconds else 0})
                    print(f"request {i + 1}: first token after {rows[-1]['client_first_token_seconds']:.3f}s "
                          f"(load {done.load_seconds:.2f}s), {done.tokens} tokens at "
                          f"{rows[-1]['tokens_per_second']:.0f} tokens/s")
        finally:
            server.stop()
    warm = rows[1:] or rows
    result = {
        "benchmark": "generate_latency", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, CPU only", "model": "tiny Qwen2 (hidden 64, 2 layers, random weights), LoRA adapter",
        "cold_first_token_seconds": rows[0]["client_first_token_seconds"],
        "warm_first_token_seconds_median": statistics.median(r["client_first_token_seconds"] for r in warm),
        "tokens_per_second_median": statistics.median(r["tokens_per_second"] for r in warm), "requests": rows}
    out = ROOT / "bench" / "results" / "generate_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"cold first token {result['cold_first_token_seconds']:.2f}s, warm {result['warm_first_token_seconds_median']:.3f}s,"
          f" {result['tokens_per_second_median']:.0f} tokens/s; saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
