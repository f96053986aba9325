"""Assembles the analyzer service (stateless)."""

from __future__ import annotations

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc
from services.analyzer.pool import PreflightPool
from services.analyzer.servicer import AnalyzerService
from services.common import settings
from services.common.server import Registration


class AnalyzerApp:
    def __init__(self, pool: PreflightPool | None = None) -> None:
        self.pool = pool or PreflightPool(template_seconds=settings.preflight_template_seconds())

    def registrations(self) -> list[Registration]:
        return [Registration(analyzer_pb2.DESCRIPTOR.services_by_name["AnalyzerService"].full_name,
                             AnalyzerService(self.pool), analyzer_pb2_grpc.add_AnalyzerServiceServicer_to_server)]

    def start(self) -> None:
        self.pool.start()

    async def stop(self) -> None:
        await self.pool.close()
