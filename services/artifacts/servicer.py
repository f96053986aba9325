"""gRPC servicer of the artifacts service: thin. The scheduler says whose job it is; the store plans
the archive; downloads stream from the server's thread pool, so reading and hashing never block the
event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeAlias, TypeVar

import grpc

from ftlab.v1 import artifact_service_pb2 as pb
from ftlab.v1 import artifact_service_pb2_grpc, job_pb2
from services.artifacts.export import Exporter
from services.artifacts.jobs import SchedulerJobs, credentials
from services.artifacts.metrics import ArtifactMetrics
from services.artifacts.store import ArtifactStore, job_id_of
from services.artifacts.uploads import DatasetStore, Upload
from services.artifacts.zipstream import CHUNK, ArtifactChanged
from services.common.auth import caller
from services.common.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument, Precondition

Context: TypeAlias = grpc.aio.ServicerContext
T = TypeVar("T")


class ArtifactService(artifact_service_pb2_grpc.ArtifactServiceServicer):
    def __init__(self, store: ArtifactStore, jobs: SchedulerJobs, datasets: DatasetStore,
                 exporter: Exporter | None = None, metrics: ArtifactMetrics | None = None) -> None:
        self.loop = asyncio.get_running_loop()  # the server's: where the scheduler's channel lives
        self.store = store
        self.datasets = datasets
        self.jobs = jobs
        self.exporter = exporter
        self.metrics = metrics

    async def _job(self, job: str, context: Context) -> job_pb2.Job:
        """The caller's job: a well-formed reference (checked here, and logged if not), owned by the caller
        (the scheduler's word; another user's job is NOT_FOUND)."""
        job_id_of(job)
        return await self.jobs.get(job, credentials(context.invocation_metadata()))

    async def ListArtifacts(self, request: pb.ListArtifactsRequest, context: Context) -> pb.ListArtifactsResponse:
        await self._job(request.job, context)
        return pb.ListArtifactsResponse(artifacts=await asyncio.to_thread(self.store.list, request.job))

    def DownloadArtifact(self, request: pb.DownloadArtifactRequest,
                         context: Context) -> Iterator[pb.DownloadArtifactResponse]:
        """A plain generator: the server runs it in its thread pool (reading, hashing and sending from a
        thread is about twice as fast as from the event loop); the async parts run on the loop."""
        user = credentials(context.invocation_metadata())
        job = self._on_loop(self._job(request.job, context))
        logs = request.all or request.kind == pb.ARTIFACT_KIND_LOGS
        generated = self._on_loop(self.jobs.logs(job, user)) if logs else None
        folder = None
        if request.merged:
            if request.kind != pb.ARTIFACT_KIND_ADAPTER or request.all or self.exporter is None:
                raise InvalidArgument("merged applies to a LoRA adapter download",
                                      violations=[FieldViolation("merged", "only with kind ARTIFACT_KIND_ADAPTER")])
            folder = self.exporter.merged(job, request.checkpoint)
        download = self.store.plan(request.job, request.kind, request.checkpoint, request.all, generated, folder)
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
            for chunk in rechunk(download.archive.stream(request.offset), CHUNK):
                if self.metrics is not None:
                    self.metrics.streamed(len(chunk))
                yield pb.DownloadArtifactResponse(chunk=chunk)
        except ArtifactChanged as exc:
            raise Aborted(f"{exc}; download again", reason="ARTIFACT_CHANGED") from None
        self.store.remember(download)

    async def UploadDataset(self, request_iterator: AsyncIterator[pb.UploadDatasetRequest],
                            context: Context) -> pb.UploadDatasetResponse:
        upload: Upload | None = None
        try:
            async for message in request_iterator:
                if upload is None:
                    if not message.HasField("metadata"):
                        raise InvalidArgument("send the metadata first", violations=[
                            FieldViolation("metadata", "the first message must carry it")])
                    upload = self.datasets.begin(message.metadata, caller(context).user)
                    continue
                if not message.HasField("chunk"):
                    raise InvalidArgument("metadata sent twice", violations=[FieldViolation("metadata", "only first")])
                await asyncio.to_thread(upload.write, message.chunk)
                if self.metrics is not None:
                    self.metrics.bytes_uploaded.inc(len(message.chunk))
            if upload is None:
                raise InvalidArgument("nothing was sent", violations=[FieldViolation("metadata", "required")])
            dataset = await asyncio.to_thread(upload.finish)
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return pb.UploadDatasetResponse(dataset=dataset)

    async def ListDatasets(self, request: pb.ListDatasetsRequest, context: Context) -> pb.ListDatasetsResponse:
        return pb.ListDatasetsResponse(datasets=await asyncio.to_thread(self.datasets.list, caller(context).user))

    async def DownloadDataset(self, request: pb.DownloadDatasetRequest,
                              context: Context) -> AsyncIterator[pb.DownloadDatasetResponse]:
        path = await asyncio.to_thread(self.datasets.original, request.name, caller(context).user)
        with path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                if self.metrics is not None:
                    self.metrics.streamed(len(chunk))
                yield pb.DownloadDatasetResponse(chunk=chunk)

    async def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: Context) -> pb.DeleteDatasetResponse:
        return pb.DeleteDatasetResponse(name=await asyncio.to_thread(self.datasets.delete, request.name,
                                                                     caller(context).user))

    def _on_loop(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


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
