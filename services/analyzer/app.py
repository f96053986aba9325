"""Assembles the analyzer service. Its rules (AnalyzeFailure, Preflight) land with the analyzer issue;
until then the service answers health and reflection and its methods return UNIMPLEMENTED."""

from __future__ import annotations

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc
from services.common.server import Registration


class AnalyzerService(analyzer_pb2_grpc.AnalyzerServiceServicer):
    pass


class AnalyzerApp:
    def registrations(self) -> list[Registration]:
        return [Registration(analyzer_pb2.DESCRIPTOR.services_by_name["AnalyzerService"].full_name,
                             AnalyzerService(), analyzer_pb2_grpc.add_AnalyzerServiceServicer_to_server)]
