"""The scheduler's record of jobs, asked with the caller's own credentials (forwarded as they came): the scheduler owns job state, so
it decides whose job is whose (another user's job is NOT_FOUND there, and so here too), and it holds
the job's events, metrics history and failure analysis for the logs bundle."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from ftlab.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from services.common.auth import AUTHORIZATION, USER_HEADER
from services.common.channels import internal_channel
from services.common.errors import FieldViolation, InvalidArgument, NotFound, Unavailable

TIMEOUT = 30.0
Credentials: TypeAlias = tuple[tuple[str, str], ...]  # the caller's, to ask the scheduler as the caller
R = TypeVar("R")


class SchedulerJobs:
    def __init__(self, address: str) -> None:
        self.address = address
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> job_service_pb2_grpc.JobServiceStub:
        if self._channel is None:
            self._channel = internal_channel(self.address)
        return job_service_pb2_grpc.JobServiceStub(self._channel)

    async def get(self, job: str, user: Credentials) -> job_pb2.Job:
        """The caller's job, or NotFound (also when it is someone else's)."""
        reply: job_service_pb2.GetJobResponse = await self._ask(
            self._stub().GetJob, job_service_pb2.GetJobRequest(name=job), user)
        return reply.job

    async def logs(self, job: job_pb2.Job, user: Credentials) -> dict[str, bytes]:
        """The job record, every event, and the metrics history, as files of the logs bundle."""
        events: list[job_pb2.JobEvent] = []
        token = ""
        while True:
            page: job_service_pb2.ListJobEventsResponse = await self._ask(
                self._stub().ListJobEvents,
                job_service_pb2.ListJobEventsRequest(name=job.name, page_size=1000, page_token=token), user)
            events.extend(page.events)
            token = page.next_page_token
            if not token:
                break

        def line(message: Message) -> str:
            return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), sort_keys=True)

        record = json_format.MessageToDict(job, preserving_proto_field_name=True)
        out = {"job.json": (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(),
               "events.jsonl": "".join(line(e) + "\n" for e in events).encode(),
               "metrics.jsonl": "".join(line(e.metrics) + "\n" for e in events if e.HasField("metrics")).encode()}
        if job.HasField("analysis"):
            out["analysis.json"] = (json.dumps(record.get("analysis", {}), indent=2, sort_keys=True) + "\n").encode()
        return out

    async def _ask(self, method: Callable[..., Awaitable[R]], request: Message, user: Credentials) -> R:
        try:
            return await method(request, timeout=TIMEOUT, metadata=user)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(exc.details() or "no such job", reason="JOB_NOT_FOUND") from None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(exc.details() or "invalid job",
                                      violations=[FieldViolation("job", "expected jobs/{id}")]) from None
            raise Unavailable(f"the scheduler could not be asked about the job: {exc.details()}") from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def credentials(metadata: Iterable[tuple[str, str]] | None) -> Credentials:
    """The caller's credentials from a call's metadata, to ask the scheduler as the caller."""
    return tuple((k, v) for k, v in metadata or () if k in (AUTHORIZATION, USER_HEADER))
