"""gRPC servicer of the analyzer: thin. Failure analysis runs here (regular expressions over a
bounded log); pre-flight runs in the worker pool, as the caller may read files."""

from __future__ import annotations

import grpc

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc
from services.analyzer.analyze import analyze
from services.analyzer.pool import PreflightPool, Stopped
from services.common import settings, validate
from services.common.auth import caller, tokens
from services.common.errors import FieldViolation, InvalidArgument

MAX_LOG_BYTES = 4 * 1024 * 1024
PASS, WARN = analyzer_pb2.CHECK_STATUS_PASS, analyzer_pb2.CHECK_STATUS_WARN


class AnalyzerService(analyzer_pb2_grpc.AnalyzerServiceServicer):
    def __init__(self, pool: PreflightPool) -> None:
        self.pool = pool

    async def AnalyzeFailure(self, request: analyzer_pb2.AnalyzeFailureRequest,
                             context: grpc.aio.ServicerContext) -> analyzer_pb2.AnalyzeFailureResponse:
        if len(request.log) > MAX_LOG_BYTES:
            raise InvalidArgument("log too long", violations=[FieldViolation("log", "send at most the last 4 MiB")])
        return analyzer_pb2.AnalyzeFailureResponse(analysis=analyze(request))

    async def Preflight(self, request: analyzer_pb2.PreflightRequest,
                        context: grpc.aio.ServicerContext) -> analyzer_pb2.PreflightResponse:
        who = caller(context)
        # a service asks for the job's owner (so may anyone without auth, where callers name themselves);
        # anyone else is checked as themselves, and an admin may read every upload
        owner: str | None
        if request.owner and (who.role == "service" or not tokens().enabled):
            owner = request.owner
        else:
            owner = None if who.admin else who.user
        try:
            response = await self.pool.run(request, owner)
            return validate.rewrite_strings(response, settings.redact)
        except Stopped as exc:
            return analyzer_pb2.PreflightResponse(ok=True, checks=[analyzer_pb2.PreflightCheck(
                name="preflight", status=WARN, message=f"pre-flight did not finish and was stopped ({exc}); "
                                                       "the job was not checked")])
