"""`/v1/fine_tuning/jobs`: create, list (newest first, `after` and `limit`), retrieve, cancel, pause,
resume, events (newest first; `stream=true` as server-sent events over WatchJob) and checkpoints; and
FineTune Lab's own, beside OpenAI's shapes: `.../analysis` (why it failed, what to change) and
`.../retry` (a new job with the suggestions and changes applied)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from google.protobuf import json_format

from ftlab.messages import checkpoint_selector
from ftlab.names import category_name, phase_name
from ftlab.v1 import config_pb2, job_pb2, job_service_pb2
from services.openai_gateway import shapes
from services.openai_gateway.app import Gateway, Gw, Metadata, Who
from services.openai_gateway.files import all_events
from services.openai_gateway.requests import job_request
from services.openai_gateway.shapes import Invalid

router = APIRouter(prefix="/v1/fine_tuning/jobs")
pb = job_service_pb2


async def _job(gateway: Gateway, who: Metadata, name: str) -> job_pb2.Job:
    reply: pb.GetJobResponse = await gateway.jobs.GetJob(pb.GetJobRequest(name=shapes.job_id(name)), metadata=who,
                                                         timeout=60)
    if reply.job.kind == job_pb2.JOB_KIND_EVALUATION:
        raise Invalid(f"no such fine-tuning job: {name!r}", "fine_tuning_job_id", status=404)
    return reply.job


async def _shown(gateway: Gateway, who: Metadata, job: job_pb2.Job) -> dict[str, Any]:
    return shapes.job_object(job, await gateway.template(who))


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page: the items after the one named `after`, at most `limit` of them."""
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[:max(1, min(limit, 10000))]
    return {"object": "list", "data": page, "has_more": len(items) > len(page)}


@router.post("")
async def create(request: Request, who: Who, gateway: Gw) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Invalid("the request body is not JSON") from None
    template = await gateway.template(who)
    reply = await gateway.jobs.CreateJob(job_request(body, gateway.aliases, template.learning_rate), metadata=who,
                                         timeout=120)
    return shapes.job_object(reply.job, template)


@router.get("")
async def list_jobs(request: Request, who: Who, gateway: Gw, after: str | None = None,
                    limit: int = 20) -> dict[str, Any]:
    wanted = {k[9:-1]: v for k, v in request.query_params.items() if k.startswith("metadata[") and k.endswith("]")}
    jobs, token = [], ""
    while True:
        page = await gateway.jobs.ListJobs(pb.ListJobsRequest(page_size=200, page_token=token), metadata=who,
                                           timeout=60)
        jobs += [j for j in page.jobs if j.kind != job_pb2.JOB_KIND_EVALUATION
                 and all(j.metadata.get(k) == v for k, v in wanted.items())]
        token = page.next_page_token
        if not token:
            break
    template = await gateway.template(who)
    return _page([shapes.job_object(j, template) for j in jobs], after, limit)


@router.get("/{job_id}")
async def retrieve(job_id: str, who: Who, gateway: Gw) -> dict[str, Any]:
    return await _shown(gateway, who, await _job(gateway, who, job_id))


@router.post("/{job_id}/cancel")
async def cancel(job_id: str, who: Who, gateway: Gw) -> dict[str, Any]:
    await _job(gateway, who, job_id)
    reply = await gateway.jobs.CancelJob(pb.CancelJobRequest(name=shapes.job_id(job_id)), metadata=who, timeout=60)
    return await _shown(gateway, who, reply.job)


@router.post("/{job_id}/pause")
async def pause(job_id: str, who: Who, gateway: Gw) -> dict[str, Any]:
    await _job(gateway, who, job_id)
    reply = await gateway.jobs.PauseJob(pb.PauseJobRequest(name=shapes.job_id(job_id)), metadata=who, timeout=60)
    return await _shown(gateway, who, reply.job)


@router.post("/{job_id}/resume")
async def resume(job_id: str, who: Who, gateway: Gw) -> dict[str, Any]:
    await _job(gateway, who, job_id)
    reply = await gateway.jobs.ResumeJob(pb.ResumeJobRequest(name=shapes.job_id(job_id)), metadata=who, timeout=60)
    return await _shown(gateway, who, reply.job)


@router.get("/{job_id}/events", response_model=None)
async def events(job_id: str, who: Who, gateway: Gw, after: str | None = None, limit: int = 20,
                 stream: bool = False) -> dict[str, Any] | StreamingResponse:
    job = await _job(gateway, who, job_id)
    if stream:
        return StreamingResponse(_stream(gateway, who, job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    found = shapes.events(job, await all_events(gateway, who, job.id))
    return _page([e.body for e in reversed(found)], after, limit)


async def _stream(gateway: Gateway, who: Metadata, job: job_pb2.Job) -> AsyncIterator[bytes]:
    """Every event of the job as it comes, oldest first, as server-sent events, until it ends."""
    final = (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED)
    watch = gateway.jobs.WatchJob(pb.WatchJobRequest(name=job.name, follow=True), metadata=who)
    async for update in watch:
        body = shapes.event_body(job.id, update.event)
        if body is not None:
            yield f"data: {json.dumps(body)}\n\n".encode()
        if update.state in final:
            break
    yield b"data: [DONE]\n\n"


@router.get("/{job_id}/checkpoints")
async def checkpoints(job_id: str, who: Who, gateway: Gw, after: str | None = None,
                      limit: int = 10) -> dict[str, Any]:
    job = await _job(gateway, who, job_id)
    reply = await gateway.jobs.ListCheckpoints(pb.ListCheckpointsRequest(name=job.name), metadata=who, timeout=60)
    losses = {e.metrics.step: e.metrics.loss for e in await all_events(gateway, who, job.id) if e.HasField("metrics")}
    shown = [shapes.checkpoint_object(job, c, losses.get(c.step))
             for c in sorted(reply.checkpoints, key=lambda c: -c.step)]
    return _page(shown, after, limit)


@router.get("/{job_id}/analysis")
async def analysis(job_id: str, who: Who, gateway: Gw) -> dict[str, Any]:
    """FineTune Lab's own: why a failed job failed, in which phase, and which settings to change."""
    job = await _job(gateway, who, job_id)
    if job.state != job_pb2.JOB_STATE_FAILED:
        raise Invalid(f"job {job_id} has not failed: there is no analysis", "fine_tuning_job_id", status=409)
    out: dict[str, Any] = json_format.MessageToDict(job.analysis, preserving_proto_field_name=True)
    out.update(object="fine_tuning.job.analysis", fine_tuning_job_id=f"ftjob-{job.id}",
               category=category_name(job.analysis.category).lower(), phase=phase_name(job.analysis.phase))
    return out


@router.post("/{job_id}/retry")
async def retry(job_id: str, request: Request, who: Who, gateway: Gw) -> dict[str, Any]:
    """FineTune Lab's own: a new job from this one, with the analysis' suggestions (`apply_suggestions`)
    and `changes` (TrainingConfig fields), from a checkpoint (`checkpoint`: latest, best or a name)."""
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        raise Invalid("the request body is not JSON") from None
    job = await _job(gateway, who, job_id)
    try:
        changes = json_format.ParseDict(body.get("changes") or {}, config_pb2.TrainingConfig())
    except json_format.ParseError as exc:
        raise Invalid(f"changes: {exc}", "changes") from None
    request_pb = pb.RetryJobRequest(name=job.name, config_changes=changes,
                                    apply_suggestions=bool(body.get("apply_suggestions")))
    request_pb.checkpoint, request_pb.checkpoint_name = checkpoint_selector(str(body.get("checkpoint") or "latest"),
                                                                            none=True)
    reply = await gateway.jobs.RetryJob(request_pb, metadata=who, timeout=120)
    return await _shown(gateway, who, reply.job)
