"""The scheduler's side of the AnalyzerService: why a job failed (kept on the job; GetJob returns it)
and pre-flight checks before a job is queued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import json_format

from ftlab.v1 import analyzer_pb2, analyzer_pb2_grpc, config_pb2, job_pb2
from services.analyzer.analyze import error_log
from services.common.channels import internal_channel
from services.common.errors import FieldViolation, InvalidArgument, ResourceExhausted
from services.common.status import details_of
from services.scheduler import convert
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.store.models import JobRow
from services.scheduler.store.repository import JobStore
from services.scheduler.store.unit_of_work import Tx

log = logging.getLogger(__name__)
RECENT_METRICS = 20
Then = Callable[[str], Awaitable[object]]  # what to await with a job's id once its analysis is kept


class FailureAnalyst:
    """Sends every failed job to the AnalyzerService and keeps its diagnosis. Built with the rest of
    the scheduler; it works once it knows the analyzer's address (`connect`), which an analyzer in
    the same process has only when the server has bound its port."""

    def __init__(self, store: JobStore, address: str | None = None,
                 hardware_of: Callable[[str], analyzer_pb2.Hardware] | None = None,
                 metrics: SchedulerMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.hardware_of = hardware_of  # worker id -> analyzer_pb2.Hardware it ran on
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connect(self, address: str) -> None:
        self.address = address

    @property
    def ready(self) -> bool:
        return self.address is not None

    def stub(self) -> analyzer_pb2_grpc.AnalyzerServiceStub:
        """The analyzer's stub on one channel, shared with pre-flight."""
        if self._channel is None:
            assert self.address is not None  # asked only when ready
            self._channel = internal_channel(self.address)
        return analyzer_pb2_grpc.AnalyzerServiceStub(self._channel)

    def job_failed(self, job_id: str, then: Then | None = None) -> None:
        """Analyze the failed job in the background and keep the diagnosis; then await `then(job_id)`
        (the job domain's auto-recovery), which sees the analysis."""
        task = asyncio.create_task(self._analyze(job_id, then), name=f"analyze-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _request(self, row: JobRow) -> analyzer_pb2.AnalyzeFailureRequest:
        error = json_format.Parse(row.error_json, job_pb2.JobError())
        request = analyzer_pb2.AnalyzeFailureRequest(
            log=error_log(error),
            config_json=json_format.MessageToJson(convert.config_of(row)), phase=error.phase, error_type=error.type)
        if self.hardware_of is not None and row.worker:
            request.hardware.CopyFrom(self.hardware_of(row.worker))
        if error.HasField("exit_code"):
            request.exit_code = error.exit_code
        if error.HasField("signal"):
            request.signal = error.signal
        events = self.store.events_after(row.id, max(0, row.last_sequence - 200), 200)
        metrics = [e.metrics for e in events if e.HasField("metrics")][-RECENT_METRICS:]
        request.recent_metrics.extend(metrics)
        return request

    async def _analyze(self, job_id: str, then: Then | None = None) -> None:
        try:
            row = await asyncio.to_thread(self.store.get_job, job_id)
            assert row is not None  # jobs are never deleted
            request = await asyncio.to_thread(self._request, row)
            reply = await self.stub().AnalyzeFailure(request, timeout=30)

            def keep(r: JobRow, _s: Tx) -> list[job_pb2.JobEvent]:
                r.analysis_json = convert.to_json(reply.analysis)
                return []

            await asyncio.to_thread(self.store.update, job_id, keep)
        except (grpc.aio.AioRpcError, OSError) as exc:
            log.warning("could not analyze job %s: %s", job_id, exc)
            return
        except Exception:  # the job stays failed, unexplained; never an unretrieved task exception
            log.exception("could not analyze job %s", job_id)
            return
        if self.metrics is not None:
            self.metrics.job_failed(analyzer_pb2.FailureCategory.Name(reply.analysis.category)
                                    .removeprefix("FAILURE_CATEGORY_"))
        if then is not None:
            try:
                await then(job_id)
            except Exception:
                log.exception("automatic recovery of job %s failed", job_id)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()


class Preflighter:
    """Asks the analyzer whether a config can run, on the largest GPU among the registered trainers.

    A check that could not run is recorded as such on the job (a warning), never skipped silently;
    bad input the analyzer finds is the caller's INVALID_ARGUMENT. One user has at most
    `per_user` checks in flight, so that no one user takes every pre-flight worker."""

    TIMEOUT = 60.0

    def __init__(self, analyst: FailureAnalyst, hardware: Callable[[], analyzer_pb2.Hardware],
                 per_user: int = 2) -> None:
        self.analyst = analyst  # its channel to the analyzer is shared
        self.stub = analyst.stub  # () -> AnalyzerServiceStub
        self.hardware = hardware  # () -> analyzer_pb2.Hardware of the target
        self.per_user = per_user
        self._in_flight: dict[str, int] = {}

    @property
    def ready(self) -> bool:
        return self.analyst.ready

    async def check(self, config: config_pb2.TrainingConfig, owner: str) -> analyzer_pb2.PreflightResponse:
        if self._in_flight.get(owner, 0) >= self.per_user:
            raise ResourceExhausted(f"{self.per_user} pre-flight checks of yours are running; wait for them to finish",
                                    reason="PREFLIGHT_BUSY")
        request = analyzer_pb2.PreflightRequest(config_json=json_format.MessageToJson(config), hardware=self.hardware(),
                                                owner=owner)
        self._in_flight[owner] = self._in_flight.get(owner, 0) + 1
        try:
            reply: analyzer_pb2.PreflightResponse = await self.stub().Preflight(request, timeout=self.TIMEOUT)
            return reply
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument((exc.details() or "").replace("config_json.", "config."), violations=[
                    FieldViolation(f.replace("config_json.", "config.", 1), d) for f, d in details_of(exc)[1]],
                    reason="PREFLIGHT_INVALID") from None
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ResourceExhausted(exc.details(), reason="PREFLIGHT_BUSY") from None
            log.warning("pre-flight did not run: %s %s", exc.code().name, exc.details())
            return not_run(f"the analyzer could not be asked ({exc.code().name.lower().replace('_', ' ')})")
        finally:
            self._in_flight[owner] -= 1
            if not self._in_flight[owner]:
                del self._in_flight[owner]


def not_run(why: str) -> analyzer_pb2.PreflightResponse:
    """The record of a pre-flight that did not run: a warning, and the job not held up by it."""
    return analyzer_pb2.PreflightResponse(ok=True, checks=[analyzer_pb2.PreflightCheck(
        name="preflight", status=analyzer_pb2.CHECK_STATUS_WARN, message=f"pre-flight did not run: {why}")])
