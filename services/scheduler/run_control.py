"""What the job domain asks of the machinery that runs jobs: wake the dispatcher (a job was queued,
resumed or retried), and stop a run on its worker (cancel or pause).

Built from the worker registry alone, before the job domain and the dispatcher, so both take it in
their constructors: the domain holds no reference to the dispatcher, and the dispatcher none to a
setter on the domain.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from ftlab.v1 import trainer_service_pb2
from services.scheduler.registry import WorkerRegistry

log = logging.getLogger(__name__)


class RunControl:
    def __init__(self, registry: WorkerRegistry) -> None:
        self.registry = registry
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Dispatch now rather than at the next interval."""
        self._wake.set()

    async def woken(self, timeout: float) -> None:
        """Wait until woken or `timeout` seconds pass, whichever comes first; then re-arm."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    def free_slots(self) -> int:
        return self.registry.free_slots()

    async def stop_run(self, worker_id: str, run_id: str, pause: bool, grace_seconds: float | None) -> None:
        """Ask the run's worker to cancel or pause it; a worker that is gone or does not answer is
        left to the dispatcher's lease and reconciliation."""
        worker = self.registry.get(worker_id)
        if worker is None or not worker.address:
            return
        request = trainer_service_pb2.StopRunRequest(
            run_id=run_id, mode=trainer_service_pb2.STOP_MODE_PAUSE if pause else trainer_service_pb2.STOP_MODE_CANCEL)
        if grace_seconds is not None:
            request.grace_seconds = grace_seconds
        try:
            await worker.stub().StopRun(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not stop run %s on %s: %s", run_id, worker_id, exc.details())
