"""What each step of "did it learn?" costs, through a real `ftlab serve` and the Python SDK: a training
job that answers sample prompts at each evaluation (the time of each set of answers, and of the job),
a chat with its result (first token, tokens/s), an evaluation job against its base on a task of the
user's own (queue to scores), and two runs compared.

    .venv/bin/python bench/playground_costs.py [--steps 60] [--prompts 4]

The model is tiny (full fine-tuning, hidden 128, 4 layers) and learns four questions; on a GPU and a
real model the same path runs. Prints and saves bench/results/playground_costs.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftlab import Client  # noqa: E402
from ftlab.v1 import job_pb2  # noqa: E402
from tests.helpers import start_server  # noqa: E402

FACTS = {"What color is the sky?": "blue", "What color is grass?": "green", "What color is snow?": "white",
         "What color is a lemon?": "yellow"}


def timed(fn):
    began = time.monotonic()
    out = fn()
    return out, round(time.monotonic() - began, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--prompts", type=int, default=4)
    args = parser.parse_args()
    from services.trainer.tiny import make_tiny_model

    result: dict = {"benchmark": "playground_costs", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": f"{platform.machine()}, CPU only",
                    "model": "tiny Qwen2 (hidden 128, 4 layers, random weights), full fine-tuning"}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "datasets").mkdir(parents=True)
        rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                for q, a in FACTS.items()] * 32
        (home / "datasets" / "colors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        tasks = Path(tmp) / "colors_task.jsonl"
        tasks.write_text("".join(json.dumps({"prompt": q, "answer": a, "pattern": "(blue|green|white|yellow)"}) + "\n"
                                 for q, a in FACTS.items()))
        model = make_tiny_model(Path(tmp) / "tiny-128", hidden_size=128, layers=4)
        server = start_server(home, name="bench")
        try:
            with Client(server.address) as client:
                base = {"base_model": str(model), "dataset": {"uri": "colors.jsonl", "eval_split": 0.1},
                        "adapter": "full", "max_steps": args.steps, "learning_rate": 3e-4, "lr_scheduler": "constant",
                        "warmup_ratio": 0, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
                        "max_seq_length": 64, "save_steps": 0, "eval_strategy": "steps",
                        "eval_steps": max(1, args.steps // 3)}
                with_samples = {**base, "samples": {"prompts": list(FACTS)[: args.prompts], "max_new_tokens": 8}}
                warm = client.create_job({**base, "max_steps": 2, "eval_strategy": "no"})  # the zygote's first run
                client.wait(warm.name, timeout=900)
                jobs = {}
                for label, config in (("without_samples", base), ("with_samples", with_samples)):
                    job = client.create_job(config)
                    done, seconds = timed(lambda name=job.name: client.wait(name, timeout=900))
                    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
                    jobs[label] = done
                    result[f"train_{label}_seconds"] = seconds
                    print(f"training {args.steps} steps {label.replace('_', ' ')}: {seconds:.1f}s", flush=True)
                sets = client.list_samples(jobs["with_samples"].name)
                result["sample_sets"] = [{"step": s.step, "final": s.final, "answers": len(s.answers),
                                          "seconds": round(s.seconds, 3)} for s in sets]
                print("answers to the sample prompts: " + ", ".join(
                    f"{'final' if s.final else 'step ' + str(s.step)} {s.seconds:.2f}s" for s in sets), flush=True)
                name = jobs["with_samples"].name
                began, first = time.monotonic(), None
                for piece in client.generate(name, list(FACTS)[0], max_new_tokens=8):
                    if first is None and piece.text:
                        first = time.monotonic() - began
                    if piece.HasField("done"):
                        gen = piece.done
                result["chat"] = {"first_token_seconds": round(first or 0, 3), "load_seconds": round(gen.load_seconds, 3),
                                  "tokens": gen.tokens, "seconds": round(gen.seconds, 3)}
                print(f"chat: first token after {first:.2f}s (loading {gen.load_seconds:.2f}s)", flush=True)
                evaluation = client.evaluate(name, [str(tasks)])
                scored, seconds = timed(lambda: client.wait(evaluation.name, timeout=900))
                assert scored.state == job_pb2.JOB_STATE_SUCCEEDED, scored.error
                result["evaluation"] = {"queue_to_scores_seconds": seconds,
                                        "run_seconds": round(scored.evaluation_results.seconds, 3),
                                        "scores": [{"task": s.task, "metric": s.metric, "model": s.model,
                                                    "value": round(s.value, 4)} for s in scored.evaluation_results.scores]}
                print(f"evaluation against the base: {seconds:.1f}s from the request to the scores "
                      f"({scored.evaluation_results.seconds:.1f}s in the run)", flush=True)
                _, seconds = timed(lambda: client.compare([jobs["without_samples"].name, name]))
                result["compare_seconds"] = seconds
                print(f"compare two runs: {seconds:.2f}s", flush=True)
        finally:
            server.stop()
    out = ROOT / "bench" / "results" / "playground_costs.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
