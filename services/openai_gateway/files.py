"""`/v1/files`: uploads with purpose `fine-tune` through UploadDataset (streamed, within the same size
limit), listed, retrieved, downloaded as they were sent, and deleted; a job's results file
(`file-metrics-{job id}`) is its metrics as CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.datastructures import UploadFile

from ftlab.v1 import artifact_service_pb2 as apb
from ftlab.v1 import job_service_pb2
from services.openai_gateway import shapes
from services.openai_gateway.app import Gateway, Gw, Metadata, Who
from services.openai_gateway.shapes import Invalid

router = APIRouter(prefix="/v1/files")
CHUNK = 1 << 20


@router.post("")
async def upload(request: Request, who: Who,
                 gateway: Gw) -> dict[str, Any]:
    size = int(request.headers.get("content-length") or 0)
    if size > gateway.max_upload_bytes + (1 << 20):  # a multipart body carries a little besides the file
        raise Invalid(f"the file is over the limit of {gateway.max_upload_bytes:,} bytes", "file", status=413,
                      code="file_too_large")
    form = await request.form(max_part_size=gateway.max_upload_bytes + 1)
    purpose, file = form.get("purpose"), form.get("file")
    if purpose != "fine-tune":
        raise Invalid("purpose must be 'fine-tune' (the only files this API keeps)", "purpose")
    if not isinstance(file, UploadFile) or not file.filename:
        raise Invalid("a file is required", "file")
    upload_file: UploadFile = file

    async def messages() -> AsyncIterator[apb.UploadDatasetRequest]:
        yield apb.UploadDatasetRequest(metadata=apb.UploadMetadata(filename=upload_file.filename or "data.jsonl",
                                                                   size_bytes=upload_file.size or 0))
        while chunk := await upload_file.read(CHUNK):
            yield apb.UploadDatasetRequest(chunk=chunk)

    reply = await gateway.artifacts.UploadDataset(messages(), metadata=who, timeout=3600)
    return shapes.file_object(reply.dataset)


async def _datasets(gateway: Gateway, who: Metadata) -> list[apb.Dataset]:
    reply = await gateway.artifacts.ListDatasets(apb.ListDatasetsRequest(), metadata=who, timeout=60)
    return list(reply.datasets)


@router.get("")
async def list_files(who: Who, gateway: Gw, purpose: str | None = None, limit: int = 10000, after: str | None = None,
                     order: str = "desc") -> dict[str, Any]:
    found = [shapes.file_object(d) for d in await _datasets(gateway, who)]  # newest first
    if purpose not in (None, "fine-tune"):
        found = []
    if order == "asc":
        found.reverse()
    if after:
        ids = [f["id"] for f in found]
        found = found[ids.index(after) + 1:] if after in ids else []
    page = found[:max(1, min(limit, 10000))]
    return {"object": "list", "data": page, "has_more": len(found) > len(page),
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}


@router.get("/{file_id}")
async def retrieve(file_id: str, who: Who,
                   gateway: Gw) -> dict[str, Any]:
    name = shapes.dataset_of(file_id, "file_id")
    found = next((d for d in await _datasets(gateway, who) if d.name == name), None)
    if found is None:
        raise Invalid(f"No such File object: {file_id}", "file_id", status=404)
    return shapes.file_object(found)


@router.delete("/{file_id}")
async def delete(file_id: str, who: Who,
                 gateway: Gw) -> dict[str, Any]:
    await gateway.artifacts.DeleteDataset(apb.DeleteDatasetRequest(name=shapes.dataset_of(file_id, "file_id")),
                                          metadata=who, timeout=60)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/{file_id}/content", response_model=None)
async def content(file_id: str, who: Who,
                  gateway: Gw) -> StreamingResponse | PlainTextResponse:
    if file_id.startswith("file-metrics-"):
        job = file_id.removeprefix("file-metrics-")
        events = await all_events(gateway, who, job)
        return PlainTextResponse(shapes.metrics_csv(events), media_type="text/csv")
    stream = gateway.artifacts.DownloadDataset(apb.DownloadDatasetRequest(name=shapes.dataset_of(file_id, "file_id")),
                                               metadata=who, timeout=3600)
    first = await stream.read()  # a refusal (not yours, not found) is answered before any byte is sent

    async def body() -> AsyncIterator[bytes]:
        piece = first
        while piece is not grpc.aio.EOF:
            yield piece.chunk
            piece = await stream.read()

    return StreamingResponse(body(), media_type="application/octet-stream")


async def all_events(gateway: Gateway, who: Metadata, job: str) -> list[Any]:
    events, token = [], ""
    while True:
        page = await gateway.jobs.ListJobEvents(job_service_pb2.ListJobEventsRequest(
            name=job, page_size=1000, page_token=token), metadata=who, timeout=60)
        events += page.events
        token = page.next_page_token
        if not token:
            return events
