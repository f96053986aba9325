"""JobRow (storage) <-> Job (API message). The one place that knows both shapes."""

from __future__ import annotations

import json
from collections.abc import Sequence

from google.protobuf import json_format
from google.protobuf.message import Message

from ftlab.v1 import analyzer_pb2, config_pb2, events_pb2, job_pb2
from services.scheduler.store.models import AttemptRow, CheckpointRow, JobRow
from services.scheduler.store.repository import aware


def to_json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True)


def config_of(row: JobRow) -> config_pb2.TrainingConfig:
    return json_format.Parse(row.config_json, config_pb2.TrainingConfig())


def effective_settings(row: JobRow, settings: events_pb2.RunSettings) -> tuple[str, str]:
    """(effective_json, tuning_json) of a job from its run's settings event: the job's config with the
    fields the trainer decided, and the decisions."""
    effective = config_of(row)
    effective.MergeFrom(settings.effective)
    tuning = [json_format.MessageToDict(c, preserving_proto_field_name=True) for c in settings.choices]
    return to_json(effective), json.dumps(tuning)


def watchdog_of(row: JobRow) -> job_pb2.WatchdogConfig:
    return json_format.Parse(row.watchdog_json, job_pb2.WatchdogConfig())


def job_name(job_id: str) -> str:
    return f"jobs/{job_id}"


def to_job(row: JobRow, attempts: Sequence[AttemptRow] = ()) -> job_pb2.Job:
    job = job_pb2.Job(
        name=job_name(row.id),
        id=row.id,
        owner=row.owner,
        display_name=row.display_name,
        state=job_pb2.JobState.Value(row.state),
        phase=row.phase,
        config=config_of(row),
        template=row.template,
        priority=row.priority,
        parent=job_name(row.parent_id) if row.parent_id else "",
        worker=row.worker,
        last_sequence=row.last_sequence,
        state_reason=row.state_reason,
        request_id=row.request_id or "",
        resume_checkpoint=row.resume_checkpoint,
    )
    for field in ("create_time", "update_time", "start_time", "end_time"):
        value = aware(getattr(row, field))
        if value is not None:
            getattr(job, field).FromDatetime(value)
    json_format.Parse(row.progress_json, job.progress)
    json_format.Parse(row.error_json, job.error)
    json_format.Parse(row.analysis_json, job.analysis)
    json_format.Parse(row.retry_policy_json, job.retry_policy)
    json_format.Parse(row.watchdog_json, job.watchdog)
    json_format.Parse(row.preflight_json or "{}", job.preflight)
    job.changes.extend(changes_of(row))
    job.automatic = bool(row.automatic)
    json_format.Parse(row.effective_json or "{}", job.effective_config)
    for choice in json.loads(row.tuning_json or "[]"):
        json_format.ParseDict(choice, job.tuning.add())
    job.kind = job_pb2.JobKind.Value(row.kind or "JOB_KIND_TRAINING")
    json_format.Parse(row.evaluation_json or "{}", job.evaluation)
    json_format.Parse(row.results_json or "{}", job.evaluation_results)
    job.metadata.update(json.loads(row.metadata_json or "{}"))
    for a in attempts:
        attempt = job.attempts.add(number=a.number, worker=a.worker, outcome=a.outcome, reason=a.reason)
        attempt.start_time.FromDatetime(aware(a.start_time))
        if a.end_time is not None:
            attempt.end_time.FromDatetime(aware(a.end_time))
    return job


def changes_of(row: JobRow) -> list[analyzer_pb2.ConfigPatch]:
    """The config changes a retry made to its parent's config."""
    return [json_format.ParseDict(c, analyzer_pb2.ConfigPatch()) for c in json.loads(row.changes_json or "[]")]


def to_checkpoints(rows: list[CheckpointRow]) -> list[job_pb2.Checkpoint]:
    if not rows:
        return []
    latest = max(rows, key=lambda r: r.step)
    evaluated = [r for r in rows if r.eval_loss is not None]
    best = min(evaluated, key=lambda r: (r.eval_loss, -r.step)) if evaluated else None  # best by eval loss only
    out = []
    for r in rows:
        c = job_pb2.Checkpoint(name=r.name, step=r.step, size_bytes=r.size_bytes,
                               is_best=r is best, is_latest=r is latest)
        if r.eval_loss is not None:
            c.eval_loss = r.eval_loss
        c.create_time.FromDatetime(aware(r.create_time))
        out.append(c)
    return out

