"""The evaluation child: one evaluation job's run, in its own process, started by the trainer service
like a training run (services/trainer/child.py's main, with this program).

    python -m services.trainer.eval_child --spec RUN_DIR/spec.json --events-fd N

It loads the evaluated job's weights (the base model and its adapter, or the whole model) through the
training child's own code, scores them with EleutherAI's lm-evaluation-harness on the job's tasks
(written here as the harness's local task definitions: generation scored by exact match, after an
optional regex; multiple choice by log-likelihood; or a task definition file, or one of the
harness's own tasks by name), scores the base model beside them, adds the perplexity and token
accuracy of the trained job's own evaluation data, and reports the scores as an `evaluation` event.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.trainer.process import EventSink
from services.trainer.runspec import RunSpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# the harness's metrics we report, per kind of task (each with its standard error where it has one)
METRICS = ("exact_match", "acc", "acc_norm")


def task_files(tasks: list[dict[str, Any]], folder: Path, max_new_tokens: int,
               chat: bool = True) -> tuple[list[str], bool]:
    """Write each task as the harness's local task definition into `folder`; (the harness's task
    names, whether any is one of its own, by name alone)."""
    names, standard = [], False
    for i, task in enumerate(tasks):
        name = task["name"] or (Path(task["uri"]).stem if task["uri"] else f"task{i + 1}")
        source = Path(task["uri"]) if task["uri"] else None
        if source is not None and source.suffix.lower() in (".yaml", ".yml"):
            definition = folder / f"{name}.yaml"
            shutil.copyfile(source, definition)
            names.append(_yaml_task_name(definition) or name)
            continue
        text = source.read_text(encoding="utf-8") if source is not None else task["rows"]
        if not text.strip():
            names.append(name)  # a task of the harness's own
            standard = True
            continue
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        names.append(_write_task(folder, f"ftlab_{name}", rows, max_new_tokens, chat))
    return names, standard


def _yaml_task_name(path: Path) -> str:
    found = re.search(r"^task:\s*(\S+)", path.read_text(encoding="utf-8"), re.M)
    return found.group(1).strip("'\"") if found else ""


def _write_task(folder: Path, name: str, rows: list[dict[str, Any]], max_new_tokens: int, chat: bool) -> str:
    data = folder / f"{name}.jsonl"
    choices = "choices" in rows[0]
    with data.open("w", encoding="utf-8") as f:
        for row in rows:
            if choices:  # the answer as the choice's index
                answer = row["answer"]
                row = {**row, "answer": answer if isinstance(answer, int) else list(row["choices"]).index(answer)}
            else:
                row = {**row, "answer": str(row["answer"])}
            f.write(json.dumps(row) + "\n")
    head = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "doc_to_text": "{{prompt}}",
            # in a chat, the answer starts the assistant's turn: the harness's usual space before it would
            # score a text the model never learned to start with
            "target_delimiter": "" if chat else " "}
    if choices:
        body: dict[str, Any] = {"output_type": "multiple_choice", "doc_to_choice": "{{choices}}",
                                "doc_to_target": "{{answer}}",
                                "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                                for m in ("acc", "acc_norm")]}
    else:
        pattern = next((r["pattern"] for r in rows if r.get("pattern")), None)
        steps: list[dict[str, Any]] = ([{"function": "regex", "regex_pattern": pattern, "group_select": 0,
                                         "fallback": "[no match]"}] if pattern else [])
        body = {"output_type": "generate_until", "doc_to_target": "{{answer}}",
                "generation_kwargs": {"until": ["\n"], "max_gen_toks": max_new_tokens, "do_sample": False},
                "filter_list": [{"name": "answer", "filter": [*steps, {"function": "remove_whitespace"},
                                                             {"function": "take_first"}]}],
                "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                 "ignore_case": True, "ignore_punctuation": True}]}
    (folder / f"{name}.yaml").write_text(json.dumps({**head, **body}, indent=1))  # JSON is YAML
    return name


def harness_scores(model: Any, tokenizer: PreTrainedTokenizerBase, names: list[str], folder: Path, standard: bool,
                   limit: int, max_length: int, label: str, shown: dict[str, str]) -> list[dict[str, Any]]:
    """The harness's scores of `model` on the tasks, as EvaluationScore fields."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8, max_length=max_length)
    results = lm_eval.simple_evaluate(
        model=lm, tasks=names, task_manager=TaskManager(include_path=str(folder), include_defaults=standard),
        limit=limit or None, apply_chat_template=bool(tokenizer.chat_template), log_samples=False,
        bootstrap_iters=1000)
    out = []
    for task, metrics in (results or {}).get("results", {}).items():
        samples = int((results.get("n-samples", {}).get(task) or {}).get("effective", 0))
        for key, value in metrics.items():
            metric, _, _filter = key.partition(",")
            if metric not in METRICS or not isinstance(value, (int, float)):
                continue
            score: dict[str, Any] = {"task": shown.get(task, task), "metric": metric, "model": label,
                                     "value": float(value), "samples": samples}
            stderr = metrics.get(f"{metric}_stderr,{_filter}")
            if isinstance(stderr, (int, float)) and math.isfinite(stderr):
                score["stderr"] = float(stderr)
            out.append(score)
    return out


def builtin_scores(model: Any, tokenizer: PreTrainedTokenizerBase, cfg: dict[str, Any], label: str,
                   folder: Path) -> list[dict[str, Any]]:
    """Perplexity and token accuracy on the trained job's own evaluation data (the same rows it was
    evaluated on while training), by TRL's own evaluation loop."""
    from trl import SFTConfig, SFTTrainer

    from services.trainer import loading

    _, _, eval_ds = loading.datasets(cfg)
    if eval_ds is None or len(eval_ds) == 0:
        return []
    args = SFTConfig(output_dir=str(folder / "builtin"), per_device_eval_batch_size=int(cfg.get(
        "per_device_eval_batch_size", 8)), max_length=int(cfg.get("max_seq_length", 512)), report_to="none",
        use_cpu=not _cuda(), disable_tqdm=True, gradient_checkpointing=False)
    metrics = SFTTrainer(model=model, args=args, train_dataset=eval_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer).evaluate()
    rows = len(eval_ds)
    out = [{"task": "eval_split", "metric": "perplexity", "model": label, "value": math.exp(metrics["eval_loss"]),
            "samples": rows}]
    if "eval_mean_token_accuracy" in metrics:
        out.append({"task": "eval_split", "metric": "token_accuracy", "model": label,
                    "value": float(metrics["eval_mean_token_accuracy"]), "samples": rows})
    return out


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def evaluate(spec: RunSpec, sink: EventSink) -> dict[str, Any]:
    from services.trainer import generation_child

    ev = spec.evaluation or {}
    cfg = dict(spec.config)
    began = time.monotonic()
    sink.set_phase("PHASE_MODEL_LOAD", f"loading {ev['weights_name']}")
    weights = ev["weights"]
    model, tokenizer = generation_child.load({"config": cfg, "model": weights["model"], "adapter": weights["adapter"],
                                              "tokenizer": weights["tokenizer"]})
    adapter = bool(weights["adapter"])
    base = None if adapter or not ev["compare_base"] else \
        generation_child.load({"config": cfg, "model": "", "adapter": "", "tokenizer": weights["tokenizer"]})[0]
    folder = Path(tempfile.mkdtemp(prefix="tasks-", dir=spec.log_dir if os.path.isdir(spec.log_dir) else None))
    sink.set_phase("PHASE_DATA_PREP", "writing the tasks")
    names, standard = task_files(ev["tasks"], folder, int(ev["max_new_tokens"]), bool(tokenizer.chat_template))
    shown = {n: n.removeprefix("ftlab_") for n in names}
    max_length = int(cfg.get("max_seq_length", 2048))
    scores: list[dict[str, Any]] = []
    for label, which in (("fine-tuned", model), ("base", base if not adapter else model)):
        if label == "base" and not ev["compare_base"]:
            continue
        sink.set_phase("PHASE_EVALUATION", f"{label}: {', '.join(shown.values())}")
        scope = model.disable_adapter() if label == "base" and adapter else contextlib.nullcontext()
        with scope:
            scores += harness_scores(which, tokenizer, names, folder, standard, int(ev["limit"]), max_length, label,
                                     shown)
            if ev["builtin"]:
                scores += builtin_scores(which, tokenizer, cfg, label, folder)
    sink.emit(evaluation={"scores": scores, "weights": ev["weights_name"], "seconds": time.monotonic() - began})
    for s in scores:
        print(f"ftlab: {s['task']} {s['metric']} ({s['model']}): {s['value']:.4f}", flush=True)
    return {"outcome": "RUN_OUTCOME_SUCCEEDED", "output": ""}


def main(argv: list[str] | None = None) -> int:
    from services.trainer import child

    return child.main(argv, program=evaluate)


if __name__ == "__main__":
    sys.exit(main())
