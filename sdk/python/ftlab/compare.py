"""Runs side by side, over the public API (GetJob, ListJobEvents, ListCheckpoints): what each job's
config changed against the first's, how its loss went (final and best train and eval loss, the
curve), its steps and speed, its answers to the same sample prompts, and its lineage.

    from ftlab import Client
    from ftlab.compare import compare
    with Client() as client:
        result = compare(client, ["jobs/a", "jobs/b"])
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from ftlab.names import state_name
from ftlab.v1 import job_pb2

if TYPE_CHECKING:
    from ftlab.client import Client

MAX_LINEAGE = 20


@dataclass
class Run:
    """One job, as compared."""

    name: str
    display_name: str
    state: str  # as a person reads it: "succeeded", ...
    state_reason: str
    lineage: list[str]  # its parent, the parent's parent, ... (retries and continuations)
    steps: int
    max_steps: int
    train_loss: float | None  # the last logged training loss
    best_train_loss: float | None
    eval_loss: float | None  # the last evaluation's loss
    best_eval_loss: float | None
    best_eval_step: int | None
    tokens_per_second: float | None  # the median of the logged rates
    losses: list[float] = field(default_factory=list)  # every logged training loss, in order
    answers: dict[str, str] = field(default_factory=dict)  # prompt -> the final model's (or latest) answer
    scores: dict[str, float] = field(default_factory=dict)  # "task metric" -> its latest evaluation's score


@dataclass
class Comparison:
    runs: list[Run]
    changes: dict[str, list[Any]]  # config field (dotted) -> its value in each job, where they differ
    prompts: list[str]  # the sample prompts any of them answered, in order


def flat_config(job: job_pb2.Job) -> dict[str, Any]:
    """The job's resolved config as dotted field paths (`lora.rank`) and values in the proto's JSON shape."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and key != "columns":  # a map is one value
                walk(value, prefix + key + ".")
            else:
                out[prefix + key] = value

    walk(json_format.MessageToDict(job.config, preserving_proto_field_name=True), "")
    return out


def _scores(evaluations: list[job_pb2.Job], name: str) -> dict[str, float]:
    """The fine-tuned model's scores in the latest succeeded evaluation of job `name`."""
    mine = [e for e in evaluations if e.parent == name and e.state == job_pb2.JOB_STATE_SUCCEEDED]
    if not mine:
        return {}
    latest = max(mine, key=lambda e: e.create_time.ToNanoseconds())
    return {f"{s.task} {s.metric}": s.value for s in latest.evaluation_results.scores if s.model == "fine-tuned"}


def _run(client: Client, job: job_pb2.Job, evaluations: list[job_pb2.Job]) -> Run:
    events = client.list_events(job.name)
    losses = [e.metrics.loss for e in events if e.HasField("metrics") and e.metrics.HasField("loss")]
    evals = [(e.eval.step, e.eval.eval_loss) for e in events if e.HasField("eval")]
    rates = [e.metrics.tokens_per_second for e in events if e.HasField("metrics") and e.metrics.tokens_per_second > 0]
    samples = [e.samples for e in events if e.HasField("samples")]
    best = min(evals, key=lambda se: se[1]) if evals else None
    lineage: list[str] = []
    parent = job.parent
    while parent and len(lineage) < MAX_LINEAGE:
        lineage.append(parent)
        parent = client.get_job(parent).parent
    return Run(
        name=job.name, display_name=job.display_name, state=state_name(job.state), state_reason=job.state_reason,
        lineage=lineage, steps=job.progress.step, max_steps=job.progress.max_steps,
        train_loss=losses[-1] if losses else None, best_train_loss=min(losses) if losses else None,
        eval_loss=evals[-1][1] if evals else None, best_eval_loss=best[1] if best else None,
        best_eval_step=best[0] if best else None,
        tokens_per_second=statistics.median(rates) if rates else None, losses=losses,
        answers={a.prompt: a.completion for a in samples[-1].answers} if samples else {},
        scores=_scores(evaluations, job.name))


def compare(client: Client, names: list[str]) -> Comparison:
    """The jobs `names` side by side; the first is the one the others' config changes are against."""
    jobs = [client.get_job(name) for name in names]
    configs = [flat_config(job) for job in jobs]
    fields = list(dict.fromkeys(key for config in configs for key in config))
    changes = {f: [c.get(f) for c in configs] for f in fields
               if any(c.get(f) != configs[0].get(f) for c in configs[1:])}
    evaluations = [j for j in client.list_jobs() if j.kind == job_pb2.JOB_KIND_EVALUATION]
    runs = [_run(client, job, evaluations) for job in jobs]
    prompts = list(dict.fromkeys(p for run in runs for p in run.answers))
    return Comparison(runs, changes, prompts)
