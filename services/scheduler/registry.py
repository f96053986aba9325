"""The scheduler's registry of trainer workers: who they are, where, and how full.

Trainers register and heartbeat (push), so trainers can come and go without the scheduler being
configured with their addresses; a worker whose lease runs out counts as lost.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import grpc

from ftlab.v1 import trainer_service_pb2, trainer_service_pb2_grpc
from services.common.channels import internal_channel
from services.common.errors import FieldViolation, InvalidArgument

_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]{1,253}):[0-9]{1,5}$")
_UNIX = re.compile(r"^unix:/[A-Za-z0-9_./-]{1,200}$")  # a trainer in the scheduler's own process
MAX_RUNS = 1024
MAX_GPUS = 256


def _check(info: trainer_service_pb2.WorkerInfo) -> None:
    """A worker's description, as strict as any request: it names, addresses and sizes what the
    scheduler hands runs to."""
    v = []
    if not _WORKER_ID.match(info.worker_id):
        v.append(FieldViolation("worker.worker_id", "1-128 of letters, digits and _ . : @ -, first a letter or digit"))
    if not _UNIX.match(info.address) and (not _ADDRESS.match(info.address)
                                          or not 0 < int(info.address.rsplit(":", 1)[-1] or 0) < 65536):
        v.append(FieldViolation("worker.address", "host:port"))
    if not 1 <= info.max_runs <= MAX_RUNS:
        v.append(FieldViolation("worker.max_runs", f"must be in 1..{MAX_RUNS}"))
    if len(info.gpus) > MAX_GPUS:
        v.append(FieldViolation("worker.gpus", f"at most {MAX_GPUS}"))
    for i, gpu in enumerate(info.gpus):
        if gpu.memory_total_bytes < 0 or gpu.memory_free_bytes < 0:
            v.append(FieldViolation(f"worker.gpus[{i}].memory_total_bytes", "must not be negative"))
    if info.memory_total_bytes < 0 or info.cpu_count < 0:
        v.append(FieldViolation("worker.memory_total_bytes", "memory and CPU counts must not be negative"))
    if v:
        raise InvalidArgument(f"invalid worker: {v[0].field}: {v[0].description}", violations=v)


@dataclass
class Worker:
    worker_id: str
    address: str
    max_runs: int
    info: trainer_service_pb2.WorkerInfo
    last_seen: float
    assigned: set[str] = field(default_factory=set)  # run ids handed to it and not yet ended
    channel: grpc.aio.Channel | None = None
    unreachable: bool = False  # a call failed to reach it: no new runs until it heartbeats again

    def stub(self) -> trainer_service_pb2_grpc.TrainerServiceStub:
        if self.channel is None:
            self.channel = internal_channel(self.address)
        return trainer_service_pb2_grpc.TrainerServiceStub(self.channel)


class WorkerRegistry:
    def __init__(self, heartbeat_interval: float = 2.0, lease_seconds: float = 10.0) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.lease_seconds = lease_seconds
        self.workers: dict[str, Worker] = {}
        self.seen: dict[str, trainer_service_pb2.WorkerInfo] = {}  # last info of every worker, even lost ones

    def register(self, info: trainer_service_pb2.WorkerInfo) -> Worker:
        _check(info)
        old = self.workers.get(info.worker_id)
        worker = Worker(info.worker_id, info.address, max(1, info.max_runs), info, time.monotonic())
        if old is not None:
            worker.assigned = old.assigned
            if old.address == info.address:
                worker.channel = old.channel
        self.workers[info.worker_id] = worker
        self.seen[info.worker_id] = info
        return worker

    def expect(self, worker_id: str) -> None:
        """A worker that held runs before this scheduler started: it has one lease to come back."""
        if worker_id not in self.workers:
            self.workers[worker_id] = Worker(worker_id, "", 0, trainer_service_pb2.WorkerInfo(worker_id=worker_id),
                                             time.monotonic())

    def expired(self) -> list[Worker]:
        """Remove and return the workers whose lease ran out."""
        now = time.monotonic()
        gone = [w for w in self.workers.values() if now - w.last_seen > self.lease_seconds]
        for w in gone:
            del self.workers[w.worker_id]
        return gone

    def heartbeat(self, worker_id: str, running: list[str]) -> bool:
        worker = self.workers.get(worker_id)
        if worker is None or not worker.address:  # unknown, or only expected since a restart: register again
            return False
        worker.last_seen = time.monotonic()
        worker.unreachable = False
        return True

    def alive(self) -> list[Worker]:
        now = time.monotonic()
        return [w for w in self.workers.values()
                if w.address and not w.unreachable and now - w.last_seen <= self.lease_seconds]

    def get(self, worker_id: str) -> Worker | None:
        return self.workers.get(worker_id)

    def free_slots(self) -> int:
        return min(sum(max(0, w.max_runs - len(w.assigned)) for w in self.alive()), 2 ** 31 - 1)

    async def close(self) -> None:
        for w in self.workers.values():
            if w.channel is not None:
                await w.channel.close()
