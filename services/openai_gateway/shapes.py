"""OpenAI's fine-tuning JSON shapes from FineTune Lab's messages, and a job request from OpenAI's:
pure functions, no web framework (the routes are in files.py, jobs.py and chat.py).

Ids: a file is `file-{sha256 of its content}`, a job `ftjob-{job id}`, an event
`ftevent-{job id}-{sequence}`, a checkpoint `ftckpt-{job id}-{step}`, a job's metrics file
`file-metrics-{job id}`. The model a job trained is `ft:{model}:{suffix}:{job id}`, and one of its
checkpoints `ft:{model}:{suffix}:{job id}:ckpt-step-{step}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ftlab.v1 import analyzer_pb2, artifact_service_pb2, config_pb2, job_pb2

# the metadata keys the gateway keeps on a job for itself (not shown as OpenAI's `metadata`)
MODEL_KEY, SUFFIX_KEY, INTEGRATIONS_KEY = "openai.model", "openai.suffix", "openai.integrations"
_STATUS = {
    job_pb2.JOB_STATE_QUEUED: "queued", job_pb2.JOB_STATE_STARTING: "running", job_pb2.JOB_STATE_RUNNING: "running",
    job_pb2.JOB_STATE_PAUSING: "running", job_pb2.JOB_STATE_PAUSED: "paused",
    job_pb2.JOB_STATE_CANCELLING: "running", job_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    job_pb2.JOB_STATE_FAILED: "failed", job_pb2.JOB_STATE_CANCELLED: "cancelled"}
_FILE = re.compile(r"^file-([0-9a-f]{64})$")
_JOB = re.compile(r"^ftjob-([0-9a-f]{16})$")


class Invalid(Exception):
    """A request OpenAI's API would refuse: its message and the parameter at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


def file_id(dataset_name: str) -> str:
    return "file-" + dataset_name.removeprefix("datasets/")


def dataset_of(file: str, param: str) -> str:
    """The dataset an OpenAI file id names ("datasets/{sha256}")."""
    m = _FILE.match(file or "")
    if m is None:
        raise Invalid(f"no such file: {file!r}", param, status=404 if file else 400,
                      code="file_not_found" if file else None)
    return f"datasets/{m.group(1)}"


def job_id(name: str) -> str:
    """`ftjob-{id}` (or the bare id) as the job's id."""
    m = _JOB.match(name) or re.match(r"^([0-9a-f]{16})$", name)
    if m is None:
        raise Invalid(f"no such fine-tuning job: {name!r}", "fine_tuning_job_id", status=404)
    return m.group(1)


def seconds(ts: Any) -> int:
    return int(ts.seconds)


def file_object(d: artifact_service_pb2.Dataset) -> dict[str, Any]:
    return {"id": file_id(d.name), "object": "file", "bytes": d.size_bytes, "created_at": seconds(d.create_time),
            "filename": d.filename, "purpose": "fine-tune", "status": "processed", "expires_at": None,
            "status_details": None}


def fine_tuned_model(job: job_pb2.Job, step: int | None = None) -> str:
    name = f"ft:{job.metadata.get(MODEL_KEY) or job.config.base_model}:{job.metadata.get(SUFFIX_KEY, '')}:{job.id}"
    return name if step is None else f"{name}:ckpt-step-{step}"


def parse_model(model: str) -> tuple[str, str]:
    """(job id, checkpoint name or "" for the final model) of a fine-tuned model's name."""
    parts = model.split(":")
    if len(parts) >= 4 and parts[0] == "ft":
        step = parts[-1].removeprefix("ckpt-step-") if parts[-1].startswith("ckpt-step-") else ""
        ident = parts[-2] if step else parts[-1]
        if re.fullmatch(r"[0-9a-f]{16}", ident) and (not step or step.isdigit()):
            return ident, f"checkpoint-{step}" if step else ""
    raise Invalid(f"the model {model!r} does not exist or you do not have access to it", "model", status=404,
                  code="model_not_found")


def job_object(job: job_pb2.Job, template: config_pb2.TrainingConfig) -> dict[str, Any]:
    """A job as OpenAI's `fine_tuning.job`, with FineTune Lab's own view under `ftlab`."""
    c = job.config
    status = _STATUS.get(job.state, "queued")
    ended = status in ("succeeded", "failed", "cancelled")
    hyper = {"n_epochs": int(c.num_epochs) if not c.max_steps else "auto",
             "batch_size": c.per_device_train_batch_size * c.gradient_accumulation_steps,
             "learning_rate_multiplier": round(c.learning_rate / template.learning_rate, 6)
             if template.learning_rate else 1.0}
    dpo = c.method == config_pb2.METHOD_DPO
    method: dict[str, Any] = {"type": "dpo" if dpo else "supervised"}
    method["dpo" if dpo else "supervised"] = {"hyperparameters": {**hyper, **({"beta": c.dpo_beta} if dpo else {})}}
    own = {k: v for k, v in job.metadata.items() if not k.startswith("openai.")}
    out: dict[str, Any] = {
        "id": f"ftjob-{job.id}", "object": "fine_tuning.job", "created_at": seconds(job.create_time),
        "finished_at": seconds(job.end_time) if ended and job.HasField("end_time") else None,
        "model": job.metadata.get(MODEL_KEY) or c.base_model,
        "fine_tuned_model": fine_tuned_model(job) if status == "succeeded" else None,
        "organization_id": f"org-{job.owner}", "result_files": [f"file-metrics-{job.id}"] if ended else [],
        "status": status, "validation_file": file_id(c.dataset.eval_uri) if c.dataset.eval_uri else None,
        "training_file": file_id(c.dataset.uri), "hyperparameters": hyper, "method": method,
        "trained_tokens": None, "seed": c.seed, "error": error_object(job) if status == "failed" else None,
        "estimated_finish": None, "integrations": _integrations(job), "metadata": own or None,
        "user_provided_suffix": job.metadata.get(SUFFIX_KEY) or None,
        "ftlab": {"name": job.name, "state": job_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower(),
                  "state_reason": job.state_reason, "parent": job.parent or None,
                  "analysis": f"/v1/fine_tuning/jobs/ftjob-{job.id}/analysis" if status == "failed" else None}}
    if status == "running" and job.progress.HasField("eta_seconds") and job.HasField("update_time"):
        out["estimated_finish"] = seconds(job.update_time) + int(job.progress.eta_seconds)
    return out


def _integrations(job: job_pb2.Job) -> list[dict[str, Any]] | None:
    import json

    text = job.metadata.get(INTEGRATIONS_KEY)
    return json.loads(text) if text else None


# categories whose fault is the training file (the validation file's, where the job had one and
# the message names it)
_FILE_CATEGORIES = ("DATASET_NOT_FOUND", "DATASET_FORMAT", "DATASET_SCHEMA", "CHAT_TEMPLATE_MISSING")


def error_object(job: job_pb2.Job) -> dict[str, Any]:
    """A failed job's `error`: the analyzer's category as the code, its summary (or the error) as the
    message, and the file at fault as the param."""
    category = analyzer_pb2.FailureCategory.Name(job.analysis.category).removeprefix("FAILURE_CATEGORY_")
    code = category.lower() if job.analysis.category else (job.error.type or "failed").lower()
    param = None
    if category in _FILE_CATEGORIES:
        eval_uri = job.config.dataset.eval_uri
        param = "validation_file" if eval_uri and eval_uri.removeprefix("datasets/") in job.error.message \
            else "training_file"
    return {"code": code, "message": job.analysis.summary or f"{job.error.type}: {job.error.message}",
            "param": param}


@dataclass
class Event:
    """One OpenAI event, in order."""

    sequence: int
    body: dict[str, Any]


def events(job: job_pb2.Job, history: list[job_pb2.JobEvent]) -> list[Event]:
    """The job's events OpenAI's way (oldest first here; the route lists them newest first)."""
    out = []
    for e in history:
        body = event_body(job.id, e)
        if body is not None:
            out.append(Event(e.sequence, body))
    return out


def event_body(job: str, e: job_pb2.JobEvent) -> dict[str, Any] | None:
    kind = e.WhichOneof("payload")
    data: dict[str, Any] | None = None
    kind_out, level = "message", "info"
    if kind == "state_changed":
        to = job_pb2.JobState.Name(e.state_changed.to_state).removeprefix("JOB_STATE_").lower()
        message = {"queued": "Fine-tuning job created" if e.sequence == 1 else "Job queued",
                   "running": "Fine-tuning job started", "succeeded": "The job has successfully completed",
                   "failed": "The job has failed", "cancelled": "The job was cancelled", "paused": "The job was paused",
                   }.get(to, f"Job {to}") + (f": {e.state_changed.reason}" if e.state_changed.reason else "")
        level = "error" if to == "failed" else "info"
    elif kind == "metrics":
        m = e.metrics
        data = {"step": m.step, "train_loss": m.loss, "total_steps": m.max_steps}
        if m.HasField("mean_token_accuracy"):
            data["train_mean_token_accuracy"] = m.mean_token_accuracy
        message, kind_out = f"Step {m.step}/{m.max_steps}: training loss={m.loss:.4f}", "metrics"
    elif kind == "eval":
        data = {"step": e.eval.step, "valid_loss": e.eval.eval_loss}
        message, kind_out = f"Step {e.eval.step}: validation loss={e.eval.eval_loss:.4f}", "metrics"
    elif kind == "checkpoint_saved":
        message = f"Checkpoint created at step {e.checkpoint_saved.step}"
    elif kind == "error":
        message, level = f"{e.error.type}: {e.error.message}", "error"
    elif kind == "samples":
        message = f"Sample answers at step {e.samples.step}"
        data = {"step": e.samples.step, "answers": [{"prompt": a.prompt, "completion": a.completion}
                                                    for a in e.samples.answers]}
    else:
        return None
    return {"id": f"ftevent-{job}-{e.sequence}", "object": "fine_tuning.job.event", "created_at": seconds(e.time),
            "level": level, "message": message, "data": data, "type": kind_out}


def checkpoint_object(job: job_pb2.Job, c: job_pb2.Checkpoint, train_loss: float | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {"step": float(c.step)}
    if train_loss is not None:
        metrics["train_loss"] = train_loss
    if c.HasField("eval_loss"):
        metrics["valid_loss"] = c.eval_loss
    return {"id": f"ftckpt-{job.id}-{c.step}", "object": "fine_tuning.job.checkpoint",
            "created_at": seconds(c.create_time), "fine_tuned_model_checkpoint": fine_tuned_model(job, c.step),
            "fine_tuning_job_id": f"ftjob-{job.id}", "metrics": metrics, "step_number": c.step}


def metrics_csv(history: list[job_pb2.JobEvent]) -> str:
    """OpenAI's results file: a row per logged step (evaluations fill valid_loss at their step)."""
    rows: dict[int, dict[str, str]] = {}
    for e in history:
        if e.HasField("metrics"):
            m = e.metrics
            row = rows.setdefault(m.step, {})
            row["train_loss"] = f"{m.loss:.6f}"
            if m.HasField("mean_token_accuracy"):
                row["train_accuracy"] = f"{m.mean_token_accuracy:.6f}"
        elif e.HasField("eval"):
            rows.setdefault(e.eval.step, {})["valid_loss"] = f"{e.eval.eval_loss:.6f}"
    columns = ("train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
    lines = ["step," + ",".join(columns)]
    lines += [f"{step}," + ",".join(row.get(c, "") for c in columns) for step, row in sorted(rows.items())]
    return "\n".join(lines) + "\n"
