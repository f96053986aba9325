"""The run-event reducer: a job's row and one event of its run in, the row changed and the job's
events out, through a unit of work (`tx.checkpoints`, `tx.attempts`; store/unit_of_work.py) and
never a database session. What a failure, a lost worker or a finished run does to a job (requeue
with backoff, pause, cancel, fail) is decided here, from the job's retry policy."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Protocol, TypeAlias

from google.protobuf import json_format

from ftlab.v1 import events_pb2, job_pb2
from services.analyzer.analyze import category_of
from services.scheduler import convert, jobconfig, states
from services.scheduler.clock import utcnow
from services.scheduler.transitions import state_event

DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_BACKOFF_SECONDS = 10.0
DEFAULT_MAX_WORKER_LOSSES = 3

# The reducer imports nothing of the store (tests/unit/test_layers.py). Its row is a store.models.JobRow,
# which mypy reads as Any here in any case (SQLAlchemy is untyped in this project's check).
Row: TypeAlias = Any


class Checkpoints(Protocol):
    """A job's checkpoints, as the reducer records them (store.unit_of_work.Checkpoints)."""

    def saved(self, job_id: str, name: str, step: int, eval_loss: float | None, size_bytes: int) -> None: ...

    def deleted(self, job_id: str, name: str) -> None: ...

    def latest(self, job_id: str) -> str: ...


class Attempts(Protocol):
    """A job's attempts, as the reducer ends them (store.unit_of_work.Attempts)."""

    def ended(self, job_id: str, number: int, outcome: str, reason: str) -> None: ...


class UnitOfWork(Protocol):
    """What a change of a job touches besides its row (store.unit_of_work.Tx)."""

    @property
    def checkpoints(self) -> Checkpoints: ...

    @property
    def attempts(self) -> Attempts: ...


def retry_policy(r: Row) -> tuple[int, float, int]:
    """(max attempts for the job's own failures, first backoff in seconds, max worker losses)."""
    p = json_format.Parse(r.retry_policy_json, job_pb2.RetryPolicy())
    return (p.max_attempts if p.HasField("max_attempts") else DEFAULT_MAX_ATTEMPTS,
            p.backoff_seconds if p.HasField("backoff_seconds") else DEFAULT_BACKOFF_SECONDS,
            p.max_worker_losses if p.HasField("max_worker_losses") else DEFAULT_MAX_WORKER_LOSSES)


def retry_limits(r: Row) -> dict[str, int]:
    """Per-category attempt limits of the job's retry policy."""
    return dict(json_format.Parse(r.retry_policy_json, job_pb2.RetryPolicy()).max_attempts_by_category)


def apply(r: Row, tx: UnitOfWork, run_id: str, run_event: events_pb2.RunEvent,
          fence_seconds: float) -> list[job_pb2.JobEvent]:
    """Record one event of the job's run `run_id` on row `r`; a stale run's event, or one already
    recorded, changes nothing."""
    if r.run_id != run_id or run_event.sequence <= r.run_cursor:
        return []
    kind = run_event.WhichOneof("payload")
    r.run_cursor = run_event.sequence
    if kind is None:  # a kind of event this scheduler does not know (a newer trainer's): nothing to record
        return []
    payload = getattr(run_event, kind)
    out = []
    if r.state == states.STARTING:
        out.append(state_event(r, states.RUNNING, f"running on {r.worker}"))
    event = job_pb2.JobEvent()
    event.time.CopyFrom(run_event.time)
    getattr(event, kind).CopyFrom(payload)
    out.append(event)
    if kind == "phase_changed":
        r.phase = events_pb2.Phase.Name(payload.phase)
    elif kind == "metrics":
        progress(r, payload)
    elif kind == "eval":
        p = json_format.Parse(r.progress_json, job_pb2.Progress())
        p.eval_loss = payload.eval_loss
        r.progress_json = convert.to_json(p)
    elif kind == "checkpoint_saved":
        tx.checkpoints.saved(r.id, payload.name, payload.step,
                             payload.eval_loss if payload.HasField("eval_loss") else None, payload.size_bytes)
    elif kind == "settings":
        r.effective_json, r.tuning_json = convert.effective_settings(r, payload)
    elif kind == "checkpoint_deleted":
        tx.checkpoints.deleted(r.id, payload.name)
    elif kind == "evaluation":
        r.results_json = convert.to_json(payload)
    elif kind == "error":
        r.error_json = convert.to_json(job_pb2.JobError(
            type=payload.type, message=payload.message, traceback=payload.traceback, phase=payload.phase,
            log_tail=payload.log_tail))
        if payload.phase:
            r.phase = events_pb2.Phase.Name(payload.phase)
    elif kind == "finished":
        out.extend(finish(r, tx, payload, fence_seconds))
    return out


def progress(r: Row, m: events_pb2.TrainingMetrics) -> None:
    """The job's progress after a metrics event (the peak GPU memory is the run's highest)."""
    p = json_format.Parse(r.progress_json, job_pb2.Progress())
    p.step, p.max_steps, p.epoch = m.step, m.max_steps, m.epoch
    p.tokens_per_second, p.samples_per_second = m.tokens_per_second, m.samples_per_second
    for name in ("loss", "eta_seconds", "mean_token_accuracy", "entropy"):
        if m.HasField(name):
            setattr(p, name, getattr(m, name))
    if m.HasField("rewards"):
        p.rewards.CopyFrom(m.rewards)
    if m.HasField("gpu_memory_peak_bytes"):
        p.gpu_memory_peak_bytes = max(p.gpu_memory_peak_bytes, m.gpu_memory_peak_bytes)
    r.progress_json = convert.to_json(p)


def end_attempt(r: Row, tx: UnitOfWork, outcome: str, reason: str) -> None:
    tx.attempts.ended(r.id, r.attempt, outcome, reason)


def finish(r: Row, tx: UnitOfWork, f: events_pb2.RunFinished, fence_seconds: float) -> list[job_pb2.JobEvent]:
    """The run ended: the job succeeds, pauses, is cancelled, is requeued (a lost worker; a failure
    the retry policy allows again, after its backoff) or fails."""
    outcome = events_pb2.RunOutcome.Name(f.outcome)
    error = json_format.Parse(r.error_json, job_pb2.JobError())
    if f.HasField("exit_code"):
        error.exit_code = f.exit_code
    if f.HasField("signal"):
        error.signal = f.signal
    if f.outcome == events_pb2.RUN_OUTCOME_SUCCEEDED:
        target, reason = states.SUCCEEDED, f.stop_reason or "training finished"
    elif f.outcome == events_pb2.RUN_OUTCOME_PAUSED:
        target, reason = states.PAUSED, f"paused at {f.resume_checkpoint}"
        r.resume_checkpoint = f.resume_checkpoint
    elif f.outcome == events_pb2.RUN_OUTCOME_LOST:  # its trainer shut down and stopped it
        if f.resume_checkpoint:
            r.resume_checkpoint = f.resume_checkpoint
        return lost(r, tx, f"worker {r.worker} shut down", fence_seconds)
    elif f.outcome == events_pb2.RUN_OUTCOME_CANCELLED or r.state == states.CANCELLING:
        target, reason = states.CANCELLED, r.state_reason.replace("cancel requested by", "cancelled by")
    else:
        target, reason = states.FAILED, f"{error.type or 'run failed'}: {error.message}"[:500]
        r.error_json = convert.to_json(error)
        r.failures += 1
        category = category_of(error)  # the analyzer's rules; its full analysis follows
        counts = json.loads(r.failure_counts_json or "{}")
        counts[category] = counts.get(category, 0) + 1
        r.failure_counts_json = json.dumps(counts, sort_keys=True)
        max_attempts, backoff, _ = retry_policy(r)
        max_attempts = retry_limits(r).get(category, max_attempts)
        if counts[category] < max_attempts and r.state == states.RUNNING:
            delay = min(backoff * 2 ** min(r.failures - 1, 32), jobconfig.MAX_BACKOFF_SECONDS)
            r.not_before = utcnow() + timedelta(seconds=delay)
            r.resume_checkpoint = tx.checkpoints.latest(r.id) or r.resume_checkpoint
            end_attempt(r, tx, outcome, reason)
            return [state_event(r, states.QUEUED, f"{category} failure {counts[category]} of {max_attempts} "
                                f"allowed ({reason}); retrying in {delay:g}s from {r.resume_checkpoint or 'the start'}")]
    end_attempt(r, tx, outcome, "" if target == states.SUCCEEDED else reason)
    if not states.can_move(r.state, target):
        return []
    return [state_event(r, target, reason)]


def lost(r: Row, tx: UnitOfWork, reason: str, fence_seconds: float) -> list[job_pb2.JobEvent]:
    """The run is gone with its worker. Not the job's fault: requeue it to resume from its latest
    checkpoint once the lost worker's runs have stopped themselves (`fence_seconds`; a worker loss
    does not use up `max_attempts`), or finish what was asked."""
    end_attempt(r, tx, "RUN_OUTCOME_LOST", reason)
    checkpoint = tx.checkpoints.latest(r.id) or r.resume_checkpoint
    if r.state == states.CANCELLING:
        return [state_event(r, states.CANCELLED, r.state_reason.replace("cancel requested by", "cancelled by"))]
    if r.state == states.PAUSING:
        r.resume_checkpoint = checkpoint
        return [state_event(r, states.PAUSED, f"{reason}; paused at {checkpoint or 'the start'}")]
    r.worker_losses += 1
    _, _, max_losses = retry_policy(r)
    if r.worker_losses > max_losses:
        r.error_json = convert.to_json(job_pb2.JobError(
            type="WorkerLost", message=f"{reason}; lost {r.worker_losses} workers (limit {max_losses})",
            phase=r.phase))
        return [state_event(r, states.FAILED, f"{reason}; no worker losses left")]
    r.resume_checkpoint, r.worker = checkpoint, ""
    r.not_before = utcnow() + timedelta(seconds=fence_seconds)
    return [state_event(r, states.QUEUED, f"{reason}; requeued to resume from {checkpoint or 'the start'}")]
