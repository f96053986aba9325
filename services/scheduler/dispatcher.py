"""Hands queued jobs to trainer workers with free capacity, follows each run's event stream into
the job's history, and deals with workers that are lost (lease expired) or restarted.

After a scheduler restart, runs that kept going are re-attached when their worker registers again:
the follower resumes the run's stream after the last run event the job recorded, so nothing is
missed or recorded twice. A run its worker no longer knows, or whose worker never comes back, is
lost: the job goes back to the queue (or to PAUSED/CANCELLED when that was asked for).
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf import json_format

from ftlab.v1 import trainer_service_pb2
from services.common.auth import service_metadata
from services.common.status import details_of
from services.scheduler import convert, resume_changes, states
from services.scheduler.jobs import JobManager
from services.scheduler.registry import Worker
from services.scheduler.run_control import RunControl
from services.scheduler.store.models import JobRow

log = logging.getLogger(__name__)
START_TIMEOUT = 30.0
REFUSALS = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT,
                      grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED})


class Dispatcher:
    def __init__(self, jobs: JobManager, control: RunControl, interval: float = 1.0) -> None:
        self.jobs = jobs
        self.control = control
        self.registry = control.registry
        self.interval = interval
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._starting: set[str] = set()  # runs whose StartRun is in flight (followed once it returns)
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await self._expect_workers_of_active_jobs()
        while True:
            try:
                await self.reap()
                await self.dispatch_once()
                await self.reconcile()
            except Exception:
                log.exception("dispatch failed; retrying")
            await self.control.woken(self.interval)

    async def _active_jobs(self, worker_id: str | None = None) -> list[JobRow]:
        rows = await asyncio.to_thread(self.jobs.store.jobs_in_states, states.ACTIVE)
        return [r for r in rows if worker_id is None or r.worker == worker_id]

    async def _expect_workers_of_active_jobs(self) -> None:
        """After a restart, the workers running this scheduler's jobs get one lease to register again."""
        for row in await self._active_jobs():
            if row.scheduler_id == self.jobs.scheduler_id and row.worker:
                self.registry.expect(row.worker)

    async def on_register(self, worker: Worker) -> None:
        """A worker (re)registered: re-attach to the runs the database says it holds, and stop the
        runs it still has that no job expects of it any more (their jobs moved on)."""
        expected: set[str] = set()
        for row in await self._active_jobs(worker.worker_id):
            expected.add(row.run_id)
            worker.assigned.add(row.run_id)
            if row.run_id not in self._followers:
                log.info("re-attaching to run %s on %s after event %d", row.run_id, worker.worker_id, row.run_cursor)
                self.follow(worker, row.id, row.run_id, row.run_cursor)
        for run_id in set(worker.info.running_runs) - expected:
            log.warning("worker %s still runs %s, which no job expects of it: stopping it", worker.worker_id, run_id)
            # in the background: the worker's registration does not wait on calls to it (it may be unreachable)
            task = asyncio.create_task(self.control.stop_run(worker.worker_id, run_id, pause=False, grace_seconds=None),
                                       name=f"stop-stale-{run_id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.control.wake()

    async def reap(self) -> None:
        """Jobs on workers whose lease ran out are lost."""
        for worker in self.registry.expired():
            log.warning("worker %s lost (no heartbeat for %.0fs)", worker.worker_id, self.registry.lease_seconds)
            for row in await self._active_jobs(worker.worker_id):
                task = self._followers.pop(row.run_id, None)
                if task is not None:
                    task.cancel()
                await self.jobs.run_lost(row.id, row.run_id, f"worker {worker.worker_id} lost (no heartbeat)")
            if worker.channel is not None:
                await worker.channel.close()

    async def dispatch_once(self) -> None:
        for worker in self.registry.alive():
            while len(worker.assigned) < worker.max_runs and not worker.unreachable:
                row = await self.jobs.claim(worker.worker_id)
                if row is None:
                    return
                await self._start(worker, row)

    async def _start(self, worker: Worker, row: JobRow) -> None:
        request = trainer_service_pb2.StartRunRequest(
            run_id=row.run_id, job_id=row.id, config=convert.config_of(row), resume_checkpoint=row.resume_checkpoint,
            watchdog=convert.watchdog_of(row),
            resume_weights_only=resume_changes.weights_only(row.resume_checkpoint, convert.changes_of(row)))
        if row.kind == "JOB_KIND_EVALUATION":  # the evaluated job's weights, as resolved when it was queued
            json_format.Parse(row.evaluation_json, request.evaluation)
            request.evaluated_job_id = row.parent_id or ""
            request.evaluated_checkpoint = request.evaluation.checkpoint_name
        worker.assigned.add(row.run_id)
        self._starting.add(row.run_id)
        try:
            await worker.stub().StartRun(request, timeout=START_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:  # no trainer can ever start it
                worker.assigned.discard(row.run_id)
                log.warning("worker %s rejected %s: %s", worker.worker_id, row.run_id, exc.details())
                await self.jobs.start_rejected(row.id, exc.details())
                return
            if exc.code() in REFUSALS:  # the trainer answered and did not start it
                worker.assigned.discard(row.run_id)
                worker.unreachable = True  # no more runs for it until its next heartbeat
                log.warning("worker %s refused %s: %s", worker.worker_id, row.run_id, exc.details())
                busy = details_of(exc)[0] in ("WORKER_FULL", "NOT_ENOUGH_GPUS", "WORKER_SHUTTING_DOWN")
                await self.jobs.start_failed(row.id, f"worker {worker.worker_id} refused the run: {exc.details()}",
                                             retry_after=1.0 if busy else 10.0)
                return
            # Unknown whether the run started: never start it elsewhere while it may exist. Follow it;
            # the worker either answers (the run, or NOT_FOUND: lost) or its lease runs out (lost).
            worker.unreachable = True
            log.warning("worker %s did not answer StartRun for %s: %s", worker.worker_id, row.run_id, exc.code())
        finally:
            self._starting.discard(row.run_id)
        self.follow(worker, row.id, row.run_id, row.run_cursor)
        current = await asyncio.to_thread(self.jobs.store.get_job, row.id)
        assert current is not None  # jobs are never deleted
        if current.state in (states.CANCELLING, states.PAUSING):  # asked while the run was being started
            await self.control.stop_run(worker.worker_id, row.run_id, pause=current.state == states.PAUSING, grace_seconds=None)

    def follow(self, worker: Worker, job_id: str, run_id: str, cursor: int) -> None:
        task = asyncio.create_task(self._follow(worker, job_id, run_id, cursor), name=f"follow-{run_id}")
        self._followers[run_id] = task
        task.add_done_callback(lambda t: self._follower_done(run_id, t))

    def _follower_done(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self._followers.get(run_id) is task:
            del self._followers[run_id]
        if not task.cancelled() and task.exception() is not None:  # a bug: reconcile() follows the run again
            log.error("the follower of run %s died", run_id, exc_info=task.exception())

    async def _follow(self, worker: Worker, job_id: str, run_id: str, cursor: int) -> None:
        """Copy the run's events into the job until the run ends. On a broken stream, reconnect after
        the last event recorded; on any other error (the database full or gone, say), wait and retry
        that same event: a run's end must never go unrecorded while its worker is alive."""
        delay = 0.2
        try:
            while True:
                try:
                    stream = worker.stub().StreamRun(  # grpc.aio skips client interceptors on server streams
                        trainer_service_pb2.StreamRunRequest(run_id=run_id, after_sequence=cursor, follow=True),
                        metadata=service_metadata())
                    async for response in stream:
                        if await self.jobs.apply_run_event(job_id, run_id, response.event):
                            return
                        cursor = response.event.sequence  # recorded: a reconnect starts after it
                        delay = 0.2
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        await self.jobs.run_lost(job_id, run_id, f"worker {worker.worker_id} no longer has the run")
                        return
                    log.warning("stream of run %s broke (%s); reconnecting after %d", run_id, exc.code(), cursor)
                except Exception as exc:
                    log.warning("could not record an event of run %s (%s); retrying after %d in %.1fs",
                                run_id, exc, cursor, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                current = self.registry.get(worker.worker_id)
                if current is None:
                    return  # the reaper deals with the job
                worker = current
        finally:
            worker.assigned.discard(run_id)
            self.control.wake()

    async def reconcile(self) -> None:
        """The follower watchdog: every run of this scheduler's active jobs whose worker is alive must
        have a follower. One that has none (it died of a bug) is followed again from the last event
        its job recorded, so that no job stays RUNNING or CANCELLING for ever."""
        for row in await self._active_jobs():
            if (row.scheduler_id != self.jobs.scheduler_id or not row.run_id or row.run_id in self._followers
                    or row.run_id in self._starting):
                continue
            worker = self.registry.get(row.worker)
            if worker is None or not worker.address:
                continue  # lost or not back yet: the reaper and on_register deal with it
            log.warning("run %s of job %s had no follower; following it again after event %d",
                        row.run_id, row.id, row.run_cursor)
            worker.assigned.add(row.run_id)
            self.follow(worker, row.id, row.run_id, row.run_cursor)

    async def close(self) -> None:
        tasks = list(self._followers.values()) + list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
