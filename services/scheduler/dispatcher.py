"""Hands queued jobs to trainer workers with free capacity, and follows each run's event stream
into the job's history."""

from __future__ import annotations

import asyncio
import logging

import grpc

from ftlab.v1 import trainer_service_pb2
from services.scheduler import convert, states
from services.scheduler.jobs import JobManager
from services.scheduler.registry import Worker, WorkerRegistry

log = logging.getLogger(__name__)
START_TIMEOUT = 30.0


class Dispatcher:
    def __init__(self, jobs: JobManager, registry: WorkerRegistry, interval: float = 1.0) -> None:
        self.jobs = jobs
        self.registry = registry
        self.interval = interval
        self._wake = asyncio.Event()
        self._followers: set[asyncio.Task] = set()
        jobs.controller = self

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.dispatch_once()
            except Exception:
                log.exception("dispatch failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def dispatch_once(self) -> None:
        for worker in self.registry.alive():
            while len(worker.assigned) < worker.max_runs:
                row = await self.jobs.claim(worker.worker_id)
                if row is None:
                    return
                await self._start(worker, row)

    async def _start(self, worker: Worker, row) -> None:
        request = trainer_service_pb2.StartRunRequest(
            run_id=row.run_id, job_id=row.id, config=convert.config_of(row), resume_checkpoint=row.resume_checkpoint,
            watchdog=convert.watchdog_of(row))
        worker.assigned.add(row.run_id)
        try:
            await worker.stub().StartRun(request, timeout=START_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            worker.assigned.discard(row.run_id)
            log.warning("worker %s could not start %s: %s", worker.worker_id, row.run_id, exc.details())
            await self.jobs.start_failed(row.id, f"worker {worker.worker_id} could not start the run: {exc.details()}")
            return
        self.follow(worker, row.id, row.run_id, row.run_cursor)
        current = await asyncio.to_thread(self.jobs.store.get_job, row.id)
        if current.state in (states.CANCELLING, states.PAUSING):  # asked while the run was being started
            await self.stop_run(worker.worker_id, row.run_id, pause=current.state == states.PAUSING, grace_seconds=None)

    def follow(self, worker: Worker, job_id: str, run_id: str, cursor: int) -> None:
        task = asyncio.create_task(self._follow(worker, job_id, run_id, cursor), name=f"follow-{run_id}")
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    async def _follow(self, worker: Worker, job_id: str, run_id: str, cursor: int) -> None:
        """Copy the run's events into the job until the run ends; reconnect after `cursor` on errors."""
        delay = 0.2
        try:
            while True:
                try:
                    stream = worker.stub().StreamRun(
                        trainer_service_pb2.StreamRunRequest(run_id=run_id, after_sequence=cursor, follow=True))
                    async for response in stream:
                        cursor = response.event.sequence
                        if await self.jobs.apply_run_event(job_id, run_id, response.event):
                            return
                        delay = 0.2
                except grpc.aio.AioRpcError as exc:
                    log.warning("stream of run %s broke (%s); reconnecting after %d", run_id, exc.code(), cursor)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                current = self.registry.get(worker.worker_id)
                if current is not None:
                    worker = current
        finally:
            worker.assigned.discard(run_id)
            self.wake()

    async def stop_run(self, worker_id: str, run_id: str, pause: bool, grace_seconds: float | None) -> None:
        worker = self.registry.get(worker_id)
        if worker is None:
            return
        request = trainer_service_pb2.StopRunRequest(
            run_id=run_id, mode=trainer_service_pb2.STOP_MODE_PAUSE if pause else trainer_service_pb2.STOP_MODE_CANCEL)
        if grace_seconds is not None:
            request.grace_seconds = grace_seconds
        try:
            await worker.stub().StopRun(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not stop run %s on %s: %s", run_id, worker_id, exc.details())

    async def close(self) -> None:
        for task in list(self._followers):
            task.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)
