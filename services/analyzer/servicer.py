"""gRPC servicer of the analyzer: thin."""

from __future__ import annotations

import asyncio

from google.protobuf import json_format

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc, config_pb2
from services.analyzer.analyze import analyze
from services.analyzer.preflight import preflight
from services.common import settings
from services.common.errors import FieldViolation, InvalidArgument

MAX_LOG_BYTES = 4 * 1024 * 1024


class AnalyzerService(analyzer_pb2_grpc.AnalyzerServiceServicer):
    async def AnalyzeFailure(self, request, context):
        if len(request.log) > MAX_LOG_BYTES:
            raise InvalidArgument("log too long", violations=[FieldViolation("log", "send at most the last 4 MiB")])
        return analyzer_pb2.AnalyzeFailureResponse(analysis=analyze(request))

    async def Preflight(self, request, context):
        config = config_pb2.TrainingConfig()
        try:
            json_format.Parse(request.config_json or "{}", config)
        except json_format.ParseError as exc:
            raise InvalidArgument("config_json is not a TrainingConfig",
                                  violations=[FieldViolation("config_json", str(exc)[:300])]) from exc
        if not config.base_model:
            raise InvalidArgument("base_model is required", violations=[FieldViolation("config_json.base_model", "required")])
        return await asyncio.to_thread(preflight, config, request.hardware, settings.paths())
