"""gRPC servicer of the artifacts service: thin. Download and upload land with the artifacts issue."""

from __future__ import annotations

import asyncio

from ftlab.v1 import artifact_service_pb2 as pb
from ftlab.v1 import artifact_service_pb2_grpc
from services.artifacts.store import ArtifactStore


class ArtifactService(artifact_service_pb2_grpc.ArtifactServiceServicer):
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    async def ListArtifacts(self, request, context):
        return pb.ListArtifactsResponse(artifacts=await asyncio.to_thread(self.store.list, request.job))
