"""gRPC servicer of the analyzer: thin. Preflight lands with the rest of the analyzer issue."""

from __future__ import annotations

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc
from services.analyzer.analyze import analyze
from services.common.errors import FieldViolation, InvalidArgument

MAX_LOG_BYTES = 4 * 1024 * 1024


class AnalyzerService(analyzer_pb2_grpc.AnalyzerServiceServicer):
    async def AnalyzeFailure(self, request, context):
        if len(request.log) > MAX_LOG_BYTES:
            raise InvalidArgument("log too long", violations=[FieldViolation("log", "send at most the last 4 MiB")])
        return analyzer_pb2.AnalyzeFailureResponse(analysis=analyze(request))
