"""gRPC servicers of the scheduler: thin. Decode, call the domain, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeAlias

import grpc

from ftlab.v1 import job_service_pb2, job_service_pb2_grpc, trainer_service_pb2, trainer_service_pb2_grpc
from services.common.auth import caller
from services.scheduler import templates
from services.scheduler.generation import Playground
from services.scheduler.jobs import JobManager
from services.scheduler.registry import Worker, WorkerRegistry

pb = job_service_pb2
Context: TypeAlias = grpc.aio.ServicerContext


class JobService(job_service_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobManager, playground: Playground) -> None:
        self.jobs = jobs
        self.playground = playground

    async def CreateJob(self, request: pb.CreateJobRequest, context: Context) -> pb.CreateJobResponse:
        return pb.CreateJobResponse(job=await self.jobs.create(caller(context), request))

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=await self.jobs.get(caller(context), request.name))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        jobs, token = await self.jobs.list(caller(context), list(request.states), request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=jobs, next_page_token=token)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.CancelJobResponse:
        grace = request.grace_seconds if request.HasField("grace_seconds") else None
        return pb.CancelJobResponse(job=await self.jobs.cancel(caller(context), request.name, grace))

    async def PauseJob(self, request: pb.PauseJobRequest, context: Context) -> pb.PauseJobResponse:
        return pb.PauseJobResponse(job=await self.jobs.pause(caller(context), request.name))

    async def ResumeJob(self, request: pb.ResumeJobRequest, context: Context) -> pb.ResumeJobResponse:
        return pb.ResumeJobResponse(job=await self.jobs.resume(caller(context), request))

    async def RetryJob(self, request: pb.RetryJobRequest, context: Context) -> pb.RetryJobResponse:
        return pb.RetryJobResponse(job=await self.jobs.retry(caller(context), request))

    async def WatchJob(self, request: pb.WatchJobRequest, context: Context) -> AsyncIterator[pb.WatchJobResponse]:
        async for event, state in self.jobs.watch(caller(context), request.name, request.after_sequence, request.follow):
            yield pb.WatchJobResponse(event=event, state=state)

    async def ListJobEvents(self, request: pb.ListJobEventsRequest,
                            context: Context) -> pb.ListJobEventsResponse:
        events, token = await self.jobs.events(
            caller(context), request.name, request.after_sequence, request.page_size, request.page_token)
        return pb.ListJobEventsResponse(events=events, next_page_token=token)

    async def ListCheckpoints(self, request: pb.ListCheckpointsRequest,
                              context: Context) -> pb.ListCheckpointsResponse:
        return pb.ListCheckpointsResponse(checkpoints=await self.jobs.checkpoints(caller(context), request.name))

    async def GetQueue(self, request: pb.GetQueueRequest, context: Context) -> pb.GetQueueResponse:
        free = self.jobs.controller.free_slots() if self.jobs.controller is not None else 0
        return await self.jobs.queue(caller(context), free)

    async def SetJobPriority(self, request: pb.SetJobPriorityRequest,
                             context: Context) -> pb.SetJobPriorityResponse:
        return pb.SetJobPriorityResponse(job=await self.jobs.set_priority(caller(context), request.name, request.priority))

    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: Context) -> pb.ListTemplatesResponse:
        return pb.ListTemplatesResponse(templates=templates.list_templates())

    async def EvaluateJob(self, request: pb.EvaluateJobRequest, context: Context) -> pb.EvaluateJobResponse:
        return pb.EvaluateJobResponse(job=await self.jobs.evaluate(caller(context), request))

    async def GenerateText(self, request: pb.GenerateTextRequest,
                           context: Context) -> AsyncIterator[pb.GenerateTextResponse]:
        async for piece in self.playground.generate(caller(context), request):
            yield piece


class WorkerRegistryService(trainer_service_pb2_grpc.WorkerRegistryServiceServicer):
    def __init__(self, registry: WorkerRegistry,
                 on_register: Callable[[Worker], Awaitable[None]] | None = None) -> None:
        self.registry = registry
        self.on_register = on_register

    async def RegisterWorker(self, request: trainer_service_pb2.RegisterWorkerRequest,
                             context: Context) -> trainer_service_pb2.RegisterWorkerResponse:
        worker = self.registry.register(request.worker)
        if self.on_register is not None:
            await self.on_register(worker)
        return trainer_service_pb2.RegisterWorkerResponse(
            heartbeat_interval_seconds=self.registry.heartbeat_interval, lease_seconds=self.registry.lease_seconds)

    async def Heartbeat(self, request: trainer_service_pb2.HeartbeatRequest,
                        context: Context) -> trainer_service_pb2.HeartbeatResponse:
        return trainer_service_pb2.HeartbeatResponse(known=self.registry.heartbeat(request.worker_id, list(request.running_runs)))
