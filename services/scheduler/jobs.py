"""JobManager: the scheduler's job commands and queries (create, cancel, pause, resume, retry,
priority; get, list, events, watch), and the dispatcher's side (claim, lost runs, run events).

What a run's event does to a job is run_events.py's (a reducer over the row and a unit of work);
the queue's start estimate is queue_estimate.py's. It imports no gRPC: it takes and returns protobuf
messages and raises domain errors, which the interceptor turns into status codes. Blocking
database work runs in worker threads so the event loop keeps serving streams.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from ftlab.names import state_name
from ftlab.v1 import analyzer_pb2, config_pb2, events_pb2, job_pb2, job_service_pb2
from services.common import settings, validate
from services.common.access import Policy
from services.common.auth import Caller
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, Precondition
from services.scheduler import convert, jobconfig, resume_changes, run_events, states
from services.scheduler.evaluations import Evaluations
from services.scheduler.hub import EventHub
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.queries import Queries, parse_name  # noqa: F401 (parse_name: also the servicer's)
from services.scheduler.retries import Retries
from services.scheduler.rows import check_metadata, check_request_id, new_row
from services.scheduler.store.models import JobRow
from services.scheduler.store.repository import JobStore, utcnow
from services.scheduler.store.unit_of_work import Tx
from services.scheduler.transitions import state_event  # noqa: F401 (also the tests' way in)

if TYPE_CHECKING:  # they talk gRPC to the analyzer; this module does not
    from services.scheduler.analysis import FailureAnalyst, Preflighter

MAX_CANCEL_GRACE = 3600.0


log = logging.getLogger(__name__)


class RunController(Protocol):
    """What the job domain needs from whoever runs jobs (the dispatcher)."""

    def wake(self) -> None: ...

    async def stop_run(self, worker: str, run_id: str, pause: bool, grace_seconds: float | None) -> None: ...

    def free_slots(self) -> int: ...


class JobManager(Queries, Retries, Evaluations):
    def __init__(self, store: JobStore, hub: EventHub, metrics: SchedulerMetrics | None = None,
                 max_running_per_user: int = 0, scheduler_id: str = "", fence_seconds: float = 0.0,
                 access: Policy | None = None, controller: RunController | None = None,
                 analyst: FailureAnalyst | None = None, preflighter: Preflighter | None = None) -> None:
        self.fence_seconds = fence_seconds  # a lost worker's runs may take this long to stop themselves
        self.store = store
        self.scheduler_id = scheduler_id
        self.max_running_per_user = max_running_per_user
        self.hub = hub
        self.metrics = metrics
        self.controller = controller  # wakes the dispatcher and stops runs (RunControl); None in unit tests
        self.analyst = analyst  # FailureAnalyst: told of every job that fails, once it is ready
        self.preflighter = preflighter  # Preflighter: asked whether a new job can run, once it is ready
        self.access = access or Policy.current()  # which files a job may name

    async def _publish(self, job_id: str, events: list[job_pb2.JobEvent]) -> None:
        changed = [job_pb2.JobState.Name(e.state_changed.to_state) for e in events if e.HasField("state_changed")]
        ended = [state for state in changed if states.is_final(state)]
        if self.metrics:
            for state in ended:
                self.metrics.job_ended(state)
        await self.hub.publish(job_id, events, final=bool(ended))

    async def set_priority(self, who: Caller, name: str, priority: int) -> job_pb2.Job:
        row = await self._row(who, name)

        def mutate(r: JobRow, _s: Tx) -> list[job_pb2.JobEvent]:
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
        check_request_id(request.request_id)
        check_metadata(dict(request.metadata))
        jobconfig.validate_policy(request.retry_policy, request.watchdog)
        config = jobconfig.resolve(request.template, request.config)
        unsafe = sorted(set(request.retry_policy.auto_recover) - resume_changes.AUTO_RECOVERABLE)
        if unsafe:
            raise InvalidArgument("auto-recovery only for failures with a safe automatic fix", violations=[
                FieldViolation(f"retry_policy.auto_recover[{k}]", "one of " + ", ".join(sorted(resume_changes.AUTO_RECOVERABLE)))
                for k in unsafe])
        self.access.config(config, None if who.admin else who.user)
        checks = await self.preflight(config, who.user, request.force or request.validate_only)
        row = new_row(
            owner=who.user, display_name=request.display_name[:256], template=request.template or "basic",
            priority=request.priority, config=config, request_id=request.request_id,
            retry_policy_json=convert.to_json(request.retry_policy), watchdog_json=convert.to_json(request.watchdog),
            checks=checks, metadata_json=json.dumps(dict(request.metadata), sort_keys=True))
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

    async def preflight(self, config: config_pb2.TrainingConfig, owner: str,
                        force: bool) -> analyzer_pb2.PreflightResponse | None:
        """The analyzer's pre-flight findings (None without an analyzer); refuses a job that cannot run
        with FAILED_PRECONDITION naming each failed check, unless forced."""
        if self.preflighter is None or not self.preflighter.ready:
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

        def mutate(r: JobRow, _s: Tx) -> list[job_pb2.JobEvent]:
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

        def mutate(r: JobRow, _s: Tx) -> list[job_pb2.JobEvent]:
            if r.state not in (states.RUNNING, states.STARTING):
                raise FailedPrecondition(f"only a running job can pause; job {r.id} is {state_name(r.state)}",
                                         reason="JOB_NOT_RUNNING")
            if r.kind == "JOB_KIND_EVALUATION":
                raise FailedPrecondition(f"an evaluation cannot pause; cancel job {r.id} and evaluate again",
                                         reason="EVALUATION_NO_PAUSE")
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

        def mutate(r: JobRow, _s: Tx) -> list[job_pb2.JobEvent]:
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

    # the dispatcher's side
    async def claim(self, worker: str) -> JobRow | None:
        def mutate(r: JobRow, tx: Tx) -> list[job_pb2.JobEvent]:
            r.attempt += 1
            r.worker, r.run_id, r.run_cursor = worker, f"{r.id}-{r.attempt}", 0
            r.scheduler_id = self.scheduler_id
            tx.attempts.started(r.id, r.attempt, worker)
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

    async def run_lost(self, job_id: str, run_id: str, reason: str) -> None:
        """The run vanished with its worker (lease expired, or the worker no longer knows it)."""

        def mutate(r: JobRow, tx: Tx) -> list[job_pb2.JobEvent]:
            if r.run_id != run_id or r.state not in states.ACTIVE:
                return []
            return run_events.lost(r, tx, reason, self.fence_seconds)

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)
        if self.controller:
            self.controller.wake()

    async def start_failed(self, job_id: str, reason: str, retry_after: float = 1.0) -> None:
        """The trainer refused or could not be reached: back to the queue. A run that never started
        is not an attempt; the job waits `retry_after` seconds before it can be claimed again."""

        def mutate(r: JobRow, tx: Tx) -> list[job_pb2.JobEvent]:
            if r.state != states.STARTING:
                return []
            tx.attempts.discarded(r.id, r.attempt)
            r.attempt -= 1
            r.worker, r.run_id = "", ""
            r.not_before = utcnow() + timedelta(seconds=retry_after)
            return [state_event(r, states.QUEUED, reason)]

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)

    async def start_rejected(self, job_id: str, why: str) -> None:
        """The trainer found the run invalid (it can never start): the job fails with that reason."""

        def mutate(r: JobRow, tx: Tx) -> list[job_pb2.JobEvent]:
            if r.state != states.STARTING:
                return []
            r.error_json = convert.to_json(job_pb2.JobError(type="InvalidRun", message=why[:2000],
                                                            phase=events_pb2.PHASE_STARTUP))
            run_events.end_attempt(r, tx, "RUN_OUTCOME_FAILED", why[:500])
            return [state_event(r, states.FAILED, f"the trainer refused the run: {why}"[:500])]

        _, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)
        if events and self.analyst is not None and self.analyst.ready:
            self.analyst.job_failed(job_id, then=self.auto_recover)

    async def apply_run_event(self, job_id: str, run_id: str, run_event: events_pb2.RunEvent) -> bool:
        """Record one event of a job's run; returns True when the run has ended."""
        validate.rewrite_strings(run_event, lambda text: settings.redact(text.replace("\x00", "")))
        kind = run_event.WhichOneof("payload")

        def mutate(r: JobRow, tx: Tx) -> list[job_pb2.JobEvent]:
            return run_events.apply(r, tx, run_id, run_event, self.fence_seconds)

        row, events = await self._db(self.store.update, job_id, mutate)
        await self._publish(job_id, events)
        if self.metrics:  # the row as this event left it: no second read of the database
            self.metrics.observe_job(row)
        if self.analyst is not None and self.analyst.ready and any(
                e.HasField("state_changed") and e.state_changed.to_state == job_pb2.JOB_STATE_FAILED for e in events):
            self.analyst.job_failed(job_id, then=self.auto_recover)
        return kind == "finished"
