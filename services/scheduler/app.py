"""Assembles the scheduler: store, job domain, worker registry, dispatcher and servicers."""

from __future__ import annotations

import asyncio
import socket

from ftlab.v1 import analyzer_pb2, job_service_pb2, job_service_pb2_grpc, trainer_service_pb2, trainer_service_pb2_grpc
from services.common.server import Registration
from services.scheduler.analysis import FailureAnalyst, Preflighter
from services.scheduler.dispatcher import Dispatcher
from services.scheduler.generation import Playground
from services.scheduler.hub import EventHub
from services.scheduler.jobs import JobManager
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.registry import Worker, WorkerRegistry
from services.scheduler.run_control import RunControl
from services.scheduler.servicer import JobService, WorkerRegistryService
from services.scheduler.store import db
from services.scheduler.store.repository import JobStore


class SchedulerApp:
    def __init__(self, database_url: str, *, schema: str | None = None, dispatch_interval: float = 1.0,
                 lease_seconds: float = 10.0, heartbeat_interval: float = 2.0, max_running_per_user: int = 0,
                 scheduler_id: str = "") -> None:
        self.engine = db.make_engine(database_url, schema=schema)
        db.upgrade(self.engine)
        self.store = JobStore(self.engine)
        self.metrics = SchedulerMetrics(self.store.count_by_state)
        self.registry = WorkerRegistry(heartbeat_interval=heartbeat_interval, lease_seconds=lease_seconds)
        self.control = RunControl(self.registry)
        self.analyst = FailureAnalyst(self.store, hardware_of=self.worker_hardware, metrics=self.metrics)
        self.jobs = JobManager(self.store, EventHub(), self.metrics, max_running_per_user=max_running_per_user,
                               scheduler_id=scheduler_id or socket.gethostname(),
                               fence_seconds=lease_seconds + 2 * heartbeat_interval + 2.5, controller=self.control,
                               analyst=self.analyst, preflighter=Preflighter(self.analyst, self.target_hardware))
        self.dispatcher = Dispatcher(self.jobs, self.control, interval=dispatch_interval)
        self._task: asyncio.Task[None] | None = None

    def analyze_failures_at(self, address: str) -> None:
        """Send every failed job (and every new one, for pre-flight) to the AnalyzerService at `address`."""
        self.analyst.connect(address)

    def target_hardware(self) -> analyzer_pb2.Hardware:
        """What a new job would run on: the registered trainer with the most GPU memory."""
        workers = [w for w in self.registry.workers.values() if w.address]
        if not workers:
            return analyzer_pb2.Hardware()
        best = max(workers, key=lambda w: max((g.memory_total_bytes for g in w.info.gpus), default=0))
        return _hardware(best.info)

    def worker_hardware(self, worker_id: str) -> analyzer_pb2.Hardware:
        """What a worker has (or had, if it is gone since); empty when never seen."""
        info = self.registry.seen.get(worker_id)
        return _hardware(info) if info is not None else analyzer_pb2.Hardware()

    def registrations(self) -> list[Registration]:
        return [
            Registration(job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
                         JobService(self.jobs, Playground(self.jobs, self.registry, self.control)),
                         job_service_pb2_grpc.add_JobServiceServicer_to_server),
            Registration(trainer_service_pb2.DESCRIPTOR.services_by_name["WorkerRegistryService"].full_name,
                         WorkerRegistryService(self.registry, self._on_register),
                         trainer_service_pb2_grpc.add_WorkerRegistryServiceServicer_to_server),
        ]

    async def _on_register(self, worker: Worker) -> None:
        await self.dispatcher.on_register(worker)

    def start(self) -> None:
        self._task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")

    async def dispatcher_pause(self) -> None:
        """Hand out no more jobs (the first step of shutting down)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.dispatcher.close()
        await self.analyst.close()
        await self.registry.close()
        self.metrics.close()
        self.engine.dispose()


def _hardware(info: trainer_service_pb2.WorkerInfo) -> analyzer_pb2.Hardware:
    gpu = max(info.gpus, key=lambda g: g.memory_total_bytes, default=None)
    return analyzer_pb2.Hardware(gpu_name=gpu.name if gpu else "", gpu_memory_bytes=gpu.memory_total_bytes if gpu else 0,
                                 gpu_count=len(info.gpus), host_memory_bytes=info.memory_total_bytes or 1)
