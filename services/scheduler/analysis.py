"""Asks the analyzer why a job failed and keeps the answer on the job (GetJob returns it)."""

from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf import json_format

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc, job_pb2
from services.scheduler import convert
from services.scheduler.store.models import JobRow
from services.scheduler.store.repository import JobStore

log = logging.getLogger(__name__)
RECENT_METRICS = 20


class FailureAnalyst:
    def __init__(self, store: JobStore, address: str) -> None:
        self.store = store
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._tasks: set[asyncio.Task] = set()

    def job_failed(self, job_id: str) -> None:
        task = asyncio.create_task(self._analyze(job_id), name=f"analyze-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _request(self, row: JobRow) -> analyzer_pb2.AnalyzeFailureRequest:
        error = json_format.Parse(row.error_json, job_pb2.JobError())
        request = analyzer_pb2.AnalyzeFailureRequest(
            log="\n".join(p for p in (error.log_tail, error.traceback) if p) or error.message,
            config_json=json_format.MessageToJson(convert.config_of(row)), phase=error.phase, error_type=error.type)
        if error.HasField("exit_code"):
            request.exit_code = error.exit_code
        if error.HasField("signal"):
            request.signal = error.signal
        events = self.store.events_after(row.id, max(0, row.last_sequence - 200), 200)
        metrics = [e.metrics for e in events if e.HasField("metrics")][-RECENT_METRICS:]
        request.recent_metrics.extend(metrics)
        return request

    async def _analyze(self, job_id: str) -> None:
        try:
            row = await asyncio.to_thread(self.store.get_job, job_id)
            request = await asyncio.to_thread(self._request, row)
            if self._channel is None:
                self._channel = grpc.aio.insecure_channel(self.address)
            stub = analyzer_pb2_grpc.AnalyzerServiceStub(self._channel)
            reply = await stub.AnalyzeFailure(request, timeout=30)
        except (grpc.aio.AioRpcError, OSError) as exc:
            log.warning("could not analyze job %s: %s", job_id, exc)
            return

        def keep(r: JobRow, _s):
            r.analysis_json = convert.to_json(reply.analysis)
            return []

        await asyncio.to_thread(self.store.update, job_id, keep)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
