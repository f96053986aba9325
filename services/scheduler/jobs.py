"""JobManager: the scheduler's domain. Creates jobs, applies run events, answers queries, watches.

It knows nothing of gRPC: it takes and returns protobuf messages and raises domain errors. Blocking
database work runs in worker threads so the event loop keeps serving streams.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import re
import statistics
import uuid
from typing import AsyncIterator, Protocol

from datetime import timedelta

from google.protobuf import json_format
from sqlalchemy import delete, select

from ftlab.v1 import analyzer_pb2, events_pb2, job_pb2, job_service_pb2
from ftlab.names import state_name
from services.common.auth import Caller
from services.common import settings, validate
from services.common.access import Policy
from services.common.checkpoints import best_or_latest, parent_ref
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Precondition
from services.scheduler import convert, jobconfig, retry, states
from services.scheduler.failures import failure_class
from services.scheduler.hub import EventHub
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.store.models import AttemptRow, CheckpointRow, JobRow
from services.scheduler.store.repository import JobStore, aware, decode_token, encode_token, utcnow

MAX_PAGE = 1000
WATCH_BATCH = 500
DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_BACKOFF_SECONDS = 10.0
DEFAULT_MAX_WORKER_LOSSES = 3
MAX_CANCEL_GRACE = 3600.0


def retry_policy(r: JobRow) -> tuple[int, float, int]:
    """(max attempts for the job's own failures, first backoff in seconds, max worker losses)."""
    p = json_format.Parse(r.retry_policy_json, job_pb2.RetryPolicy())
    return (p.max_attempts if p.HasField("max_attempts") else DEFAULT_MAX_ATTEMPTS,
            p.backoff_seconds if p.HasField("backoff_seconds") else DEFAULT_BACKOFF_SECONDS,
            p.max_worker_losses if p.HasField("max_worker_losses") else DEFAULT_MAX_WORKER_LOSSES)


def retry_limits(r: JobRow) -> dict[str, int]:
    """Per-category attempt limits of the job's retry policy."""
    return dict(json_format.Parse(r.retry_policy_json, job_pb2.RetryPolicy()).max_attempts_by_category)


log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


def latest_checkpoint(s, job_id: str) -> str:
    row = s.scalars(select(CheckpointRow).where(CheckpointRow.job_id == job_id)
                    .order_by(CheckpointRow.step.desc()).limit(1)).first()
    return row.name if row is not None else ""


def _check_request_id(request_id: str) -> None:
    if len(request_id) > 128:
        raise InvalidArgument("request_id too long", violations=[FieldViolation("request_id", "at most 128 characters")])


def _category(analysis: analyzer_pb2.FailureAnalysis) -> str:
    return analyzer_pb2.FailureCategory.Name(analysis.category).removeprefix("FAILURE_CATEGORY_")


def _new_row(*, owner: str, config, request_id: str, checks, **fields) -> JobRow:
    """A new job's row before it is queued: nothing run, nothing recorded yet."""
    now = utcnow()
    defaults = dict(
        id=uuid.uuid4().hex[:16], owner=owner, state="", config_json=convert.to_json(config),
        request_id=request_id or None, create_time=now, update_time=now, last_sequence=0, phase="PHASE_UNSPECIFIED",
        worker="", run_id="", run_cursor=0, attempt=0, progress_json="{}", error_json="{}", analysis_json="{}",
        state_reason="", resume_checkpoint="", preflight_json=convert.to_json(checks) if checks else "{}",
        changes_json="[]", automatic=False,
    )
    return JobRow(**{**defaults, **fields})


class RunController(Protocol):
    """What the job domain needs from whoever runs jobs (the dispatcher)."""

    def wake(self) -> None: ...

    async def stop_run(self, worker: str, run_id: str, pause: bool, grace_seconds: float | None) -> None: ...


def parse_name(name: str, field: str = "name") -> str:
    job_id = name.removeprefix("jobs/")
    if not _JOB_ID.match(job_id):
        raise InvalidArgument(f"invalid job name {validate.short(name)}",
                              violations=[FieldViolation(field, "expected jobs/{id}, the id 16 hex digits")])
    return job_id


def state_event(row: JobRow, to: str, reason: str) -> job_pb2.JobEvent:
    """Move `row` to state `to` and return the event that records it."""
    if row.state and not states.can_move(row.state, to):
        raise RuntimeError(f"illegal transition of job {row.id}: {row.state} -> {to}")
    event = job_pb2.JobEvent(state_changed=job_pb2.StateChanged(
        from_state=job_pb2.JobState.Value(row.state) if row.state else 0,
        to_state=job_pb2.JobState.Value(to), reason=reason))
    row.state, row.state_reason = to, reason
    now = utcnow()
    if to == states.RUNNING and row.start_time is None:
        row.start_time = now
    if states.is_final(to):
        row.end_time = now
    return event


class JobManager:
    def __init__(self, store: JobStore, hub: EventHub, metrics: SchedulerMetrics | None = None,
                 max_running_per_user: int = 0, scheduler_id: str = "", fence_seconds: float = 0.0,
                 access: Policy | None = None) -> None:
        self.fence_seconds = fence_seconds  # a lost worker's runs may take this long to stop themselves
        self.store = store
        self.scheduler_id = scheduler_id
        self.max_running_per_user = max_running_per_user
        self.hub = hub
        self.metrics = metrics
        self.controller: RunController | None = None
        self.analyst = None  # FailureAnalyst: told of every job that fails
        self.preflighter = None  # Preflighter: asked whether a new job can run
        self.access = access or Policy.current()  # which files a job may name

    async def _db(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _publish(self, job_id: str, events: list[job_pb2.JobEvent]) -> None:
        changed = [job_pb2.JobState.Name(e.state_changed.to_state) for e in events if e.HasField("state_changed")]
        ended = [state for state in changed if states.is_final(state)]
        if self.metrics:
            for state in ended:
                self.metrics.job_ended(state)
        await self.hub.publish(job_id, events, final=bool(ended))

    # queries
    async def _row(self, who: Caller, name: str, field: str = "name") -> JobRow:
        job_id = parse_name(name, field)
        row = await self._db(self.store.get_job, job_id)
        if row is None or not who.sees(row.owner):  # another user's job does not exist for this caller
            raise NotFound(f"job {name!r} not found", reason="JOB_NOT_FOUND")
        return row

    async def get(self, who: Caller, name: str) -> job_pb2.Job:
        row = await self._row(who, name)
        return convert.to_job(row, await self._db(self.store.attempts, row.id))

    async def list(self, who: Caller, states_filter: list[int], page_size: int, page_token: str):
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", violations=[FieldViolation("page_size", "must be >= 0")])
        known = set(job_pb2.JobState.values()) - {job_pb2.JOB_STATE_UNSPECIFIED}
        unknown = [i for i, s in enumerate(states_filter) if s not in known]
        if unknown:
            raise InvalidArgument("unknown job state in states", violations=[
                FieldViolation(f"states[{i}]", f"not a job state (got {states_filter[i]})") for i in unknown[:10]])
        states_filter = [job_pb2.JobState.Name(s) for s in states_filter]
        size = min(page_size or 50, MAX_PAGE)
        rows, token = await self._db(self.store.list_jobs, owner=None if who.admin else who.user,
                                     states=states_filter, page_size=size, page_token=page_token)
        return [convert.to_job(r) for r in rows], token

    async def checkpoints(self, who: Caller, name: str) -> list[job_pb2.Checkpoint]:
        row = await self._row(who, name)
        return convert.to_checkpoints(await self._db(self.store.checkpoints, row.id))

    async def events(self, who: Caller, name: str, after: int, page_size: int, page_token: str):
        row = await self._row(who, name)
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", violations=[FieldViolation("page_size", "must be >= 0")])
        if after < 0:
            raise InvalidArgument("after_sequence must not be negative",
                                  violations=[FieldViolation("after_sequence", "must be >= 0")])
        if page_token:
            (after,) = decode_token(page_token, (int,))
        size = min(page_size or 100, MAX_PAGE)
        events = await self._db(self.store.events_after, row.id, after, size + 1)
        token = ""
        if len(events) > size:
            events, token = events[:size], encode_token([events[size - 1].sequence])
        return events, token

    async def watch(self, who: Caller, name: str, after: int, follow: bool,
                    poll_seconds: float = 1.0) -> AsyncIterator[tuple[job_pb2.JobEvent, int]]:
        """Events after `after`, in order, each with the job state after it; with `follow`, live
        until the job reaches a final state."""
        row = await self._row(who, name)
        if after < 0:
            raise InvalidArgument("after_sequence must not be negative",
                                  violations=[FieldViolation("after_sequence", "must be >= 0")])
        cursor, state, from_memory = after, 0, False
        if after > 0:
            previous = await self._db(self.store.events_after, row.id, 0, after)
            for e in previous:
                if e.HasField("state_changed"):
                    state = e.state_changed.to_state
        while True:
            batch = self.hub.since(row.id, cursor) if from_memory else None
            if batch is None:
                batch = await self._db(self.store.events_after, row.id, cursor, WATCH_BATCH)
            for event in batch:
                if event.HasField("state_changed"):
                    state = event.state_changed.to_state
                cursor = event.sequence
                yield event, state
            if len(batch) == WATCH_BATCH:
                continue
            if not follow:
                return
            if state and states.is_final(job_pb2.JobState.Name(state)):
                current = await self._db(self.store.get_job, row.id)
                if current.last_sequence <= cursor:
                    return
            from_memory = await self.hub.wait_beyond(row.id, cursor, poll_seconds)

    async def queue(self, who: Caller, free_slots: int) -> job_service_pb2.GetQueueResponse:
        """The queued jobs in start order, each with an estimate of when it starts: free slots go
        first, then running jobs' slots as their ETAs run out; a queued job is assumed to take the
        median duration of recent successful jobs. Other users' jobs are positions without a name
        or an owner (an admin sees them all)."""
        rows = await self._db(self.store.queued)
        active = await self._db(self.store.jobs_in_states, states.ACTIVE)
        durations = await self._db(self.store.recent_durations)
        now = utcnow()
        response = job_service_pb2.GetQueueResponse(running=len(active), free_slots=free_slots)
        slots: list[float | None] = [0.0] * free_slots
        for r in active:
            eta = json_format.Parse(r.progress_json, job_pb2.Progress())
            slots.append(eta.eta_seconds if eta.HasField("eta_seconds") else None)
        typical = statistics.median(durations) if durations else None
        known = sorted(x for x in slots if x is not None)
        for position, r in enumerate(rows, start=1):
            entry = response.entries.add(position=position, priority=r.priority,
                                         wait_seconds=(now - aware(r.create_time)).total_seconds())
            if who.sees(r.owner):
                entry.job, entry.owner = convert.job_name(r.id), r.owner
            if not known:
                continue  # no slot whose release time is known (or no workers)
            start = heapq.heappop(known)
            entry.estimated_start_seconds = start
            if typical is not None:
                heapq.heappush(known, start + typical)
        return response

    async def set_priority(self, who: Caller, name: str, priority: int) -> job_pb2.Job:
        row = await self._row(who, name)

        def mutate(r: JobRow, _s):
            if r.state not in (states.QUEUED, states.PAUSED):
                raise FailedPrecondition(f"only a queued or paused job can change priority; job {r.id} is "
                                         f"{state_name(r.state)}",
                                         reason="JOB_NOT_QUEUED")
            r.priority = priority
            return []

        row, _ = await self._db(self.store.update, row.id, mutate)
        if self.controller:
            self.controller.wake()
        return convert.to_job(row)

    # commands
    async def create(self, who: Caller, request: job_service_pb2.CreateJobRequest) -> job_pb2.Job:
        _check_request_id(request.request_id)
        jobconfig.validate_policy(request.retry_policy, request.watchdog)
        config = jobconfig.resolve(request.template, request.config)
        unsafe = sorted(set(request.retry_policy.auto_recover) - retry.AUTO_RECOVERABLE)
        if unsafe:
            raise InvalidArgument("auto-recovery only for failures with a safe automatic fix", violations=[
                FieldViolation(f"retry_policy.auto_recover[{k}]", "one of " + ", ".join(sorted(retry.AUTO_RECOVERABLE)))
                for k in unsafe])
        self.access.config(config, None if who.admin else who.user)
        checks = await self.preflight(config, who.user, request.force or request.validate_only)
        row = _new_row(
            owner=who.user, display_name=request.display_name[:256], template=request.template or "basic",
            priority=request.priority, config=config, request_id=request.request_id,
            retry_policy_json=convert.to_json(request.retry_policy), watchdog_json=convert.to_json(request.watchdog),
            checks=checks)
        if request.validate_only:
            row.id, row.state = "", states.QUEUED
            return convert.to_job(row)
        return await self._queue(row, f"created by {who.user}")

    async def _queue(self, row: JobRow, reason: str) -> job_pb2.Job:
        """Insert a new job as QUEUED (or return the one its request_id already made) and wake the dispatcher."""
        first = state_event(row, states.QUEUED, reason)
        row, created = await self._db(self.store.create_job, row, [first])
        if created:
            await self._publish(row.id, [first])
            if self.controller:
                self.controller.wake()
        return convert.to_job(row)

    async def preflight(self, config, owner: str, force: bool):
        """The analyzer's pre-flight findings (None without an analyzer); refuses a job that cannot run
        with FAILED_PRECONDITION naming each failed check, unless forced."""
        if self.preflighter is None:
            return None
        checks = await self.preflighter.check(config, owner)
        if checks is not None and not checks.ok and not force:
            failed = [c for c in checks.checks if c.status == analyzer_pb2.CHECK_STATUS_FAIL]
            fixes = "; ".join(f"{p.field} {p.current} -> {p.suggested}" for c in failed for p in c.suggestions)
            raise FailedPrecondition(
                "pre-flight: " + "; ".join(f"{c.name}: {c.message}" for c in failed)
                + (f" (try: {fixes})" if fixes else "") + "; set force to queue it anyway",
                reason="PREFLIGHT_FAILED",
                preconditions=[Precondition("PREFLIGHT", c.name, c.message) for c in failed])
        return checks

    async def cancel(self, who: Caller, name: str, grace_seconds: float | None) -> job_pb2.Job:
        if grace_seconds is not None and not 0 <= grace_seconds <= MAX_CANCEL_GRACE:
            raise InvalidArgument("grace_seconds out of range", violations=[FieldViolation(
                "grace_seconds", f"must be in 0..{MAX_CANCEL_GRACE:g} seconds, got {grace_seconds:g}")])
        row = await self._row(who, name)
        stop: list[tuple[str, str]] = []

        def mutate(r: JobRow, _s):
            if states.is_final(r.state):
                raise FailedPrecondition(f"job {r.id} already ended ({state_name(r.state)})", reason="JOB_ENDED")
            if r.state in (states.QUEUED, states.PAUSED):
                return [state_event(r, states.CANCELLED, f"cancelled by {who.user}")]
            if r.state == states.CANCELLING:
                return []
            stop.append((r.worker, r.run_id))
            return [state_event(r, states.CANCELLING, f"cancel requested by {who.user}")]

        row, events = await self._db(self.store.update, row.id, mutate)
        await self._publish(row.id, events)
        if stop and self.controller:
            await self.controller.stop_run(*stop[0], pause=False, grace_seconds=grace_seconds)
        return convert.to_job(row)

    async def pause(self, who: Caller, name: str) -> job_pb2.Job:
        row = await self._row(who, name)
        stop: list[tuple[str, str]] = []

        def mutate(r: JobRow, _s):
            if r.state not in (states.RUNNING, states.STARTING):
                raise FailedPrecondition(f"only a running job can pause; job {r.id} is {state_name(r.state)}",
                                         reason="JOB_NOT_RUNNING")
            stop.append((r.worker, r.run_id))
            return [state_event(r, states.PAUSING, f"pause requested by {who.user}")]

        row, events = await self._db(self.store.update, row.id, mutate)
        await self._publish(row.id, events)
        if stop and self.controller:
            await self.controller.stop_run(*stop[0], pause=True, grace_seconds=None)
        return convert.to_job(row)

    async def resume(self, who: Caller, request: job_service_pb2.ResumeJobRequest) -> job_pb2.Job:
        row = await self._row(who, request.name)
        chosen = await self._choose_checkpoint(row.id, request.checkpoint or job_pb2.CHECKPOINT_SELECTOR_LATEST,
                                               request.checkpoint_name)

        def mutate(r: JobRow, _s):
            if r.state != states.PAUSED:
                raise FailedPrecondition(f"only a paused job can resume; job {r.id} is {state_name(r.state)}",
                                         reason="JOB_NOT_PAUSED")
            r.resume_checkpoint = chosen or r.resume_checkpoint
            return [state_event(r, states.QUEUED, f"resumed by {who.user}")]

        row, events = await self._db(self.store.update, row.id, mutate)
        await self._publish(row.id, events)
        if self.controller:
            self.controller.wake()
        return convert.to_job(row)

    async def retry(self, who: Caller, request: job_service_pb2.RetryJobRequest, automatic: bool = False) -> job_pb2.Job:
        """A new job from an ended one: its config with the analyzer's suggestions (if asked) and the
        request's changes, starting from the chosen checkpoint of the old job where that is sound."""
        parent = await self._row(who, request.name)
        if not states.is_final(parent.state):  # failed or cancelled: a retry; succeeded: a continuation or fork
            raise FailedPrecondition(f"only an ended job (failed, cancelled or succeeded) can be retried or "
                                     f"continued; job {parent.id} is {state_name(parent.state)}",
                                     reason="JOB_NOT_ENDED")
        _check_request_id(request.request_id)
        old = convert.config_of(parent)
        analysis = json_format.Parse(parent.analysis_json, analyzer_pb2.FailureAnalysis())
        if request.apply_suggestions and not analysis.suggestions:
            raise FailedPrecondition(f"job {parent.id} has no suggestions to apply" + (
                "" if analysis.category else " (it has not been analyzed yet)"), reason="NO_SUGGESTIONS")
        config, patches, skipped = retry.new_config(old, analysis, request.config_changes, request.apply_suggestions)
        mode = retry.resume_mode(patches, old, config)
        chosen = await self._choose_checkpoint(parent.id, request.checkpoint, request.checkpoint_name) \
            if request.checkpoint != job_pb2.CHECKPOINT_SELECTOR_UNSPECIFIED else ""
        self.access.config(config, parent.owner)
        checks = await self.preflight(config, parent.owner, request.force)
        policy = json_format.Parse(parent.retry_policy_json, job_pb2.RetryPolicy())
        if automatic:
            policy.auto_recover[_category(analysis)] -= 1
        start = parent_ref(parent.id, chosen) if chosen and mode != "none" else ""
        verb = "continuation" if parent.state == states.SUCCEEDED else "retry"
        why = ("automatic recovery" if automatic else f"{verb} by {who.user}") + f" of {convert.job_name(parent.id)}"
        if chosen and mode == "none":
            why += f"; starts from the base model: {chosen} cannot be resumed after these changes"
        elif start:
            why += f"; resumes from {chosen}" + (" (weights only: optimizer and schedule restart)" if mode == "weights" else "")
        if skipped:
            why += "; not applied: " + "; ".join(skipped)
        row = _new_row(
            owner=parent.owner, display_name=parent.display_name, template=parent.template, priority=parent.priority,
            config=config, request_id=request.request_id, retry_policy_json=convert.to_json(policy),
            watchdog_json=parent.watchdog_json, checks=checks, parent_id=parent.id, resume_checkpoint=start,
            changes_json=json.dumps([json_format.MessageToDict(p, preserving_proto_field_name=True) for p in patches]),
            automatic=automatic)
        return await self._queue(row, why)

    async def auto_recover(self, job_id: str) -> job_pb2.Job | None:
        """After a failed job's analysis: retry it with the suggestions from its latest checkpoint when
        its policy allows for this category and budget is left (a new job; this one keeps its history)."""
        row = await self._db(self.store.get_job, job_id)
        analysis = json_format.Parse(row.analysis_json, analyzer_pb2.FailureAnalysis())
        category = _category(analysis)
        policy = json_format.Parse(row.retry_policy_json, job_pb2.RetryPolicy())
        if (row.state != states.FAILED or category not in retry.AUTO_RECOVERABLE
                or policy.auto_recover.get(category, 0) <= 0 or not analysis.suggestions):
            return None
        request = job_service_pb2.RetryJobRequest(
            name=row.id, checkpoint=job_pb2.CHECKPOINT_SELECTOR_LATEST, apply_suggestions=True, force=True,
            request_id=f"auto-recover-{row.id}")
        try:
            return await self.retry(Caller(row.owner), request, automatic=True)
        except (FailedPrecondition, InvalidArgument) as exc:
            log.warning("auto-recovery of %s not possible: %s", job_id, exc)
            return None

    async def _choose_checkpoint(self, job_id: str, selector: int, name: str) -> str:
        if selector == job_pb2.CHECKPOINT_SELECTOR_NONE:
            return ""
        checkpoints = convert.to_checkpoints(await self._db(self.store.checkpoints, job_id))
        if selector == job_pb2.CHECKPOINT_SELECTOR_NAMED:
            if not any(c.name == name for c in checkpoints):
                raise InvalidArgument(f"job has no checkpoint {name!r}",
                                      violations=[FieldViolation("checkpoint_name", "no such checkpoint")])
            return name
        return best_or_latest(checkpoints, best=selector == job_pb2.CHECKPOINT_SELECTOR_BEST) or ""

    # the dispatcher's side
    async def claim(self, worker: str) -> JobRow | None:
        def mutate(r: JobRow, s):
            r.attempt += 1
            r.worker, r.run_id, r.run_cursor = worker, f"{r.id}-{r.attempt}", 0
            r.scheduler_id = self.scheduler_id
            s.add(AttemptRow(job_id=r.id, number=r.attempt, worker=worker, start_time=utcnow()))
            return [state_event(r, states.STARTING, f"assigned to {worker}")]

        claimed = await self._db(self.store.claim_next, mutate, active_states=states.ACTIVE,
                                 max_active_per_owner=self.max_running_per_user)
        if claimed is None:
            return None
        row, events = claimed
        await self._publish(row.id, events)
        if self.metrics:
            self.metrics.job_started(row)
        return row

    def _lost(self, r: JobRow, s, reason: str) -> list[job_pb2.JobEvent]:
        """The run is gone with its worker. Not the job's fault: requeue it to resume from its latest
        checkpoint (a worker loss does not use up `max_attempts`), or finish what was asked."""
        self._end_attempt(s, r, "RUN_OUTCOME_LOST", reason)
        checkpoint = latest_checkpoint(s, r.id) or r.resume_checkpoint
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
        r.not_before = utcnow() + timedelta(seconds=self.fence_seconds)
        return [state_event(r, states.QUEUED, f"{reason}; requeued to resume from {checkpoint or 'the start'}")]

    async def run_lost(self, job_id: str, run_id: str, reason: str) -> None:
        """The run vanished with its worker (lease expired, or the worker no longer knows it)."""

        def mutate(r: JobRow, s):
            if r.run_id != run_id or r.state not in states.ACTIVE:
                return []
            return self._lost(r, s, reason)

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)
        if self.controller:
            self.controller.wake()

    async def start_failed(self, job_id: str, reason: str, retry_after: float = 1.0) -> None:
        """The trainer refused or could not be reached: back to the queue. A run that never started
        is not an attempt; the job waits `retry_after` seconds before it can be claimed again."""

        def mutate(r: JobRow, s):
            if r.state != states.STARTING:
                return []
            attempt = s.get(AttemptRow, (r.id, r.attempt))
            if attempt is not None:
                s.delete(attempt)
            r.attempt -= 1
            r.worker, r.run_id = "", ""
            r.not_before = utcnow() + timedelta(seconds=retry_after)
            return [state_event(r, states.QUEUED, reason)]

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)

    async def start_rejected(self, job_id: str, why: str) -> None:
        """The trainer found the run invalid (it can never start): the job fails with that reason."""

        def mutate(r: JobRow, s):
            if r.state != states.STARTING:
                return []
            r.error_json = convert.to_json(job_pb2.JobError(type="InvalidRun", message=why[:2000],
                                                            phase=events_pb2.PHASE_STARTUP))
            self._end_attempt(s, r, "RUN_OUTCOME_FAILED", why[:500])
            return [state_event(r, states.FAILED, f"the trainer refused the run: {why}"[:500])]

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)
        if events and self.analyst is not None:
            self.analyst.job_failed(job_id)

    @staticmethod
    def _end_attempt(s, r: JobRow, outcome: str, reason: str) -> None:
        attempt = s.get(AttemptRow, (r.id, r.attempt))
        if attempt is not None and attempt.end_time is None:
            attempt.end_time, attempt.outcome, attempt.reason = utcnow(), outcome, reason

    async def apply_run_event(self, job_id: str, run_id: str, run_event: events_pb2.RunEvent) -> bool:
        """Record one event of a job's run; returns True when the run has ended."""
        validate.rewrite_strings(run_event, lambda text: settings.redact(text.replace("\x00", "")))
        kind = run_event.WhichOneof("payload")
        payload = getattr(run_event, kind)

        def mutate(r: JobRow, s):
            if r.run_id != run_id or run_event.sequence <= r.run_cursor:
                return []  # a stale run, or an event already recorded
            r.run_cursor = run_event.sequence
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
                self._progress(r, payload)
            elif kind == "eval":
                progress = json_format.Parse(r.progress_json, job_pb2.Progress())
                progress.eval_loss = payload.eval_loss
                r.progress_json = convert.to_json(progress)
            elif kind == "checkpoint_saved":
                s.merge(CheckpointRow(job_id=r.id, name=payload.name, step=payload.step,
                                      eval_loss=payload.eval_loss if payload.HasField("eval_loss") else None,
                                      size_bytes=payload.size_bytes, create_time=utcnow()))
            elif kind == "settings":
                r.effective_json, r.tuning_json = convert.effective_settings(r, payload)
            elif kind == "checkpoint_deleted":
                s.execute(delete(CheckpointRow).where(CheckpointRow.job_id == r.id, CheckpointRow.name == payload.name))
            elif kind == "error":
                r.error_json = convert.to_json(job_pb2.JobError(
                    type=payload.type, message=payload.message, traceback=payload.traceback, phase=payload.phase,
                    log_tail=payload.log_tail))
                if payload.phase:
                    r.phase = events_pb2.Phase.Name(payload.phase)
            elif kind == "finished":
                out.extend(self._finish(r, s, payload))
            return out

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)
        if self.metrics:
            row = await self._db(self.store.get_job, job_id)
            self.metrics.observe_job(row)
        if self.analyst is not None and any(
                e.HasField("state_changed") and e.state_changed.to_state == job_pb2.JOB_STATE_FAILED for e in events):
            self.analyst.job_failed(job_id)
        return kind == "finished"

    @staticmethod
    def _progress(r: JobRow, m: events_pb2.TrainingMetrics) -> None:
        progress = json_format.Parse(r.progress_json, job_pb2.Progress())
        progress.step, progress.max_steps, progress.epoch = m.step, m.max_steps, m.epoch
        progress.tokens_per_second, progress.samples_per_second = m.tokens_per_second, m.samples_per_second
        if m.HasField("loss"):
            progress.loss = m.loss
        if m.HasField("eta_seconds"):
            progress.eta_seconds = m.eta_seconds
        for name in ("mean_token_accuracy", "entropy"):
            if m.HasField(name):
                setattr(progress, name, getattr(m, name))
        if m.HasField("rewards"):
            progress.rewards.CopyFrom(m.rewards)
        if m.HasField("gpu_memory_peak_bytes"):
            progress.gpu_memory_peak_bytes = max(progress.gpu_memory_peak_bytes, m.gpu_memory_peak_bytes)
        r.progress_json = convert.to_json(progress)

    def _finish(self, r: JobRow, s, f: events_pb2.RunFinished) -> list[job_pb2.JobEvent]:
        outcome = events_pb2.RunOutcome.Name(f.outcome)
        error = json_format.Parse(r.error_json, job_pb2.JobError())
        if f.HasField("exit_code"):
            error.exit_code = f.exit_code
        if f.HasField("signal"):
            error.signal = f.signal
        if f.outcome == events_pb2.RUN_OUTCOME_SUCCEEDED:
            target, reason = states.SUCCEEDED, "training finished"
        elif f.outcome == events_pb2.RUN_OUTCOME_PAUSED:
            target, reason = states.PAUSED, f"paused at {f.resume_checkpoint}"
            r.resume_checkpoint = f.resume_checkpoint
        elif f.outcome == events_pb2.RUN_OUTCOME_LOST:  # its trainer shut down and stopped it
            if f.resume_checkpoint:
                r.resume_checkpoint = f.resume_checkpoint
            return self._lost(r, s, f"worker {r.worker} shut down")
        elif f.outcome == events_pb2.RUN_OUTCOME_CANCELLED or r.state == states.CANCELLING:
            target, reason = states.CANCELLED, r.state_reason.replace("cancel requested by", "cancelled by")
        else:
            target, reason = states.FAILED, f"{error.type or 'run failed'}: {error.message}"[:500]
            r.error_json = convert.to_json(error)
            r.failures += 1
            category = failure_class(error)
            counts = json.loads(r.failure_counts_json or "{}")
            counts[category] = counts.get(category, 0) + 1
            r.failure_counts_json = json.dumps(counts, sort_keys=True)
            max_attempts, backoff, _ = retry_policy(r)
            max_attempts = retry_limits(r).get(category, max_attempts)
            if counts[category] < max_attempts and r.state == states.RUNNING:
                delay = min(backoff * 2 ** min(r.failures - 1, 32), jobconfig.MAX_BACKOFF_SECONDS)
                r.not_before = utcnow() + timedelta(seconds=delay)
                r.resume_checkpoint = latest_checkpoint(s, r.id) or r.resume_checkpoint
                self._end_attempt(s, r, outcome, reason)
                return [state_event(r, states.QUEUED, f"{category} failure {counts[category]} of {max_attempts} "
                                    f"allowed ({reason}); "
                                    f"retrying in {delay:g}s from {r.resume_checkpoint or 'the start'}")]
        self._end_attempt(s, r, outcome, "" if target == states.SUCCEEDED else reason)
        if not states.can_move(r.state, target):
            return []
        return [state_event(r, target, reason)]
