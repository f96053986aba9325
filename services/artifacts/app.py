"""Assembles the artifacts service."""

from __future__ import annotations

from ftlab.v1 import artifact_service_pb2, artifact_service_pb2_grpc
from services.artifacts.servicer import ArtifactService
from services.artifacts.store import ArtifactStore
from services.common.server import Registration
from services.common.settings import Paths


class ArtifactsApp:
    def __init__(self, paths: Paths) -> None:
        self.store = ArtifactStore(paths.ensure())

    def registrations(self) -> list[Registration]:
        return [Registration(artifact_service_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name,
                             ArtifactService(self.store), artifact_service_pb2_grpc.add_ArtifactServiceServicer_to_server)]
