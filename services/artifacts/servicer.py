"""gRPC servicer of the artifacts service: thin. The scheduler says whose job it is; the store plans
the archive; the archive streams from a worker thread so reading and hashing never block the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from ftlab.v1 import artifact_service_pb2 as pb
from ftlab.v1 import artifact_service_pb2_grpc
from services.artifacts.jobs import SchedulerJobs
from services.artifacts.store import ArtifactStore, job_id_of
from services.artifacts.zipstream import CHUNK, ArtifactChanged
from services.common.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument, Precondition
from services.common.identity import caller

PREFETCH = 4  # chunks read ahead of the network: memory stays under (PREFETCH + 2) x CHUNK per download


class ArtifactService(artifact_service_pb2_grpc.ArtifactServiceServicer):
    def __init__(self, store: ArtifactStore, jobs: SchedulerJobs, exporter=None, metrics=None) -> None:
        self.store = store
        self.jobs = jobs
        self.exporter = exporter
        self.metrics = metrics

    async def _job(self, job: str, context):
        """The caller's job: a well-formed reference (checked here, and logged if not), owned by the caller
        (the scheduler's word; another user's job is NOT_FOUND)."""
        job_id_of(job)
        return await self.jobs.get(job, caller(context))

    async def ListArtifacts(self, request, context):
        await self._job(request.job, context)
        return pb.ListArtifactsResponse(artifacts=await asyncio.to_thread(self.store.list, request.job))

    async def DownloadArtifact(self, request, context):
        user = caller(context)
        job = await self._job(request.job, context)
        logs = request.all or request.kind == pb.ARTIFACT_KIND_LOGS
        generated = await self.jobs.logs(job, user) if logs else None
        folder = None
        if request.merged:
            if request.kind != pb.ARTIFACT_KIND_ADAPTER or request.all or self.exporter is None:
                raise InvalidArgument("merged applies to a LoRA adapter download",
                                      violations=[FieldViolation("merged", "only with kind ARTIFACT_KIND_ADAPTER")])
            folder = await self.exporter.merged(job, request.checkpoint)
        download = await asyncio.to_thread(self.store.plan, request.job, request.kind, request.checkpoint,
                                           request.all, generated, folder)
        total = download.archive.total_size
        if not 0 <= request.offset <= total:
            raise InvalidArgument(f"offset {request.offset} is outside the archive (0..{total})",
                                  violations=[FieldViolation("offset", f"0..{total}")])
        if request.if_match and request.if_match != download.etag:
            raise FailedPrecondition("the archive changed since the download began; start it again",
                                     reason="ARCHIVE_CHANGED",
                                     preconditions=[Precondition("ETAG", "if_match", "does not match the archive")])
        yield pb.DownloadArtifactResponse(header=pb.DownloadHeader(
            total_size_bytes=total, filename=download.filename, etag=download.etag, offset=request.offset))
        try:
            async for chunk in in_thread(rechunk(download.archive.stream(request.offset), CHUNK)):
                if self.metrics is not None:
                    self.metrics.streamed(len(chunk))
                yield pb.DownloadArtifactResponse(chunk=chunk)
        except ArtifactChanged as exc:
            raise Aborted(f"{exc}; download again", reason="ARTIFACT_CHANGED") from None
        await asyncio.to_thread(self.store.remember, download)


def rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Pieces of any size (headers of a few bytes, file chunks) as messages of about `size` bytes."""
    buf: list[bytes] = []
    held = 0
    for piece in pieces:
        if held == 0 and len(piece) >= size:
            yield piece
            continue
        buf.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(buf)
            buf, held = [], 0
    if held:
        yield b"".join(buf)


async def in_thread(items: Iterator[bytes], depth: int = PREFETCH) -> AsyncIterator[bytes]:
    """Iterate a blocking iterator in a worker thread, at most `depth` items ahead of the consumer."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(item) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
            put(end)
        except BaseException as exc:  # handed to the consumer, which raises it
            if not stop.is_set():
                put(exc)

    worker = loop.run_in_executor(None, work)
    try:
        while (item := await queue.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a worker waiting to put
            queue.get_nowait()
        if not worker.done():
            await asyncio.shield(worker)
