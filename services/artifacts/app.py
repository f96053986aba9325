"""Assembles the artifacts service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ftlab.v1 import artifact_service_pb2, artifact_service_pb2_grpc
from services.artifacts.export import Exporter
from services.artifacts.jobs import SchedulerJobs
from services.artifacts.metrics import ArtifactMetrics
from services.artifacts.servicer import ArtifactService
from services.artifacts.store import ArtifactStore
from services.artifacts.uploads import DatasetStore
from services.common import settings
from services.common.peers import Peer
from services.common.server import Registration
from services.common.settings import Paths


class ArtifactsApp:
    def __init__(self, paths: Paths, scheduler_address: str = "") -> None:
        self.store = ArtifactStore(paths.ensure())
        self.jobs = SchedulerJobs(scheduler_address)  # set once the scheduler's address is known
        self.datasets = DatasetStore(paths, settings.max_upload_bytes())
        self.metrics = ArtifactMetrics()
        self.on_health: Callable[[bool], Awaitable[None]] | None = None  # set by whoever serves this app
        self._watch: asyncio.Task[None] | None = None

    def registrations(self) -> list[Registration]:
        return [Registration(artifact_service_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name,
                             ArtifactService(self.store, self.jobs, self.datasets, Exporter(self.store),
                                             metrics=self.metrics),
                             artifact_service_pb2_grpc.add_ArtifactServiceServicer_to_server)]

    def start(self) -> None:
        """Watch the scheduler (whose word says whose job is whose): NOT_SERVING while it cannot be reached."""
        peer = Peer("artifacts", "scheduler", self.jobs.address, self.on_health)
        self._watch = asyncio.create_task(peer.watch(), name="watch-scheduler")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self.jobs.close()
