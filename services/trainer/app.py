"""Assembles a trainer worker: supervisor, servicer, metrics, and its registration with the scheduler."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import grpc

from ftlab.v1 import events_pb2, trainer_service_pb2, trainer_service_pb2_grpc
from services.common.channels import internal_channel
from services.common.peers import Peer
from services.common.server import Registration
from services.common.settings import Paths
from services.trainer import gpu
from services.trainer.generation import GenerationPool
from services.trainer.metrics import TrainerMetrics
from services.trainer.runs import Run
from services.trainer.servicer import TrainerService
from services.trainer.supervisor import RunSupervisor

log = logging.getLogger(__name__)


class TrainerApp:
    def __init__(self, paths: Paths, *, worker_id: str | None = None, max_runs: int | None = None,
                 scheduler_address: str | None = None, kill_grace: float = 10.0, preload: bool = True,
                 cpu_threads: int | None = None, generation_idle_seconds: float = 300.0) -> None:
        self.paths = paths.ensure()
        self.gpus = gpu.probe_gpus()
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.max_runs = max_runs or max(1, len(self.gpus))
        # each run's share of the cores when runs go side by side: each with torch's default of every core,
        # they oversubscribe the CPU (bench/cpu_share.py: two tiny jobs on 2 cores, done 2.9x sooner with a core each).
        # One run at a time keeps torch's default (0).
        cpus = len(os.sched_getaffinity(0))
        self.cpu_threads = cpu_threads or (max(1, cpus // self.max_runs) if self.max_runs > 1 else 0)
        self.scheduler_address = scheduler_address
        self.address = ""  # set once the server is bound
        self.metrics = TrainerMetrics()
        self.supervisor = RunSupervisor(self.paths, max_runs=self.max_runs, kill_grace=kill_grace,
                                        gpu_indices=[g.index for g in self.gpus], preload=preload,
                                        cpu_threads=self.cpu_threads,
                                        held=lambda: len(self.generation),
                                        make_room=lambda: self.generation.evict_idle(),
                                        on_event=self._on_event,
                                        on_stuck=lambda run, phase: self.metrics.stuck.labels(
                                            phase.removeprefix("PHASE_").lower()).inc())
        self.generation = GenerationPool(
            self.paths, self.supervisor.zygote, idle_seconds=generation_idle_seconds,
            slots_free=lambda: len(self.supervisor.active()) + len(self.generation) < self.max_runs,
            env=self.supervisor.child_env, on_request=self.metrics.on_generation)
        self._task: asyncio.Task[None] | None = None
        self._warm_up: asyncio.Task[None] | None = None
        self.peer: Peer | None = None  # the scheduler, once its address is known
        # set by whoever serves this app
        self.on_health: Callable[[bool], Awaitable[None]] | None = None

    def _on_event(self, run: Run, event: events_pb2.RunEvent) -> None:
        self.metrics.on_event(run, event)
        self.metrics.active.set(len(self.supervisor.active()))

    def describe(self) -> trainer_service_pb2.WorkerInfo:
        return trainer_service_pb2.WorkerInfo(
            worker_id=self.worker_id, address=self.address, gpus=self.gpus, memory_total_bytes=gpu.host_memory_bytes(),
            cpu_count=os.cpu_count() or 1, max_runs=self.max_runs,
            running_runs=[r.run_id for r in self.supervisor.active()], versions=gpu.versions())

    def registrations(self) -> list[Registration]:
        return [Registration(trainer_service_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name,
                             TrainerService(self.supervisor, self.generation, self.describe),
                             trainer_service_pb2_grpc.add_TrainerServiceServicer_to_server)]

    def start(self, address: str) -> None:
        self.address = address
        self._warm_up = asyncio.create_task(self.supervisor.warm_up(), name="zygote")
        if self.scheduler_address:
            self.peer = Peer("trainer", "scheduler", self.scheduler_address, self.on_health)
            self._task = asyncio.create_task(self._keep_registered(), name="register")

    async def _keep_registered(self) -> None:
        """Register with the scheduler, then heartbeat; register again whenever it forgets us.

        Fencing: when the scheduler has not been reachable for longer than our lease, it counts us as
        lost and requeues our jobs elsewhere, so we stop our runs (each saves a checkpoint first, as
        for a pause): a job must never train in two places at once."""
        peer, address = self.peer, self.scheduler_address
        assert peer is not None and address is not None  # start() sets the peer where there is a scheduler
        options = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
        async with internal_channel(address, options=options) as channel:
            stub = trainer_service_pb2_grpc.WorkerRegistryServiceStub(channel)
            interval, lease, registered = 1.0, None, False
            last_contact = asyncio.get_running_loop().time()
            while True:
                try:
                    if not registered:
                        reply = await stub.RegisterWorker(
                            trainer_service_pb2.RegisterWorkerRequest(worker=self.describe()), timeout=5)
                        interval, registered = reply.heartbeat_interval_seconds or 2.0, True
                        lease = reply.lease_seconds or None
                        log.info("registered with scheduler at %s as %s", self.scheduler_address, self.worker_id)
                    else:
                        reply = await stub.Heartbeat(trainer_service_pb2.HeartbeatRequest(
                            worker_id=self.worker_id, running_runs=[r.run_id for r in self.supervisor.active()]),
                            timeout=5)
                        registered = reply.known
                    last_contact = asyncio.get_running_loop().time()
                    await peer.reached()
                except grpc.aio.AioRpcError as exc:
                    if peer.reachable is not False:  # said once, in words, by the peer; then quietly
                        log.warning("scheduler at %s unreachable: %s", self.scheduler_address, exc.code())
                    await peer.failed(exc)
                    registered = False
                silent = asyncio.get_running_loop().time() - last_contact
                if lease is not None and silent > lease and self.supervisor.active():
                    log.warning("no contact with the scheduler for %.1fs (lease %.1fs): stopping our runs", silent, lease)
                    await self.supervisor.fence(grace=lease)
                await asyncio.sleep(interval if registered else min(interval, 0.5))

    async def stop(self, grace: float = 5.0) -> None:
        """Hand the runs back (they save and exit), still heartbeating so the scheduler hears of it
        from the runs themselves rather than from an expired lease; then leave."""
        if self._warm_up is not None:  # the zygote's process is started (its imports go on), so close can stop it
            await asyncio.gather(self._warm_up, return_exceptions=True)
        await self.generation.close()
        await self.supervisor.close(grace)
        await asyncio.sleep(0.5)  # let the scheduler read the runs' last events
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.metrics.close()
